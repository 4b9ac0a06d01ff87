import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { encodeFrame } from '../../src/core/codec.js'
import { IlmError } from '../../src/core/errors.js'
import type { Epoch, PeerId } from '../../src/core/ids.js'
import type { Transport, TransportEvents } from '../../src/core/transport.js'
import { ILM } from '../../src/ilm.js'
import { createRelay, type RelayHandle, type RelayOptions } from '../../src/relay/relay.js'
import { createToken } from '../../src/relay/token.js'
import { CLOSE_CODES, envelope, openEnvelope, pack, parseRelayControl, unpack, type RelayControl } from '../../src/protocol/relay.js'
import { MemoryStore } from '../../src/storage/memory.js'
import { startRelayProcess, type RelayProcess } from '../helpers/relay-process.js'

const SECRET = 'test-secret-that-is-long-enough-for-hs256!'
const quiet = (): void => {}

type Received = RelayControl | { readonly t: 'frame'; readonly from: string; readonly frame: Uint8Array }

/** A raw relay client: records everything it receives. */
class Client {
  readonly received: Received[] = []
  /** Per binary message received, how many envelopes it carried (more than one: a pack). */
  readonly binaries: number[] = []
  readonly closed: Promise<{ code: number; reason: string }>
  #waiters: { match: (m: Received) => boolean; resolve: (m: Received) => void }[] = []

  private constructor(readonly ws: WebSocket) {
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })))
    ws.on('error', quiet)
    ws.on('message', (data, isBinary) => {
      const buf = data as Buffer
      let all: (Received | undefined)[]
      if (isBinary) {
        const envelopes = unpack(buf) ?? [new Uint8Array(0)]
        this.binaries.push(envelopes.length)
        all = envelopes.map((one) => {
          const opened = openEnvelope(one)
          return opened === undefined ? undefined : { t: 'frame', from: opened.address, frame: Uint8Array.from(opened.frame) }
        })
      } else all = [parseRelayControl(buf.toString('utf8'))]
      for (const m of all) {
        if (m === undefined) throw new Error(`relay sent something malformed: ${buf.toString('utf8')}`)
        const waiter = this.#waiters.find((w) => w.match(m))
        if (waiter !== undefined) {
          this.#waiters.splice(this.#waiters.indexOf(waiter), 1)
          waiter.resolve(m)
        } else this.received.push(m)
      }
    })
  }

  static async connect(url: string, options: WebSocket.ClientOptions = {}): Promise<Client> {
    const ws = new WebSocket(url, options)
    const client = new Client(ws)
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('error', reject)
    })
    return client
  }

  /** Connects, sends `auth` (saying it reads packs, with `packs`) and waits for `welcome`. */
  static async login(url: string, token: string, options: WebSocket.ClientOptions = {}, packs = false): Promise<Client> {
    const client = await Client.connect(url, options)
    client.send({ t: 'auth', token, ...(packs && { pack: true }) })
    await client.next('welcome')
    return client
  }

  send(message: unknown): void {
    this.ws.send(JSON.stringify(message))
  }

  sendFrame(to: string, frame: Uint8Array): void {
    this.ws.send(envelope(to, frame))
  }

  /** Resolves with the first (already received or future) message matching. */
  next<T extends Received['t']>(t: T, match: (m: Extract<Received, { t: T }>) => boolean = () => true, timeoutMs = 3000): Promise<Extract<Received, { t: T }>> {
    const test = (m: Received): boolean => m.t === t && match(m as Extract<Received, { t: T }>)
    const index = this.received.findIndex(test)
    if (index >= 0) return Promise.resolve(this.received.splice(index, 1)[0] as Extract<Received, { t: T }>)
    return new Promise((resolve, reject) => {
      const waiter = { match: test, resolve: (m: Received) => (clearTimeout(timer), resolve(m as Extract<Received, { t: T }>)) }
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1)
        reject(new Error(`no ${t} within ${timeoutMs} ms; received ${JSON.stringify(this.received.map((m) => m.t))}`))
      }, timeoutMs)
      this.#waiters.push(waiter)
    })
  }

  /** Round trip through the relay: everything the relay sent before the pong has arrived. */
  async barrier(): Promise<void> {
    const n = Math.floor(Math.random() * 1e9)
    this.send({ t: 'ping', n })
    await this.next('pong', (m) => m.n === n)
  }

  close(): void {
    this.ws.close()
  }
}

const relays: RelayHandle[] = []
const clients: Client[] = []
const processes: RelayProcess[] = []

