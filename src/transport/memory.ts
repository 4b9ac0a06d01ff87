import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64'
import { uniformInt } from 'pure-rand/distribution/uniformInt'
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus'
import type { RandomGenerator } from 'pure-rand/types/RandomGenerator'
import { ByteSlab } from '../core/byte-slab.js'
import type { Clock, TimerHandle } from '../core/clock.js'
import { IlmError } from '../core/errors.js'
import { isPeerId, type PeerId } from '../core/ids.js'
import type { Transport, TransportEvents } from '../core/transport.js'
import { systemClock } from '../runtime/system-clock.js'

/**
 * Faults a {@link MemoryNetwork} injects into every link. Probabilities are
 * 0..1 and drawn per frame from a PRNG seeded with `seed`, so the same seed
 * and the same sequence of sends (and, with delays, the same clock) give the
 * same outcome.
 */
export interface FaultOptions {
  /** Probability that a frame vanishes. */
  readonly drop?: number
  /** Probability that a frame is delivered twice. */
  readonly duplicate?: number
  /**
   * Probability that a frame is held back and delivered after the next frame
   * on the same (from, to) link, or after `reorderHoldMs` if none comes.
   */
  readonly reorder?: number
  /** Delivery delay in ms, fixed or drawn uniformly from `[min, max]`; scheduled on the network's clock. */
  readonly delayMs?: number | readonly [min: number, max: number]
  /** PRNG seed (a 32-bit integer). Omitted: keep the current generator (a random seed at first). */
  readonly seed?: number
  /** Longest a reordered frame waits for a later frame on its link, in ms (default 20). */
  readonly reorderHoldMs?: number
}

/** Options of a {@link MemoryNetwork}. */
export interface MemoryNetworkOptions {
  /** Drives delays and reorder hold-backs (default: the system clock). */
  readonly clock?: Clock
  /** Initial faults (default: none). */
  readonly faults?: FaultOptions
}

/**
 * Counters of a {@link MemoryNetwork}. Invariant:
 * `sent + duplicated === delivered + dropped + inFlight`.
 */
export interface NetworkStats {
  /** Frames accepted by `send` (sends that threw are not counted). */
  readonly sent: number
  /** Frames handed to a receiver's `frame` handler (each copy of a duplicate counts). */
  readonly delivered: number
  /** Frames lost: dropped by faults, or in flight when an end went offline, closed or was replaced. */
  readonly dropped: number
  /** Frames that got a second copy. */
  readonly duplicated: number
  /** Frames that were held back to be delivered out of order. */
  readonly reordered: number
  /** Frames (copies) accepted but neither delivered nor dropped yet. */
  readonly inFlight: number
}

/**
 * A {@link Transport} attached to a {@link MemoryNetwork}, created by
 * {@link MemoryNetwork.connect}. All its methods are synchronous: `send`
 * throws `IlmError('TRANSPORT_FAILED')` when either end is unreachable.
 */
export interface MemoryTransport extends Transport {
  readonly localId: PeerId
  /** The network this transport belongs to. */
  readonly network: MemoryNetwork
  open(events: TransportEvents): void
  /** Accepts any string for convenience in tests; an invalid id is just unreachable. */
  send(to: string, data: Uint8Array): void
  close(): void
}

/**
 * An in-memory network of peers, for tests (the engine's own and users').
 *
 * - `connect(id)` gives a transport; connecting an id again replaces the old
 *   transport, which receives `closed()` and goes dead (a crashed process's
 *   socket replaced by a new login).
 * - Presence: once opened, a transport sees `peer(x, true)` for every other
 *   open, online transport, and they see it; closing, being replaced or
 *   `disconnect(id)` turns that into `peer(.., false)` both ways.
 * - The hub authenticates `from`: a receiver always sees the sender's real id.
 * - Nothing is delivered inside a call: frames without delay go through a
 *   FIFO queue drained in a microtask (FIFO per link without faults); delayed
 *   and held-back frames go through the network's clock, so a `ManualClock`
 *   drives them deterministically.
 * - An exception thrown by an event handler is rethrown asynchronously (an
 *   uncaught error), and delivery to everyone else goes on.
 *
 * ```ts
 * const net = new MemoryNetwork({ faults: { drop: 0.1, seed: 42 } })
 * const alice = net.connect('alice')
 * const bob = net.connect('bob')
 * ```
 */
