import { nanoid } from 'nanoid'
import type { EngineEvents, Message, MessageStatus, PendingCounts, SendOptions, SendReceipt } from '../core/api.js'
import { IlmError, isIlmError } from '../core/errors.js'
import type { PeerId } from '../core/ids.js'
import { deserializeError, serializeError, type SerializedError } from '../protocol/errors.js'
import { ILM } from '../ilm.js'
import { resolveLimits } from '../core/options.js'
import type { RtcCommand } from '../protocol/rtc.js'
import { isPeerId } from '../core/ids.js'
import type { ConnectionState, HostConfig, HostFactories, HostTransport, TransportContext } from './config.js'
import { Election } from './election.js'
import { isTabMessage, type HandledOutcome, type RemoteMethod, type SinkEvent, type TabMessage } from '../protocol/tabs.js'

/** Which part this tab plays for its identity. */
export type Role = 'starting' | 'leader' | 'follower' | 'closed'

/** What the page gives its worker: where messages and events go. */
export interface PageSink {
  /** Hands a message to the page's handlers: true once they returned, false if the page has none (any more); rejects if one threw. */
  message(message: Message): Promise<boolean>
  /** Engine events (`status`, `peer-online`, `peer-offline`, `error`), `role` and `connection`, in order, batched per turn. */
  events(events: readonly SinkEvent[]): void
  /** A login token for the relay (the page's token function). */
  token(): Promise<string>
  /** WebRTC work only a page can do. */
  rtc(command: RtcCommand): void
}

/** The arguments of one `send`. */
export type SendCall = readonly [to: string, contents: unknown, options?: SendOptions]

/** How one send of a `sendMany` ended (errors in wire form: they cross the bridge inside an array). */
export type SendResult = { readonly ok: true; readonly value: SendReceipt } | { readonly ok: false; readonly error: SerializedError }

/** The API a worker exposes to its page (over Comlink). */
export interface HostApi {
  /** Joins the election for `config.peerId`; events and messages for this page go to `sink`. */
  start(config: HostConfig, sink: PageSink): Promise<{ localId: PeerId; tab: string }>
  /** The engine's methods, run on whichever tab leads (see `ILM`). */
  send(to: string, contents: unknown, options?: SendOptions): Promise<SendReceipt>
  /** Several sends in one message across the bridge; each settles on its own. */
  sendMany(calls: readonly SendCall[]): Promise<SendResult[]>
  delivered(id: string): Promise<void>
  status(id: string): Promise<MessageStatus>
  connectedPeers(): Promise<PeerId[]>
  pending(): Promise<PendingCounts>
  /** Whether the page has message handlers. */
  subscribe(subscribed: boolean): void
  /** This tab's part. */
  role(): Role
  /** The leader's connection (relayed to every tab). */
  connection(): ConnectionState
  /** Retry connecting now (the page came back online or became visible). */
  wake(): void
  /** The app's "work offline" switch for this identity's connection (held by the leader tab). */
  setOnline(online: boolean): void
  /** Signalling from this page's RTCPeerConnection for `peer`. */
  rtcSignal(peer: string, data: unknown): void
  /** A data channel to `peer`, transferred from the page. */
  rtcChannel(peer: string, channel: RTCDataChannel): void
  /** The page could not connect to `peer` directly. */
  rtcFailed(peer: string): void
  /** Leaves: a leader drains (or stops) its engine and frees the lock for the next tab. */
  shutdown(options?: { timeoutMs?: number }): Promise<void>
  close(): Promise<void>
}

interface PendingCall {
  readonly method: RemoteMethod
  readonly args: readonly unknown[]
  resolve(value: unknown): void
  reject(error: unknown): void
}

interface Follower {
  subscribed: boolean
  lastSeen: number
}

interface Delivery {
  /** Subscribed followers that have not answered yet. */
  readonly waiting: Set<string>
  /** Followers whose handlers returned. */
  handled: number
  done(error?: IlmError): void
}

const ENGINE_EVENTS = ['status', 'peer-online', 'peer-offline', 'error'] as const
// Errors after which a call is retried on whichever engine leads next.
const RETRIABLE = new Set(['CLOSED', 'STORE_FENCED'])

/**
 * Runs in a tab's dedicated worker. Tabs sharing one identity elect a leader
 * with the Web Locks API; only the leader opens the engine (store and
 * transport). Followers forward calls to it over BroadcastChannel, and the
 * leader hands every incoming message to every subscribed tab, counting it
 * processed once all of them returned. When the leader goes (closed, crashed
 * or frozen) a follower takes over and resumes from the store.
 */
