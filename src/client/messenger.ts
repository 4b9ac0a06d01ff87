import { proxy, releaseProxy, type Remote } from 'comlink'
import type {
  EngineEvents,
  Message,
  MessageBatchHandler,
  MessageHandler,
  MessageStatus,
  PendingCounts,
  SendOptions,
  SendReceipt,
  StatusEvent,
} from '../core/api.js'
import { Emitter, type Listener } from '../core/emitter.js'
import { IlmError } from '../core/errors.js'
import { randomId } from '../runtime/random-id.js'
import { requestBackgroundSync } from './background-sync.js'
import type { KeyDecisionOptions, PeerKeyReport } from '../core/e2e.js'
import type { Epoch, PeerId } from '../core/ids.js'
import { PendingCalls, type Call } from '../bridge/pending-calls.js'
import { handOverBatch, type Subscriber } from '../core/hand-over.js'
import { deserializeError, serializeError, type SerializedError } from '../protocol/errors.js'
import type { RemoteMethod, TabMessage } from '../protocol/tabs.js'
import type { BridgeApi, PageOutcome, PageSink, Role, SendCall } from '../worker/host.js'
import type { ConnectionState, HostConfig } from '../worker/config.js'
import type { PageRtc } from './page-rtc.js'

/** Events of a {@link Messenger}: the engine's, `role` when this tab's part changes, `connection` for the relay link. */
export interface MessengerEvents extends EngineEvents {
  role: Role
  connection: ConnectionState
}

/** What a {@link Messenger} needs besides its worker. */
export interface MessengerOptions {
  /** Login tokens for the relay, fetched again before every login. */
  readonly token?: () => string | Promise<string>
  /** The app's check of a peer's changed identity key, asked by the worker while this tab leads. */
  readonly verifyPeerKey?: (peer: string, identityKey: Uint8Array) => boolean | Promise<boolean>
  /** RTCPeerConnection settings, when WebRTC is on. */
  readonly rtc?: RTCConfiguration
  /** How long a new worker may take to load and answer before `WORKER_FAILED`. Default 15,000 ms. */
  readonly workerTimeoutMs?: number
}

/** A running worker as the messenger uses it: its {@link BridgeApi}, released when done. */
export interface WorkerLink {
  readonly remote: Remote<BridgeApi>
  /**
   * Stops the worker, if the messenger made it (and so can make another).
   * Absent for a worker the app passed in.
   */
  readonly terminate?: () => void
  /** Rejects with `WORKER_FAILED` if the worker fails to load or run (its `error` event); never resolves. */
  readonly failed?: Promise<never>
}

/**
 * Sends per bridge message: as many as the worker's writer commits in one
 * transaction (its MAX_BATCH, src/core/writer.ts). A turn's sends split across
 * messages reached the worker in separate tasks, and the first message's sends
 * then committed alone (two transactions per window of 1,000 sends, measured:
 * each pays the flush). Not imported from the writer: the page bundle would
 * carry the writer with it.
 */
const SEND_BATCH = 1024
// Every event name, checked by the compiler against MessengerEvents.
const EVENTS = {
  status: 1,
  'peer-online': 1,
  'peer-offline': 1,
  'peer-key-changed': 1,
  'peer-key-pinned': 1,
  error: 1,
  role: 1,
  connection: 1,
} satisfies Record<keyof MessengerEvents, 1>

const DEFAULT_WORKER_TIMEOUT_MS = 15_000
/** More deaths of the messenger's worker than this within {@link DEATH_WINDOW_MS}, and it gives up with `WORKER_FAILED`. */
const MAX_RESTARTS = 3
const DEATH_WINDOW_MS = 60_000

/**
 * The page side of intersession: the same shape as `ILM`, backed by the engine
 * in a worker (this tab's, or the leader tab's for this identity).
 *
 * When the browser freezes this tab, a worker the messenger made is
 * terminated at once: a frozen worker would keep its Web Lock and any open
 * IndexedDB transaction, and so block the tab taking over for up to a minute.
 * On resume a new worker starts (as a follower, normally) and calls that were
 * in flight are made again; sends keep their ids, so none is queued twice.
 *
 * A worker that dies (terminated, closed, crashed) sends no event; the
 * messenger learns it from a Web Lock the worker holds for life, and does as
 * on resume: a new worker, the calls again. A worker the app passed in cannot
 * be replaced, nor one that died more than {@link MAX_RESTARTS} times within
 * a minute: the messenger then fails, and every pending and later call
 * rejects with `WORKER_FAILED` (a `send` so rejected may have been queued:
 * `status(id)` after the next `connect()` tells).
 */