export class MemoryNetwork {
  readonly #hub: Hub

  /**
   * An empty network; see {@link MemoryNetworkOptions}.
   * @throws TypeError for options or a clock of the wrong shape, RangeError for faults out of range.
   */
  constructor(options: MemoryNetworkOptions = {}) {
    if (typeof options !== 'object' || options === null) throw new TypeError('MemoryNetwork: options must be an object')
    const clock = options.clock ?? systemClock
    if (!['now', 'setTimeout', 'clearTimeout'].every((m) => typeof (clock as unknown as Record<string, unknown>)[m] === 'function')) {
      throw new TypeError('MemoryNetwork: clock must have now, setTimeout and clearTimeout')
    }
    this.#hub = new Hub(this, clock)
    if (options.faults !== undefined) this.#hub.setFaults(options.faults)
  }

  /** The clock driving delays and hold-backs. */
  get clock(): Clock {
    return this.#hub.clock
  }

  /**
   * A new, online transport for `id`, to be opened by its user. An existing
   * transport with that id is replaced (it gets `closed()` and goes dead).
   * @throws TypeError when `id` is not a valid peer id.
   */
  connect(id: string): MemoryTransport {
    return this.#hub.connect(id)
  }

  /**
   * Takes `id` offline, keeping its transport usable: both sides see each
   * other go offline, frames in flight to or from it are dropped, and sends to
   * or from it fail with `TRANSPORT_FAILED` until {@link reconnect}. No-op when
   * already offline. A new `connect(id)` is online again.
   * @throws Error when no transport is connected as `id`.
   */
  disconnect(id: string): void {
    this.#hub.setOnline(id, false)
  }

  /** Brings `id` back online; presence events flow both ways. No-op when online. */
  reconnect(id: string): void {
    this.#hub.setOnline(id, true)
  }

  /** True when `id` has an open, online, current transport (frames to it are accepted). */
  isOnline(id: string): boolean {
    return this.#hub.isOnline(id)
  }

  /**
   * Replaces the faults of every link; `faults({})` clears them. Frames held
   * back for reordering are released right away. Passing `seed` reseeds the PRNG.
   * @throws RangeError on a probability outside 0..1 or an invalid delay.
   */
  faults(faults: FaultOptions): void {
    this.#hub.setFaults(faults)
  }

  /** The seed the PRNG was last seeded with; pass it back in `faults` to replay a run. */
  get seed(): number {
    return this.#hub.seed
  }

  /** A snapshot of the counters. */
  get stats(): NetworkStats {
    return { ...this.#hub.stats }
  }
}

type State = 'new' | 'open' | 'dead'

class Endpoint implements MemoryTransport {
  readonly localId: PeerId
  readonly network: MemoryNetwork
  readonly #hub: Hub
  state: State = 'new'
  online = true
  opened = false
  closeCalled = false
  /** Replaced before it was opened: `closed()` is owed once it opens. */
  closedOwed = false
  /** Bumped on every reachability change, so frames from an older link state get dropped. */
  gen = 0
  events: TransportEvents | undefined

  constructor(hub: Hub, network: MemoryNetwork, id: PeerId) {
    this.#hub = hub
    this.network = network
    this.localId = id
  }

  open(events: TransportEvents): void {
    this.#hub.open(this, events)
  }

  send(to: string, data: Uint8Array): void {
    this.#hub.send(this, to, data)
  }

