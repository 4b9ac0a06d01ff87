/// <reference types="node" />
import net from 'node:net'
import type { Rng } from './rng.js'

/** One direction of a proxied connection: chunks wait here until released. */
interface Pipe {
  readonly to: net.Socket
  readonly queue: Array<{ readonly chunk: Buffer; readonly releaseAt: number }>
  timer: ReturnType<typeof setTimeout> | undefined
}

/** A client connection and its upstream twin. */
interface Link {
  readonly client: net.Socket
  readonly upstream: net.Socket
  readonly up: Pipe
  readonly down: Pipe
  connected: boolean
  /** Nothing is forwarded before this time. */
  stalledUntil: number
  /** Until this time, each chunk is held back by up to `delayMaxMs`. */
  delayUntil: number
  delayMaxMs: number
}

/**
 * A loopback TCP proxy in front of the relay that injects faults on command:
 * `cut` (destroy a connection), `stall` (forward nothing for a while, so the
 * link looks half-open) and `delay` (hold each chunk back, keeping order). The
 * upstream port can change (a relay restarted elsewhere) without clients
 * noticing anything but the cut.
 */
export class FaultProxy {
  readonly port: number
  readonly #server: net.Server
  readonly #rng: Rng
  readonly #links = new Set<Link>()
  #upstreamPort: number | undefined

  private constructor(server: net.Server, port: number, rng: Rng, upstreamPort: number) {
    this.#server = server
    this.port = port
    this.#rng = rng
    this.#upstreamPort = upstreamPort
    server.on('connection', (socket) => this.#accept(socket))
  }

  /** Listens on an ephemeral loopback port, forwarding to `upstreamPort`. */
  static async start(rng: Rng, upstreamPort: number): Promise<FaultProxy> {
    const server = net.createServer({ noDelay: true })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, '127.0.0.1', () => resolve())
    })
    return new FaultProxy(server, (server.address() as net.AddressInfo).port, rng, upstreamPort)
  }

  /** Where new connections go; `undefined` refuses them (the relay is down). */
  setUpstream(port: number | undefined): void {
    this.#upstreamPort = port
  }

  /** Open connections. */
  get size(): number {
    return this.#links.size
  }

  /** Destroys one random connection; false if there was none. */
  cut(): boolean {
    const link = this.#pick()
    if (link !== undefined) this.#drop(link)
    return link !== undefined
  }

  /** One random connection forwards nothing for `ms`; false if there was none. */
  stall(ms: number): boolean {
    const link = this.#pick()
    if (link === undefined) return false
    link.stalledUntil = Date.now() + ms
    return true
  }

  /** For `ms`, each chunk of one random connection waits up to `maxMs`; false if there was none. */
  delay(ms: number, maxMs: number): boolean {
    const link = this.#pick()
    if (link === undefined) return false
    link.delayUntil = Date.now() + ms
    link.delayMaxMs = maxMs
    return true
  }

  /** Ends every stall and delay: what is held back goes out now, and from now on chunks pass straight through. */
  calm(): void {
    for (const link of this.#links) {
      link.stalledUntil = 0
      link.delayUntil = 0
      for (const pipe of [link.up, link.down]) {
        pipe.queue.splice(0, pipe.queue.length, ...pipe.queue.map((q) => ({ chunk: q.chunk, releaseAt: 0 })))
        this.#pump(link, pipe)
      }
    }
  }

  /** Stops listening and destroys every connection. */
  async close(): Promise<void> {
    for (const link of this.#links) this.#drop(link)
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }

  #pick(): Link | undefined {
    const links = [...this.#links]
    return links.length === 0 ? undefined : this.#rng.pick(links)
  }

  #accept(client: net.Socket): void {
    const port = this.#upstreamPort
    if (port === undefined) return void client.destroy()
    client.setNoDelay(true)
    const upstream = net.connect({ port, host: '127.0.0.1', noDelay: true })
    const link: Link = {
      client,
      upstream,
      up: { to: upstream, queue: [], timer: undefined },
      down: { to: client, queue: [], timer: undefined },
      connected: false,
      stalledUntil: 0,
      delayUntil: 0,
      delayMaxMs: 0,
    }
    this.#links.add(link)
    upstream.once('connect', () => {
      link.connected = true
      this.#pump(link, link.up)
    })
    client.on('data', (chunk: Buffer) => this.#enqueue(link, link.up, chunk))
    upstream.on('data', (chunk: Buffer) => this.#enqueue(link, link.down, chunk))
    for (const socket of [client, upstream]) {
      socket.on('error', () => this.#drop(link))
      socket.on('close', () => this.#drop(link))
    }
  }

  #enqueue(link: Link, pipe: Pipe, chunk: Buffer): void {
    const now = Date.now()
    const last = pipe.queue[pipe.queue.length - 1]?.releaseAt ?? 0
    const hold = now < link.delayUntil ? this.#rng.int(0, link.delayMaxMs) : 0
    // Never before the chunk ahead of it: delays reorder nothing.
    pipe.queue.push({ chunk, releaseAt: Math.max(last, now + hold) })
    this.#pump(link, pipe)
  }

  /** Writes every chunk that is due; re-arms itself for the next one. */
  #pump(link: Link, pipe: Pipe): void {
    if (pipe.timer !== undefined) clearTimeout(pipe.timer)
    pipe.timer = undefined
    if (!link.connected || !this.#links.has(link)) return
    const now = Date.now()
    while (pipe.queue.length > 0 && now >= link.stalledUntil && now >= pipe.queue[0]!.releaseAt) pipe.to.write(pipe.queue.shift()!.chunk)
    if (pipe.queue.length === 0) return
    const next = Math.max(link.stalledUntil, pipe.queue[0]!.releaseAt)
    pipe.timer = setTimeout(() => this.#pump(link, pipe), Math.max(1, next - now))
  }

  #drop(link: Link): void {
    if (!this.#links.delete(link)) return
    for (const pipe of [link.up, link.down]) if (pipe.timer !== undefined) clearTimeout(pipe.timer)
    link.client.destroy()
    link.upstream.destroy()
  }
}
