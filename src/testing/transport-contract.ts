import { isIlmError } from '../core/errors.js'
import { isPeerId, type PeerId } from '../core/ids.js'
import type { Transport, TransportEvents } from '../core/transport.js'
import { check, checkEqual, checkRejects, ContractFailure, type ContractCase } from './contract.js'

/**
 * Two transports of the implementation under test, not yet opened (the suite
 * opens them), with distinct ids, able to reach each other once both are open.
 * `cleanup` runs after every case, pass or fail, after the suite has closed both.
 */
export interface TransportPair {
  readonly a: Transport
  readonly b: Transport
  cleanup(): Promise<void> | void
}

/** Options of {@link transportContract}. */
export interface TransportContractOptions {
  /**
   * Every frame sent between two open, online peers arrives (possibly twice,
   * in any order). Default true. When false, cases resend missing frames
   * until they get through, and still check their bytes and sender.
   */
  readonly reliable?: boolean
  /** Longest wait for presence or arrivals in one step, in real ms (default 5000). */
  readonly timeoutMs?: number
  /** How long to watch for events that must not come, in real ms (default 50). */
  readonly quietMs?: number
}

/**
 * The {@link Transport} contract as runner-agnostic cases. Each case calls
 * `makePair` for fresh transports and uses real timers only.
 *
 * ```ts
 * for (const c of transportContract(() => makeMyPair())) it(c.name, () => c.run())
 * ```
 */