  close(): void {
    this.#hub.close(this)
  }
}

class Frame {
  constructor(
    readonly from: Endpoint,
    readonly fromGen: number,
    readonly to: Endpoint,
    readonly toGen: number,
    readonly data: Uint8Array,
  ) {}
}

class PresenceTask {
  constructor(
    readonly to: Endpoint,
    readonly peer: PeerId,
    readonly online: boolean,
  ) {}
}

class ClosedTask {
  constructor(readonly to: Endpoint) {}
}

type Task = Frame | PresenceTask | ClosedTask

interface Timed {
  readonly frame: Frame
  handle: TimerHandle | undefined
}

interface Held extends Timed {
  readonly key: string
}

interface Faults {
  drop: number
  duplicate: number
  reorder: number
  delay: readonly [number, number]
  holdMs: number
}

const NO_FAULTS: Faults = { drop: 0, duplicate: 0, reorder: 0, delay: [0, 0], holdMs: 20 }

/** Deliveries per microtask before yielding a macrotask, so a frame storm cannot starve timers. */
const DRAIN_BUDGET = 10_000

class Hub {
  readonly clock: Clock
  readonly stats = { sent: 0, delivered: 0, dropped: 0, duplicated: 0, reordered: 0, inFlight: 0 }
  seed = 0
  readonly #network: MemoryNetwork
  readonly #current = new Map<string, Endpoint>()
  #faults: Faults = NO_FAULTS
  #faulty = false
  #rng: RandomGenerator
  // Zero-delay deliveries and all presence/closed events share one FIFO, so a
  // receiver sees them in the order the hub produced them.
  #queue: (Task | undefined)[] = []
  #head = 0
  #draining = false
  readonly #timed = new Set<Timed>()
  readonly #held = new Map<string, Held>()
  readonly #slab = new ByteSlab()

  constructor(network: MemoryNetwork, clock: Clock) {
    this.#network = network
    this.clock = clock
    this.#rng = this.#seed((Math.random() * 2 ** 32) | 0)
  }