async function relay(options: Partial<RelayOptions> = {}): Promise<RelayHandle> {
  const auth = options.verify !== undefined || options.dev === true ? {} : { jwtSecret: SECRET }
  const r = await createRelay({ logger: quiet, ...auth, ...options })
  relays.push(r)
  return r
}

async function login(r: RelayHandle | RelayProcess, id: string, options: WebSocket.ClientOptions = {}, packs = false): Promise<Client> {
  const c = await Client.login(r.url, await createToken({ secret: SECRET, peerId: id }), options, packs)
  clients.push(c)
  return c
}

async function connect(r: RelayHandle, options: WebSocket.ClientOptions = {}): Promise<Client> {
  const c = await Client.connect(r.url, options)
  clients.push(c)
  return c
}

afterEach(async () => {
  for (const c of clients.splice(0)) c.ws.terminate()
  await Promise.all(relays.splice(0).map((r) => r.close()))
  await Promise.all(processes.splice(0).map((p) => p.kill()))
})

const epoch = '00000000a.abcdefgh' as Epoch
const hello = (from: string, to: string): Uint8Array =>
  encodeFrame({ kind: 'hello', from: from as PeerId, to: to as PeerId, epoch, floor: 0, known: null, upTo: -1, reply: false })

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url')
}

describe('relay: options', () => {
  it('needs exactly one of verify, jwtSecret and dev', async () => {
    await expect(createRelay({ logger: quiet })).rejects.toThrow(TypeError)
    await expect(createRelay({ logger: quiet, dev: true, jwtSecret: SECRET })).rejects.toThrow(TypeError)
    await expect(createRelay({ logger: quiet, dev: false })).rejects.toThrow(TypeError)
    await expect(createRelay({ logger: quiet, dev: true, limits: { framesPerSecond: 0 } })).rejects.toThrow(RangeError)
  })

  it('refuses a mailboxTotalsIntervalMs that is not an integer >= 0', async () => {
    for (const bad of [-1, 1.5, Number.NaN, Infinity, '1000' as unknown as number]) {
      await expect(createRelay({ logger: quiet, dev: true, mailboxTotalsIntervalMs: bad })).rejects.toThrow(RangeError)
    }
  })

  it('dev mode logs a loud warning and accepts dev:<id>', async () => {
    const logs: Record<string, unknown>[] = []
    const r = await relay({ dev: true, logger: (e) => logs.push(e) })
    expect(logs.find((e) => e.event === 'dev_mode')).toMatchObject({ level: 'warn' })
    expect(logs.find((e) => e.event === 'listening')).toMatchObject({ url: r.url, port: r.port, level: 'info' })
    const c = await Client.login(r.url, 'dev:alice')
    clients.push(c)
    const bad = await connect(r)
    bad.send({ t: 'auth', token: 'dev:has space' })
    expect((await bad.closed).code).toBe(CLOSE_CODES.AUTH_FAILED)
  })

  it('custom verify', async () => {
    const r = await relay({ verify: (token) => (token === 'open sesame' ? 'alice' : Promise.reject(new Error('no'))) })
    const c = await Client.login(r.url, 'open sesame')
    clients.push(c)
    const bad = await connect(r)
    bad.send({ t: 'auth', token: 'nope' })
    expect((await bad.closed).code).toBe(CLOSE_CODES.AUTH_FAILED)
  })
})