export function transportContract(makePair: () => Promise<TransportPair> | TransportPair, options: TransportContractOptions = {}): ContractCase[] {
  const settings: Settings = {
    reliable: options.reliable ?? true,
    timeoutMs: options.timeoutMs ?? 5000,
    quietMs: options.quietMs ?? 50,
  }
  const define = (name: string, body: (s: Session) => Promise<void>): ContractCase => ({
    name,
    run: async () => {
      const pair = await makePair()
      const session = new Session(pair, settings)
      try {
        await body(session)
        session.checkViolations()
      } finally {
        await session.closeQuietly()
        await pair.cleanup()
      }
    },
  })

  return [
    define('opened peers see each other online', async (s) => {
      check(isPeerId(s.a.localId), `a.localId ${JSON.stringify(s.a.localId)} is not a valid peer id`)
      check(isPeerId(s.b.localId), `b.localId ${JSON.stringify(s.b.localId)} is not a valid peer id`)
      check(s.a.localId !== s.b.localId, 'a and b must have distinct ids')
      await s.openBoth()
    }),

    define('events arrive only after open(), never inside it', async (s) => {
      await s.open('a')
      // Whether this fails or is delivered later, nothing may reach b before or inside b.open().
      await s.trySend('a', frameOf(1, 16))
      await sleep(s.settings.quietMs)
      await s.open('b')
      await s.waitOnline()
    }),

    define('frames keep their bytes exactly (empty, 1 byte, all byte values, 64 KiB, subarray views)', async (s) => {
      await s.openBoth()
      const backing = Uint8Array.from({ length: 64 }, (_, i) => 255 - i)
      const payloads = [
        new Uint8Array(0),
        Uint8Array.of(0),
        Uint8Array.from({ length: 256 }, (_, i) => i),
        pseudoRandomBytes(64 * 1024, 7),
        // A view into a larger buffer: only its own bytes may go out.
        backing.subarray(5, 21),
        backing.subarray(60),
      ]
      await s.deliverAll('a', payloads)
      await s.deliverAll('b', payloads)
      for (const { data } of [...s.received.a.frames, ...s.received.b.frames]) {
        check(isUint8Array(data), `a frame arrived as ${Object.prototype.toString.call(data)}, not a Uint8Array`)
      }
    }),

    define("a frame carries its sender's id as `from`", async (s) => {
      await s.openBoth()
      await s.deliverAll('a', [frameOf(2, 8)])
      await s.deliverAll('b', [frameOf(3, 8)])
      for (const f of s.received.b.frames) checkEqual(f.from, s.a.localId, 'b got a frame whose from is not a')
      for (const f of s.received.a.frames) checkEqual(f.from, s.b.localId, 'a got a frame whose from is not b')
    }),

    define(options.reliable === false ? '500 frames all get through, intact' : '500 frames all arrive', async (s) => {
      await s.openBoth()
      const payloads = Array.from({ length: 500 }, (_, i) => frameOf(i, 4 + (i % 64)))
      await s.deliverAll('a', payloads)
    }),

    define('send never delivers synchronously', async (s) => {
      await s.openBoth()
      // The recorders flag any event arriving while a send is on the stack.
      const fromA = Array.from({ length: 20 }, (_, i) => frameOf(1000 + i, 8))
      const fromB = Array.from({ length: 20 }, (_, i) => frameOf(2000 + i, 8))
      await s.deliverAll('a', fromA)
      await s.deliverAll('b', fromB)
    }),

    define('send after close() fails with TRANSPORT_FAILED', async (s) => {
      await s.openBoth()
      await s.close('a')
      const error = await checkRejects(s.bounded(s.sendOnce('a', frameOf(4, 8)), 'send after close'), 'send after close()')
      check(isIlmError(error, 'TRANSPORT_FAILED'), `send after close() failed with ${describeError(error)}, not IlmError TRANSPORT_FAILED`)
    }),

    define('close() is idempotent and silences the transport', async (s) => {
      await s.openBoth()
      // In flight when a closes: they must not reach a afterwards.
      for (let i = 0; i < 5; i++) await s.trySend('b', frameOf(50 + i, 8))
      await s.close('a')
      await s.close('a')
      await s.bounded(Promise.all([Promise.resolve(s.a.close()), Promise.resolve(s.a.close())]), 'a.close() twice at once')
      // b may not know yet that a is gone: whatever its sends do, a must hear nothing.
      for (let i = 0; i < 5; i++) await s.trySend('b', frameOf(5 + i, 8))
      await sleep(s.settings.quietMs)
      checkEqual(s.received.a.eventsAfterClose, 0, 'events delivered to a after its close()')
    }),

    define('a peer sees the other go offline when it closes', async (s) => {
      await s.openBoth()
      await s.close('a')
      await s.waitFor(() => s.received.b.presence.get(s.a.localId) === false, 'b to see a offline')
    }),

    define('send to an unreachable peer fails with TRANSPORT_FAILED', async (s) => {
      await s.openBoth()
      await s.close('a')
      await s.waitFor(() => s.received.b.presence.get(s.a.localId) === false, 'b to see a offline')
      const offline = await checkRejects(s.bounded(s.sendOnce('b', frameOf(6, 8)), 'send to an offline peer'), 'send to an offline peer')
      check(isIlmError(offline, 'TRANSPORT_FAILED'), `send to an offline peer failed with ${describeError(offline)}, not IlmError TRANSPORT_FAILED`)
      const unknown = `nobody-${Math.random().toString(36).slice(2, 10)}` as PeerId
      const stranger = await checkRejects(
        s.bounded(
          Promise.resolve().then(() => s.b.send(unknown, frameOf(7, 8))),
          'send to an unknown peer',
        ),
        'send to a peer that never connected',
      )
      check(isIlmError(stranger, 'TRANSPORT_FAILED'), `send to an unknown peer failed with ${describeError(stranger)}, not IlmError TRANSPORT_FAILED`)
    }),
  ]
}

interface Settings {
  readonly reliable: boolean
  readonly timeoutMs: number
  readonly quietMs: number
}

type Side = 'a' | 'b'

/** Records what one transport reports, and flags what the contract forbids. */
class Recorder implements TransportEvents {
  readonly frames: { from: PeerId; data: Uint8Array }[] = []
  readonly presence = new Map<string, boolean>()
  closeCalled = false
  closedEvents = 0
  eventsAfterClose = 0

  constructor(
    private readonly name: Side,
    private readonly session: Session,
  ) {}

  frame(from: PeerId, data: Uint8Array): void {
    this.#event(`frame from ${String(from)}`)
    if (!isPeerId(from)) this.session.violation(`${this.name} got a frame whose from ${JSON.stringify(from)} is not a peer id`)
    this.frames.push({ from, data })
  }