  connect(id: string): MemoryTransport {
    if (!isPeerId(id)) throw new TypeError(`MemoryNetwork.connect: invalid peer id ${JSON.stringify(id)}`)
    const old = this.#current.get(id)
    if (old !== undefined) {
      this.#kill(old)
      if (old.events !== undefined) this.#enqueue(new ClosedTask(old))
      else if (!old.opened) old.closedOwed = true
    }
    const endpoint = new Endpoint(this, this.#network, id)
    this.#current.set(id, endpoint)
    return endpoint
  }

  open(e: Endpoint, events: TransportEvents): void {
    if (e.opened) throw new Error(`MemoryTransport(${e.localId}).open: already opened`)
    if (
      typeof events !== 'object' ||
      events === null ||
      typeof events.frame !== 'function' ||
      typeof events.peer !== 'function' ||
      typeof events.closed !== 'function'
    ) {
      throw new TypeError('MemoryTransport.open: events must have frame, peer and closed functions')
    }
    e.opened = true
    if (e.closeCalled) return
    e.events = events
    if (e.state === 'dead') {
      if (e.closedOwed) this.#enqueue(new ClosedTask(e))
      return
    }
    e.state = 'open'
    e.gen++
    if (e.online) this.#announce(e, true, true)
  }

  close(e: Endpoint): void {
    if (e.closeCalled) return
    e.closeCalled = true
    e.events = undefined
    if (e.state !== 'dead') this.#kill(e)
  }

  setOnline(id: string, online: boolean): void {
    const e = this.#current.get(id)
    if (e === undefined) throw new Error(`MemoryNetwork: no transport is connected as ${JSON.stringify(id)}`)
    if (e.online === online) return
    const wasReachable = reachable(e)
    e.online = online
    e.gen++
    if (!online) this.#cancelInFlight(e)
    if (wasReachable || reachable(e)) this.#announce(e, online, true)
  }

  isOnline(id: string): boolean {
    const e = this.#current.get(id)
    return e !== undefined && reachable(e)
  }

  setFaults(f: FaultOptions): void {
    const next: Faults = {
      drop: probability(f.drop, 'drop'),
      duplicate: probability(f.duplicate, 'duplicate'),
      reorder: probability(f.reorder, 'reorder'),
      delay: delayRange(f.delayMs),
      holdMs: f.reorderHoldMs ?? NO_FAULTS.holdMs,
    }
    if (!Number.isFinite(next.holdMs) || next.holdMs < 0) {
      throw new RangeError(`MemoryNetwork.faults: invalid reorderHoldMs ${String(f.reorderHoldMs)}`)
    }
    if (f.seed !== undefined) {
      if (!Number.isInteger(f.seed)) throw new RangeError(`MemoryNetwork.faults: seed must be an integer`)
      this.#rng = this.#seed(f.seed)
    }
    this.#faults = next
    this.#faulty = next.drop > 0 || next.duplicate > 0 || next.reorder > 0 || next.delay[1] > 0
    for (const held of [...this.#held.values()]) this.#release(held)
  }

  send(from: Endpoint, to: string, data: Uint8Array): void {
    if (!reachable(from)) {
      throw new IlmError('TRANSPORT_FAILED', `MemoryTransport(${from.localId}): ${describe(from)}`)
    }
    if (!(data instanceof Uint8Array)) throw new TypeError('MemoryTransport.send: data must be a Uint8Array')
    const target = this.#current.get(to)
    if (target === undefined || !reachable(target)) {
      throw new IlmError('TRANSPORT_FAILED', `MemoryTransport(${from.localId}): peer ${JSON.stringify(to)} is unreachable`)
    }
    this.stats.sent++
    // Copy: the sender may reuse its buffer, and receivers keep views into theirs.
    const frame = new Frame(from, from.gen, target, target.gen, this.#slab.copy(data))
    if (!this.#faulty) {
      this.stats.inFlight++
      this.#enqueue(frame)
      return
    }
    this.#sendFaulty(frame)
  }

  #sendFaulty(frame: Frame): void {
    const f = this.#faults
    if (f.drop > 0 && this.#random() < f.drop) {
      this.stats.dropped++
      return
    }
    const copies = [frame]
    if (f.duplicate > 0 && this.#random() < f.duplicate) {
      this.stats.duplicated++
      copies.push(new Frame(frame.from, frame.fromGen, frame.to, frame.toGen, this.#slab.copy(frame.data)))
    }
    this.stats.inFlight += copies.length
    const key = `${frame.from.localId}\n${frame.to.localId}`
    const earlier = this.#held.get(key)
    for (const copy of copies) {
      if (f.reorder > 0 && !this.#held.has(key) && this.#random() < f.reorder) {
        this.stats.reordered++
        const held: Held = { key, frame: copy, handle: undefined }
        held.handle = this.clock.setTimeout(() => this.#release(held), f.holdMs)
        this.#held.set(key, held)
      } else {
        this.#dispatch(copy)
      }
    }
    // A frame held by an earlier send goes right after this one.
    if (earlier !== undefined) this.#release(earlier)
  }

  #release(held: Held): void {
    if (this.#held.get(held.key) !== held) return
    this.#held.delete(held.key)
    if (held.handle !== undefined) this.clock.clearTimeout(held.handle)
    this.#dispatch(held.frame)
  }

  #dispatch(frame: Frame): void {
    const [min, max] = this.#faults.delay
    let delay = min
    if (max > min) {
      delay = Number.isInteger(min) && Number.isInteger(max) ? uniformInt(this.#rng, min, max) : min + uniformFloat64(this.#rng) * (max - min)
    }
    if (delay <= 0) {
      this.#enqueue(frame)
      return
    }
    const timed: Timed = { frame, handle: undefined }
    timed.handle = this.clock.setTimeout(() => {
      this.#timed.delete(timed)
      this.#deliver(frame)
    }, delay)
    this.#timed.add(timed)
  }

  #deliver(frame: Frame): void {
    this.stats.inFlight--
    // Any reachability change of either end bumps its gen, so equal gens mean
    // both ends have stayed open, online and current since the send.
    if (frame.from.gen !== frame.fromGen || frame.to.gen !== frame.toGen) {
      this.stats.dropped++
      return
    }
    const events = frame.to.events
    if (events === undefined) {
      this.stats.dropped++
      return
    }
    this.stats.delivered++
    try {
      events.frame(frame.from.localId, frame.data)
    } catch (error) {
      rethrow(error)
    }
  }

  #run(task: Task): void {
    if (task instanceof Frame) {
      this.#deliver(task)
      return
    }
    const e = task.to
    const events = e.events
    if (events === undefined) return
    try {
      if (task instanceof PresenceTask) {
        if (e.state === 'open') events.peer(task.peer, task.online)
      } else {
        e.events = undefined
        events.closed()
      }
    } catch (error) {
      rethrow(error)
    }
  }

  #enqueue(task: Task): void {
    this.#queue.push(task)
    if (!this.#draining) {
      this.#draining = true
      queueMicrotask(this.#drain)
    }
  }

  readonly #drain = (): void => {
    const queue = this.#queue
    let budget = DRAIN_BUDGET
    while (this.#head < queue.length) {
      if (budget-- === 0) {
        yieldMacrotask(this.#drain)
        return
      }
      const task = queue[this.#head] as Task
      queue[this.#head++] = undefined
      this.#run(task)
    }
    queue.length = 0
    this.#head = 0
    this.#draining = false
  }

  /** Takes `e` out of the network for good (closed or replaced). */
  #kill(e: Endpoint): void {
    const wasReachable = reachable(e)
    e.state = 'dead'
    e.gen++
    if (this.#current.get(e.localId) === e) this.#current.delete(e.localId)
    this.#cancelInFlight(e)
    if (wasReachable) this.#announce(e, false, false)
  }

  /** Tells every other reachable endpoint that `e` went online/offline, and (if `both`) `e` about them. */
  #announce(e: Endpoint, online: boolean, both: boolean): void {
    for (const other of this.#current.values()) {
      if (other === e || !reachable(other)) continue
      this.#enqueue(new PresenceTask(other, e.localId, online))
      if (both) this.#enqueue(new PresenceTask(e, other.localId, online))
    }
  }

  /** Drops clock-scheduled frames to or from `e` now, so no timer outlives the link. */
  #cancelInFlight(e: Endpoint): void {
    for (const timed of this.#timed) {
      if (timed.frame.from !== e && timed.frame.to !== e) continue
      if (timed.handle !== undefined) this.clock.clearTimeout(timed.handle)
      this.#timed.delete(timed)
      this.stats.inFlight--
      this.stats.dropped++
    }
    for (const held of [...this.#held.values()]) {
      if (held.frame.from !== e && held.frame.to !== e) continue
      if (held.handle !== undefined) this.clock.clearTimeout(held.handle)
      this.#held.delete(held.key)
      this.stats.inFlight--
      this.stats.dropped++
    }
  }

  #random(): number {
    return uniformFloat64(this.#rng)
  }

  #seed(seed: number): RandomGenerator {
    this.seed = seed | 0
    // xoroshiro128plus puts the raw seed into its state, so its first outputs
    // track the seed closely: scramble it, then discard a few outputs.
    const rng = xoroshiro128plus(fmix32(this.seed))
    for (let i = 0; i < 16; i++) rng.next()
    return rng
  }
}

function reachable(e: Endpoint): boolean {
  return e.state === 'open' && e.online
}

function describe(e: Endpoint): string {
  if (e.closeCalled) return 'closed'
  if (e.state === 'dead') return 'replaced by a newer connection'
  if (e.state === 'new') return 'not opened'
  return 'offline'
}

function probability(value: number | undefined, name: string): number {
  if (value === undefined) return 0
  if (!(value >= 0 && value <= 1)) throw new RangeError(`MemoryNetwork.faults: ${name} must be within 0..1, got ${value}`)
  return value
}

function delayRange(value: FaultOptions['delayMs']): readonly [number, number] {
  if (value === undefined) return [0, 0]
  const [min, max] = typeof value === 'number' ? [value, value] : value
  if (!(Number.isFinite(min) && Number.isFinite(max) && min >= 0 && max >= min)) {
    throw new RangeError(`MemoryNetwork.faults: invalid delayMs ${JSON.stringify(value)}`)
  }
  return [min, max]
}

/** MurmurHash3's 32-bit finalizer: spreads nearby seeds apart. */
function fmix32(h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h | 0
}

function rethrow(error: unknown): void {
  queueMicrotask(() => {
    throw error
  })
}

// Node's setImmediate is not in the DOM typings this file is also built for.
const setImmediateIfAny = (globalThis as { setImmediate?: (fn: () => void) => unknown }).setImmediate

function yieldMacrotask(fn: () => void): void {
  if (setImmediateIfAny !== undefined) setImmediateIfAny(fn)
  else globalThis.setTimeout(fn, 0)
}