export class Messenger {
  /** This peer's id. */
  readonly localId: PeerId
  readonly #config: HostConfig
  readonly #spawn: () => WorkerLink
  readonly #handlers = new Set<Subscriber>()
  /** Per sender, the epoch and the seq below which this page's handlers returned (messages come in order). */
  readonly #handled = new Map<PeerId, { readonly epoch: Epoch; readonly below: number }>()
  /** The hand-over in progress: the next waits for it, so that handlers see messages in order. */
  #handing: Promise<unknown> = Promise.resolve()
  readonly #calls = new PendingCalls<RemoteMethod, WorkerLink>(
    (link, call) => this.#dispatch(link, call),
    (call, ok) => call.method === 'send' && this.#sendEnded(call as Call<'send'>, ok),
  )
  /** Status events for messages whose `send()` has not resolved in this page yet: they wait for it (`undefined`: none yet). */
  readonly #unsent = new Map<string, StatusEvent[] | undefined>()
  #unsaved = 0
  /** Held status events whose sends resolved, to emit once the callers' continuations ran. */
  #released: StatusEvent[] = []
  readonly #events: Emitter<MessengerEvents>
  readonly #options: MessengerOptions
  #rtc: PageRtc | undefined
  readonly #stopListening: () => void
  /** The worker in use, from the moment it is made; calls go to it once it started. */
  #link: WorkerLink | undefined
  #ready: { readonly promise: Promise<void>; resolve(): void; reject(error: unknown): void }
  #role: Role = 'starting'
  /** This tab's id on the identity's tab bus, from its current worker. */
  #tab: string | undefined
  #connection: ConnectionState = { status: 'connecting' }
  #closing: Promise<void> | undefined
  #online = true
  /** A Background Sync was asked for since the connection was last online. */
  #syncRequested = false
  #statusListeners = 0
  #sends: { readonly link: WorkerLink; readonly calls: Call<'send'>[] } | undefined
  /** Stops waiting on the current worker's life lock (before the messenger stops that worker itself). */
  #life: { readonly link: WorkerLink; readonly stop: AbortController } | undefined
  /** When workers of this messenger died, within the last {@link DEATH_WINDOW_MS}. */
  #deaths: number[] = []
  /** Why the messenger failed, if it did: what calls reject with. */
  #failure: IlmError | undefined

  /** @internal Use `connect()`. */
  constructor(localId: PeerId, config: HostConfig, spawn: () => WorkerLink, options: MessengerOptions = {}) {
    this.localId = localId
    this.#config = config
    this.#spawn = spawn
    this.#options = options
    this.#events = new Emitter<MessengerEvents>((error) =>
      queueMicrotask(() => {
        throw error
      }),
    )
    let resolve = (): void => {}
    let reject: (error: unknown) => void = () => {}
    const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)))
    promise.catch(() => {})
    this.#ready = { promise, resolve, reject }
    this.#stopListening = listenToPage({
      wake: () => void this.#link?.remote.wake(),
      freeze: () => this.#freeze(),
      resume: () => void this.#restart(),
      leave: () => this.#left(),
    })
  }

  /** @internal Starts the worker side; `connect()` calls it once. */
  async start(): Promise<void> {
    await this.#loadRtc()
    const link = this.#spawn()
    this.#link = link
    const timeoutMs = this.#options.workerTimeoutMs ?? DEFAULT_WORKER_TIMEOUT_MS
    let timer: ReturnType<typeof setTimeout> | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new IlmError('WORKER_FAILED', `the worker did not answer within ${timeoutMs} ms`)), timeoutMs)
    })
    const lifeLock = `intersession-worker:${randomId()}`
    let watched: boolean
    try {
      const started = await Promise.race([
        link.remote.start(this.#config, this.#sink(link), lifeLock),
        timeout,
        ...(link.failed === undefined ? [] : [link.failed]),
      ])
      this.#tab = started.tab
      watched = started.watched
    } catch (error) {
      // A freeze meanwhile may have replaced it already.
      if (this.#link === link) this.#link = undefined
      this.#stop(link)
      throw error
    } finally {
      clearTimeout(timer)
    }
    if (this.#link !== link) return
    if (watched) this.#watchLife(link, lifeLock)
    link.failed?.catch((error: unknown) => this.#link === link && this.#events.emit('error', error as IlmError))
    if (this.#handlers.size > 0) void link.remote.subscribe(true)
    if (this.#statusListeners > 0) void link.remote.watchStatus(true)
    if (!this.#online) void link.remote.setOnline(false)
    // Calls wait for a started worker, and each goes to it exactly once from here.
    this.#calls.retarget(link)
  }

  /** WebRTC code is loaded only when WebRTC is on (a dynamic import, split off by bundlers). */
  async #loadRtc(): Promise<void> {
    const config = this.#options.rtc
    if (config === undefined || this.#rtc !== undefined) return
    const { pageRtcFor } = await import('./page-rtc.js')
    this.#rtc = pageRtcFor(() => this.#link?.remote, config)
  }

  /** `leader` if this tab runs the engine, `follower` if another tab does. */
  get role(): Role {
    return this.#role
  }

  /** The connection to the relay, as the leader tab's transport reports it. */
  get connection(): ConnectionState {
    return this.#connection
  }

  /**
   * How many `send()` calls of this tab have not settled yet: their messages
   * may not be stored, so closing the tab now may lose them (a settled send
   * is durable, or was refused). E.g. warn before the page unloads:
   * `addEventListener('beforeunload', (e) => messenger.unsaved > 0 && e.preventDefault())`.
   */
  get unsaved(): number {
    return this.#unsaved
  }

  /**
   * Resolves once this tab's engine, or the leader tab's, is up: calls are
   * served from then on. Being offline is normal and does not delay it (see
   * `connection`). Rejects with `CLOSED` if the messenger closes first
   * (`WORKER_FAILED` if its worker died for good first).
   */
  ready(): Promise<void> {
    return this.#ready.promise
  }

  /**
   * As `ILM.send`; resolves once the message is durably queued (in IndexedDB).
   * Misuse rejects (it does not throw). Status events of the message come
   * after this resolves.
   */
  send(to: string, contents: unknown, options?: SendOptions): Promise<SendReceipt> {
    if (options !== undefined && (typeof options !== 'object' || options === null)) return Promise.reject(new TypeError('options must be an object'))
    // A closed messenger refuses at once (CLOSED, WORKER_FAILED): nothing to count, no id to hold.
    if (this.#closing !== undefined) return this.#call('send', []) as Promise<SendReceipt>
    // The id is made here, so that a call repeated after a worker restart is recognised.
    const id = options?.id ?? randomId()
    // No array per send: one is made for the few sends whose status events come before they resolve.
    if (!this.#unsent.has(id)) this.#unsent.set(id, undefined)
    this.#unsaved += 1
    // A copy: the caller may reuse its options object before the batch is cloned to the worker. Its end: #sendEnded.
    return this.#call('send', [to, contents, options === undefined ? { id } : { ...options, id }]) as Promise<SendReceipt>
  }

  /** A send settled (its promise did, just now): its held status events go out after the caller's continuation. */
  #sendEnded(call: Call<'send'>, ok: boolean): void {
    this.#unsaved -= 1
    const id = (call.args[2] as { id: string }).id
    const held = this.#unsent.get(id)
    this.#unsent.delete(id)
    if (ok) this.#queuedOffline()
    if (held !== undefined) this.#released.push(...held)
  }

  /**
   * Emits the status events of the sends just settled, once their callers'
   * continuations ran: they know the ids when the events come. One microtask
   * for all the sends settled together (one per send costs half the page's
   * send throughput, measured).
   */
  #releaseHeld(): void {
    if (this.#released.length > 0) queueMicrotask(() => this.#flushReleased())
  }

  /** As `ILM.onMessage`: handlers of every tab of this identity see every message. */
  onMessage(handler: MessageHandler): () => void {
    if (typeof handler !== 'function') throw new TypeError('handler must be a function')
    return this.#subscribe({ batch: false, handler })
  }

  /** As `ILM.onMessages`: batches of one sender's messages, in order, one call per batch. */
  onMessages(handler: MessageBatchHandler): () => void {
    if (typeof handler !== 'function') throw new TypeError('handler must be a function')
    return this.#subscribe({ batch: true, handler })
  }

  #subscribe(subscriber: Subscriber): () => void {
    this.#handlers.add(subscriber)
    if (this.#handlers.size === 1) void this.#link?.remote.subscribe(true)
    return () => {
      if (this.#handlers.delete(subscriber) && this.#handlers.size === 0) void this.#link?.remote.subscribe(false)
    }
  }

  /**
   * The app's "work offline" switch: `false` takes this identity's connection
   * to the relay down and keeps it down, `true` brings it back. Sends keep
   * queuing meanwhile; `connection` reports the state. Acts on the connection
   * when this tab leads (the usual case with one tab per identity).
   */
  setOnline(online: boolean): void {
    if (typeof online !== 'boolean') throw new TypeError('online must be a boolean')
    this.#online = online
    void this.#link?.remote.setOnline(online)
  }

  /** As `ILM.on`, plus `role` and `connection`. */
  on<K extends keyof MessengerEvents>(event: K, listener: Listener<MessengerEvents[K]>): () => void {
    if (!Object.hasOwn(EVENTS, event)) throw new TypeError(`unknown event "${String(event)}"`)
    if (typeof listener !== 'function') throw new TypeError('listener must be a function')
    const off = this.#events.on(event, listener)
    if (event !== 'status') return off
    // The worker sends status events only while some listener here wants them.
    if (++this.#statusListeners === 1) void this.#link?.remote.watchStatus(true)
    let on = true
    return () => {
      off()
      if (!on) return
      on = false
      if (--this.#statusListeners === 0) void this.#link?.remote.watchStatus(false)
    }
  }

  /** As `ILM.delivered`: resolves once the receiver stored the message; rejects `EXPIRED`, `UNKNOWN_MESSAGE`, `CLOSED`. */
  delivered(id: string): Promise<void> {
    return this.#call('delivered', [id]) as Promise<void>
  }

  /** As `ILM.status`: `queued`, `sent`, `delivered`, `expired` or `unknown`. */
  status(id: string): Promise<MessageStatus> {
    return this.#call('status', [id]) as Promise<MessageStatus>
  }

  /** Peers currently reachable from this identity's engine, sorted. */
  connectedPeers(): Promise<PeerId[]> {
    return this.#call('connectedPeers', []) as Promise<PeerId[]>
  }

  /** Messages waiting in IndexedDB: `{ outbound, inbound }`. */
  pending(): Promise<PendingCounts> {
    return this.#call('pending', []) as Promise<PendingCounts>
  }

  /**
   * As `ILM.acceptPeerKey`: pins the identity key `peer` presented after a `peer-key-changed` event; its held messages
   * flow again. With `safetyNumber`, only the key with that number (else `KEY_MISMATCH`, nothing pinned).
   */
  acceptPeerKey(peer: string, options?: KeyDecisionOptions): Promise<void> {
    return this.#call('acceptPeerKey', [peer, options]) as Promise<void>
  }

  /**
   * As `ILM.rejectPeerKey`: refuses the identity key `peer` presented after a `peer-key-changed` event; the key pinned
   * before stays, and messages flow again under it. With `safetyNumber`, only the key with that number.
   */
  rejectPeerKey(peer: string, options?: KeyDecisionOptions): Promise<void> {
    return this.#call('rejectPeerKey', [peer, options]) as Promise<void>
  }

  /** As `ILM.peerKeyStatus`: `unknown`, `ready` or `changed` (held for a decision), with the safety numbers. */
  peerKeyStatus(peer: string): Promise<PeerKeyReport> {
    return this.#call('peerKeyStatus', [peer]) as Promise<PeerKeyReport>
  }

  /** As `ILM.safetyNumber`: the fingerprint of both identity keys (12 groups of 5 digits) to compare out of band. */
  safetyNumber(peer: string): Promise<string | undefined> {
    return this.#call('safetyNumber', [peer]) as Promise<string | undefined>
  }

  /** Drains (if this tab leads), then closes this tab's side; another tab may take over. */
  shutdown(options: { timeoutMs?: number } = {}): Promise<void> {
    // Misuse must not close the messenger: checked before anything starts.
    if (typeof options !== 'object' || options === null) return Promise.reject(new TypeError('options must be an object'))
    const { timeoutMs } = options
    if (timeoutMs !== undefined && !(Number.isSafeInteger(timeoutMs) && timeoutMs >= 0)) {
      return Promise.reject(new RangeError('timeoutMs must be a non-negative integer'))
    }
    this.#closing ??= this.#finish((host) => host.shutdown(options))
    return this.#closing
  }

  /** Stops this tab's side now; state stays in IndexedDB, and another tab may take over. */
  close(): Promise<void> {
    this.#closing ??= this.#finish((host) => host.close())
    return this.#closing
  }

  #call(method: RemoteMethod, args: readonly unknown[]): Promise<unknown> {
    if (this.#closing !== undefined) return Promise.reject(this.#failure ?? new IlmError('CLOSED', 'this messenger is closed'))
    return this.#calls.call(method, args)
  }

  /** One attempt of a call on `link`'s worker. */
  #dispatch(link: WorkerLink, call: Call<RemoteMethod>): void {
    if (call.method === 'send') {
      this.#queueSend(link, call as Call<'send'>)
      return
    }
    const fn = link.remote[call.method] as (...args: unknown[]) => Promise<unknown>
    fn(...call.args).then(
      (value) => this.#calls.settle(link, call.id, { ok: true, value }),
      (error: unknown) => this.#calls.settle(link, call.id, { ok: false, error }),
    )
  }

  /**
   * Sends made in one turn cross the bridge together, in messages of up to
   * {@link SEND_BATCH} (a batch answers when all its sends are stored, so a
   * bounded batch keeps the first ones from waiting for the last).
   */
  #queueSend(link: WorkerLink, call: Call<'send'>): void {
    if (this.#sends?.link !== link) {
      this.#sends = { link, calls: [] }
      queueMicrotask(() => this.#flushSends())
    }
    this.#sends.calls.push(call)
  }

  #flushSends(): void {
    const batch = this.#sends
    this.#sends = undefined
    if (batch === undefined) return
    for (let i = 0; i < batch.calls.length; i += SEND_BATCH) this.#sendBatch(batch.link, batch.calls.slice(i, i + SEND_BATCH))
  }

  /** One bridge message: the batch packed (see `PackedSends`), and each send settled from its packed outcome. */
  #sendBatch(link: WorkerLink, calls: readonly Call<'send'>[]): void {
    const to: string[] = []
    const contents: unknown[] = []
    const options: (SendOptions & { id: string })[] = []
    for (const { args } of calls) {
      const [peer, body, opts] = args as unknown as SendCall
      to.push(peer)
      contents.push(body)
      options.push(opts as SendOptions & { id: string })
    }
    link.remote.sendPacked({ to, contents, options }).then(
      (outcomes) => {
        outcomes.forEach((outcome, i) => {
          const call = calls[i]!
          if (typeof outcome !== 'number') this.#calls.settle(link, call.id, { ok: false, error: deserializeError(outcome) })
          else this.#calls.settle(link, call.id, { ok: true, value: { id: (call.args[2] as { id: string }).id, seq: outcome } })
        })
        this.#releaseHeld()
      },
      (error: unknown) => {
        if ((error as Error | null)?.name === 'DataCloneError') {
          this.#uncloneable(link, calls, error)
          return
        }
        for (const call of calls) this.#calls.settle(link, call.id, { ok: false, error })
        this.#releaseHeld()
      },
    )
  }

  /** Contents the worker cannot receive (a function, a symbol) failed the whole batch: each is tried alone, so only they fail. */
  #uncloneable(link: WorkerLink, calls: readonly Call<'send'>[], error: unknown): void {
    if (calls.length > 1) {
      calls.forEach((call) => this.#sendBatch(link, [call]))
      return
    }
    const error_ = new IlmError('UNSERIALIZABLE', 'contents cannot be sent: they cannot be cloned to the worker', { cause: error })
    this.#calls.settle(link, calls[0]!.id, { ok: false, error: error_ })
    this.#releaseHeld()
  }

  /**
   * The page is going away (closed, reloaded, navigated): its worker dies with
   * it, unheard. Tell the leader at once, so that no delivery waits for this
   * tab's handlers until its heartbeat goes stale.
   */
  #left(): void {
    if (this.#tab === undefined || typeof BroadcastChannel === 'undefined') return
    const message: TabMessage = { t: 'follower', tab: this.#tab, subscribed: false, gone: true }
    const channel = new BroadcastChannel(`intersession-tabs:${this.localId}`)
    channel.postMessage(message)
    channel.close()
  }

  /** A send was stored while the relay is out of reach: one Background Sync per offline spell delivers it even if the page closes. */
  #queuedOffline(): void {
    if (this.#connection.status === 'online' || this.#syncRequested) return
    this.#syncRequested = true
    requestBackgroundSync(this.localId)
  }

  #flushReleased(): void {
    const events = this.#released
    this.#released = []
    for (const event of events) this.#events.emit('status', event)
  }

  #freeze(): void {
    const link = this.#link
    if (link?.terminate === undefined || this.#closing !== undefined) return
    this.#link = undefined
    this.#calls.retarget(undefined)
    this.#stop(link)
    this.#onEvent('role', 'starting')
  }

  /** Starts a new worker (after a freeze, or a death); if it cannot, the messenger fails. */
  async #restart(): Promise<void> {
    if (this.#link !== undefined || this.#closing !== undefined) return
    try {
      await this.start()
    } catch (error) {
      this.#fail('could not be restarted', error)
    }
  }

  /** The browser grants this lock only once `link`'s worker, which holds it, is gone. */
  #watchLife(link: WorkerLink, lifeLock: string): void {
    const stop = new AbortController()
    this.#life = { link, stop }
    navigator.locks.request(lifeLock, { signal: stop.signal }, () => this.#died(link)).catch(() => {})
  }

  #died(link: WorkerLink): void {
    if (this.#link !== link || this.#closing !== undefined) return
    this.#link = undefined
    this.#calls.retarget(undefined)
    this.#stop(link)
    this.#onEvent('role', 'starting')
    this.#onEvent('connection', { status: 'connecting' })
    const now = Date.now()
    this.#deaths = [...this.#deaths.filter((at) => now - at < DEATH_WINDOW_MS), now]
    if (link.terminate === undefined) this.#fail('passed to connect() died')
    else if (this.#deaths.length > MAX_RESTARTS) this.#fail(`died ${this.#deaths.length} times in a minute`)
    else void this.#restart()
  }

  /**
   * The engine cannot be reached any more: every pending and later call
   * rejects with `WORKER_FAILED`, reported once as an `error` event. A send
   * so rejected may have been queued (docs/GUARANTEES.md, promise 1).
   */
  #fail(what: string, cause?: unknown): void {
    if (this.#closing !== undefined) return
    const error = new IlmError('WORKER_FAILED', `the worker ${what}; pending sends may have been queued`, { cause })
    this.#failure = error
    this.#events.emit('error', error)
    this.#closing = this.#finish(async () => {}, error)
  }

  async #finish(stop: (host: Remote<BridgeApi>) => Promise<void>, reason = new IlmError('CLOSED', 'this messenger is closed')): Promise<void> {
    const link = this.#link
    try {
      if (link !== undefined) await stop(link.remote)
    } finally {
      this.#link = undefined
      if (link !== undefined) this.#stop(link)
      this.#calls.close(reason)
      this.#ready.reject(reason)
      this.#stopListening()
      this.#rtc?.close()
      this.#events.clear()
    }
  }

  #stop(link: WorkerLink): void {
    if (this.#life?.link === link) {
      this.#life.stop.abort()
      this.#life = undefined
    }
    link.remote[releaseProxy]()
    link.terminate?.()
  }

  /**
   * What `link`'s worker calls. Once `link` is replaced (the tab froze), what
   * it still had queued for this page is ignored: a message it handed over
   * can no longer be marked processed, so the next engine hands it over again.
   */
  #sink(link: WorkerLink): PageSink {
    return proxy<PageSink>({
      messages: (messages) => {
        if (this.#link !== link) return Promise.reject(new IlmError('CLOSED', 'this worker was stopped'))
        // A batch can come while the last is still with the handlers: the leader stops waiting for a
        // tab that unsubscribed, and the next batch reaches it once it subscribed again.
        const turn = this.#handing.then(() => this.#handOver(messages))
        this.#handing = turn.catch(() => {})
        return turn
      },
      events: (events) => {
        if (this.#link !== link) return
        for (const [name, payload] of events) this.#onEvent(name, payload)
      },
      token: async () => {
        if (this.#options.token === undefined) throw new TypeError('the relay needs a token: give connect() one')
        return this.#options.token()
      },
      verifyPeerKey: async (peer, identityKey) => (await this.#options.verifyPeerKey?.(peer, identityKey)) === true,
      rtc: (command) => this.#rtc?.command(command),
    })
  }

  /**
   * How many of `messages` every handler processed; false when this page has
   * none (any more), so another tab's count. Messages this page's handlers
   * already returned for are counted, not handed to them again: an engine
   * that lost their processed marks with its worker (an old leader tab
   * closed, this tab's worker frozen or dead) hands them over once more.
   */
  async #handOver(messages: readonly Message[]): Promise<PageOutcome> {
    if (this.#handlers.size === 0) return false
    const seen = messages[0] && this.#handled.get(messages[0].from)
    let skip = 0
    for (const m of messages) {
      if (seen?.epoch !== m.epoch || m.seq >= seen.below) break
      skip++
    }
    if (skip === messages.length) return { handled: skip }
    const { handled, error } = await handOverBatch([...this.#handlers], skip === 0 ? messages : messages.slice(skip))
    const last = messages[skip + handled - 1]
    if (handled > 0 && last !== undefined) this.#handled.set(last.from, { epoch: last.epoch, below: last.seq + 1 })
    return skip + handled < messages.length ? { handled: skip + handled, error: serializeError(error) } : { handled: skip + handled }
  }

  #onEvent(name: string, payload: unknown): void {
    switch (name) {
      case 'role':
        this.#role = payload as Role
        {
          this.#events.emit('role', this.#role)
          return
        }
      case 'connection':
        this.#connection = payload as ConnectionState
        if (this.#connection.status === 'online') this.#syncRequested = false
        {
          this.#events.emit('connection', this.#connection)
          return
        }
      case 'error': {
        this.#events.emit('error', deserializeError(payload as SerializedError) as IlmError)
        return
      }
      case 'ready': {
        this.#ready.resolve()
        return
      }
      case 'status': {
        const event = payload as StatusEvent
        if (this.#unsent.has(event.id)) {
          const held = this.#unsent.get(event.id)
          if (held === undefined) this.#unsent.set(event.id, [event])
          else held.push(event)
          return
        }
        this.#events.emit('status', event)
        return
      }
      case 'peer-online':
      case 'peer-offline':
      case 'peer-key-changed':
      case 'peer-key-pinned': {
        this.#events.emit(name, payload as never)
        return
      }
    }
  }
}

/**
 * Page lifecycle hooks: `wake` when the network is back or the page became
 * visible again, `freeze`/`resume` around the browser freezing the tab,
 * `leave` when the page goes for good (not into the back/forward cache).
 */
function listenToPage(on: { wake(): void; freeze(): void; resume(): void; leave(): void }): () => void {
  if (typeof window === 'undefined' || typeof document === 'undefined') return () => {}
  const stop = new AbortController()
  const options = { signal: stop.signal }
  window.addEventListener('online', on.wake, options)
  document.addEventListener('visibilitychange', () => document.visibilityState === 'visible' && on.wake(), options)
  document.addEventListener('freeze', on.freeze, options)
  window.addEventListener('pagehide', (event) => !event.persisted && on.leave(), options)
  document.addEventListener(
    'resume',
    () => {
      on.resume()
      on.wake()
    },
    options,
  )
  return () => stop.abort()
}