export class Host implements HostApi {
  readonly #factories: HostFactories
  readonly #tab = nanoid()
  readonly #calls = new Map<string, PendingCall>()
  readonly #followers = new Map<string, Follower>()
  readonly #deliveries = new Map<string, Delivery>()
  #config: HostConfig | undefined
  #sink: PageSink | undefined
  #channel: BroadcastChannel | undefined
  #election: Election | undefined
  #engine: ILM | undefined
  #role: Role = 'starting'
  #roleWaiters: Array<() => void> = []
  #subscribed = false
  #unsubscribeEngine: (() => void) | undefined
  #leaderTab: string | undefined
  #heartbeat: ReturnType<typeof setInterval> | undefined
  #leaving: Promise<void> | undefined
  #connection: ConnectionState = { status: 'connecting' }
  #outbox: { local: SinkEvent[]; shared: SinkEvent[] } = { local: [], shared: [] }
  #networkEnabled = true
  #transport: HostTransport | undefined

  constructor(factories: HostFactories) {
    this.#factories = factories
  }

  async start(config: HostConfig, sink: PageSink): Promise<{ localId: PeerId; tab: string }> {
    if (this.#config !== undefined) throw new TypeError('start() was already called')
    validateConfig(config)
    this.#config = config
    this.#sink = sink
    this.#channel = new BroadcastChannel(`intersession-tabs:${config.peerId}`)
    this.#channel.onmessage = (event: MessageEvent) => {
      if (isTabMessage(event.data)) this.#onTabMessage(event.data)
    }
    this.#election = new Election(`intersession:${config.peerId}`, {
      heartbeatMs: config.heartbeatMs ?? 1000,
      staleAfterMs: config.staleAfterMs ?? 3000,
      lead: () => this.#lead(),
      demoted: () => void this.#demote(),
    })
    this.#heartbeat = setInterval(() => this.#beat(), config.heartbeatMs ?? 1000)
    this.#election.start()
    this.#setRole('follower')
    this.#beat()
    return { localId: config.peerId as PeerId, tab: this.#tab }
  }

  send(to: string, contents: unknown, options: SendOptions = {}): Promise<SendReceipt> {
    // An id makes the send idempotent, so it can be repeated on a new leader.
    return this.#call('send', [to, contents, { ...options, id: options.id ?? nanoid() }]) as Promise<SendReceipt>
  }

  async sendMany(calls: readonly SendCall[]): Promise<SendResult[]> {
    const settled = await Promise.allSettled(calls.map(([to, contents, options]) => this.send(to, contents, options)))
    return settled.map((r) => (r.status === 'fulfilled' ? { ok: true, value: r.value } : { ok: false, error: serializeError(r.reason) }))
  }

  delivered(id: string): Promise<void> {
    return this.#call('delivered', [id]) as Promise<void>
  }

  status(id: string): Promise<MessageStatus> {
    return this.#call('status', [id]) as Promise<MessageStatus>
  }

  connectedPeers(): Promise<PeerId[]> {
    return this.#call('connectedPeers', []) as Promise<PeerId[]>
  }

  pending(): Promise<PendingCounts> {
    return this.#call('pending', []) as Promise<PendingCounts>
  }

  subscribe(subscribed: boolean): void {
    this.#subscribed = subscribed
    this.#syncEngineSubscription()
    this.#beat()
  }

  role(): Role {
    return this.#role
  }

  connection(): ConnectionState {
    return this.#connection
  }

  wake(): void {
    this.#transport?.wake?.()
  }

  setOnline(online: boolean): void {
    this.#networkEnabled = online
    this.#transport?.setEnabled?.(online)
  }

  rtcSignal(peer: string, data: unknown): void {
    if (isPeerId(peer)) this.#transport?.signal?.(peer, data)
  }

  rtcChannel(peer: string, channel: RTCDataChannel): void {
    if (isPeerId(peer) && this.#transport?.attachChannel !== undefined) this.#transport.attachChannel(peer, channel)
    else channel.close()
  }

  rtcFailed(peer: string): void {
    if (isPeerId(peer)) this.#transport?.connectFailed?.(peer)
  }

  async shutdown(options: { timeoutMs?: number } = {}): Promise<void> {
    this.#leaving ??= this.#leave((engine) => engine.shutdown(options))
    return this.#leaving
  }

  async close(): Promise<void> {
    this.#leaving ??= this.#leave((engine) => engine.close())
    return this.#leaving
  }

  async #leave(stop: (engine: ILM) => Promise<void>): Promise<void> {
    const engine = this.#engine
    this.#setRole('closed')
    this.#post({ t: 'follower', tab: this.#tab, subscribed: false, gone: true })
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat)
    for (const call of this.#calls.values()) call.reject(new IlmError('CLOSED', 'this messenger is closed'))
    this.#calls.clear()
    try {
      if (engine !== undefined) await stop(engine)
    } finally {
      this.#engine = undefined
      this.#election?.stop()
      this.#channel?.close()
    }
  }

  /** Runs a call on the local engine if leading, else on the leader's; retried across leader changes. */
  async #call(method: RemoteMethod, args: readonly unknown[]): Promise<unknown> {
    for (;;) {
      if (this.#role === 'closed') throw new IlmError('CLOSED', 'this messenger is closed')
      const engine = this.#engine
      if (this.#role === 'leader' && engine !== undefined) {
        try {
          return await invoke(engine, method, args)
        } catch (error) {
          if (!isIlmError(error) || !RETRIABLE.has(error.code) || (this.#engine === engine && this.#role === 'leader')) throw error
          continue
        }
      }
      if (this.#role === 'follower') return this.#remoteCall(method, args)
      await this.#nextRole()
    }
  }

  #remoteCall(method: RemoteMethod, args: readonly unknown[]): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const call = nanoid()
      this.#calls.set(call, { method, args, resolve, reject })
      this.#post({ t: 'call', tab: this.#tab, call, method, args })
    })
  }

  /** Acquired the lock: open the engine and serve. Resolves when leadership ends. */
  async #lead(): Promise<void> {
    const config = this.#config!
    try {
      const transport = await this.#factories.createTransport(config, this.#transportContext())
      if (!this.#networkEnabled) transport.setEnabled?.(false)
      const engine = await ILM.open({
        store: this.#factories.createStore(config),
        transport,
        ...(config.limits !== undefined && { limits: config.limits }),
      })
      if (this.#role === 'closed') return void (await engine.close())
      this.#engine = engine
      this.#transport = transport
      for (const name of ENGINE_EVENTS) engine.on(name, (payload) => this.#relayEvent(name, payload))
      engine.on('error', (error) => error.code === 'STORE_FENCED' && void this.#demote())
      this.#setRole('leader')
      this.#syncEngineSubscription()
      this.#beat()
      // Calls this tab had sent to the old leader now run here.
      for (const [id, call] of this.#calls) {
        this.#calls.delete(id)
        invoke(engine, call.method, call.args).then(call.resolve, call.reject)
      }
    } catch (error) {
      this.#emit('error', serializeError(error), false)
      throw error
    }
  }

  #transportContext(): TransportContext {
    const sink = (): PageSink => this.#sink!
    return {
      token: () => sink().token(),
      rtc: {
        connect: (peer, initiator) => void sink().rtc({ t: 'connect', peer, initiator }),
        signal: (peer, data) => void sink().rtc({ t: 'signal', peer, data }),
        disconnect: (peer) => void sink().rtc({ t: 'disconnect', peer }),
      },
      state: (state) => {
        this.#connection = state
        this.#emit('connection', state, true)
      },
    }
  }

  /** Lost the lock (stolen while frozen, or fenced): stop the engine, follow. */
  async #demote(): Promise<void> {
    const engine = this.#engine
    this.#engine = undefined
    this.#transport = undefined
    this.#unsubscribeEngine = undefined
    if (this.#role === 'leader') this.#setRole('follower')
    this.#election?.release()
    await engine?.close()
  }

  #syncEngineSubscription(): void {
    const engine = this.#engine
    if (engine === undefined) return
    const wanted = this.#subscribed || [...this.#followers.values()].some((f) => f.subscribed)
    if (wanted && this.#unsubscribeEngine === undefined) {
      this.#unsubscribeEngine = engine.onMessage((message) => this.#handOut(message))
    } else if (!wanted && this.#unsubscribeEngine !== undefined) {
      this.#unsubscribeEngine()
      this.#unsubscribeEngine = undefined
    }
  }

  /**
   * Every subscribed tab gets the message. It is processed once every tab
   * that still has handlers answered and at least one tab's handlers
   * returned; a tab that unsubscribed or went away meanwhile is not waited for.
   */
  async #handOut(message: Message): Promise<void> {
    const local = this.#subscribed ? this.#sink!.message(message) : Promise.resolve(false)
    const [localOk, remoteOk] = await Promise.allSettled([local, this.#fanOut(message)])
    if (localOk.status === 'rejected') throw localOk.reason
    if (remoteOk.status === 'rejected') throw remoteOk.reason
    if (!localOk.value && remoteOk.value === 0) {
      throw new IlmError('HANDLER_FAILED', `no tab handled message ${message.id} (their handlers went away); it will be handed over again`)
    }
  }

  /** Hands `message` to the subscribed followers; resolves with how many of them handled it. */
  #fanOut(message: Message): Promise<number> {
    const waiting = new Set([...this.#followers].filter(([, f]) => f.subscribed).map(([tab]) => tab))
    if (waiting.size === 0) return Promise.resolve(0)
    return new Promise((resolve, reject) => {
      const delivery = nanoid()
      const pending: Delivery = {
        waiting,
        handled: 0,
        done: (error) => {
          this.#deliveries.delete(delivery)
          if (error === undefined) resolve(pending.handled)
          else reject(error)
        },
      }
      this.#deliveries.set(delivery, pending)
      this.#post({ t: 'deliver', delivery, message })
    })
  }

  #relayEvent(name: (typeof ENGINE_EVENTS)[number], payload: EngineEvents[keyof EngineEvents]): void {
    const wire = name === 'error' ? serializeError(payload) : payload
    this.#emit(name, wire, true)
  }

  #onTabMessage(m: TabMessage): void {
    if (this.#role === 'closed') return
    switch (m.t) {
      case 'leader':
        return this.#onLeaderBeat(m.tab)
      case 'follower':
        return this.#onFollowerBeat(m.tab, m.subscribed, m.gone)
      case 'call':
        return this.#serve(m.tab, m.call, m.method, m.args)
      case 'result':
        return this.#onResult(m)
      case 'deliver':
        return this.#onDeliver(m.delivery, m.message)
      case 'handled':
        return this.#onHandled(m.tab, m.delivery, m.outcome)
      case 'events':
        if (this.#role !== 'follower') return
        for (const [name, payload] of m.events) {
          if (name === 'connection') this.#connection = payload as ConnectionState
          this.#emit(name, payload, false)
        }
        return
    }
  }

  #onLeaderBeat(tab: string): void {
    this.#election?.leaderSeen()
    if (this.#leaderTab === tab) return
    this.#leaderTab = tab
    // A new leader: what this tab asked the old one may be lost; ask again (calls are idempotent).
    for (const [call, pending] of this.#calls) this.#post({ t: 'call', tab: this.#tab, call, method: pending.method, args: pending.args })
  }

  #onFollowerBeat(tab: string, subscribed: boolean, gone: boolean): void {
    // A tab that left, or whose page dropped its handlers, is not waited for.
    if (gone || !subscribed) for (const delivery of this.#deliveries.values()) this.#left(delivery, tab)
    if (gone) {
      this.#followers.delete(tab)
    } else {
      // A tab that just joined learns the connection state it missed.
      if (this.#role === 'leader' && !this.#followers.has(tab)) this.#emit('connection', this.#connection, true)
      this.#followers.set(tab, { subscribed, lastSeen: Date.now() })
    }
    this.#syncEngineSubscription()
  }

  #serve(tab: string, call: string, method: RemoteMethod, args: readonly unknown[]): void {
    const engine = this.#engine
    if (this.#role !== 'leader' || engine === undefined) return
    invoke(engine, method, args).then(
      (value) => this.#post({ t: 'result', tab, call, ok: true, value }),
      (error: unknown) => this.#post({ t: 'result', tab, call, ok: false, error: serializeError(error) }),
    )
  }

  #onResult(m: Extract<TabMessage, { t: 'result' }>): void {
    if (m.tab !== this.#tab) return
    const call = this.#calls.get(m.call)
    if (call === undefined) return
    if (!m.ok && RETRIABLE.has(m.error.code ?? '')) return // the old leader's last words; the next one answers
    this.#calls.delete(m.call)
    if (m.ok) call.resolve(m.value)
    else call.reject(deserializeError(m.error))
  }

  /** Every `deliver` gets an answer, also from a tab without handlers, so that no delivery waits for it. */
  #onDeliver(delivery: string, message: Message): void {
    if (this.#role !== 'follower') return
    const answer = (outcome: HandledOutcome): void => this.#post({ t: 'handled', tab: this.#tab, delivery, outcome })
    if (!this.#subscribed) return answer('unsubscribed')
    this.#sink!.message(message).then(
      (handled) => answer(handled ? 'handled' : 'unsubscribed'),
      () => answer('failed'),
    )
  }

  #onHandled(tab: string, delivery: string, outcome: HandledOutcome): void {
    const pending = this.#deliveries.get(delivery)
    if (pending === undefined) return
    if (outcome === 'unsubscribed') return this.#left(pending, tab)
    if (!pending.waiting.delete(tab)) return
    if (outcome === 'failed') return pending.done(new IlmError('HANDLER_FAILED', 'a handler in another tab threw'))
    pending.handled += 1
    if (pending.waiting.size === 0) pending.done()
  }

  /**
   * A tab went away (closed, or silent: it died) or dropped its handlers
   * before answering: the delivery stops waiting for it. Whether anyone
   * handled the message is judged once every tab answered (`#handOut`).
   */
  #left(delivery: Delivery, tab: string): void {
    if (delivery.waiting.delete(tab) && delivery.waiting.size === 0) delivery.done()
  }

  /** Heartbeats; the leader also forgets followers that went silent (their tab died). */
  #beat(): void {
    if (this.#role === 'closed') return
    if (this.#role === 'leader') {
      this.#post({ t: 'leader', tab: this.#tab })
      const staleBefore = Date.now() - (this.#config?.staleAfterMs ?? 3000)
      for (const [tab, follower] of this.#followers) if (follower.lastSeen < staleBefore) this.#onFollowerBeat(tab, false, true)
    } else {
      this.#post({ t: 'follower', tab: this.#tab, subscribed: this.#subscribed, gone: false })
    }
  }

  /**
   * Queues an event for this tab's page (and, with `share`, for the other
   * tabs); one message per turn carries them all, so a burst of sends does not
   * cost a round of postMessage per status change.
   */
  #emit(name: string, payload: unknown, share: boolean): void {
    if (this.#outbox.local.length === 0 && this.#outbox.shared.length === 0) queueMicrotask(() => this.#flushEvents())
    this.#outbox.local.push([name, payload])
    if (share) this.#outbox.shared.push([name, payload])
  }

  #flushEvents(): void {
    const { local, shared } = this.#outbox
    this.#outbox = { local: [], shared: [] }
    if (local.length > 0) this.#sink?.events(local)
    if (shared.length > 0) this.#post({ t: 'events', events: shared })
  }

  #post(message: TabMessage): void {
    try {
      this.#channel?.postMessage(message)
    } catch {
      // Closed channel: this tab is leaving.
    }
  }

  #setRole(role: Role): void {
    if (this.#role === role || this.#role === 'closed') return
    this.#role = role
    this.#emit('role', role, false)
    const waiters = this.#roleWaiters
    this.#roleWaiters = []
    for (const wake of waiters) wake()
  }

  #nextRole(): Promise<void> {
    return new Promise((resolve) => this.#roleWaiters.push(resolve))
  }
}

function validateConfig(config: HostConfig): void {
  if (typeof config !== 'object' || config === null) throw new TypeError('config must be an object')
  if (!isPeerId(config.peerId)) throw new TypeError('peerId must be 1..128 printable characters without whitespace')
  // Checked here, not when a tab comes to lead: an engine that can never open would be retried forever.
  resolveLimits(config.limits)
  if (config.dbName !== undefined && (typeof config.dbName !== 'string' || config.dbName.length === 0)) throw new TypeError('dbName must be a non-empty string')
  for (const key of ['heartbeatMs', 'staleAfterMs'] as const) positiveMs(key, config[key])
  const transport = config.transport as { kind?: unknown; url?: unknown; heartbeatMs?: number } | undefined
  if (transport?.kind === 'broadcast-channel') return
  positiveMs('transport.heartbeatMs', transport?.heartbeatMs)
  if (transport?.kind !== 'websocket') throw new TypeError('transport.kind must be "broadcast-channel" or "websocket"')
  const urls = typeof transport.url === 'string' ? [transport.url] : transport.url
  if (!Array.isArray(urls) || urls.length === 0 || !urls.every((u) => typeof u === 'string' && /^wss?:\/\//.test(u))) {
    throw new TypeError('transport.url must be a ws:// or wss:// URL (or a non-empty list of them)')
  }
}

function positiveMs(name: string, value: unknown): void {
  if (value === undefined) return
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number`)
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer`)
}

function invoke(engine: ILM, method: RemoteMethod, args: readonly unknown[]): Promise<unknown> {
  const fn = engine[method] as (...a: unknown[]) => Promise<unknown>
  return fn.apply(engine, [...args])
}
