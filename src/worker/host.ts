import type { BatchOutcome, Message, MessageStatus, PendingCounts, SendOptions, SendReceipt } from '../core/api.js'
import type { KeyDecisionOptions, PeerKeyReport } from '../core/e2e.js'
import { IlmError, isIlmError } from '../core/errors.js'
import { sendSettled } from '../core/send-batch.js'
import { isPeerId, type PeerId } from '../core/ids.js'
import { randomId } from '../runtime/random-id.js'
import { PendingCalls, type Call, type Outcome } from '../bridge/pending-calls.js'
import type { Engine } from '../core/engine.js'
import { deserializeError, serializeError, type SerializedError } from '../protocol/errors.js'
import type { RtcCommand } from '../protocol/rtc.js'
import { callLevel, identityLock, type RemoteMethod, type SinkEvent } from '../protocol/tabs.js'
import { validateConfig, type ConnectionState, type HostConfig, type HostFactories, type TransportContext } from './config.js'
import { Election } from './election.js'
import { LeaderSession } from './leader-session.js'
import { TabBus } from './tab-bus.js'

/** Which part this tab plays for its identity. */
export type Role = 'starting' | 'leader' | 'follower' | 'closed'

/** What the page gives its worker: where messages and events go. */
export interface PageSink {
  /** Hands messages (in order) to the page's handlers: how many they processed, or false if the page has none (any more). */
  messages(messages: readonly Message[]): Promise<PageOutcome>
  /** Engine events (`status`, `peer-online`, `peer-offline`, `error`), `role`, `connection` and `ready`, in order, batched per turn. */
  events(events: readonly SinkEvent[]): void
  /** A login token for the relay (the page's token function). */
  token(): Promise<string>
  /** The app's verdict on a peer's changed identity key (its `verifyPeerKey`); asked only with `config.verifiesPeerKeys`. */
  verifyPeerKey(peer: PeerId, identityKey: Uint8Array): Promise<boolean>
  /** WebRTC work only a page can do. */
  rtc(command: RtcCommand): void
}

/** How a page took a batch: how many messages from the first its handlers processed, and why the next one failed. */
export type PageOutcome = false | { readonly handled: number; readonly error?: SerializedError }

/** What {@link HostApi.start} answers. */
export interface StartedHost {
  readonly localId: PeerId
  /** This tab's id on the identity's tab bus. */
  readonly tab: string
  /** True if the worker holds the `lifeLock` it was given until it dies. */
  readonly watched: boolean
}

/** The arguments of one `send`. */
export type SendCall = readonly [to: string, contents: unknown, options?: SendOptions]

/** How one send of a `sendMany` ended (errors in wire form: they cross the bridge inside an array). */
export type SendResult = { readonly ok: true; readonly value: SendReceipt } | { readonly ok: false; readonly error: SerializedError }

/**
 * A batch of sends as `connect()`'s page hands it to its worker: one array
 * per argument, not one array per send (fewer objects to clone, on both
 * sides). Every `options` carries the send's id.
 */
export interface PackedSends {
  readonly to: readonly string[]
  readonly contents: readonly unknown[]
  readonly options: readonly (SendOptions & { readonly id: string })[]
}

/** How each send of a {@link PackedSends} ended, in order: its seq (its id is the page's), or its error in wire form. */
export type PackedOutcomes = (number | SerializedError)[]

/** The page's side of the bridge: {@link HostApi} and the packed sends `connect()`'s page uses. */
export interface BridgeApi extends HostApi {
  sendPacked(sends: PackedSends): Promise<PackedOutcomes>
}

