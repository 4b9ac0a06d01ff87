import type {
  EngineEvents,
  Message,
  MessageBatchHandler,
  MessageHandler,
  MessageStatus,
  PendingCounts,
  RefusalCounts,
  SendOptions,
  SendReceipt,
  StatusEvent,
} from './api.js'
import type { TimerHandle } from './clock.js'
import { ByteSlab } from './byte-slab.js'
import { decodeFrame, encodeFrame } from './codec.js'
import { decodeContents, encodeContents, type EncodedContents } from './contents.js'
import { packPlaintext, unpackPlaintext, type Cipher, type CipherContext, type E2EFactory, type KeyDecisionOptions, type PeerKeyReport } from './e2e.js'
import type { LinkContext } from './context.js'
import { Emitter, type Listener } from './emitter.js'
import { handOverBatch, type Subscriber } from './hand-over.js'
import { IlmError, isIlmError } from './errors.js'
import type { AckFrame, Frame, HelloFrame, MsgFrame, ResetFrame } from './frame.js'
import { isMessageId, isPeerId, makeEpoch, type Epoch, type MessageId, type PeerId } from './ids.js'
import { InboundLink } from './inbound.js'
import { resolveOptions, type EngineOptions, type Limits } from './options.js'
import { OutboundLink } from './outbound.js'
import { EngineState } from './state.js'
import type { OutboxRow, PeerStore, Receipt, StoreSnapshot } from './store.js'
import type { RelayReceipt, Transport } from './transport.js'
import { SendBatch, sendSettled, type QueuedSend, type SendBatchHooks } from './send-batch.js'
import { MAX_BATCH, Writer, type Intent } from './writer.js'

/** Everything an engine is built from; made by {@link prepareEngine}. */
export interface EngineParts {
  readonly options: EngineOptions & { readonly limits: Limits }
  readonly localId: PeerId
  readonly store: PeerStore
  readonly snapshot: StoreSnapshot & { readonly meta: NonNullable<StoreSnapshot['meta']> }
  /** This identity's end-to-end cipher; absent when encryption is off. */
  readonly cipher: Cipher | undefined
}

interface Waiter {
  resolve(): void
  reject(error: IlmError): void
}

const EXPIRY_PAGE = 256
// Receipts are pruned at most min(receiptTtlMs, 1 h) after they expire: every
// that often while receipts made in this session may be due, and only once a
// minute at most otherwise (an idle engine, a tiny ttl).
const PRUNE_EVERY_MS = 3_600_000
const PRUNE_BUSY_FLOOR_MS = 1_000
const PRUNE_IDLE_FLOOR_MS = 60_000
// Room for a frame's header on top of the largest contents.
const FRAME_OVERHEAD = 16 * 1024
/** At most this many bytes of a peer's frames are kept while its changed key waits (and at most `window` frames). */
const HELD_BYTES = 8 * 1024 * 1024

/**
 * Validates options, opens the local store and initialises its epoch on first
 * use. The store handle is closed again if anything fails.
 */
export async function prepareEngine(options: EngineOptions): Promise<EngineParts> {
  const resolved = resolveOptions(options)
  const localId = resolved.transport.localId
  if (!isPeerId(localId)) throw new TypeError('transport.localId is not a valid peer id')
  const store = await resolved.store.open(localId)
  try {
    let snapshot = await store.load()
    if (snapshot.meta === undefined) {
      const now = resolved.clock.now()
      const meta = { epoch: makeEpoch(now, resolved.newId()), createdAt: now }
      await store.commit([{ op: 'meta', meta }])
      snapshot = { ...snapshot, meta }
    }
    const meta = snapshot.meta as NonNullable<StoreSnapshot['meta']>
    const cipher =
      resolved.encryption === false ? undefined : await openCipher(resolved.encryption, { localId, epoch: meta.epoch, store, clock: resolved.clock })
    return { options: resolved, localId, store, snapshot: { ...snapshot, meta }, cipher }
  } catch (error) {
    await store.close().catch(() => {})
    throw error
  }
}

/** A sealed frame being opened; received (if it opened) once every frame of its sender before it is done. */
interface Opening {
  readonly frame: MsgFrame
  /** The turn it arrived in (see Engine.#turn). */
  readonly turn: number
  started: boolean
  done: boolean
  plain: MsgFrame | undefined
}

async function openCipher(factory: E2EFactory, context: CipherContext): Promise<Cipher> {
  try {
    return await factory(context)
  } catch (error) {
    throw isIlmError(error) ? error : new IlmError('CRYPTO_FAILED', 'end-to-end encryption could not start (see cause)', { cause: error })
  }
}

/**
 * The intersession engine: durable, exactly-once, per-sender ordered delivery
 * over any {@link Transport}, persisted in any {@link Store}. Pure: it sees
 * the world only through the store, the transport and the clock it is given.
 */
export class Engine {
  /** This peer's id (the transport's authenticated identity). */
  readonly localId: PeerId
  readonly #limits: Limits
  readonly #store: PeerStore
  readonly #transport: Transport
  /** Frames are written into shared chunks: a buffer of their own each was about 6 % of the engine's CPU per message (bench:core). */
  readonly #slab = new ByteSlab()
  readonly #clock: EngineOptions['clock']
  readonly #newId: () => string
  readonly #state: EngineState
  readonly #writer: Writer
  readonly #events: Emitter<EngineEvents>
  readonly #ctx: LinkContext
  readonly #outbound = new Map<PeerId, OutboundLink>()
  readonly #inbound = new Map<PeerId, InboundLink>()
  readonly #online = new Set<PeerId>()
  /** The transport's relay stores frames for offline peers. */
  #mailbox = false
  readonly #handlers = new Set<Subscriber>()
  readonly #waiters = new Map<MessageId, Set<Waiter>>()
  /** `flushed()` calls waiting for every stream to be settled. */
  readonly #flushWaiters = new Set<Waiter>()
  readonly #expiring = new Set<MessageId>()
  /** Streams owing an ack, with how many messages they stored since the last. */
  readonly #pendingAcks = new Map<PeerId, number>()
  #ackAtTurnEnd = false
  #ackTimer: TimerHandle | undefined
  readonly #refused: Record<string, number> = {}
  readonly #started: Promise<void>
  #closed = false
  #closing: Promise<void> | undefined
  #shutdown: Promise<void> | undefined
  #drained: ((error?: IlmError) => void) | undefined
  #expiryTimer: TimerHandle | undefined
  #expiryAt: number | undefined
  #pruneTimer: TimerHandle | undefined
  #deferTimer: TimerHandle | undefined
  /** Acks heard and applied to the window but not yet committed, by peer. */
  readonly #ackHeld = new Map<PeerId, number>()
  /** Per peer, the relay's receipts being looked up: each is deferred once the ones heard before it are (in seq order). */
  readonly #receiptOrder = new Map<PeerId, Promise<void>>()
  #pruneAt: number | undefined
  /** When this engine last committed an ack (receipts to prune later). */
  #lastAckAt: number | undefined
  readonly #watched = new Set<PeerId>()
  /** This turn's sends, until the writer builds them. */
  #sends: SendBatch | undefined
  readonly #sendHooks: SendBatchHooks
  readonly #cipher: Cipher | undefined
  /** Per peer, the bundles being learned, one after the other. */
  readonly #keyChain = new Map<PeerId, Promise<void>>()
  /** Per peer, its sealed frames in arrival order while they are opened (in parallel); received in that order. */
  readonly #opening = new Map<PeerId, Opening[]>()
  /** Counts turns in which sealed frames arrived; true while the current one takes more. */
  #turn = 0
  #turnOpen = false
  /** When a hello was last sent to a peer because one of its frames could not be opened (one per retransmission timeout at most). */
  readonly #rekeyAsked = new Map<PeerId, number>()
  /** Peers whose hello said the other side of end-to-end encryption: nothing is exchanged with them. */
  readonly #mismatched = new Set<PeerId>()
  /** Bundles of a peer being learned: while its key is not usable, its frames arriving meanwhile are opened once they are. */
  readonly #learning = new Map<PeerId, number>()
  /** Directory lookups in flight, by peer. */
  readonly #fetchingKeys = new Map<PeerId, Promise<void>>()
  /**
   * Per peer, by `epoch seq`, its frames refused while its changed key waits for the app (`KEY_HELD`): opened once the
   * key is accepted. A sender never resends what the relay's mailbox holds, so those would otherwise wait for the next login.
   */
  readonly #held = new Map<PeerId, Map<string, MsgFrame>>()