  peer(peer: PeerId, online: boolean): void {
    this.#event(`peer(${String(peer)}, ${String(online)})`)
    if (!isPeerId(peer)) this.session.violation(`${this.name} got presence of ${JSON.stringify(peer)}, not a peer id`)
    this.presence.set(peer, online)
  }

  closed(): void {
    this.#event('closed()')
    this.closedEvents++
  }

  #event(what: string): void {
    const inside = this.session.inside
    if (inside !== undefined) this.session.violation(`${this.name} got ${what} synchronously inside ${inside}`)
    if (this.closeCalled) {
      this.eventsAfterClose++
      this.session.violation(`${this.name} got ${what} after its close()`)
    }
    if (this.closedEvents > 0) this.session.violation(`${this.name} got ${what} after its closed() event`)
  }
}

/** One case's transports, recorders and helpers. */
class Session {
  readonly a: Transport
  readonly b: Transport
  readonly received: Record<Side, Recorder>
  /** Set while a call is on the stack inside which no event may be delivered. */
  inside: string | undefined
  readonly #violations: string[] = []

  constructor(
    pair: TransportPair,
    readonly settings: Settings,
  ) {
    this.a = pair.a
    this.b = pair.b
    this.received = { a: new Recorder('a', this), b: new Recorder('b', this) }
  }