/** The API a worker exposes to its page (over Comlink). */
export interface HostApi {
  /**
   * Joins the election for `config.peerId`; events and messages for this page
   * go to `sink`. With `lifeLock`, this worker holds that Web Lock until it
   * dies, so the page learns of its death by waiting on it; `watched` says
   * whether it holds it (false without the Web Locks API).
   */
  start(config: HostConfig, sink: PageSink, lifeLock?: string): Promise<StartedHost>
  /** The engine's methods, run on whichever tab leads (see `ILM`). */
  send(to: string, contents: unknown, options?: SendOptions): Promise<SendReceipt>
  /** Several sends in one message across the bridge; each settles on its own. */
  sendMany(calls: readonly SendCall[]): Promise<SendResult[]>
  delivered(id: string): Promise<void>
  status(id: string): Promise<MessageStatus>
  connectedPeers(): Promise<PeerId[]>
  pending(): Promise<PendingCounts>
  acceptPeerKey(peer: string, options?: KeyDecisionOptions): Promise<void>
  rejectPeerKey(peer: string, options?: KeyDecisionOptions): Promise<void>
  safetyNumber(peer: string): Promise<string | undefined>
  peerKeyStatus(peer: string): Promise<PeerKeyReport>
  /** Whether the page has message handlers. */
  subscribe(subscribed: boolean): void
  /** Whether the page listens to `status` events; none cross the bridge while it does not. */
  watchStatus(wanted: boolean): void
  /** This tab's part. */
  role(): Role
  /** The leader's connection (relayed to every tab). */
  connection(): ConnectionState
  /** Retry connecting now (the page came back online or became visible). */
  wake(): void
  /** The app's "work offline" switch for this identity's connection, from any tab (the leader applies it). */
  setOnline(online: boolean): void
  /** Signalling from this page's RTCPeerConnection for `peer`. */
  rtcSignal(peer: string, data: unknown): void
  /** A data channel to `peer`, transferred from the page. */
  /** A data channel the page opened: transferred, or (engines that cannot transfer one) the port the page pipes it through. */
  rtcChannel(peer: string, channel: RTCDataChannel | MessagePort): void
  /** The page could not connect to `peer` directly. */
  rtcFailed(peer: string): void
  /** Leaves: a leader drains (or stops) its engine and frees the lock for the next tab. */
  shutdown(options?: { timeoutMs?: number }): Promise<void>
  close(): Promise<void>
}

/** Where this tab's calls go: its own engine while it leads, the leader tab's id while it follows. */
type Target = Engine | string

/**
 * Runs in a tab's dedicated worker and faces its page (over Comlink). Tabs
 * sharing one identity elect a leader with the Web Locks API ({@link Election});
 * only the leader opens the engine ({@link LeaderSession}). The others reach
 * it over the {@link TabBus}, and the leader hands every incoming message to
 * every subscribed tab, counting it processed once their handlers returned.
 * When the leader goes (closed, crashed or frozen) a follower takes over and
 * resumes from the store. This tab's calls go through {@link PendingCalls}:
 * to its own engine while it leads, to the leader's otherwise, and again to
 * the next one whenever that changes. Its methods take their arguments as
 * Comlink delivers them, cloned: a send's bytes are the host's own, and its
 * engine stores them without another copy.
 */
export class Host implements BridgeApi {
  readonly #factories: HostFactories
  readonly #calls = new PendingCalls<RemoteMethod, Target>((target, call) => this.#dispatch(target, call))
  #config: HostConfig | undefined
  #sink: PageSink | undefined
  #bus: TabBus | undefined
  #election: Election | undefined
  #session: LeaderSession | undefined
  #role: Role = 'starting'
  #ready = false
  #subscribed = false
  #statusWanted = false
  #leaderTab: string | undefined
  /** The tab bus level of the leader tab, from its heartbeats. */
  #leaderLevel = 1
  #leaving: Promise<void> | undefined
  #connection: ConnectionState = { status: 'connecting' }
  #outbox: { local: SinkEvent[]; shared: SinkEvent[] } = { local: [], shared: [] }
  #networkEnabled = true

  constructor(factories: HostFactories) {
    this.#factories = factories
  }

