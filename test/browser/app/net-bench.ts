/**
 * Bench page for `npm run bench:net`: exposes `window.netBench` to the script
 * that drives it (test/bench/net.ts). Two of these pages, each in its own
 * browser profile, talk through a real relay two ways:
 *
 * - end to end: `connect()` (engine in a worker, IndexedDB on disk) over the
 *   WebSocket transport, `send()` on one side, `onMessage` on the other;
 * - the ceiling: plain `WebSocket`s speaking the relay's wire protocol
 *   (`auth`, then binary envelopes), no engine, no persistence.
 *
 * Every payload carries, big-endian: byte 0 the phase tag, bytes 4..8 the
 * index (u32), bytes 8..16 the send time (f64, ms since the Unix epoch as
 * `performance.timeOrigin + performance.now()`), so the receiver can compute
 * latency on a clock both pages share (both browsers run on this machine).
 */
import { connect, type Messenger } from 'intersession/client'

/** The shared clock: wall-clock ms with sub-ms resolution. */
const now = (): number => performance.timeOrigin + performance.now()

/** Raw sender: above this many bytes queued in the socket, wait before the next window. */
const RAW_MAX_BUFFERED = 64 * 1024

const encoder = new TextEncoder()

/** A payload of `bytes` bytes for `phase` / `index`, stamped with the current time. */
function payload(phase: number, index: number, bytes: number, into?: Uint8Array, offset = 0): Uint8Array {
  const out = into ?? new Uint8Array(bytes)
  const view = new DataView(out.buffer, out.byteOffset + offset, bytes)
  out.fill(index & 0xff, offset, offset + bytes)
  view.setUint8(0, phase)
  view.setUint32(4, index)
  view.setFloat64(8, now())
  return out
}

/** Counts the arrivals of one phase: latency of each, first and last arrival, duplicates. */
class Receiver {
  received = 0
  duplicates = 0
  /** Payloads of another phase or shape (e.g. leftovers of a warm-up). */
  other = 0
  first = 0
  last = 0
  readonly latencies: Float64Array
  readonly seen: Uint8Array
  readonly done: Promise<void>
  #resolve!: () => void

  constructor(
    readonly phase: number,
    readonly expected: number,
  ) {
    this.latencies = new Float64Array(expected)
    this.seen = new Uint8Array(expected)
    this.done = new Promise<void>((resolve) => (this.#resolve = resolve))
  }

  record(bytes: Uint8Array, at: number): void {
    if (bytes.byteLength < 16) return void this.other++
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    if (view.getUint8(0) !== this.phase) return void this.other++
    const index = view.getUint32(4)
    if (index >= this.expected || this.seen[index] === 1) return void this.duplicates++
    this.seen[index] = 1
    this.latencies[this.received] = at - view.getFloat64(8)
    if (this.received === 0) this.first = at
    this.last = at
    if (++this.received === this.expected) this.#resolve()
  }

  /** Resolves once every expected payload arrived, or after `timeoutMs` with what did. */
  async wait(timeoutMs: number): Promise<Arrivals> {
    let timer: ReturnType<typeof setTimeout> | undefined
    await Promise.race([this.done, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))])
    clearTimeout(timer)
    return {
      received: this.received,
      duplicates: this.duplicates,
      other: this.other,
      first: this.first,
      last: this.last,
      latencies: Array.from(this.latencies.subarray(0, this.received)),
    }
  }
}

export interface Arrivals {
  received: number
  duplicates: number
  other: number
  /** Arrival times (shared clock) of the first and last payload. */
  first: number
  last: number
  /** Arrival minus send time of each payload, ms, in arrival order. */
  latencies: number[]
}

/** One macrotask (a MessageChannel hop: setTimeout would be clamped to 4 ms when chained). */
const channel = new MessageChannel()
const yieldTask = (): Promise<void> =>
  new Promise((resolve) => {
    channel.port1.onmessage = () => resolve()
    channel.port2.postMessage(0)
  })

let messenger: Messenger | undefined
let receiver: Receiver | undefined
/** Sender side: 'delivered' status events (the receiver stored the message and acked it) since `expectAcks`. */
let acks = { expected: 0, count: 0, last: 0 }
let raw: { ws: WebSocket; undeliverable: number; control: number } | undefined

