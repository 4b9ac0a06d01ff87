/**
 * Functions for `npm run bench:recovery` (test/bench/recovery.ts) on the
 * harness page, as `window.harness.recovery`: one messenger of this page through
 * a relay, sends of fixed-size binary payloads, and time stamps of what
 * arrives (receiver side) and of `delivered` status events (sender side).
 *
 * Every payload carries the phase tag in byte 0 and its index (u32,
 * big-endian) in bytes 4..8, so the receiver can tell order, gaps and
 * duplicates. Times are `performance.timeOrigin + performance.now()`, a clock
 * the driving script shares with every page on this machine.
 */
import { connect, type Messenger } from 'intersession/client'

const now = (): number => performance.timeOrigin + performance.now()

/** Receiver side: what arrived of the expected phase since `expect`. */
interface Arrivals {
  phase: number
  expected: number
  received: number
  duplicates: number
  /** Arrivals whose index was not the next one (a gap, or a reordering). */
  outOfOrder: number
  /** Payloads of another phase (e.g. a late warm-up message). */
  other: number
  /** Arrival time of the last expected payload, or of the latest so far. */
  last: number
}

/** Sender side: `delivered` status events since `expectAcks`. */
interface Acks {
  expected: number
  count: number
  last: number
}

let messenger: Messenger | undefined
let arrivals: Arrivals = { phase: -1, expected: 0, received: 0, duplicates: 0, outOfOrder: 0, other: 0, last: 0 }
let seen = new Uint8Array(0)
let acks: Acks = { expected: 0, count: 0, last: 0 }

function payload(phase: number, index: number, bytes: number): Uint8Array {
  const out = new Uint8Array(bytes).fill(index & 0xff)
  const view = new DataView(out.buffer)
  view.setUint8(0, phase)
  view.setUint32(4, index)
  return out
}

function record(contents: unknown, at: number): void {
  if (!(contents instanceof Uint8Array) || contents.byteLength < 8 || contents[0] !== arrivals.phase) return void arrivals.other++
  const index = new DataView(contents.buffer, contents.byteOffset, contents.byteLength).getUint32(4)
  if (index >= arrivals.expected || seen[index] === 1) return void arrivals.duplicates++
  if (index !== arrivals.received) arrivals.outOfOrder++
  seen[index] = 1
  arrivals.received++
  arrivals.last = at
}

/** Polls `done` every 10 ms until it holds or `timeoutMs` passed. */
async function until(done: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (!done() && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
}

/** The functions, as `window.harness.recovery`. */
export const recoveryBench = {
  now,

  /**
   * Starts intersession as `peerId` through the relay at `url`, with a handler
   * (arrivals are recorded) and a `delivered` counter. With `online` false the
   * link is switched off at once (`setOnline(false)`: sends queue in
   * IndexedDB). Resolves once this tab leads and the link is in the wanted
   * state (or after 20 s), with what it is.
   */
  async connect(peerId: string, url: string, online: boolean): Promise<{ role: string; connection: string }> {
    const m = await connect({ peerId, transport: { kind: 'websocket', url, token: `dev:${peerId}` } })
    messenger = m
    if (!online) m.setOnline(false)
    m.onMessage((message) => record(message.contents, now()))
    m.on('status', (event) => {
      if (event.status !== 'delivered') return
      const at = now()
      if (++acks.count <= acks.expected) acks.last = at
    })
    const wanted = online ? 'online' : 'offline'
    await until(() => m.role === 'leader' && m.connection.status === wanted, 20_000)
    return { role: m.role, connection: m.connection.status }
  },

  /** As `Messenger.setOnline`; resolves once the link reports `online` / `offline` (or after 20 s), with its state. */
  async setOnline(online: boolean): Promise<string> {
    const m = messenger!
    m.setOnline(online)
    await until(() => m.connection.status === (online ? 'online' : 'offline'), 20_000)
    return m.connection.status
  },

  /** Receiver side: from now on, `count` payloads of `phase` are expected. */
  expect(phase: number, count: number): void {
    arrivals = { phase, expected: count, received: 0, duplicates: 0, outOfOrder: 0, other: 0, last: 0 }
    seen = new Uint8Array(count)
  },

  /** Sender side: from now on, count `delivered` events up to `count`. */
  expectAcks(count: number): void {
    acks = { expected: count, count: 0, last: 0 }
  },

  /** Resolves once every expected payload arrived (or after `timeoutMs`), with the arrivals. */
  async waitArrivals(timeoutMs: number): Promise<Arrivals> {
    await until(() => arrivals.received >= arrivals.expected, timeoutMs)
    return { ...arrivals }
  },

  /** Resolves once every expected `delivered` event came (or after `timeoutMs`), with the count and the time of the last. */
  async waitAcks(timeoutMs: number): Promise<Acks> {
    await until(() => acks.count >= acks.expected, timeoutMs)
    return { ...acks }
  },

  /**
   * `count` sends of `bytes`-byte payloads of `phase` to `to`, in windows of
   * `window` concurrent sends, each window awaited (durably queued in
   * IndexedDB). Resolves with the time of the first send call and the ids.
   */
  async send(to: string, phase: number, count: number, bytes: number, window: number): Promise<{ firstSendAt: number; ids: string[] }> {
    const m = messenger!
    const firstSendAt = now()
    const ids: string[] = []
    for (let from = 0; from < count; from += window) {
      const sends: Array<Promise<{ id: string }>> = []
      for (let i = from; i < Math.min(count, from + window); i++) sends.push(m.send(to, payload(phase, i, bytes)))
      for (const receipt of await Promise.all(sends)) ids.push(receipt.id)
    }
    return { firstSendAt, ids }
  },

  /** How many of `ids` have each status, asked of the engine (1,000 at a time). */
  async statuses(ids: readonly string[]): Promise<Record<string, number>> {
    const m = messenger!
    const counts: Record<string, number> = {}
    for (let from = 0; from < ids.length; from += 1000) {
      for (const status of await Promise.all(ids.slice(from, from + 1000).map((id) => m.status(id)))) counts[status] = (counts[status] ?? 0) + 1
    }
    return counts
  },

  pending: () => messenger!.pending(),
  close: () => messenger?.close(),
}