  async start(config: HostConfig, sink: PageSink, lifeLock?: string): Promise<StartedHost> {
    if (this.#config !== undefined) throw new TypeError('start() was already called')
    validateConfig(config)
    this.#config = config
    this.#sink = sink
    const timing = { heartbeatMs: config.heartbeatMs ?? 1000, staleAfterMs: config.staleAfterMs ?? 3000 }
    const bus = new TabBus(config.peerId, timing, {
      leading: () => this.#role === 'leader',
      subscribed: () => this.#subscribed,
      networkEnabled: () => this.#networkEnabled,
      leaderSeen: (tab, online, level) => this.#onLeaderSeen(tab, online, level),
      followersChanged: (joined) => this.#onFollowersChanged(joined),
      serve: (call, reply) => this.#serve(call, reply),
      result: (leader, id, outcome) => this.#calls.settle(leader, id, outcome),
      handle: async (messages) => {
        const outcome = await sink.messages(messages)
        if (outcome === false) return false
        if (outcome.handled < messages.length) throw deserializeError(outcome.error ?? { name: 'Error', message: 'not handled' })
        return true
      },
      events: (events) => this.#onLeaderEvents(events),
      switched: (online) => this.#switch(online),
    })
    this.#bus = bus
    this.#election = new Election(identityLock(config.peerId), {
      ...timing,
      lead: () => this.#lead(),
      demoted: () => void this.#demote(),
    })
    this.#election.start()
    this.#setRole('follower')
    bus.beat()
    const watched = lifeLock === undefined ? false : await holdUntilDeath(lifeLock)
    return { localId: config.peerId as PeerId, tab: bus.tab, watched }
  }

  send(to: string, contents: unknown, options?: SendOptions): Promise<SendReceipt> {
    return this.#calls.call('send', sendArgs(to, contents, options)) as Promise<SendReceipt>
  }

  async sendMany(calls: readonly SendCall[]): Promise<SendResult[]> {
    // One promise for the batch, not one per send; each send keeps its own call (id, retries, outcome).
    const outcomes = await this.#calls.callMany(
      'send',
      calls.map(([to, contents, options]) => sendArgs(to, contents, options)),
    )
    return outcomes.map((outcome) => (outcome.ok ? (outcome as SendResult) : { ok: false, error: serializeError(outcome.error) }))
  }

  /** @internal `connect()`'s page: {@link sendMany} with the batch and its answer packed (see {@link PackedSends}). */
  async sendPacked({ to, contents, options }: PackedSends): Promise<PackedOutcomes> {
    const outcomes = await this.#calls.callMany(
      'send',
      to.map((peer, i) => [peer, contents[i], options[i]]),
    )
    return outcomes.map((outcome) => (outcome.ok ? (outcome.value as SendReceipt).seq : serializeError(outcome.error)))
  }

  delivered(id: string): Promise<void> {
    return this.#calls.call('delivered', [id]) as Promise<void>
  }

  status(id: string): Promise<MessageStatus> {
    return this.#calls.call('status', [id]) as Promise<MessageStatus>
  }

  connectedPeers(): Promise<PeerId[]> {
    return this.#calls.call('connectedPeers', []) as Promise<PeerId[]>
  }

  pending(): Promise<PendingCounts> {
    return this.#calls.call('pending', []) as Promise<PendingCounts>
  }

  acceptPeerKey(peer: string, options?: KeyDecisionOptions): Promise<void> {
    return this.#calls.call('acceptPeerKey', [peer, options]) as Promise<void>
  }

  rejectPeerKey(peer: string, options?: KeyDecisionOptions): Promise<void> {
    return this.#calls.call('rejectPeerKey', [peer, options]) as Promise<void>
  }

  peerKeyStatus(peer: string): Promise<PeerKeyReport> {
    return this.#calls.call('peerKeyStatus', [peer]) as Promise<PeerKeyReport>
  }

  safetyNumber(peer: string): Promise<string | undefined> {
    return this.#calls.call('safetyNumber', [peer]) as Promise<string | undefined>
  }

  subscribe(subscribed: boolean): void {
    this.#subscribed = subscribed
    this.#syncSubscription()
    this.#bus?.beat()
  }

  watchStatus(wanted: boolean): void {
    this.#statusWanted = wanted
  }

  role(): Role {
    return this.#role
  }

  connection(): ConnectionState {
    return this.#connection
  }

  wake(): void {
    this.#session?.transport.wake?.()
  }

  setOnline(online: boolean): void {
    this.#bus?.switch(online)
    this.#switch(online)
  }

  rtcSignal(peer: string, data: unknown): void {
    if (isPeerId(peer)) this.#session?.transport.signal?.(peer, data)
  }

  rtcChannel(peer: string, channel: RTCDataChannel | MessagePort): void {
    const transport = this.#session?.transport
    if (isPeerId(peer) && transport?.attachChannel !== undefined) transport.attachChannel(peer, channel)
    else channel.close()
  }

  rtcFailed(peer: string): void {
    if (isPeerId(peer)) this.#session?.transport.connectFailed?.(peer)
  }

  async shutdown(options: { timeoutMs?: number } = {}): Promise<void> {
    this.#leaving ??= this.#leave((engine) => engine.shutdown(options))
    return this.#leaving
  }

  async close(): Promise<void> {
    this.#leaving ??= this.#leave((engine) => engine.close())
    return this.#leaving
  }

  async #leave(stop: (engine: Engine) => Promise<void>): Promise<void> {
    const session = this.#session
    this.#setRole('closed')
    this.#calls.close(new IlmError('CLOSED', 'this messenger is closed'))
    this.#bus?.close()
    try {
      if (session !== undefined) await stop(session.engine)
    } finally {
      this.#session = undefined
      this.#election?.stop()
    }
  }

  /** One attempt of one of this tab's calls. */
  #dispatch(target: Target, call: Call<RemoteMethod>): void {
    if (typeof target === 'string') {
      // An older leader would drop the call (a hang) or run it unchecked: refused here instead.
      if (callLevel(call.method, call.args) <= this.#leaderLevel) this.#bus?.call(call)
      else this.#calls.settle(target, call.id, { ok: false, error: new IlmError('UNSUPPORTED', `the leader tab's older version cannot ${call.method}`) })
      return
    }
    const ok = (value: unknown): void => this.#calls.settle(target, call.id, { ok: true, value })
    const fail = (error: unknown): void => this.#calls.settle(target, call.id, { ok: false, error })
    if (call.method !== 'send') {
      invoke(target, call).then(ok, fail)
      return
    }
    // The bulk of the calls: no promise and no reaction per send, and no copy of contents this worker got cloned.
    const [to, contents, options] = call.args as SendCall
    target[sendSettled](to, contents, options, ok, fail, true)
  }

  /** A call from another tab, for this tab's engine. */
  #serve(call: Call<RemoteMethod>, reply: (outcome: Outcome) => void): void {
    const engine = this.#session?.engine
    if (this.#role !== 'leader' || engine === undefined) return
    invoke(engine, call).then(
      (value) => reply({ ok: true, value }),
      (error: unknown) => reply({ ok: false, error }),
    )
  }

  /** Acquired the lock: open the engine and serve. */
  async #lead(): Promise<void> {
    try {
      const config = this.#config!
      // This tab's page decides while it leads: every tab passes the same function, and a follower's is never asked.
      const sink = this.#sink
      const verify = config.verifiesPeerKeys === true && sink !== undefined ? (peer: PeerId, key: Uint8Array) => sink.verifyPeerKey(peer, key) : undefined
      const session = await LeaderSession.open(config, this.#factories, this.#transportContext(), this.#networkEnabled, verify)
      if (this.#role === 'closed') {
        await session.engine.close()
        return
      }
      this.#session = session
      session.onEvent(([name, payload]) => {
        this.#emit(name, name === 'error' ? serializeError(payload) : payload, true)
        if (name === 'error' && payload.code === 'STORE_FENCED') void this.#demote()
      })
      this.#setRole('leader')
      this.#syncSubscription()
      this.#bus?.beat()
      this.#becameReady()
      // Calls this tab had sent to the old leader now run here.
      this.#calls.retarget(session.engine)
    } catch (error) {
      // The page hears a code: a platform error here (a transport's chunk that did not load, say) is the engine failing to start.
      const failure = isIlmError(error) ? error : new IlmError('WORKER_FAILED', 'the engine could not start in this tab (see cause)', { cause: error })
      this.#emit('error', serializeError(failure), false)
      throw failure
    }
  }

  #transportContext(): TransportContext {
    const sink = (): PageSink => this.#sink!
    return {
      token: () => sink().token(),
      rtc: {
        connect: (peer, initiator) => sink().rtc({ t: 'connect', peer, initiator }),
        signal: (peer, data) => sink().rtc({ t: 'signal', peer, data }),
        disconnect: (peer) => sink().rtc({ t: 'disconnect', peer }),
      },
      state: (state) => {
        this.#connection = state
        this.#emit('connection', state, true)
      },
    }
  }

  /** Lost the lock (stolen while frozen, or fenced): stop the engine, follow. */
  async #demote(): Promise<void> {
    const session = this.#session
    this.#session = undefined
    this.#calls.retarget(undefined)
    if (this.#role === 'leader') this.#setRole('follower')
    this.#leaderTab = undefined
    this.#election?.release()
    await session?.engine.close()
  }

  /** The engine hands incoming messages out while this tab or a follower has handlers. */
  #syncSubscription(): void {
    this.#session?.subscribe(this.#subscribed || this.#bus?.followersSubscribed === true, (messages) => this.#handOut(messages))
  }

  /**
   * Every subscribed tab gets the batch, in one call each. A message is
   * processed once every tab that still has handlers answered and at least
   * one tab's handlers returned; a tab that unsubscribed or went away
   * meanwhile is not waited for. This page may process part of a batch;
   * another tab's failure hands the whole batch over again.
   */
  async #handOut(messages: readonly Message[]): Promise<BatchOutcome> {
    const local = this.#subscribed ? this.#sink!.messages(messages) : Promise.resolve(false as const)
    const [localOk, remoteOk] = await Promise.allSettled([local, this.#bus!.fanOut(messages)])
    if (localOk.status === 'rejected') throw localOk.reason
    if (remoteOk.status === 'rejected') throw remoteOk.reason
    const outcome = localOk.value
    if (outcome === false) {
      if (remoteOk.value > 0) return { handled: messages.length }
      throw new IlmError('HANDLER_FAILED', `no tab handled message ${messages[0]?.id} (their handlers went away); it will be handed over again`)
    }
    if (outcome.error === undefined) return { handled: outcome.handled }
    return { handled: outcome.handled, error: deserializeError(outcome.error) }
  }

  #onLeaderSeen(tab: string, online: boolean, level: number): void {
    if (this.#role === 'closed') return
    this.#election?.leaderSeen()
    if (this.#role === 'follower') {
      this.#networkEnabled = online
      this.#leaderLevel = level
    }
    if (this.#leaderTab === tab || this.#role !== 'follower') return
    this.#leaderTab = tab
    this.#becameReady()
    // A new leader: what this tab asked the old one may be lost; ask again (calls are idempotent).
    this.#calls.retarget(tab)
  }

  #onFollowersChanged(joined: boolean): void {
    this.#syncSubscription()
    if (!joined) return
    // A tab that just joined learns at once who leads and the connection state it missed.
    this.#bus?.beat()
    this.#emit('connection', this.#connection, true)
  }

  #onLeaderEvents(events: readonly SinkEvent[]): void {
    if (this.#role !== 'follower') return
    for (const [name, payload] of events) {
      if (name === 'status' && !this.#statusWanted) continue
      if (name === 'connection') this.#connection = payload as ConnectionState
      this.#emit(name, payload, false)
    }
  }

  /** The identity's work-offline switch, flipped here or in another tab; the leader applies it. */
  #switch(online: boolean): void {
    this.#networkEnabled = online
    this.#session?.transport.setEnabled?.(online)
  }

  #becameReady(): void {
    if (this.#ready) return
    this.#ready = true
    this.#emit('ready', true, false)
  }

  /**
   * Queues an event for this tab's page (and, with `share`, for the other
   * tabs); one message per turn carries them all, so a burst of sends does not
   * cost a round of postMessage per status change.
   */
  #emit(name: string, payload: unknown, share: boolean): void {
    // Status events are the bulk of the traffic (two per message): they go only to a page that listens, here or in another tab.
    const local = name !== 'status' || this.#statusWanted
    const shared = share && (name !== 'status' || this.#bus?.hasFollowers === true)
    if (!local && !shared) return
    if (this.#outbox.local.length === 0 && this.#outbox.shared.length === 0) queueMicrotask(() => this.#flushEvents())
    if (local) this.#outbox.local.push([name, payload])
    if (shared) this.#outbox.shared.push([name, payload])
  }

  #flushEvents(): void {
    const { local, shared } = this.#outbox
    this.#outbox = { local: [], shared: [] }
    if (local.length > 0) this.#sink?.events(local)
    if (shared.length > 0) this.#bus?.share(shared)
  }

  #setRole(role: Role): void {
    if (this.#role === role || this.#role === 'closed') return
    this.#role = role
    this.#emit('role', role, false)
  }
}

/**
 * A send's arguments with an id: the id makes the send idempotent, so it can
 * be repeated on a new leader. The options are this worker's own copy
 * (cloned from the page), so one that has an id is used as it is.
 */
function sendArgs(to: string, contents: unknown, options: SendOptions = {}): readonly unknown[] {
  return [to, contents, options.id === undefined ? { ...options, id: randomId() } : options]
}

function invoke(engine: Engine, call: Call<RemoteMethod>): Promise<unknown> {
  const fn = engine[call.method] as (...args: unknown[]) => Promise<unknown>
  return fn.apply(engine, call.args as unknown[])
}

/**
 * Takes the Web Lock `name` and never gives it back: the browser frees it
 * when this context ends (terminated, closed, crashed), which is how the page
 * learns that its worker died. False if it cannot be held.
 */
function holdUntilDeath(name: string): Promise<boolean> {
  const locks = (globalThis as { navigator?: { locks?: LockManager } }).navigator?.locks
  if (locks === undefined) return Promise.resolve(false)
  return new Promise((held) => {
    locks
      .request(name, { ifAvailable: true }, (lock) => {
        held(lock !== null)
        return lock === null ? undefined : new Promise<never>(() => {})
      })
      .catch(() => held(false))
  })
}