describe('relay: authentication', () => {
  it('welcomes a good JWT with the id, a session and the limits', async () => {
    const r = await relay({ limits: { framesPerSecond: 123 } })
    const c = await Client.connect(r.url)
    clients.push(c)
    c.send({ t: 'auth', token: await createToken({ secret: SECRET, peerId: 'alice' }) })
    const welcome = await c.next('welcome')
    expect(welcome).toMatchObject({ id: 'alice', limits: { framesPerSecond: 123, maxFrameBytes: 1024 * 1024 + 64 * 1024 }, pack: true })
    expect(welcome.session.length).toBeGreaterThan(8)
  })

  it('accepts messages pipelined right after auth, handling them after the welcome', async () => {
    const r = await relay()
    await login(r, 'b')
    const a = await connect(r)
    a.send({ t: 'auth', token: await createToken({ secret: SECRET, peerId: 'a' }) })
    a.send({ t: 'watch', peers: ['b'] })
    a.sendFrame('b', hello('a', 'b'))
    a.send({ t: 'ping', n: 7 })
    await a.next('welcome')
    expect(await a.next('presence')).toEqual({ t: 'presence', peer: 'b', online: true })
    expect(await a.next('pong')).toEqual({ t: 'pong', n: 7 })
    expect(a.received).toEqual([])
    expect(r.stats()).toMatchObject({ framesIn: 1, framesOut: 1 })
  })

  it('refuses bad tokens with AUTH_FAILED', async () => {
    const r = await relay()
    const exp = Math.floor(Date.now() / 1000) + 3600
    const tokens = [
      'garbage',
      await createToken({ secret: 'another secret entirely, also long', peerId: 'alice' }),
      `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ sub: 'alice', exp })}.`,
      await createToken({ secret: SECRET, peerId: 'alice' }).then((t) => t.slice(0, -2) + (t.endsWith('AA') ? 'BB' : 'AA')),
    ]
    // A subject that is not a valid peer id, signed properly.
    const { SignJWT } = await import('jose')
    const key = new TextEncoder().encode(SECRET)
    tokens.push(await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('has space').setExpirationTime(exp).sign(key))
    tokens.push(await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').sign(key)) // no exp
    tokens.push(await new SignJWT({}).setProtectedHeader({ alg: 'HS512' }).setSubject('alice').setExpirationTime(exp).sign(key))
    for (const token of tokens) {
      const c = await connect(r)
      c.send({ t: 'auth', token })
      expect((await c.closed).code, token).toBe(CLOSE_CODES.AUTH_FAILED)
    }
    expect(r.stats().refusals.auth_failed).toBe(tokens.length)
    expect(r.stats().authenticated).toBe(0)
  })

  it('refuses an expired token with AUTH_EXPIRED, and closes a session when its token expires', async () => {
    const r = await relay()
    const c = await connect(r)
    c.send({ t: 'auth', token: await createToken({ secret: SECRET, peerId: 'alice', expiresIn: -10 }) })
    expect((await c.closed).code).toBe(CLOSE_CODES.AUTH_EXPIRED)

    const started = Date.now()
    const live = await Client.login(r.url, await createToken({ secret: SECRET, peerId: 'bob', expiresIn: 1 }))
    clients.push(live)
    const { code } = await live.closed
    expect(code).toBe(CLOSE_CODES.AUTH_EXPIRED)
    expect(Date.now() - started).toBeLessThan(2500)
    expect(r.stats().refusals.auth_expired).toBe(2)
  })

  it('closes AUTH_TIMEOUT without auth, and PROTOCOL for anything else first', async () => {
    const r = await relay({ limits: { authTimeoutMs: 150 } })
    const silent = await connect(r)
    expect((await silent.closed).code).toBe(CLOSE_CODES.AUTH_TIMEOUT)
    const binary = await connect(r)
    binary.sendFrame('bob', hello('alice', 'bob'))
    expect((await binary.closed).code).toBe(CLOSE_CODES.PROTOCOL)
    const watcher = await connect(r)
    watcher.send({ t: 'watch', peers: ['bob'] })
    expect((await watcher.closed).code).toBe(CLOSE_CODES.PROTOCOL)
    expect(r.stats().refusals).toMatchObject({ auth_timeout: 1, malformed: 2 })
  })

  it('a second login of the same id replaces the first (REPLACED); watchers see it go and come back', async () => {
    const r = await relay()
    const watcher = await login(r, 'watcher')
    watcher.send({ t: 'watch', peers: ['alice'] })
    await watcher.next('presence', (m) => m.peer === 'alice' && !m.online)
    const first = await login(r, 'alice')
    await watcher.next('presence', (m) => m.peer === 'alice' && m.online)
    const second = await login(r, 'alice')
    expect((await first.closed).code).toBe(CLOSE_CODES.REPLACED)
    await watcher.next('presence', (m) => m.peer === 'alice' && !m.online)
    await watcher.next('presence', (m) => m.peer === 'alice' && m.online)
    // Frames go to the new connection.
    watcher.sendFrame('alice', hello('watcher', 'alice'))
    expect((await second.next('frame')).from).toBe('watcher')
    expect(r.stats()).toMatchObject({ authenticated: 2, refusals: { replaced: 1 } })
  })
})

describe('relay: routing', () => {
  it('stamps the authenticated sender: a forged inner `from` arrives addressed from the real sender', async () => {
    const r = await relay()
    const a = await login(r, 'a')
    const b = await login(r, 'b')
    const forged = hello('c', 'b')
    a.sendFrame('b', forged)
    const got = await b.next('frame')
    expect(got.from).toBe('a')
    expect(got.frame).toEqual(forged) // the relay never touches the frame
    expect(r.stats()).toMatchObject({ framesIn: 1, framesOut: 1 })
  })

  it('answers undeliverable offline for frames and signals to absent peers', async () => {
    const r = await relay()
    const a = await login(r, 'a')
    a.sendFrame('nobody', hello('a', 'nobody'))
    expect(await a.next('undeliverable')).toEqual({ t: 'undeliverable', peer: 'nobody', reason: 'offline' })
    a.send({ t: 'signal', to: 'nobody', data: 1 })
    expect(await a.next('undeliverable')).toEqual({ t: 'undeliverable', peer: 'nobody', reason: 'offline' })
    expect(r.stats().refusals.offline).toBe(2)
  })

  it('forwards signals with from stamped, and answers ping with pong', async () => {
    const r = await relay()
    const a = await login(r, 'a')
    const b = await login(r, 'b')
    a.send({ t: 'signal', to: 'b', data: { sdp: 'offer', from: 'mallory' } })
    expect(await b.next('signal')).toEqual({ t: 'signal', from: 'a', data: { sdp: 'offer', from: 'mallory' } })
    a.send({ t: 'ping', n: 42 })
    expect(await a.next('pong')).toEqual({ t: 'pong', n: 42 })
  })

  it('closes 1009 on a message over maxFrameBytes', async () => {
    const r = await relay({ limits: { maxFrameBytes: 4096 } })
    const a = await login(r, 'a')
    const b = await login(r, 'b')
    a.sendFrame('b', new Uint8Array(4000))
    expect((await b.next('frame')).frame.byteLength).toBe(4000)
    a.sendFrame('b', new Uint8Array(5000))
    expect((await a.closed).code).toBe(CLOSE_CODES.TOO_BIG)
    expect(r.stats().refusals.too_big).toBe(1)
  })

  it('drops a flood over the rate, counts it, and closes RATE_LIMITED when it goes on', async () => {
    const r = await relay({ limits: { framesPerSecond: 50, rateLimitCloseMs: 500 } })
    const a = await login(r, 'a')
    const b = await login(r, 'b')
    for (let i = 0; i < 300; i++) a.sendFrame('b', hello('a', 'b'))
    await sleep(100)
    const dropped = r.stats().refusals.rate
    expect(dropped).toBeGreaterThan(150) // burst is 100
    expect(r.stats().framesOut).toBeLessThan(150)
    expect(a.ws.readyState).toBe(WebSocket.OPEN) // a short burst over the rate only drops
    const flood = setInterval(() => {
      if (a.ws.readyState === WebSocket.OPEN) for (let i = 0; i < 20; i++) a.sendFrame('b', hello('a', 'b'))
    }, 10)
    try {
      expect((await a.closed).code).toBe(CLOSE_CODES.RATE_LIMITED)
    } finally {
      clearInterval(flood)
    }
    expect(r.stats().refusals.rate_limited).toBe(1)
    expect(b.ws.readyState).toBe(WebSocket.OPEN)
  })

  it('does not forward to a receiver that stopped reading (undeliverable slow); memory stays bounded', async () => {
    const maxPendingBytes = 256 * 1024
    const r = await relay({ limits: { maxPendingBytes, framesPerSecond: 100_000 } })
    const a = await login(r, 'a')
    const b = await login(r, 'b')
    ;(b.ws as unknown as { _socket: { pause(): void } })._socket.pause()
    const frame = new Uint8Array(64 * 1024)
    let slow: Promise<unknown> | undefined = a.next('undeliverable', (m) => m.reason === 'slow', 20_000)
    let gotSlow = false
    void slow.then(() => (gotSlow = true))
    // Fill the kernel buffers, then the relay's queue for b, up to 128 MiB at most.
    for (let sent = 0; !gotSlow && sent < 2048; sent += 16) {
      for (let i = 0; i < 16; i++) a.sendFrame('b', frame)
      await sleep(5)
    }
    await slow
    slow = undefined
    const stats = r.stats()
    expect(stats.refusals.slow).toBeGreaterThan(0)
    expect(stats.pendingBytes).toBeLessThanOrEqual(maxPendingBytes + 2 * frame.byteLength + 4096)
    // The receiver catches up: everything forwarded arrives, and forwarding resumes.
    ;(b.ws as unknown as { _socket: { resume(): void } })._socket.resume()
    await a.barrier()
    const forwarded = r.stats().framesOut
    const deadline = Date.now() + 10_000
    while (b.received.filter((m) => m.t === 'frame').length < forwarded && Date.now() < deadline) await sleep(20)
    expect(b.received.filter((m) => m.t === 'frame').length).toBe(forwarded)
    b.received.length = 0
    a.sendFrame('b', hello('a', 'b'))
    expect((await b.next('frame')).from).toBe('a')
  })

  it('packs: routes each envelope of a pack; packs what it forwards to one connection within a turn, to a client that reads packs only', async () => {
    const r = await relay()
    const s = await login(r, 's')
    const packed = await login(r, 'p', {}, true)
    const plain = await login(r, 'q')
    const before = r.stats()
    s.ws.send(pack([envelope('p', hello('s', 'p')), envelope('q', hello('s', 'q')), envelope('p', hello('s', 'p')), envelope('q', hello('s', 'q'))]))
    await s.barrier()
    await packed.barrier()
    await plain.barrier()
    expect(packed.binaries, 'the two for p in one pack').toEqual([2])
    expect(plain.binaries, 'the two for q one per message').toEqual([1, 1])
    for (const c of [packed, plain]) expect(c.received.filter((m) => m.t === 'frame').map((m) => (m as { from: string }).from)).toEqual(['s', 's'])
    const after = r.stats()
    expect(after.framesIn - before.framesIn).toBe(4)
    expect(after.framesOut - before.framesOut).toBe(4)
    expect(after.packsIn - before.packsIn).toBe(1)
    expect(after.packsOut - before.packsOut).toBe(1)
    // Envelopes sent one per message within one turn of the relay are packed too (they arrive in one read here).
    s.ws.send(envelope('p', hello('s', 'p')))
    s.ws.send(envelope('p', hello('s', 'p')))
    s.ws.send(envelope('p', hello('s', 'p')))
    await s.barrier()
    await packed.barrier()
    expect(packed.received.filter((m) => m.t === 'frame')).toHaveLength(5)
    expect(packed.binaries.reduce((a, b) => a + b, 0)).toBe(5)
  })

  it('packs: each envelope is charged to the rate limit; those over it are dropped, the rest forwarded', async () => {
    const r = await relay({ limits: { framesPerSecond: 50 } })
    const s = await login(r, 's')
    const b = await login(r, 'b', {}, true)
    s.ws.send(pack(Array.from({ length: 300 }, () => envelope('b', hello('s', 'b')))))
    // Not a ping from s: the limit would drop it too.
    await sleep(100)
    await b.barrier()
    const frames = b.received.filter((m) => m.t === 'frame').length
    expect(frames).toBeGreaterThanOrEqual(95) // burst is 100 (50 per second more for the time taken)
    expect(frames).toBeLessThan(120)
    expect(r.stats().refusals.rate).toBe(300 - frames)
    expect(s.ws.readyState).toBe(WebSocket.OPEN)
  })

  it('packs: what it forwards in one turn stays within 64 KiB a pack; a bigger envelope goes alone', async () => {
    const r = await relay({ limits: { framesPerSecond: 100_000 } })
    const s = await login(r, 's')
    const b = await login(r, 'b', {}, true)
    const frame = new Uint8Array(20 * 1024)
    s.ws.send(pack([...Array.from({ length: 7 }, () => envelope('b', frame)), envelope('b', new Uint8Array(70 * 1024))]))
    await s.barrier()
    await b.barrier()
    // 20 KiB + 6 bytes each: three fit in a pack of 64 KiB, not four.
    expect(b.binaries).toEqual([3, 3, 1, 1])
  })

  it('survives malformed input: closes PROTOCOL, counts it, and keeps serving others', async () => {
    const r = await relay()
    const a = await login(r, 'a')
    const b = await login(r, 'b')
    const garbage: ((c: Client) => void)[] = [
      (c) => c.ws.send('not json'),
      (c) => c.ws.send('[1,2,3]'),
      (c) => c.send({ t: 'nope' }),
      (c) => c.send({ t: 'watch', peers: [1, 2] }),
      (c) => c.send({ t: 'watch', peers: ['has space'] }),
      (c) => c.send({ t: 'signal', to: 'b' }),
      (c) => c.send({ t: 'auth', token: 'again' }),
      (c) => c.ws.send(new Uint8Array([0])),
      (c) => c.ws.send(new Uint8Array([0, 0, 1, 2])),
      (c) => c.ws.send(new Uint8Array([0, 9, 65])),
      (c) => c.ws.send(new Uint8Array([0, 2, 0xff, 0xfe, 1])),
      (c) => c.ws.send(envelope('with space', new Uint8Array([1]))),
      // Packs: empty, a length past the end, an envelope too short, a pack in a pack, a bad address inside.
      (c) => c.ws.send(new Uint8Array([0xff, 0xff])),
      (c) => c.ws.send(new Uint8Array([0xff, 0xff, 0, 0, 0, 9, 1])),
      (c) => c.ws.send(new Uint8Array([0xff, 0xff, 0, 0, 0, 1, 5])),
      (c) => c.ws.send(pack([pack([envelope('b', hello('x', 'b')), envelope('b', hello('x', 'b'))]), envelope('b', hello('x', 'b'))])),
      (c) => c.ws.send(pack([envelope('b', hello('x', 'b')), envelope('with space', new Uint8Array([1]))])),
      (c) => c.ws.send(Buffer.from([0xc3, 0x28]), { binary: false }), // invalid UTF-8 text: ws closes 1007
    ]
    for (const [i, send] of garbage.entries()) {
      const m = await login(r, `mallory${i}`)
      send(m)
      const { code } = await m.closed
      expect(code, `case ${i}`).toBe(i === garbage.length - 1 ? 1007 : CLOSE_CODES.PROTOCOL)
    }
    expect(r.stats().refusals.malformed).toBe(garbage.length)
    a.sendFrame('b', hello('a', 'b'))
    expect((await b.next('frame')).from).toBe('a')
  })
})

describe('relay: presence', () => {
  it('answers watch at once, then reports changes of watched peers only', async () => {
    const r = await relay()
    const b0 = await login(r, 'b')
    const a = await login(r, 'a')
    a.send({ t: 'watch', peers: ['b', 'c'] })
    expect(await a.next('presence', (m) => m.peer === 'b')).toMatchObject({ online: true })
    expect(await a.next('presence', (m) => m.peer === 'c')).toMatchObject({ online: false })
    const c = await login(r, 'c')
    expect(await a.next('presence', (m) => m.peer === 'c')).toMatchObject({ online: true })
    b0.close()
    expect(await a.next('presence', (m) => m.peer === 'b')).toMatchObject({ online: false })
    // Replacing the list: c is no longer watched, d is new (answered at once), b stays (not answered again).
    a.send({ t: 'watch', peers: ['b', 'd'] })
    expect(await a.next('presence', (m) => m.peer === 'd')).toMatchObject({ online: false })
    await a.barrier()
    c.close()
    await c.closed
    await login(r, 'b')
    expect(await a.next('presence', (m) => m.peer === 'b')).toMatchObject({ online: true })
    await a.barrier()
    expect(a.received.filter((m) => m.t === 'presence')).toEqual([])
  })

  it('closes IDLE a client that answers no ping', async () => {
    const r = await relay({ limits: { pingIntervalMs: 100 } })
    const lazy = await login(r, 'lazy', { autoPong: false })
    const fine = await login(r, 'fine')
    expect((await lazy.closed).code).toBe(CLOSE_CODES.IDLE)
    expect(fine.ws.readyState).toBe(WebSocket.OPEN)
    expect(r.stats().refusals.idle).toBe(1)
  })

  it('closes FULL beyond maxConnections', async () => {
    const r = await relay({ limits: { maxConnections: 2 } })
    await login(r, 'a')
    await login(r, 'b')
    const c = await connect(r)
    expect((await c.closed).code).toBe(CLOSE_CODES.FULL)
    expect(r.stats().refusals.full).toBe(1)
  })
})

describe('relay: operations', () => {
  it('serves /health with counters, 404 otherwise', async () => {
    const r = await relay()
    const a = await login(r, 'a')
    await login(r, 'b')
    a.sendFrame('b', hello('a', 'b'))
    a.sendFrame('zed', hello('a', 'zed'))
    await a.next('undeliverable')
    const base = `http://127.0.0.1:${r.port}`
    const health = await fetch(`${base}/health`)
    expect(health.status).toBe(200)
    expect(await health.json()).toMatchObject({
      status: 'ok',
      connections: 2,
      authenticated: 2,
      framesIn: 2,
      framesOut: 1,
      refusals: { offline: 1 },
    })
    expect((await fetch(`${base}/`)).status).toBe(404)
    expect((await fetch(`${base}/health`, { method: 'POST' })).status).toBe(404)
    expect((await fetch(`${base}/peers`)).status).toBe(404) // the directory exists in dev mode only
  })

  it('serves /metrics in the Prometheus text format: the same counters as /health, by kind and reason, labelled by node', async () => {
    const r = await relay()
    const a = await login(r, 'a')
    await login(r, 'b')
    a.sendFrame('b', hello('a', 'b'))
    a.sendFrame('zed', hello('a', 'zed'))
    await a.next('undeliverable')
    const bad = await connect(r)
    bad.ws.send('not json')
    await bad.closed
    const response = await fetch(`http://127.0.0.1:${r.port}/metrics`)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
    const text = await response.text()
    const value = (series: string): number | undefined => {
      const line = text.split('\n').find((l) => l.startsWith(`${series} `))
      return line === undefined ? undefined : Number(line.slice(series.length + 1))
    }
    expect(value('intersession_relay_peers_online{node="standalone"}')).toBe(2)
    expect(value('intersession_relay_connections{node="standalone"}')).toBe(2)
    expect(value('intersession_relay_connections_accepted_total{node="standalone"}')).toBe(3)
    expect(value('intersession_relay_logins_total{node="standalone"}')).toBe(2)
    expect(value('intersession_relay_frames_in_total{kind="envelope",node="standalone"}')).toBe(2)
    expect(value('intersession_relay_frames_out_total{kind="envelope",node="standalone"}')).toBe(1)
    expect(value('intersession_relay_frames_out_total{kind="control",node="standalone"}')).toBe(r.stats().controlOut)
    expect(value('intersession_relay_refusals_total{reason="offline",node="standalone"}')).toBe(1)
    expect(value('intersession_relay_refusals_total{reason="malformed",node="standalone"}')).toBe(1)
    expect(value('intersession_relay_refusals_total{reason="full",node="standalone"}')).toBe(0)
    expect(value('intersession_relay_bytes_in_total{node="standalone"}')).toBe(r.stats().bytesIn)
    expect(text).toMatch(/^# TYPE intersession_relay_refusals_total counter$/m)
    expect(text).toMatch(/^intersession_relay_process_resident_memory_bytes\{node="standalone"\} \d+/m)
    // Counters read at scrape time: a later frame shows in the next scrape.
    a.sendFrame('b', hello('a', 'b'))
    await sleep(50)
    const again = await (await fetch(`http://127.0.0.1:${r.port}/metrics`)).text()
    expect(again).toContain('intersession_relay_frames_in_total{kind="envelope",node="standalone"} 3')
  })

  it('lists connected peers at /peers in dev mode (a demo directory)', async () => {
    const r = await createRelay({ dev: true, logger: () => {} })
    const sockets = ['zoe', 'adam'].map(() => new WebSocket(r.url))
    await Promise.all(
      sockets.map(
        (ws, i) =>
          new Promise<void>((resolve) =>
            ws.on('open', () => {
              ws.send(JSON.stringify({ t: 'auth', token: `dev:${['zoe', 'adam'][i]}` }))
              ws.once('message', () => resolve())
            }),
          ),
      ),
    )
    expect(await (await fetch(`http://127.0.0.1:${r.port}/peers`)).json()).toEqual({ peers: ['adam', 'zoe'] })
    for (const ws of sockets) ws.close()
    await r.close()
  })

  it('testControl: /test/offline closes a peer and refuses its logins (UNAVAILABLE) until /test/online; off by default', async () => {
    const plain = await relay()
    expect((await fetch(`http://127.0.0.1:${plain.port}/test/peers`)).status).toBe(404)
    expect((await fetch(`http://127.0.0.1:${plain.port}/test/offline?peer=a`, { method: 'POST' })).status).toBe(404)
    const r = await relay({ testControl: true })
    const base = `http://127.0.0.1:${r.port}/test`
    const a = await login(r, 'a')
    await login(r, 'b')
    expect(await (await fetch(`${base}/peers`)).json()).toEqual({ peers: ['a', 'b'] })
    expect((await fetch(`${base}/offline?peer=a`, { method: 'POST' })).status).toBe(200)
    expect((await a.closed).code).toBe(CLOSE_CODES.UNAVAILABLE)
    expect(await (await fetch(`${base}/peers`)).json()).toEqual({ peers: ['b'] })
    const again = await connect(r)
    again.ws.send(JSON.stringify({ t: 'auth', token: await createToken({ secret: SECRET, peerId: 'a' }) }))
    expect((await again.closed).code).toBe(CLOSE_CODES.UNAVAILABLE)
    expect((await fetch(`${base}/online?peer=a`, { method: 'POST' })).status).toBe(200)
    await login(r, 'a')
    expect(await (await fetch(`${base}/peers`)).json()).toEqual({ peers: ['a', 'b'] })
    expect((await fetch(`${base}/offline?peer=`, { method: 'POST' })).status).toBe(400)
    expect((await fetch(`${base}/offline?peer=a`)).status).toBe(404)
    await expect(createRelay({ dev: true, testControl: 'yes' as unknown as boolean })).rejects.toThrow(TypeError)
  })

  it('closes gracefully: every client sees 1001; close is idempotent', async () => {
    const logs: Record<string, unknown>[] = []
    const r = await createRelay({ jwtSecret: SECRET, logger: (e) => logs.push(e) })
    const a = await login(r, 'a')
    const pending = await Client.connect(r.url)
    clients.push(pending)
    const first = r.close()
    expect(r.close()).toBe(first)
    expect((await a.closed).code).toBe(CLOSE_CODES.GOING_AWAY)
    expect((await pending.closed).code).toBe(CLOSE_CODES.GOING_AWAY)
    await first
    await expect(Client.connect(r.url)).rejects.toThrow()
    expect(logs.map((e) => e.event)).toEqual(expect.arrayContaining(['listening', 'login', 'shutdown', 'stopped']))
    for (const e of logs) expect(e).toMatchObject({ time: expect.any(String), level: expect.any(String), event: expect.any(String) })
  })

  it('as a process: SIGTERM closes with 1001 and exits 0; after SIGKILL a restarted relay accepts logins', async () => {
    const env = { INTERSESSION_JWT_SECRET: SECRET, INTERSESSION_DEV: '' }
    const [p1, p2] = await Promise.all([startRelayProcess([], env), startRelayProcess([], env)])
    processes.push(p1, p2)
    const a = await login(p1, 'a')
    expect(await p1.stop('SIGTERM')).toBe(0)
    expect((await a.closed).code).toBe(CLOSE_CODES.GOING_AWAY)

    const b = await login(p2, 'b')
    await p2.kill()
    expect((await b.closed).code).toBe(1006) // abnormal: the process died
    const p3 = await startRelayProcess(['--host', '127.0.0.1'], env)
    processes.push(p3)
    const again = await login(p3, 'b')
    const other = await login(p3, 'c')
    other.sendFrame('b', hello('c', 'b'))
    expect((await again.next('frame')).from).toBe('c')
  })
})

/** A minimal WebSocket transport for the engine, enough to run two real ILMs through the relay. */
async function relayTransport(url: string, id: string): Promise<Transport & { ws: WebSocket }> {
  const client = await Client.login(url, await createToken({ secret: SECRET, peerId: id }))
  clients.push(client)
  const ws = client.ws
  let events: TransportEvents | undefined
  let closed = false
  const backlog: Received[] = [...client.received]
  client.received.length = 0
  const deliver = (m: Received): void => {
    if (closed) return
    if (events === undefined) return void backlog.push(m)
    if (m.t === 'frame') events.frame(m.from as PeerId, m.frame)
    else if (m.t === 'presence') events.peer(m.peer as PeerId, m.online)
  }
  ws.on('message', () => {
    // Client's own listener ran first and queued the message.
    for (const m of client.received.splice(0)) deliver(m)
  })
  ws.on('close', () => {
    if (!closed && events !== undefined) events.closed()
    closed = true
  })
  return {
    ws,
    localId: id,
    open(e) {
      events = e
      for (const m of backlog.splice(0)) deliver(m)
    },
    send(to, data) {
      if (closed || ws.readyState !== WebSocket.OPEN) throw new IlmError('TRANSPORT_FAILED', 'relay connection closed')
      ws.send(envelope(to, data))
    },
    watch(peers) {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ t: 'watch', peers }))
    },
    close() {
      closed = true
      ws.close()
    },
  }
}