  /** @internal Use `ILM.open()` (or `Engine.open()` with every dependency given). */
  constructor(parts: EngineParts) {
    const { options, snapshot } = parts
    this.localId = parts.localId
    this.#limits = options.limits
    this.#store = parts.store
    this.#transport = options.transport
    this.#clock = options.clock
    this.#newId = options.newId
    this.#cipher = parts.cipher
    this.#state = new EngineState(snapshot.meta)
    for (const stream of snapshot.outStreams) this.#state.out.set(stream.to, stream)
    for (const stream of snapshot.inStreams) this.#state.in.set(stream.from, stream)
    this.#events = new Emitter<EngineEvents>((error, event) => {
      if (event !== 'error') this.#fail(new IlmError('INTERNAL', `a "${String(event)}" listener threw`, { cause: error }))
    })
    this.#writer = new Writer(
      this.#store,
      this.#state,
      (error) => this.#fail(error),
      () => this.#stopDeferTimer(),
    )
    this.#sendHooks = {
      maxPendingPerPeer: this.#limits.maxPendingPerPeer,
      committed: (sends) => this.#enqueued(sends),
      taken: (send) => void this.#taken(send),
    }
    this.#ctx = this.#linkContext()
    this.#started = this.#start()
  }

  /** Opens an engine with every dependency explicit (no defaults). */
  static async open(options: EngineOptions): Promise<Engine> {
    const engine = new Engine(await prepareEngine(options))
    await engine.ready()
    return engine
  }

  /** Resolves once the transport is open; rejects (and closes) if it could not open. */
  protected async ready(): Promise<void> {
    try {
      await this.#started
    } catch (error) {
      await this.close()
      throw error
    }
  }

  /**
   * Queues a message for `to`. Resolves once it is durably stored here, with
   * its id and its seq in the stream toward `to`. Rejects with an
   * {@link IlmError} (`INVALID_PEER_ID`, `SELF_SEND`, `UNSERIALIZABLE`,
   * `TOO_LARGE`, `QUEUE_FULL`, `CLOSED`, `STORE_FAILED`) and then changes nothing.
   */
  send(to: string, contents: unknown, options: SendOptions = {}): Promise<SendReceipt> {
    return new Promise<SendReceipt>((resolve, reject) => this[sendSettled](to, contents, options, resolve, reject))
  }

  /**
   * @internal {@link send} without a promise: `resolve` or `reject` is called
   * once (see {@link sendSettled}). `owned`: see `encodeContents`.
   */
  [sendSettled](
    to: string,
    contents: unknown,
    options: SendOptions = {},
    resolve: (receipt: SendReceipt) => void,
    reject: (error: unknown) => void,
    owned = false,
  ): void {
    let encoded: EncodedContents
    let id: MessageId
    let ttlMs: number | undefined
    try {
      if (this.#closed || this.#shutdown !== undefined) throw new IlmError('CLOSED', 'this instance is closed')
      if (!isPeerId(to)) throw new IlmError('INVALID_PEER_ID', `invalid peer id ${JSON.stringify(String(to)).slice(0, 140)}`)
      if (to === this.localId) throw new IlmError('SELF_SEND', 'cannot send to oneself')
      if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object')
      ttlMs = options.ttlMs
      if (ttlMs !== undefined && !(Number.isSafeInteger(ttlMs) && ttlMs > 0)) throw new RangeError('ttlMs must be a positive integer')
      if (options.id !== undefined && !isMessageId(options.id)) throw new TypeError('id must be 1..64 url-safe characters')
      encoded = encodeContents(contents, this.#limits.maxMessageBytes, owned)
      id = options.id ?? (this.#newId() as MessageId)
    } catch (error) {
      reject(error)
      return
    }
    this.#queueSend({ to, id, encoded, ttlMs, resolve, reject, retries: 0, seq: -1, row: undefined })
  }

  /**
   * Adds a send to this turn's batch: one writer intent for up to MAX_BATCH
   * sends (see {@link SendBatch}). A batch takes sends until it is built.
   */
  #queueSend(send: QueuedSend): void {
    let batch = this.#sends
    if (batch === undefined || batch.size >= MAX_BATCH) {
      const fresh = new SendBatch(this.#sendHooks)
      this.#sends = batch = fresh
      this.#writer
        .submit((draft) => {
          if (this.#sends === fresh) this.#sends = undefined
          return fresh.build(draft, this.#clock.now())
        }, fresh)
        .catch((error: unknown) => {
          if (this.#sends === fresh) this.#sends = undefined
          fresh.fail(error)
        })
    }
    batch.add(send)
  }

  /**
   * The store refuses an id it holds, inside the commit, so a send repeated
   * after its first attempt landed (a retry across a worker or leader change)
   * finds the first receipt instead of queuing the message twice.
   */
  async #taken(send: QueuedSend): Promise<void> {
    try {
      const found = await this.#store.findMessage(send.id)
      if (found === undefined && send.retries < 2) {
        // Pruned meanwhile: the id is free again.
        send.retries++
        this.#queueSend(send)
        return
      }
      const sent = found === undefined ? undefined : found.where === 'outbox' ? found : found.receipt
      if (sent?.to === send.to) send.resolve({ id: send.id, seq: sent.seq })
      else send.reject(new IlmError('DUPLICATE_ID', `message id ${send.id} was already used for another peer`))
    } catch (error) {
      send.reject(error)
    }
  }

  /**
   * Subscribes a handler. Messages wait in the store until a handler is
   * subscribed; each is handed to every handler in turn, in order per sender.
   * Returns the unsubscribe function.
   */
  onMessage(handler: MessageHandler): () => void {
    if (typeof handler !== 'function') throw new TypeError('handler must be a function')
    return this.#subscribe({ batch: false, handler })
  }

  /**
   * Subscribes a handler of batches: as {@link Engine.onMessage}, but each call
   * gets up to `processBatch` messages of one sender, in order (one call
   * across a worker bridge instead of one per message). Returns the
   * unsubscribe function.
   */
  onMessages(handler: MessageBatchHandler): () => void {
    if (typeof handler !== 'function') throw new TypeError('handler must be a function')
    return this.#subscribe({ batch: true, handler })
  }

  #subscribe(subscriber: Subscriber): () => void {
    if (this.#closed) return () => {}
    this.#handlers.add(subscriber)
    for (const from of this.#state.in.keys()) this.#inboundLink(from).kick()
    return () => void this.#handlers.delete(subscriber)
  }

  /** Subscribes to `status`, `peer-online`, `peer-offline`, `peer-key-changed`, `peer-key-pinned` or `error` events; returns the unsubscribe function. */
  on<K extends keyof EngineEvents>(event: K, listener: Listener<EngineEvents[K]>): () => void {
    if (!['status', 'peer-online', 'peer-offline', 'peer-key-changed', 'peer-key-pinned', 'error'].includes(event))
      throw new TypeError(`unknown event "${String(event)}"`)
    if (typeof listener !== 'function') throw new TypeError('listener must be a function')
    return this.#events.on(event, listener)
  }

  /**
   * Resolves once the receiver has durably stored the message. Rejects with
   * `EXPIRED`, `MESSAGE_FAILED`, `UNKNOWN_MESSAGE` or `CLOSED`.
   */
  delivered(id: string): Promise<void> {
    if (this.#closed) return Promise.reject(new IlmError('CLOSED', 'this instance is closed'))
    if (typeof id !== 'string') return Promise.reject(new TypeError('id must be a string'))
    if (!isMessageId(id)) return Promise.reject(unknownMessage(id))
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject }
      let set = this.#waiters.get(id)
      if (set === undefined) this.#waiters.set(id, (set = new Set()))
      set.add(waiter)
      // Registered before looking, so a transition in between is not missed.
      this.status(id).then(
        (status) => status !== 'queued' && status !== 'sent' && status !== 'stored' && this.#settleWaiters(id, status),
        (error: unknown) => {
          set.delete(waiter)
          reject(isIlmError(error) ? error : new IlmError('STORE_FAILED', 'status lookup failed', { cause: error }))
        },
      )
    })
  }

  /**
   * Resolves once every message queued so far has left this peer for good:
   * acknowledged by its receiver or, through a relay with a mailbox, stored
   * there (its `delivered` comes later). Waits as long as that takes; rejects
   * with `CLOSED` if the instance closes first.
   */
  flushed(): Promise<void> {
    if (this.#closed) return Promise.reject(new IlmError('CLOSED', 'this instance is closed'))
    return new Promise<void>((resolve, reject) => {
      this.#flushWaiters.add({ resolve, reject })
      this.#checkFlushed()
    })
  }

  /** Where a message sent from here is now; `unknown` for ids never sent here (or pruned receipts). */
  async status(id: string): Promise<MessageStatus> {
    if (this.#closed) throw new IlmError('CLOSED', 'this instance is closed')
    if (typeof id !== 'string') throw new TypeError('id must be a string')
    if (!isMessageId(id)) return 'unknown'
    const found = await this.#store.findMessage(id)
    if (found === undefined) return 'unknown'
    if (found.where === 'receipt') return found.receipt.status
    if (found.failed !== undefined) return 'failed'
    if (found.expired) return 'expired'
    if (found.seq <= (this.#state.out.get(found.to)?.storedUpTo ?? -1)) return 'stored'
    return found.seq <= (this.#outbound.get(found.to)?.highestSent ?? -1) ? 'sent' : 'queued'
  }

  /** Peers currently reachable, sorted; never this peer. Rejects `CLOSED` after close. */
  async connectedPeers(): Promise<PeerId[]> {
    if (this.#closed) throw new IlmError('CLOSED', 'this instance is closed')
    return [...this.#online].sort()
  }

  /** Messages waiting in the store, both ways. */
  async pending(): Promise<PendingCounts> {
    if (this.#closed) throw new IlmError('CLOSED', 'this instance is closed')
    return this.#store.count()
  }

  /**
   * Accepts the identity key `peer` presented last, after a
   * `peer-key-changed` event: it is pinned in place of the old one, and the
   * messages held both ways flow again (what arrived meanwhile is opened at
   * once). With `safetyNumber` (the `presentedSafetyNumber` the user
   * compared), only the key with that number is accepted: if `peer`
   * presented another one meanwhile, or another tab decided otherwise, it
   * rejects `KEY_MISMATCH` and pins nothing (a key already pinned with that
   * number resolves). Rejects `KEY_UNAVAILABLE` when no key of the peer is
   * known, `E2E_MISMATCH` when encryption is off here.
   */
  acceptPeerKey(peer: string, options?: KeyDecisionOptions): Promise<void> {
    return this.#decideKey(peer, options, true)
  }

  /**
   * Refuses the identity key `peer` presented last, after a
   * `peer-key-changed` event (its safety number did not match): the key
   * pinned before stays, and messages flow again both ways under it (what
   * arrived meanwhile is opened at once); frames sealed under the refused key
   * go on being refused. Presented again (or another one), a key is a change
   * again: `peer-key-changed` fires again. With `safetyNumber`, only the key
   * presented with that number is refused: if another one is presented, or
   * that key was pinned meanwhile (another tab accepted it), it rejects
   * `KEY_MISMATCH` and changes nothing. Rejects as `acceptPeerKey` otherwise.
   */
  rejectPeerKey(peer: string, options?: KeyDecisionOptions): Promise<void> {
    return this.#decideKey(peer, options, false)
  }

  /**
   * The safety number of this end and `peer`: 12 groups of 5 digits, the same
   * on both sides while both hold each other's real keys. Users compare it out
   * of band. While a changed key waits for a decision, it is the new key's
   * (the one `acceptPeerKey` would pin). Resolves `undefined` when no key of
   * the peer is known.
   */
  async safetyNumber(peer: string): Promise<string | undefined> {
    const { pinned, presented } = await this.#keys(peer).safetyNumbers(peer as PeerId)
    return presented ?? pinned
  }

  /**
   * Where this end stands with `peer`'s keys: `unknown` (none heard yet),
   * `ready` (a key is pinned; `pinnedSafetyNumber`), or `changed` (it
   * presented another one, held until `acceptPeerKey` or `rejectPeerKey`;
   * `presentedSafetyNumber` is the new key's). What to show after a reload or
   * in a tab that missed the events.
   */
  async peerKeyStatus(peer: string): Promise<PeerKeyReport> {
    const cipher = this.#keys(peer)
    const { pinned, presented } = await cipher.safetyNumbers(peer as PeerId)
    if (pinned === undefined) return { status: 'unknown' }
    return presented === undefined
      ? { status: 'ready', pinnedSafetyNumber: pinned }
      : { status: 'changed', pinnedSafetyNumber: pinned, presentedSafetyNumber: presented }
  }

  /** The cipher, for a key call about `peer`; throws `CLOSED`, `INVALID_PEER_ID` or `E2E_MISMATCH` (encryption off). */
  #keys(peer: string): Cipher {
    if (this.#closed) throw new IlmError('CLOSED', 'this instance is closed')
    if (!isPeerId(peer)) throw new IlmError('INVALID_PEER_ID', `invalid peer id ${JSON.stringify(peer).slice(0, 140)}`)
    if (this.#cipher === undefined) throw new IlmError('E2E_MISMATCH', 'end-to-end encryption is off here')
    return this.#cipher
  }

  /** Frames refused from the network so far, by reason. */
  refused(): RefusalCounts {
    return { ...this.#refused }
  }

  /**
   * Stops accepting sends, waits until every online peer has acknowledged
   * everything queued for it, then closes. On timeout it closes anyway and
   * rejects with `SHUTDOWN_TIMEOUT`; unsent messages stay in the store.
   * Calling it again returns the same promise.
   */
  shutdown(options: { timeoutMs?: number } = {}): Promise<void> {
    if (typeof options !== 'object' || options === null) return Promise.reject(new TypeError('options must be an object'))
    const timeoutMs = options.timeoutMs ?? 30_000
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 0) return Promise.reject(new RangeError('timeoutMs must be a non-negative integer'))
    this.#shutdown ??= this.#closed ? this.close() : this.#drainThenClose(timeoutMs)
    return this.#shutdown
  }

  /** Stops now. Everything persisted stays and resumes on the next open. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  async #start(): Promise<void> {
    await this.#transport.open(
      {
        frame: (from, data, stored) => this.#onFrame(from, data, stored === true),
        peer: (peer, online) => (online ? this.#peerUp(peer) : this.#peerDown(peer)),
        closed: () => {
          this.#setMailbox(false)
          for (const peer of [...this.#online]) this.#peerDown(peer)
        },
        mailbox: (available) => this.#setMailbox(available),
        receipt: (receipt) => this.#onReceipt(receipt),
        redrained: (from, more) => this.#onRedrained(from, more),
      },
      // Decrypting, it opens at most a window of a sender's frames at once; otherwise its inbox bounds what it keeps.
      { perSender: this.#cipher === undefined ? this.#limits.maxInboxPerPeer : Math.min(this.#limits.window, this.#limits.maxInboxPerPeer) },
    )
    const cipher = this.#cipher
    if (cipher !== undefined && this.#transport.publishKeys !== undefined) {
      const publish = this.#transport.publishKeys.bind(this.#transport)
      publish(cipher.bundle())
      // Senders learn a rotated prekey from the directory, and from the next hellos.
      cipher.onRotate((bundle) => {
        if (!this.#closed) publish(bundle)
      })
    }
    this.#watch([...this.#state.out.keys(), ...this.#state.in.keys()])
    void this.#sweepExpired()
    this.#prune()
  }

  /**
   * Tells the transport which peers' presence matters: every peer with a
   * stream either way. O(1) for a peer already watched (this runs per message).
   */
  #watch(peers: Iterable<PeerId>): void {
    if (this.#transport.watch === undefined || this.#closed) return
    const before = this.#watched.size
    for (const peer of peers) this.#watched.add(peer)
    if (this.#watched.size !== before) this.#transport.watch([...this.#watched].sort())
  }

  #linkContext(): LinkContext {
    const engine = this
    return {
      localId: this.localId,
      clock: this.#clock,
      limits: this.#limits,
      state: this.#state,
      store: this.#store,
      writer: this.#writer,
      status: (id, to, seq, status) => this.#status(id, to, seq, status),
      get closed() {
        return engine.#closed
      },
      transmit: (frame) => this.#transmit(frame),
      sendHello: (peer, reply) => this.#sendHello(peer, reply),
      scheduleAck: (peer, stored) => this.#scheduleAck(peer, stored),
      redrain: (peer, epoch, after, limit) => this.#redrain(peer, epoch, after, limit),
      opening: (peer) => this.#opening.has(peer),
      deferCommit: () => this.#deferCommit(),
      hasHandlers: () => this.#handlers.size > 0,
      handOver: (messages, progress) => this.#handOver(messages, progress),
      expire: (rows) => this.#expire(rows),
      fail: (error) => this.#fail(error),
      received: (peer) => this.#watch([peer]),
      sealing: this.#cipher !== undefined,
      keysReady: (peer) => this.#keysUsable(peer),
      seal: (row, acked) => this.#seal(row, acked),
    }
  }

  #outboundLink(peer: PeerId): OutboundLink {
    let link = this.#outbound.get(peer)
    if (link === undefined) this.#outbound.set(peer, (link = new OutboundLink(peer, this.#ctx)))
    return link
  }

  #inboundLink(peer: PeerId): InboundLink {
    let link = this.#inbound.get(peer)
    if (link === undefined) this.#inbound.set(peer, (link = new InboundLink(peer, this.#ctx)))
    return link
  }

  /** A batch of sends committed: one pump per peer, not per row. */
  #enqueued(sends: readonly QueuedSend[]): void {
    let link: OutboundLink | undefined
    let to: PeerId | undefined
    for (const { row } of sends) {
      if (row === undefined) continue
      if (row.to !== to) {
        void link?.pump()
        to = row.to
        link = this.#streamLink(to)
      }
      this.#status(row.id, row.to, row.seq, 'queued')
      if (row.expiresAt !== undefined) this.#scheduleExpiry(row.expiresAt)
      link?.enqueued(row)
    }
    void link?.pump()
  }

  /** The link that sends a freshly queued row toward `to` now, if one does (the peer is online, or the relay stores for it). */
  #streamLink(to: PeerId): OutboundLink | undefined {
    this.#watch([to])
    if (!this.#online.has(to) && this.#mailbox) this.#viaMailbox(to)
    return this.#online.has(to) || this.#mailbox ? this.#outboundLink(to) : undefined
  }

  /** Whether the relay stores frames for offline peers; if so, streams toward offline peers flow into its mailbox. */
  #setMailbox(available: boolean): void {
    if (this.#closed || available === this.#mailbox) return
    this.#mailbox = available
    // No answer comes to a redrain asked on a connection that ended; the next login sends the whole mailbox.
    for (const link of this.#inbound.values()) link.mailboxChanged()
    for (const peer of this.#state.out.keys()) {
      if (this.#online.has(peer)) continue
      if (available) this.#viaMailbox(peer)
      else this.#outbound.get(peer)?.stop()
    }
  }

  #redrain(peer: PeerId, epoch: Epoch, after: number, limit: number): boolean {
    const redrain = this.#transport.redrain
    if (!this.#mailbox || redrain === undefined || this.#closed) return false
    redrain.call(this.#transport, peer, epoch, after, limit)
    return true
  }

  /**
   * The relay sent what a redrain asked for (the frames came before), or, unasked with `more`, stopped a sender at
   * login: that sender's frames may still be opening, with no link yet to ask once they are kept.
   */
  #onRedrained(from: PeerId, more: boolean): void {
    if (this.#closed || typeof more !== 'boolean') return
    if (more && isPeerId(from)) this.#inboundLink(from).redrained(true)
    else this.#inbound.get(from)?.redrained(more)
  }

  /** Sends to the offline `peer` through the relay's mailbox (no hello: nobody answers). */
  #viaMailbox(peer: PeerId): void {
    const link = this.#outboundLink(peer)
    if (link.mode === 'stopped') link.startStored()
  }

  /**
   * Whether frames to `peer` can be sealed now. If not, and no hello will
   * bring its keys (it is offline, the relay stores for it), asks the relay's
   * directory; the link's retransmission timer asks again while it waits.
   */
  #keysUsable(peer: PeerId): boolean {
    const cipher = this.#cipher
    if (cipher === undefined) return !this.#mismatched.has(peer)
    if (this.#mismatched.has(peer)) return false
    const status = cipher.status(peer)
    if (status === 'ready') return true
    // Its keys come with its hello (ours asks for one: hellos can be lost), or from the directory while it is offline.
    if (status === 'unknown') {
      if (this.#online.has(peer)) this.#askRekey(peer)
      else void this.#fetchKeys(peer)
    }
    return false
  }

  /** Asks the relay's directory for `peer`'s keys and learns them; resolves when done (whatever came of it: the callers look again later). */
  #fetchKeys(peer: PeerId): Promise<void> {
    const transport = this.#transport
    if (transport.fetchKeys === undefined || this.#closed) return Promise.resolve()
    let fetching = this.#fetchingKeys.get(peer)
    if (fetching === undefined) {
      fetching = transport
        .fetchKeys(peer)
        .then((bundle) => (bundle === null ? undefined : this.#learnKeys(peer, bundle)))
        // Not reachable now: the link's timer, or the next frame, asks again.
        .catch(() => {})
        .finally(() => this.#fetchingKeys.delete(peer))
      this.#fetchingKeys.set(peer, fetching)
    }
    return fetching
  }

  /** Considers a bundle heard for `peer` (its hello or the directory), in order with its frames being opened. */
  #learnKeys(peer: PeerId, bundle: Uint8Array): Promise<void> {
    const cipher = this.#cipher
    if (cipher === undefined) return Promise.resolve()
    this.#learning.set(peer, (this.#learning.get(peer) ?? 0) + 1)
    return this.#inKeyOrder(peer, async () => {
      const learned = await cipher.learn(peer, bundle).finally(() => {
        const left = (this.#learning.get(peer) ?? 1) - 1
        if (left > 0) this.#learning.set(peer, left)
        else this.#learning.delete(peer)
        if (left > 0 && cipher.status(peer) !== 'ready') return
        for (const entry of this.#opening.get(peer) ?? []) if (!entry.started) this.#startOpening(entry)
      })
      if (learned.refused) this.#refuse('KEY_INVALID')
      if (learned.failure !== undefined) this.#fail(learned.failure)
      if (learned.changed) this.#events.emit('peer-key-changed', { peer })
      if (learned.pinned) this.#events.emit('peer-key-pinned', { peer })
      if (learned.rekeyed) this.#keysReady(peer)
    })
  }

  /** The peer's keys are usable (again, or anew): what was sealed under older ones is sealed afresh, and held frames go. */
  #keysReady(peer: PeerId): void {
    const link = this.#outbound.get(peer)
    link?.rekeyed()
    void link?.pump()
  }

  /**
   * The application's decision on `peer`'s changed key (`accept`, else reject), in order with the bundles being learned
   * (a `verifyPeerKey` may be asked meanwhile), so that the key checked against `options.safetyNumber` is the one decided on.
   */
  async #decideKey(peer: string, options: KeyDecisionOptions | undefined, accept: boolean): Promise<void> {
    const cipher = this.#keys(peer)
    const id = peer as PeerId
    // Callers in JavaScript can pass anything.
    const given: unknown = options
    const expected: unknown = options?.safetyNumber
    if ((given !== undefined && typeof given !== 'object') || given === null || (expected !== undefined && typeof expected !== 'string')) {
      throw new TypeError('options must be { safetyNumber?: string }')
    }
    if (cipher.status(id) === 'unknown') throw new IlmError('KEY_UNAVAILABLE', `no key of ${peer} is known`)
    await this.#inKeyOrder(
      id,
      async () => {
        if (expected !== undefined) {
          const { pinned, presented } = await cipher.safetyNumbers(id)
          // Accept: the key with that number ends up pinned. Reject: it is the one presented, or (decided already) neither.
          const matches = accept ? (presented ?? pinned) === expected : presented === undefined ? pinned !== expected : presented === expected
          if (!matches) throw new IlmError('KEY_MISMATCH', `${peer}'s key has another safety number now`)
        }
        const before = cipher.status(id)
        if ((await (accept ? cipher.accept(id) : cipher.reject(id))) !== 'ready') return
        if (before === 'changed') this.#events.emit('peer-key-pinned', { peer: id })
        this.#keysReady(id)
        const held = this.#held.get(id)
        this.#held.delete(id)
        // After a close meanwhile they are opened but never received (#receiveOpened checks).
        for (const frame of held?.values() ?? []) this.#onMsg(frame)
      },
      false,
    )
  }

  /** Runs `step` after every earlier key step of `peer`, so that bundles are learned in arrival order; its failure is reported as an `error` event when `report`. */
  #inKeyOrder(peer: PeerId, step: () => Promise<void>, report = true): Promise<void> {
    const next = (this.#keyChain.get(peer) ?? Promise.resolve()).then(step)
    const settled = next.catch((error: unknown) => {
      if (report) this.#fail(error)
    })
    this.#keyChain.set(peer, settled)
    void settled.then(() => {
      if (this.#keyChain.get(peer) === settled) this.#keyChain.delete(peer)
    })
    return next
  }

  /** The sealed body of an outbox row: its content kind and contents, under the receiver's keys. */
  #seal(row: OutboxRow, acked: number): Promise<Uint8Array> {
    const cipher = this.#cipher
    if (cipher === undefined) return Promise.reject(new IlmError('INTERNAL', 'nothing seals with encryption off'))
    // Committed rows are the only ones sealed: none at or above the committed nextSeq was.
    const next = this.#state.out.get(row.to)?.nextSeq ?? row.seq + 1
    return cipher.seal(
      { from: this.localId, to: row.to, epoch: this.#state.meta.epoch, seq: row.seq, id: row.id, acked, next },
      packPlaintext(row.contentKind, row.contents),
    )
  }

  #transmit(frame: Frame): void | Promise<void> {
    if (this.#closed) throw new IlmError('CLOSED', 'this instance is closed')
    return this.#transport.send(frame.to, encodeFrame(frame, this.#slab))
  }

  #sendHello(peer: PeerId, reply: boolean, claim = false): void {
    const inbound = this.#state.in.get(peer)
    const hello: HelloFrame = {
      kind: 'hello',
      from: this.localId,
      to: peer,
      epoch: this.#state.meta.epoch,
      floor: (this.#state.out.get(peer)?.ackedUpTo ?? -1) + 1,
      known: inbound?.epoch ?? null,
      upTo: inbound?.receivedUpTo ?? -1,
      reply,
      ...(claim && { claim: true }),
      ...(this.#cipher !== undefined && { keys: this.#cipher.bundle() }),
    }
    this.#bestEffort(hello)
  }

  #bestEffort(frame: Frame): void {
    try {
      const pending = this.#transmit(frame)
      if (pending !== undefined) pending.catch(() => {})
    } catch {
      // Lost frames are the protocol's business: hellos and acks are repeated.
    }
  }

  #scheduleAck(peer: PeerId, stored: number): void {
    const waiting = (this.#pendingAcks.get(peer) ?? 0) + stored
    this.#pendingAcks.set(peer, waiting)
    const delay = this.#limits.ackDelayMs
    if (stored === 0 || delay === 0 || waiting * 16 >= this.#limits.window) {
      if (this.#ackAtTurnEnd) return
      this.#ackAtTurnEnd = true
      queueMicrotask(() => this.#flushAcks())
    } else {
      this.#ackTimer ??= this.#clock.setTimeout(() => this.#flushAcks(), delay)
    }
  }

  #flushAcks(): void {
    this.#ackAtTurnEnd = false
    if (this.#ackTimer !== undefined) this.#clock.clearTimeout(this.#ackTimer)
    this.#ackTimer = undefined
    for (const peer of this.#pendingAcks.keys()) {
      const stream = this.#state.in.get(peer)
      if (stream === undefined || stream.receivedUpTo < 0 || this.#closed) continue
      this.#bestEffort({ kind: 'ack', from: this.localId, to: peer, epoch: stream.epoch, upTo: stream.receivedUpTo })
    }
    this.#pendingAcks.clear()
  }

  #peerUp(peer: PeerId): void {
    if (this.#closed || !isPeerId(peer) || peer === this.localId) return
    const fresh = !this.#online.has(peer)
    this.#online.add(peer)
    if (fresh) this.#events.emit('peer-online', { peer })
    this.#outboundLink(peer).start()
  }

  #peerDown(peer: PeerId): void {
    if (this.#closed) return
    if (!this.#online.delete(peer)) {
      // Reported offline again (the relay could not route for a while, and now can): what its mailbox lacks goes now.
      const link = this.#outbound.get(peer)
      if (this.#mailbox && link?.mode === 'viaMailbox') link.startStored()
      return
    }
    this.#outbound.get(peer)?.stop()
    this.#inbound.get(peer)?.reset()
    if (this.#mailbox && this.#state.out.has(peer)) this.#viaMailbox(peer)
    this.#events.emit('peer-offline', { peer })
    this.#checkDrained()
  }

  /** The relay stored (or gave up on) one of our messages for an offline peer. */
  #onReceipt(receipt: RelayReceipt): void {
    if (this.#closed) return
    if (typeof receipt !== 'object' || receipt === null || receipt.epoch !== this.#state.meta.epoch) {
      this.#refuse('STALE_RECEIPT')
      return
    }
    const stream = this.#state.out.get(receipt.peer)
    if (stream === undefined || !Number.isSafeInteger(receipt.seq) || receipt.seq < 0 || receipt.seq >= stream.nextSeq) {
      this.#refuse('RECEIPT_UNSENT')
      return
    }
    if (receipt.seq <= stream.ackedUpTo) return
    const { peer } = receipt
    const link = this.#outbound.get(peer)
    // Taken before the slide drops it from the link's cache.
    const sent = link?.sentRow(receipt.seq)
    // As for an ack, the window moves before the record commits: the relay holds the message durably.
    const slid = receipt.status === 'stored' && link?.heardStored(receipt.seq) === true
    const next = (this.#receiptOrder.get(peer) ?? Promise.resolve())
      .then(() => this.#applyReceipt(receipt, sent, slid))
      .catch((error: unknown) => this.#fail(error))
    this.#receiptOrder.set(peer, next)
    void next.then(() => {
      if (this.#receiptOrder.get(peer) === next) this.#receiptOrder.delete(peer)
    })
  }

  /**
   * A `stored` message (or a failed one whose skip the relay holds) extends
   * `storedUpTo` when contiguous, and its contents are released, unless they
   * are sealed end to end: then they stay until acknowledged, so that a peer
   * that cannot open what the mailbox holds (sealed for a key it no longer
   * has) gets them sealed afresh once online; a failed one is expired with its
   * reason, so its seq goes out as a skip unless the relay holds one.
   *
   * Committed off the send path, as an ack's record: with the next send's
   * transaction, or after `deferCommitMs` (at once while a `flushed()`
   * waits). Its loss in a crash is harmless: the row goes to the relay
   * again, and its mailbox, which holds each (from, epoch, seq) once, answers
   * the duplicate with the same receipt.
   */
  async #applyReceipt(receipt: RelayReceipt, sent: OutboxRow | undefined, slid: boolean): Promise<void> {
    const { peer, seq } = receipt
    // The link holds the rows it sent this session; one sent before is read.
    const row = sent ?? this.#outbound.get(peer)?.sentRow(seq) ?? (await this.#store.readOutbox(peer, seq, 1))[0]
    if (row?.seq !== seq) return
    const reason = receipt.status === 'failed' && row.expired !== true ? receipt.reason : undefined
    const held = receipt.status === 'stored' || receipt.held
    // Deferred intents are deduplicated by key, the first kept. The receipt that slid the window must not give way to
    // an earlier one of the same seq: receipts come out of order after retransmissions (2..9, then 1, then 2..9
    // again), the earlier found a gap, and the link, past 9, would wait for good for records stuck at 1. Slides come
    // in order, so their intents commit in order, each contiguous to the one before.
    this.#writer.defer(`receipt ${peer} ${seq}${slid ? ' slid' : ''}`, (draft) => {
      const stream = draft.outStream(peer)
      if (stream === undefined || seq <= stream.ackedUpTo) return () => {}
      const advance = held && seq === Math.max(stream.ackedUpTo, stream.storedUpTo ?? -1) + 1
      if (reason !== undefined) draft.write({ op: 'expire', to: peer, seq, reason })
      else if (advance && this.#cipher === undefined) draft.write({ op: 'release', to: peer, seq })
      if (advance) draft.setOut({ ...stream, storedUpTo: seq })
      return () => {
        const link = this.#outbound.get(peer)
        if (reason !== undefined) link?.markExpired(seq)
        if (advance) link?.stored(seq)
        if (advance) this.#checkFlushed()
        if (reason !== undefined) this.#status(row.id, peer, seq, 'failed', reason)
        else if (advance && row.expired !== true) this.#status(row.id, peer, seq, 'stored')
      }
    })
    // A flushed() waits for it: no reason to wait longer.
    if (this.#flushWaiters.size > 0) this.#writer.flush()
    else this.#deferCommit()
  }

  #onFrame(from: PeerId, data: Uint8Array, stored: boolean): void {
    if (this.#closed) return
    const decoded = decodeFrame(data, this.#limits.maxMessageBytes + FRAME_OVERHEAD)
    if (!decoded.ok) {
      this.#refuse(decoded.reason)
      return
    }
    const frame = decoded.frame
    if (frame.from !== from) {
      this.#refuse('FORGED')
      return
    }
    if (frame.to !== this.localId) {
      this.#refuse('MISDIRECTED')
      return
    }
    switch (frame.kind) {
      case 'hello': {
        this.#onHello(frame)
        return
      }
      case 'msg':
        this.#onMsg(frame, stored)
        return
      case 'ack': {
        this.#onAck(frame)
        return
      }
      case 'reset': {
        this.#onReset(frame)
        return
      }
    }
  }

  #onMsg(frame: MsgFrame, stored = false): void {
    if (this.#cipher === undefined) {
      if (frame.sealed === true) this.#refuse('E2E_MISMATCH')
      else this.#receive(frame)
      return
    }
    // Skips carry no contents and are not sealed; they keep their place behind the frames being opened.
    if (frame.sealed !== true && frame.skip !== true) {
      this.#refuse('PLAINTEXT')
      return
    }
    // Opened at once, in parallel, and received in arrival order; the frames that arrived in one turn are received
    // together once all are open, so the writer stores them in one transaction, as it would without encryption.
    // Behind a bundle being learned, a frame is opened once it is.
    let queue = this.#opening.get(frame.from)
    const stream = this.#state.in.get(frame.from)
    // Bounded as the receiver's reorder buffer is: what it would not keep is not opened (not acked: it comes again).
    if ((queue?.length ?? 0) >= this.#limits.window || (stream?.epoch === frame.epoch && frame.seq > stream.receivedUpTo + this.#limits.window)) {
      // From the mailbox, it may come again only when asked for, once it can be kept.
      if (stored) this.#inboundLink(frame.from).dropped()
      return
    }
    if (queue === undefined) this.#opening.set(frame.from, (queue = []))
    if (!this.#turnOpen) {
      this.#turnOpen = true
      this.#turn++
      queueMicrotask(() => (this.#turnOpen = false))
    }
    const entry: Opening = { frame, turn: this.#turn, started: false, done: false, plain: undefined }
    queue.push(entry)
    // A peer whose key is pinned needs nothing learned first: its frames open now, whatever hello is being considered.
    if (!this.#learning.has(frame.from) || this.#cipher.status(frame.from) === 'ready') this.#startOpening(entry)
  }

  #startOpening(entry: Opening): void {
    entry.started = true
    this.#open(entry.frame)
      .then(
        (plain) => (entry.plain = plain),
        (error: unknown) => this.#fail(error),
      )
      .finally(() => {
        entry.done = true
        this.#receiveOpened(entry.frame.from)
      })
  }

  /** Receives the opened frames at the head of `peer`'s queue, in order, in this turn. */
  #receiveOpened(peer: PeerId): void {
    const queue = this.#opening.get(peer)
    if (queue === undefined) return
    let taken = 0
    for (;;) {
      const turn = queue[taken]?.turn
      let end = taken
      for (let entry = queue[end]; entry !== undefined && entry.turn === turn && entry.done; entry = queue[++end]);
      // The head's turn is received whole, or not yet.
      if (end === taken || queue[end]?.turn === turn) break
      for (const { plain } of queue.slice(taken, end)) if (plain !== undefined && !this.#closed) this.#receive(plain)
      taken = end
    }
    queue.splice(0, taken)
    if (queue.length === 0) this.#opening.delete(peer)
  }

  #receive(frame: MsgFrame): void {
    if (!this.#inboundLink(frame.from).receive(frame)) this.#refuse('EXPIRED')
  }

  /** The frame with its contents opened; `undefined` (counted) when it does not open. */
  async #open(frame: MsgFrame): Promise<MsgFrame | undefined> {
    const stream = this.#state.in.get(frame.from)
    // Already stored (or a skip): nothing to open, the receive only acks it again.
    if (frame.sealed !== true || (stream?.epoch === frame.epoch && frame.seq <= stream.receivedUpTo)) return frame
    const cipher = this.#cipher as Cipher
    // A sender never heard (its frames drained from the mailbox while it is offline): its keys are in the directory.
    if (cipher.status(frame.from) === 'unknown') await this.#fetchKeys(frame.from)
    const opened = await cipher.open({ from: frame.from, to: this.localId, epoch: frame.epoch, seq: frame.seq, id: frame.id }, frame.contents)
    if (!opened.ok) {
      this.#refuse(opened.reason)
      if (opened.reason === 'KEY_HELD') this.#hold(frame)
      // Sealed for keys of ours the sender should not use: our hello brings it our current ones.
      if (opened.reason === 'KEY_STALE' || opened.reason === 'KEY_UNKNOWN') this.#askRekey(frame.from)
      return undefined
    }
    const plain = unpackPlaintext(opened.plaintext)
    if (plain === undefined || decodeContents(plain.contentKind, plain.contents) === undefined) {
      this.#refuse('FIELD')
      return undefined
    }
    // Field by field: a rest spread is slow in V8, and this runs per frame.
    const { kind, from, to, epoch, seq, floor, id, expiresAt } = frame
    const received = { kind, from, to, epoch, seq, floor, id, contentKind: plain.contentKind, contents: plain.contents }
    return expiresAt === undefined ? received : { ...received, expiresAt }
  }

  /** Keeps a frame refused while its sender's changed key waits, within bounds: one not kept comes again (resent, or at the next login). */
  #hold(frame: MsgFrame): void {
    let held = this.#held.get(frame.from)
    if (held === undefined) this.#held.set(frame.from, (held = new Map<string, MsgFrame>()))
    const key = `${frame.epoch} ${frame.seq}`
    if (held.has(key) || held.size >= this.#limits.window) return
    let bytes = frame.contents.byteLength
    for (const kept of held.values()) bytes += kept.contents.byteLength
    if (bytes <= HELD_BYTES) held.set(key, frame)
  }

  /** Sends `peer` a hello (our current keys, and a request for its own), once per `retransmitMs` at most. */
  #askRekey(peer: PeerId): void {
    const now = this.#clock.now()
    if (now - (this.#rekeyAsked.get(peer) ?? -Infinity) < this.#limits.retransmitMs) return
    this.#rekeyAsked.set(peer, now)
    this.#sendHello(peer, false)
  }

  #refuse(reason: string): void {
    this.#refused[reason] = (this.#refused[reason] ?? 0) + 1
  }

  #onHello(hello: HelloFrame): void {
    const peer = hello.from
    if (!this.#online.has(peer)) this.#peerUp(peer)
    if ((this.#cipher !== undefined) !== (hello.keys !== undefined)) {
      this.#refuse('E2E_MISMATCH')
      this.#mismatched.add(peer)
      // Reported at every hello (they come at session starts and backed-off timeouts), so a listener added late still hears it.
      const [here, there] = this.#cipher === undefined ? ['off', 'on'] : ['on', 'off']
      this.#events.emit(
        'error',
        new IlmError('E2E_MISMATCH', `end-to-end encryption is ${here} here and ${there} at ${peer}: no messages are exchanged with it`),
      )
      if (!hello.reply) this.#sendHello(peer, true)
      return
    }
    this.#mismatched.delete(peer)
    if (hello.keys === undefined) this.#followHello(hello)
    else
      this.#learnKeys(peer, hello.keys)
        .then(() => this.#followHello(hello))
        .catch(() => {})
  }

  #followHello(hello: HelloFrame): void {
    const peer = hello.from
    if (this.#closed) return
    let confirmed = hello.known === this.#state.meta.epoch ? hello.upTo : -1
    // What a stale incarnation of the peer (an older epoch) says it has stored is not evidence: only a followed hello acks.
    this.#inboundLink(peer)
      .hello(hello.epoch, hello.floor, hello.claim === true)
      .then((followed) => {
        if (!followed) confirmed = -1
        return confirmed >= 0 ? this.#applyAck(peer, confirmed) : undefined
      })
      .catch((error: unknown) => this.#fail(error))
      .finally(() => {
        const stream = this.#state.out.get(peer)
        const committed = stream?.ackedUpTo ?? -1
        // The peer's claim counts only if it refers to seqs this store really sent.
        const resumeAt = stream !== undefined && confirmed < stream.nextSeq ? Math.max(confirmed, committed) : committed
        if (this.#online.has(peer)) this.#outboundLink(peer).resume(resumeAt + 1, true)
      })
    if (!hello.reply) this.#sendHello(peer, true)
  }

  #onAck(ack: AckFrame): void {
    if (ack.epoch !== this.#state.meta.epoch) {
      this.#refuse('STALE_ACK')
      return
    }
    const peer = ack.from
    const stream = this.#state.out.get(peer)
    if (stream === undefined || ack.upTo >= stream.nextSeq) {
      this.#refuse('ACK_UNSENT')
      return
    }
    if (ack.upTo < stream.ackedUpTo) return
    this.#outbound.get(peer)?.heard(ack.upTo)
    if (ack.upTo === stream.ackedUpTo) return
    // A repeated ack defers again: if the held commit failed, this one retries it.
    this.#ackHeld.set(peer, Math.max(ack.upTo, this.#ackHeld.get(peer) ?? -1))
    // Off the send path: the commit rides along with the next send's, or goes after deferCommitMs.
    this.#writer.defer(`ack ${peer}`, (draft) => {
      const upTo = this.#ackHeld.get(peer) ?? -1
      const build = this.#ackIntent(peer, upTo)(draft)
      return (receipts) => {
        if (this.#ackHeld.get(peer) === upTo) this.#ackHeld.delete(peer)
        build(receipts)
      }
    })
    this.#deferCommit()
  }

  /** Commits the deferred intents within deferCommitMs (at once when it is 0, or while shutdown drains). */
  #deferCommit(): void {
    if (this.#limits.deferCommitMs === 0 || this.#drained !== undefined) this.#writer.flush()
    else
      this.#deferTimer ??= this.#clock.setTimeout(() => {
        this.#deferTimer = undefined
        this.#writer.flush()
      }, this.#limits.deferCommitMs)
  }

  /**
   * The deferred intents left with a batch (usually a send's or a store's): the
   * timer is for them only. Left running, it would commit the intents deferred
   * after them early, alone, in a transaction the next send or store may then
   * wait behind; the next deferral starts a fresh one.
   */
  #stopDeferTimer(): void {
    if (this.#deferTimer === undefined) return
    this.#clock.clearTimeout(this.#deferTimer)
    this.#deferTimer = undefined
  }

  #applyAck(peer: PeerId, upTo: number): Promise<void> {
    return this.#writer.submit(this.#ackIntent(peer, upTo))
  }

  #ackIntent(peer: PeerId, upTo: number): Intent<void> {
    return (draft) => {
      const stream = draft.outStream(peer)
      if (stream === undefined || upTo >= stream.nextSeq || upTo <= stream.ackedUpTo) return () => {}
      const from = stream.ackedUpTo
      draft.write({ op: 'ack', to: peer, upTo, at: this.#clock.now() })
      draft.setOut({ ...stream, ackedUpTo: upTo })
      return (receipts) => this.#acked(peer, from, upTo, receipts)
    }
  }

  #acked(peer: PeerId, from: number, upTo: number, receipts: readonly Receipt[]): void {
    if (receipts.length > 0) {
      this.#lastAckAt = this.#clock.now()
      this.#schedulePrune(true)
    }
    for (const receipt of receipts) {
      if (receipt.to !== peer || receipt.seq <= from || receipt.seq > upTo || receipt.status !== 'delivered') continue
      this.#status(receipt.id, peer, receipt.seq, 'delivered')
    }
    this.#outbound.get(peer)?.acked(upTo)
    this.#checkDrained()
    this.#checkFlushed()
  }

  /**
   * The peer follows another epoch of ours and refused this one. This epoch is
   * the live one (the other belonged to a wiped store whose clock read later,
   * or to a restored copy), so claim it.
   */
  #onReset(reset: ResetFrame): void {
    if (reset.epoch !== this.#state.meta.epoch) {
      this.#refuse('BAD_RESET')
      return
    }
    this.#sendHello(reset.from, false, true)
  }

  /** Resolves with how many of `messages`, from the first, every handler processed; reports the first failure. */
  async #handOver(messages: readonly Message[], progress: (handled: number) => void): Promise<number> {
    const { handled, error } = await handOverBatch([...this.#handlers], messages, progress)
    if (handled < messages.length) {
      const message = messages[handled]!
      this.#fail(new IlmError('HANDLER_FAILED', `a handler threw on message ${message.id}; it will be handed over again`, { cause: error }))
    }
    return handled
  }

  #expire(rows: readonly OutboxRow[]): void {
    const fresh = rows.filter((row) => !this.#expiring.has(row.id))
    if (fresh.length === 0) return
    for (const row of fresh) this.#expiring.add(row.id)
    this.#writer
      .submit((draft) => {
        const expired = fresh.filter((row) => row.seq > (draft.outStream(row.to)?.ackedUpTo ?? -1))
        for (const row of expired) draft.write({ op: 'expire', to: row.to, seq: row.seq })
        return () => {
          for (const row of expired) {
            this.#outbound.get(row.to)?.markExpired(row.seq)
            this.#status(row.id, row.to, row.seq, 'expired')
          }
        }
      })
      .catch((error: unknown) => this.#fail(error))
      .finally(() => {
        for (const row of fresh) this.#expiring.delete(row.id)
      })
  }

  #scheduleExpiry(at: number): void {
    if (this.#closed || (this.#expiryAt !== undefined && this.#expiryAt <= at)) return
    if (this.#expiryTimer !== undefined) this.#clock.clearTimeout(this.#expiryTimer)
    this.#expiryAt = at
    this.#expiryTimer = this.#clock.setTimeout(
      () => {
        this.#expiryTimer = this.#expiryAt = undefined
        void this.#sweepExpired()
      },
      Math.max(0, at - this.#clock.now()),
    )
  }

  async #sweepExpired(): Promise<void> {
    try {
      let rows: readonly OutboxRow[]
      do {
        rows = await this.#store.readExpired(this.#clock.now(), EXPIRY_PAGE)
        this.#expire(rows)
      } while (rows.length === EXPIRY_PAGE && !this.#closed)
      const next = await this.#store.nextExpiry()
      if (next !== undefined) this.#scheduleExpiry(Math.max(next, this.#clock.now() + 1))
    } catch (error) {
      if (this.#closed) return
      this.#fail(error)
      this.#scheduleExpiry(this.#clock.now() + this.#limits.retransmitMs)
    }
  }

  #prune(): void {
    this.#pruneTimer = this.#pruneAt = undefined
    if (this.#closed) return
    const before = this.#clock.now() - this.#limits.receiptTtlMs
    this.#writer
      .submit((draft) => {
        draft.write({ op: 'pruneReceipts', before })
        return () => {}
      })
      .catch((error: unknown) => this.#fail(error))
    // Receipts acknowledged since `before` are still to prune.
    this.#schedulePrune((this.#lastAckAt ?? -Infinity) >= before)
  }

  #schedulePrune(busy: boolean): void {
    if (this.#closed) return
    const every = Math.min(PRUNE_EVERY_MS, this.#limits.receiptTtlMs)
    const at = this.#clock.now() + Math.max(busy ? PRUNE_BUSY_FLOOR_MS : PRUNE_IDLE_FLOOR_MS, every)
    if (this.#pruneAt !== undefined && this.#pruneAt <= at) return
    if (this.#pruneTimer !== undefined) this.#clock.clearTimeout(this.#pruneTimer)
    this.#pruneAt = at
    this.#pruneTimer = this.#clock.setTimeout(() => this.#prune(), at - this.#clock.now())
  }

  /**
   * A status change of a sent message: settles what waits on it and tells the listeners. The event is built only when
   * something hears it: this runs several times per message.
   */
  #status(id: MessageId, to: PeerId, seq: number, status: StatusEvent['status'], reason?: string): void {
    if (this.#waiters.size > 0) this.#settleWaiters(id, status)
    if (this.#events.has('status')) this.#events.emit('status', reason === undefined ? { id, to, seq, status } : { id, to, seq, status, reason })
  }

  #settleWaiters(id: MessageId, status: MessageStatus): void {
    const set = this.#waiters.get(id)
    if (set === undefined) return
    let error: IlmError | undefined
    if (status === 'expired') error = new IlmError('EXPIRED', `message ${id} expired before it was delivered`)
    else if (status === 'failed') error = new IlmError('MESSAGE_FAILED', `the relay's mailbox gave up on message ${id}`)
    else if (status === 'unknown') error = unknownMessage(id)
    else if (status !== 'delivered') return
    this.#waiters.delete(id)
    for (const waiter of set) {
      if (error === undefined) waiter.resolve()
      else waiter.reject(error)
    }
  }

  #drainThenClose(timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = this.#clock.setTimeout(() => this.#drained?.(new IlmError('SHUTDOWN_TIMEOUT', `not drained within ${timeoutMs} ms`)), timeoutMs)
      this.#drained = (error) => {
        this.#drained = undefined
        this.#clock.clearTimeout(timer)
        this.close().then(() => (error === undefined ? resolve() : reject(error)), reject)
      }
      this.#writer.flush()
      this.#checkDrained()
    })
  }

  /** Drained: every stream toward an online peer is fully acknowledged. */
  #checkDrained(): void {
    if (this.#drained === undefined) return
    for (const peer of this.#online) {
      const stream = this.#state.out.get(peer)
      if (stream !== undefined && stream.ackedUpTo < stream.nextSeq - 1) return
    }
    this.#drained()
  }

  /** Flushed: every stream is acknowledged or stored by the relay up to its last seq. */
  #checkFlushed(): void {
    if (this.#flushWaiters.size === 0) return
    for (const stream of this.#state.out.values()) if (Math.max(stream.ackedUpTo, stream.storedUpTo ?? -1) < stream.nextSeq - 1) return
    for (const waiter of this.#flushWaiters) waiter.resolve()
    this.#flushWaiters.clear()
  }

  #fail(error: unknown): void {
    const failure = isIlmError(error) ? error : new IlmError('INTERNAL', 'unexpected failure', { cause: error })
    if (this.#closed && failure.code === 'CLOSED') return
    this.#events.emit('error', failure)
    if (failure.code === 'STORE_FENCED') void this.close()
  }

  async #close(): Promise<void> {
    // What was stored is acked before the transport goes, rather than resent by the peer and acked next time.
    this.#flushAcks()
    this.#closed = true
    this.#drained?.(new IlmError('CLOSED', 'closed before shutdown drained'))
    for (const link of this.#outbound.values()) link.dispose()
    // Queued before the writer closes, which commits what is queued.
    const marked = [...this.#inbound.values()].map((link) => link.flushProcessed())
    for (const link of this.#inbound.values()) link.dispose()
    if (this.#expiryTimer !== undefined) this.#clock.clearTimeout(this.#expiryTimer)
    if (this.#pruneTimer !== undefined) this.#clock.clearTimeout(this.#pruneTimer)
    if (this.#deferTimer !== undefined) this.#clock.clearTimeout(this.#deferTimer)
    this.#online.clear()
    const closed = new IlmError('CLOSED', 'this instance is closed')
    for (const set of this.#waiters.values()) for (const waiter of set) waiter.reject(closed)
    this.#waiters.clear()
    for (const waiter of this.#flushWaiters) waiter.reject(closed)
    this.#flushWaiters.clear()
    try {
      await this.#transport.close()
    } catch {
      // Closing is best effort; the store below is what matters.
    }
    await this.#writer.close(closed)
    await Promise.all(marked)
    await this.#store.close().catch(() => {})
    this.#events.clear()
  }
}

function unknownMessage(id: string): IlmError {
  return new IlmError('UNKNOWN_MESSAGE', `no message ${JSON.stringify(String(id)).slice(0, 80)} is known here`)
}
