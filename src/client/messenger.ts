import { proxy, releaseProxy, type Remote } from 'comlink'
import type { EngineEvents, Message, MessageHandler, MessageStatus, PendingCounts, SendOptions, SendReceipt } from '../core/api.js'
import { Emitter, type Listener } from '../core/emitter.js'
import { IlmError } from '../core/errors.js'
import type { PeerId } from '../core/ids.js'
import { fromWireError, type WireError } from '../bridge/error-codec.js'
import type { HostApi, PageSink, Role } from '../worker/host.js'
import type { ConnectionState } from '../worker/config.js'
import { PageRtc } from './page-rtc.js'

/** Events of a {@link Messenger}: the engine's, `role` when this tab's part changes, `connection` for the relay link. */
export interface MessengerEvents extends EngineEvents {
  role: Role
  connection: ConnectionState
}

/** What a {@link Messenger} needs besides its worker. */
export interface MessengerOptions {
  /** Login tokens for the relay, fetched again before every login. */
  readonly token?: () => string | Promise<string>
  /** RTCPeerConnection settings, when WebRTC is on. */
  readonly rtc?: RTCConfiguration
}

/**
 * The page side of intersession: the same shape as `ILM`, backed by the engine
 * in a worker (this tab's, or the leader tab's for this identity).
 */
export class Messenger {
  /** This peer's id. */
  readonly localId: PeerId
  readonly #host: Remote<HostApi>
  readonly #handlers = new Set<MessageHandler>()
  readonly #events: Emitter<MessengerEvents>
  readonly #dispose: () => void
  readonly #options: MessengerOptions
  readonly #rtc: PageRtc | undefined
  readonly #stopWaking: () => void
  #role: Role = 'starting'
  #connection: ConnectionState = { status: 'connecting' }
  #closing: Promise<void> | undefined

  /** @internal Use `connect()`. */
  constructor(localId: PeerId, host: Remote<HostApi>, dispose: () => void, options: MessengerOptions = {}) {
    this.localId = localId
    this.#host = host
    this.#dispose = dispose
    this.#options = options
    this.#rtc =
      options.rtc === undefined
        ? undefined
        : new PageRtc(
            {
              rtcSignal: (peer, data) => void host.rtcSignal(peer, data),
              rtcChannel: (peer, channel) => void host.rtcChannel(peer, channel),
              rtcFailed: (peer) => void host.rtcFailed(peer),
            },
            options.rtc,
          )
    this.#stopWaking = wakeOnReturn(() => void host.wake())
    this.#events = new Emitter<MessengerEvents>((error) => queueMicrotask(() => {
      throw error
    }))
  }

  /** The sink the worker reports to; passed once, at start. */
  sink(): PageSink {
    return proxy<PageSink>({
      message: (message) => this.#handOver(message),
      events: (events) => {
        for (const [name, payload] of events) this.#onEvent(name, payload)
      },
      token: async () => {
        if (this.#options.token === undefined) throw new TypeError('the relay needs a token: give connect() one')
        return this.#options.token()
      },
      rtc: (command) => this.#rtc?.command(command),
    })
  }

  /** The connection to the relay, as the leader tab's transport reports it. */
  get connection(): ConnectionState {
    return this.#connection
  }

  /** `leader` if this tab runs the engine, `follower` if another tab does. */
  get role(): Role {
    return this.#role
  }

  /** As `ILM.send`; resolves once the message is durably queued (in IndexedDB). */
  send(to: string, contents: unknown, options: SendOptions = {}): Promise<SendReceipt> {
    return this.#host.send(to, contents, options)
  }

  /** As `ILM.onMessage`: handlers of every tab of this identity see every message. */
  onMessage(handler: MessageHandler): () => void {
    if (typeof handler !== 'function') throw new TypeError('handler must be a function')
    this.#handlers.add(handler)
    if (this.#handlers.size === 1) void this.#host.subscribe(true)
    return () => {
      if (this.#handlers.delete(handler) && this.#handlers.size === 0) void this.#host.subscribe(false)
    }
  }

  /** As `ILM.on`, plus `role`. */
  on<K extends keyof MessengerEvents>(event: K, listener: Listener<MessengerEvents[K]>): () => void {
    if (typeof listener !== 'function') throw new TypeError('listener must be a function')
    return this.#events.on(event, listener)
  }

  delivered(id: string): Promise<void> {
    return this.#host.delivered(id)
  }

  status(id: string): Promise<MessageStatus> {
    return this.#host.status(id)
  }

  connectedPeers(): Promise<PeerId[]> {
    return this.#host.connectedPeers()
  }

  pending(): Promise<PendingCounts> {
    return this.#host.pending()
  }

  /** Drains (if this tab leads), then closes this tab's side; another tab may take over. */
  shutdown(options: { timeoutMs?: number } = {}): Promise<void> {
    this.#closing ??= this.#finish(this.#host.shutdown(options))
    return this.#closing
  }

  /** Stops this tab's side now; state stays in IndexedDB, and another tab may take over. */
  close(): Promise<void> {
    this.#closing ??= this.#finish(this.#host.close())
    return this.#closing
  }

  async #finish(stopping: Promise<void>): Promise<void> {
    try {
      await stopping
    } finally {
      this.#stopWaking()
      this.#rtc?.close()
      this.#events.clear()
      this.#host[releaseProxy]()
      this.#dispose()
    }
  }

  async #handOver(message: Message): Promise<void> {
    if (this.#handlers.size === 0) throw new IlmError('HANDLER_FAILED', 'no handler in this tab any more')
    for (const handler of [...this.#handlers]) await handler(message)
  }

  #onEvent(name: string, payload: unknown): void {
    switch (name) {
      case 'role':
        this.#role = payload as Role
        return this.#events.emit('role', this.#role)
      case 'connection':
        this.#connection = payload as ConnectionState
        return this.#events.emit('connection', this.#connection)
      case 'error':
        return this.#events.emit('error', fromWireError(payload as WireError) as IlmError)
      case 'status':
      case 'peer-online':
      case 'peer-offline':
        return this.#events.emit(name, payload as never)
    }
  }
}

/** Calls `wake` when the browser says the network is back or the page became visible again. */
function wakeOnReturn(wake: () => void): () => void {
  if (typeof window === 'undefined' || typeof document === 'undefined') return () => {}
  const onVisible = (): void => {
    if (document.visibilityState === 'visible') wake()
  }
  window.addEventListener('online', wake)
  document.addEventListener('visibilitychange', onVisible)
  return () => {
    window.removeEventListener('online', wake)
    document.removeEventListener('visibilitychange', onVisible)
  }
}