describe('relay: with real engines', () => {
  it('delivers between two ILMs and the receiver refuses a frame forged by a third peer', async () => {
    const r = await relay()
    const alice = await ILM.open({ store: new MemoryStore(), transport: await relayTransport(r.url, 'alice') })
    const bob = await ILM.open({ store: new MemoryStore(), transport: await relayTransport(r.url, 'bob') })
    try {
      const got: unknown[] = []
      bob.onMessage((m) => void got.push([m.from, m.contents]))
      const { id } = await alice.send('bob', { text: 'hi' })
      await alice.delivered(id)
      expect(got).toEqual([['alice', { text: 'hi' }]])

      // Mallory sends bob an ack claiming to come from alice: the relay stamps 'mallory', bob refuses it.
      const mallory = await login(r, 'mallory')
      mallory.sendFrame('bob', encodeFrame({ kind: 'ack', from: 'alice' as PeerId, to: 'bob' as PeerId, epoch, upTo: 0 }))
      await mallory.barrier()
      const deadline = Date.now() + 3000
      while ((bob.refused().FORGED ?? 0) === 0 && Date.now() < deadline) await sleep(10)
      expect(bob.refused().FORGED).toBe(1)

      const second = await alice.send('bob', 'again')
      await alice.delivered(second.id)
      expect(got).toEqual([
        ['alice', { text: 'hi' }],
        ['alice', 'again'],
      ])
    } finally {
      await Promise.all([alice.close(), bob.close()])
    }
  })
})
