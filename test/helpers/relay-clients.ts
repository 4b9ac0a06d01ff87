/// <reference types="node" />
/**
 * Clients of a real relay for hostile and fuzz tests: a raw WebSocket client
 * that can send anything and records everything it receives, and a set of
 * legitimate peers (real engines over the production WebSocketTransport) that
 * keep exchanging messages and can prove exactly-once, in-order delivery.
 */
import WebSocket from 'ws'
import type { E2EFactory } from '../../src/core/e2e.js'
import type { Store } from '../../src/core/store.js'
import { ILM, MemoryStore, type Message } from '../../src/index.js'
import { createToken } from '../../src/relay/token.js'
import { openEnvelope, parseRelayControl, type RelayControl } from '../../src/protocol/relay.js'
import { WebSocketTransport } from '../../src/transport/websocket.js'

/** What a raw client received: control messages, or frames with the relay-stamped sender. */
export type Received = RelayControl | { readonly t: 'frame'; readonly from: string; readonly frame: Uint8Array }

/** A relay connection that sends whatever it is told and records what comes back. */
export class RawClient {
  readonly received: Received[] = []
  /** Anything the relay sent that does not parse (must stay empty). */
  readonly malformed: Buffer[] = []
  readonly closed: Promise<{ code: number; reason: string }>
  #waiters: { match: (m: Received) => boolean; resolve: (m: Received) => void }[] = []

  private constructor(readonly ws: WebSocket) {
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })))
    ws.on('error', () => {})
    ws.on('message', (data, isBinary) => {
      const buf = data as Buffer
      let m: Received | undefined
      if (isBinary) {
        const opened = openEnvelope(buf)
        m = opened === undefined ? undefined : { t: 'frame', from: opened.address, frame: Uint8Array.from(opened.frame) }
      } else m = parseRelayControl(buf.toString('utf8'))
      if (m === undefined) return void this.malformed.push(buf)
      const waiter = this.#waiters.find((w) => w.match(m))
      if (waiter === undefined) return void this.received.push(m)
      this.#waiters.splice(this.#waiters.indexOf(waiter), 1)
      waiter.resolve(m)
    })
  }

  /** Opens a socket (no auth yet). */
  static async connect(url: string): Promise<RawClient> {
    const ws = new WebSocket(url, { perMessageDeflate: false })
    const client = new RawClient(ws)
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('error', reject)
    })
    return client
  }

  /** Connects, sends `auth` with `token` and waits for `welcome`. */
  static async login(url: string, token: string): Promise<RawClient> {
    const client = await RawClient.connect(url)
    client.send({ t: 'auth', token })
    await client.next('welcome')
    return client
  }

  /** Sends `message` as JSON text (a string is sent as is). */
  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message))
  }

  sendBinary(bytes: Uint8Array): void {
    this.ws.send(bytes, { binary: true })
  }

  /** Resolves with the first (already received or future) message of type `t` matching `match`. */
  next<T extends Received['t']>(t: T, match: (m: Extract<Received, { t: T }>) => boolean = () => true, timeoutMs = 5000): Promise<Extract<Received, { t: T }>> {
    const test = (m: Received): boolean => m.t === t && match(m as Extract<Received, { t: T }>)
    const index = this.received.findIndex(test)
    if (index >= 0) return Promise.resolve(this.received.splice(index, 1)[0] as Extract<Received, { t: T }>)
    return new Promise((resolve, reject) => {
      const waiter = { match: test, resolve: (m: Received) => (clearTimeout(timer), resolve(m as Extract<Received, { t: T }>)) }
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1)
        reject(new Error(`no ${t} within ${timeoutMs} ms`))
      }, timeoutMs)
      this.#waiters.push(waiter)
    })
  }

  /** A ping/pong round trip: everything the relay sent this client before the pong has arrived. */
  async barrier(timeoutMs = 10_000): Promise<void> {
    const n = Math.floor(Math.random() * 1e9)
    this.send({ t: 'ping', n })
    await this.next('pong', (m) => m.n === n, timeoutMs)
  }

  /** How many recorded messages are of type `t` (waiters' matches excluded). */
  count(t: Received['t']): number {
    return this.received.filter((m) => m.t === t).length
  }

  terminate(): void {
    this.ws.terminate()
  }
}

/** A legitimate peer: a real engine on the production WebSocket transport, recording what it was handed. */
export interface LegitPeer {
  readonly id: string
  readonly ilm: ILM
  readonly transport: WebSocketTransport
  readonly got: Message[]
}

/** Opens a real engine as `id` on `url` (on `store`), logging in with a fresh HS256 token for each connection. */
export async function openLegitPeer(
  url: string,
  id: string,
  secret: string,
  store: Store = new MemoryStore(),
  encryption?: E2EFactory | false,
): Promise<LegitPeer> {
  const transport = new WebSocketTransport({
    localId: id,
    url,
    token: () => createToken({ secret, peerId: id }),
    WebSocket: WebSocket,
    backoff: { initialMs: 50, maxMs: 500 },
  })
  const ilm = await ILM.open({ store, transport, ...(encryption !== undefined && { encryption }) })
  const got: Message[] = []
  ilm.onMessage((m) => void got.push(m))
  return { id, ilm, transport, got }
}

/**
 * Legitimate traffic between peers: every peer sends numbered messages to
 * every other; `check` proves each peer got each stream exactly once, in order.
 */
export class LegitTraffic {
  readonly sent = new Map<string, number>()
  readonly ids: string[] = []

  constructor(readonly peers: readonly LegitPeer[]) {}

  /** Each peer sends one message to each other peer. */
  async round(): Promise<void> {
    for (const from of this.peers) {
      for (const to of this.peers) {
        if (from === to) continue
        const key = `${from.id}>${to.id}`
        const n = this.sent.get(key) ?? 0
        this.sent.set(key, n + 1)
        const { id } = await from.ilm.send(to.id, { n })
        this.ids.push(id)
      }
    }
  }

  /** Total messages sent so far. */
  get total(): number {
    return [...this.sent.values()].reduce((a, b) => a + b, 0)
  }

  /** Waits (bounded) until everything sent was handed over. */
  async settle(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (this.peers.reduce((n, p) => n + p.got.length, 0) < this.total && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }

  /** For each stream: the contents handed over, in order, are exactly 0..n-1 (exactly once, in order). */
  check(): { ok: boolean; problems: string[] } {
    const problems: string[] = []
    for (const to of this.peers) {
      for (const from of this.peers) {
        if (from === to) continue
        const n = this.sent.get(`${from.id}>${to.id}`) ?? 0
        const seen = to.got.filter((m) => m.from === from.id).map((m) => (m.contents as { n: number }).n)
        const expected = Array.from({ length: n }, (_, i) => i)
        if (JSON.stringify(seen) !== JSON.stringify(expected))
          problems.push(`${from.id}->${to.id}: got ${seen.length} of ${n}, first wrong at ${seen.findIndex((v, i) => v !== i)}`)
      }
    }
    const strangers = this.peers.flatMap((p) =>
      p.got.filter((m) => !this.peers.some((q) => q.id === m.from)).map((m) => `${p.id} got a message from ${m.from}`),
    )
    problems.push(...strangers)
    return { ok: problems.length === 0, problems }
  }

  async close(): Promise<void> {
    await Promise.all(this.peers.map((p) => p.ilm.close()))
  }
}
