/**
 * Raw relay clients for the Node benchmarks (bench:relay, bench:cluster):
 * `ws` sockets logged in with dev tokens, and a windowed one-way flow of
 * envelopes measured at the receiver.
 */
import WebSocket from 'ws'
import { envelope } from '../../src/protocol/relay.js'

/** A `ws` client; with `id`, logged in (dev token) once `welcome` came. */
export async function openClient(url: string, id?: string): Promise<WebSocket> {
  const ws = new WebSocket(url, { perMessageDeflate: false })
  ws.on('error', () => {})
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
  })
  if (id === undefined) return ws
  ws.send(JSON.stringify({ t: 'auth', token: `dev:${id}` }))
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${id}: no welcome within 10 s`)), 10_000)
    ws.once('close', (code) => reject(new Error(`${id}: closed ${code} before welcome`)))
    const onMessage = (data: WebSocket.RawData, isBinary: boolean): void => {
      if (isBinary || !String(data).includes('"welcome"')) return
      clearTimeout(timer)
      ws.off('message', onMessage)
      resolve()
    }
    ws.on('message', onMessage)
  })
  return ws
}

/** Closes `ws` (terminating it after 2 s). */
export const closeClient = (ws: WebSocket): Promise<void> =>
  new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) { resolve(); return; }
    ws.once('close', () => resolve())
    ws.close(1000)
    setTimeout(() => (ws.terminate(), resolve()), 2000).unref()
  })

/** What a {@link flow} saw, with `performance.now()` times. */
export interface Flow {
  readonly start: number
  /** When the last envelope arrived at the receiver. */
  readonly last: number
  readonly received: number
  /** Answered `undeliverable` instead. */
  readonly refused: number
}

/**
 * `count` envelopes of `bytes` bytes from `a` to `toId` (whose socket is `b`),
 * at most `inFlight` unanswered (received, or refused `undeliverable`); gives
 * up waiting after `timeoutMs`.
 */
export async function flow(a: WebSocket, b: WebSocket, toId: string, count: number, bytes: number, inFlight: number, timeoutMs = 120_000): Promise<Flow> {
  const frame = Buffer.from(envelope(toId, new Uint8Array(bytes).fill(7)))
  let sent = 0
  let received = 0
  let refused = 0
  let last = 0
  let wake: (() => void) | undefined
  let finish!: () => void
  const finished = new Promise<void>((resolve) => (finish = resolve))
  const progress = (): void => {
    if (received + refused === count) finish()
    if (wake !== undefined && sent - received - refused <= inFlight / 2) {
      const w = wake
      wake = undefined
      w()
    }
  }
  b.on('message', (_data, isBinary) => {
    if (!isBinary) return
    received++
    last = performance.now()
    progress()
  })
  a.on('message', (data, isBinary) => {
    if (isBinary || !String(data).includes('"undeliverable"')) return
    refused++
    progress()
  })
  const start = performance.now()
  while (sent < count) {
    while (sent < count && sent - received - refused < inFlight) {
      a.send(frame, { binary: true })
      sent++
    }
    if (sent < count) await new Promise<void>((resolve) => (wake = resolve))
  }
  let timer: ReturnType<typeof setTimeout> | undefined
  await Promise.race([finished, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))])
  clearTimeout(timer)
  return { start, last, received, refused }
}