  violation(message: string): void {
    if (this.#violations.length < 20) this.#violations.push(message)
  }

  checkViolations(): void {
    if (this.#violations.length > 0) throw new ContractFailure(this.#violations.join('; '))
  }

  transport(side: Side): Transport {
    return side === 'a' ? this.a : this.b
  }

  other(side: Side): Side {
    return side === 'a' ? 'b' : 'a'
  }

  async open(side: Side): Promise<void> {
    const t = this.transport(side)
    await this.bounded(
      this.guarded(`${side}.open()`, () => t.open(this.received[side])),
      `${side}.open()`,
    )
  }

  async openBoth(): Promise<void> {
    await this.open('a')
    await this.open('b')
    await this.waitOnline()
  }

  async waitOnline(): Promise<void> {
    await this.waitFor(
      () => this.received.a.presence.get(this.b.localId) === true && this.received.b.presence.get(this.a.localId) === true,
      'a and b to see each other online',
    )
  }

  async close(side: Side): Promise<void> {
    this.received[side].closeCalled = true
    const t = this.transport(side)
    await this.bounded(
      Promise.resolve().then(() => t.close()),
      `${side}.close()`,
    )
  }

  async closeQuietly(): Promise<void> {
    for (const side of ['a', 'b'] as const) {
      this.received[side].closeCalled = true
      try {
        await this.bounded(
          Promise.resolve().then(() => this.transport(side).close()),
          `${side}.close()`,
        )
      } catch {
        // The case already has its verdict; cleanup must still run.
      }
    }
  }

  /** One send from `side` to the other, guarded against synchronous delivery; rejects as the send fails. */
  sendOnce(side: Side, data: Uint8Array): Promise<void> {
    const to = this.transport(this.other(side)).localId as PeerId
    const t = this.transport(side)
    return this.guarded(`${side}.send()`, () => t.send(to, data))
  }

  /** A send whose failure is allowed. */
  async trySend(side: Side, data: Uint8Array): Promise<void> {
    try {
      await this.bounded(this.sendOnce(side, data), `${side}.send()`)
    } catch (error) {
      if (error instanceof ContractFailure) throw error
    }
  }

  /**
   * Sends every payload from `side` and waits until the other side has
   * received each one (by content) from `side`. Unreliable links get resends.
   */
  async deliverAll(side: Side, payloads: readonly Uint8Array[]): Promise<void> {
    const receiver = this.received[this.other(side)]
    const sender = this.transport(side).localId
    const sent = new Map<string, Uint8Array>()
    for (const p of payloads) sent.set(hex(p), p)
    const seen = new Set<string>()
    let scanned = 0
    const missing = (): Uint8Array[] => {
      for (; scanned < receiver.frames.length; scanned++) {
        const f = receiver.frames[scanned] as { from: PeerId; data: Uint8Array }
        const key = hex(f.data)
        // A frame that is none of the payloads is corrupt (or from an earlier step of the case).
        if (!sent.has(key)) continue
        if (f.from !== sender) {
          throw new ContractFailure(`a frame sent by ${side} (${sender}) arrived with from ${JSON.stringify(f.from)}`)
        }
        seen.add(key)
      }
      return [...sent].filter(([key]) => !seen.has(key)).map(([, p]) => p)
    }

    const deadline = Date.now() + this.settings.timeoutMs
    const resendEvery = Math.max(20, this.settings.timeoutMs / 25)
    // The originals, not copies: a view into a larger buffer must go out as just its bytes.
    let pending: readonly Uint8Array[] = payloads
    for (;;) {
      for (const p of pending) {
        try {
          await this.bounded(this.sendOnce(side, p), `${side}.send()`)
        } catch (error) {
          if (error instanceof ContractFailure || this.settings.reliable) throw failure(`${side}.send() to an online peer failed`, error)
        }
      }
      const until = this.settings.reliable ? deadline : Math.min(deadline, Date.now() + resendEvery)
      while (missing().length > 0 && Date.now() < until) await sleep(5)
      pending = missing()
      if (pending.length === 0) return
      if (Date.now() >= deadline) {
        const got = receiver.frames.filter((f) => f.from === sender)
        const foreign = got.filter((f) => !sent.has(hex(f.data))).length
        throw new ContractFailure(
          `${pending.length} of ${sent.size} distinct frames from ${side} never arrived within ${this.settings.timeoutMs} ms ` +
            `(${got.length} frames from ${side} arrived, ${seen.size} distinct and intact, ` +
            `${foreign} with bytes matching no frame of this step)`,
        )
      }
    }
  }

  /** Runs `fn` with `inside` set, so synchronous events get flagged; returns its outcome as a promise. */
  guarded(label: string, fn: () => void | Promise<void>): Promise<void> {
    const outer = this.inside
    this.inside = label
    try {
      return Promise.resolve(fn())
    } catch (error) {
      return Promise.reject(error)
    } finally {
      this.inside = outer
    }
  }

  async waitFor(condition: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + this.settings.timeoutMs
    while (!condition()) {
      if (Date.now() >= deadline) {
        this.checkViolations()
        throw new ContractFailure(`timed out after ${this.settings.timeoutMs} ms waiting for ${what}`)
      }
      await sleep(5)
    }
  }

  /** Rejects with a ContractFailure when `promise` takes longer than the timeout. */
  bounded<T>(promise: Promise<T>, what: string): Promise<T> {
    let timer: ReturnType<typeof globalThis.setTimeout> | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = globalThis.setTimeout(() => reject(new ContractFailure(`${what} did not settle within ${this.settings.timeoutMs} ms`)), this.settings.timeoutMs)
    })
    return Promise.race([promise, timeout]).finally(() => globalThis.clearTimeout(timer))
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => globalThis.setTimeout(resolve, ms))
}

/** A recognisable payload: a 4-byte index then filler derived from it. */
function frameOf(index: number, length: number): Uint8Array {
  const out = new Uint8Array(Math.max(4, length))
  new DataView(out.buffer).setUint32(0, index)
  for (let i = 4; i < out.length; i++) out[i] = (index * 31 + i) & 0xff
  return out
}

/** Deterministic filler (xorshift32), so a failure reproduces. */
function pseudoRandomBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length)
  let x = seed | 0 || 1
  for (let i = 0; i < length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}

function isUint8Array(value: unknown): value is Uint8Array {
  return Object.prototype.toString.call(value) === '[object Uint8Array]'
}

function hex(bytes: Uint8Array): string {
  let s = `${bytes.length}:`
  for (const b of bytes) s += b < 16 ? `0${b.toString(16)}` : b.toString(16)
  return s
}

function describeError(error: unknown): string {
  if (isIlmError(error)) return `IlmError ${error.code}`
  if (error instanceof Error) return `${error.name}: ${error.message}`
  return String(error)
}

function failure(message: string, cause: unknown): Error {
  if (cause instanceof ContractFailure) return cause
  return new ContractFailure(`${message}: ${describeError(cause)}`)
}