const netBench = {
  now,

  // ---- end to end: connect() + IndexedDB + WebSocket transport ---------------

  /**
   * Starts intersession as `peerId` through the relay; resolves once this tab
   * leads and the relay link is online. With `subscribe` false no handler is
   * registered, so received messages are stored (and acked) but not handed over.
   * `engineWindow` sets the engine's `limits.window` (default 256).
   */
  async connect(peerId: string, relay: string, subscribe = true, engineWindow?: number): Promise<{ role: string; connection: string }> {
    messenger = await connect({
      peerId,
      transport: { kind: 'websocket', url: relay, token: `dev:${peerId}` },
      ...(engineWindow !== undefined && { limits: { window: engineWindow } }),
    })
    const m = messenger
    if (subscribe) {
      m.onMessage((message) => {
        const at = now()
        if (receiver !== undefined && message.contents instanceof Uint8Array) receiver.record(message.contents, at)
      })
    }
    m.on('status', (event) => {
      if (event.status !== 'delivered') return
      const at = now()
      if (++acks.count <= acks.expected) acks.last = at
    })
    const deadline = performance.now() + 20_000
    while ((m.role !== 'leader' || m.connection.status !== 'online') && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    return { role: m.role, connection: m.connection.status }
  },

  /** Resets the receiver: from now on, `count` payloads of `phase` are expected (through either path). */
  expect(phase: number, count: number): void {
    receiver = new Receiver(phase, count)
  },

  wait: (timeoutMs: number): Promise<Arrivals> => receiver!.wait(timeoutMs),

  /** Sender side: from now on, count `delivered` status events up to `count`. */
  expectAcks(count: number): void {
    acks = { expected: count, count: 0, last: 0 }
  },

  /** How many `delivered` events came since `expectAcks`, and when the `count`-th (or the last so far) came. */
  acks: (): { count: number; last: number } => ({ count: acks.count, last: acks.last }),

  /** Resolves once `expectAcks`' count of `delivered` events came, or after `timeoutMs`, with `acks()`. */
  async waitAcks(timeoutMs: number): Promise<{ count: number; last: number }> {
    const deadline = performance.now() + timeoutMs
    while (acks.count < acks.expected && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    return { count: acks.count, last: acks.last }
  },

  /**
   * `count` sends of `bytes` bytes to `to` in windows of `window` concurrent
   * sends, each window awaited (Promise.all: durably queued in IndexedDB).
   * Resolves with the time of the first send call and of the last resolution.
   */
  async send(to: string, phase: number, count: number, bytes: number, window: number): Promise<{ firstSendAt: number; lastQueuedAt: number }> {
    const m = messenger!
    const firstSendAt = now()
    for (let from = 0; from < count; from += window) {
      const sends: Array<Promise<unknown>> = []
      for (let i = from; i < Math.min(count, from + window); i++) sends.push(m.send(to, payload(phase, i, bytes)))
      await Promise.all(sends)
    }
    return { firstSendAt, lastQueuedAt: now() }
  },

  pending: () => messenger!.pending(),
  close: () => messenger?.close(),

  // ---- the ceiling: plain WebSockets through the same relay -------------------

  /** Opens a plain WebSocket to the relay and logs in as `id` (dev token); resolves on `welcome`. */
  rawOpen(id: string, relay: string): Promise<void> {
    const ws = new WebSocket(relay)
    ws.binaryType = 'arraybuffer'
    const state = { ws, undeliverable: 0, control: 0 }
    raw = state
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`raw ${id}: no welcome within 10 s`)), 10_000)
      ws.onopen = () => ws.send(JSON.stringify({ t: 'auth', token: `dev:${id}` }))
      ws.onclose = (event) => reject(new Error(`raw ${id}: closed ${event.code} ${event.reason}`))
      ws.onmessage = (event: MessageEvent<string | ArrayBuffer>) => {
        const at = now()
        if (typeof event.data === 'string') {
          state.control++
          const m = JSON.parse(event.data) as { t?: string }
          if (m.t === 'welcome') {
            clearTimeout(timer)
            resolve()
          } else if (m.t === 'undeliverable') state.undeliverable++
          return
        }
        // relay -> client: [u16 BE length][from, UTF-8][frame]
        const data = new Uint8Array(event.data)
        const length = (data[0]! << 8) | data[1]!
        receiver?.record(data.subarray(2 + length), at)
      }
    })
  },

  /**
   * `count` envelopes of `bytes`-byte payloads to `to` over the plain socket,
   * in windows of `window`: after each, one macrotask, then more while the
   * socket holds over 64 KiB. Resolves with the time of the first send.
   */
  async rawSend(to: string, phase: number, count: number, bytes: number, window: number): Promise<{ firstSendAt: number; lastQueuedAt: number }> {
    const ws = raw!.ws
    const address = encoder.encode(to)
    const header = 2 + address.byteLength
    const firstSendAt = now()
    for (let from = 0; from < count; from += window) {
      for (let i = from; i < Math.min(count, from + window); i++) {
        // client -> relay: [u16 BE length][to, UTF-8][frame]
        const out = new Uint8Array(header + bytes)
        out[0] = address.byteLength >> 8
        out[1] = address.byteLength & 0xff
        out.set(address, 2)
        payload(phase, i, bytes, out, header)
        ws.send(out)
      }
      await yieldTask()
      while (ws.bufferedAmount > RAW_MAX_BUFFERED) await yieldTask()
    }
    return { firstSendAt, lastQueuedAt: now() }
  },

  rawStats: () => ({ undeliverable: raw?.undeliverable ?? 0, control: raw?.control ?? 0 }),

  rawClose(): void {
    if (raw === undefined) return
    raw.ws.onclose = null
    raw.ws.close(1000)
    raw = undefined
  },
}

declare global {
  interface Window {
    netBench: typeof netBench
  }
}
window.netBench = netBench
document.title = 'ready'
