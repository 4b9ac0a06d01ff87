/// <reference types="node" />
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'

/** Options of the `relay` fixture ({@link kitRelay}). */
export interface KitRelayOptions {
  /**
   * `dev` (the default): the token `dev:<peerId>` logs in as anyone.
   * `jwt`: the relay checks HS256 JWTs signed with `jwtSecret`; `token(peerId)` makes them.
   */
  readonly auth?: 'dev' | 'jwt'
  /** The JWT secret with `auth: 'jwt'`; default a random one. */
  readonly jwtSecret?: string
  /**
   * The command that runs the relay CLI, e.g. `['node', 'node_modules/intersession-relay/dist/cli.js']`;
   * the kit appends `--port`, `--test-control`, `--mailbox-dir` (or `--no-mailbox`) and `--dev`.
   * Default: `node <the intersession-relay package's bin>`, the package
   * resolved from `cwd` (install it: `npm i -D intersession-relay`).
   */
  readonly command?: readonly string[]
  /** The relay's working directory; default this process's. */
  readonly cwd?: string
  /**
   * `true` (the default): the relay stores messages for offline peers in a
   * mailbox in a temporary directory. `false`: it runs with `--no-mailbox`
   * (no store and forward: a frame for a peer that is not connected is
   * refused, so the sender keeps it until the receiver is back).
   */
  readonly mailbox?: boolean
  /** More CLI arguments, e.g. limits (`--mailbox-max-messages`, ...). */
  readonly args?: readonly string[]
  /** How long a start may take before it fails; default 30,000 ms (a relay started through tsx on a busy machine is slow). */
  readonly startTimeoutMs?: number
}

/** A real relay process on a free loopback port, with its mailbox in a temporary directory. */
export interface KitRelay {
  /** `ws://127.0.0.1:PORT`: the same across restarts. */
  readonly url: string
  readonly port: number
  /** The relay's process id now (it changes on restart). */
  readonly pid: number
  /** The mailbox directory (it survives restarts; removed after the test); undefined with `mailbox: false`. */
  readonly mailboxDir: string | undefined
  /** A token that logs `peerId` in: `dev:<peerId>`, or a JWT signed with the secret valid for an hour. */
  token(peerId: string): Promise<string>
  /** The peers logged in now, as the relay itself reports them. */
  connectedPeers(): Promise<string[]>
  /** Closes `peer`'s connection and refuses its logins (`false`) until `true`. `peer.offline()` calls it. */
  setPeerOnline(peer: string, online: boolean): Promise<void>
  /**
   * Stops the relay with `signal` (default SIGTERM: a graceful shutdown;
   * SIGKILL: a crash), waits `downMs` (default 0), and starts it again on the
   * same port and mailbox. Peers taken offline stay refused.
   */
  restart(options?: { readonly signal?: NodeJS.Signals; readonly downMs?: number }): Promise<void>
  /** Stops the relay (SIGTERM, SIGKILL after 5 s). Idempotent; `restart()` brings it back. */
  stop(): Promise<void>
  /** The relay's JSON log lines, from every run so far. */
  logs(): Record<string, unknown>[]
  /** The relay's counters (`GET /health`) of its current run, e.g. `framesIn` to tell frames through it from direct ones. */
  health(): Promise<KitRelayHealth>
}

/** Part of what the relay's `/health` reports (see docs/RELAY.md for the rest). */
export interface KitRelayHealth {
  /** Peers logged in now. */
  readonly authenticated: number
  /** Envelopes received from peers since this run started. */
  readonly framesIn: number
  /** Envelopes forwarded to peers since this run started. */
  readonly framesOut: number
  readonly [counter: string]: unknown
}

/**
 * A relay (see {@link KitRelayOptions}) that starts on first use: reading
 * `url`, `port` or `pid` starts its process, and its methods resolve once it
 * listens (so a test that never uses it starts none). Its port is chosen now,
 * so `url` is known before the process runs. `dispose()` stops it and removes
 * its mailbox; it throws a start failure that no method call reported.
 */
export async function kitRelay(options: KitRelayOptions = {}): Promise<KitRelay & { dispose(): Promise<void> }> {
  const auth = options.auth ?? 'dev'
  if (auth !== 'dev' && auth !== 'jwt') throw new TypeError(`auth must be 'dev' or 'jwt', got ${String(auth)}`)
  const secret = options.jwtSecret ?? (auth === 'jwt' ? Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64url') : undefined)
  const command = options.command ?? defaultRelayCommand(options.cwd ?? process.cwd())
  if (command.length === 0) throw new RangeError('command must not be empty')
  if (options.mailbox !== undefined && typeof options.mailbox !== 'boolean') throw new TypeError('mailbox must be a boolean')
  const key =
    secret === undefined
      ? undefined
      : await crypto.subtle.importKey('raw', new TextEncoder().encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
  let port = await freePort()
  const mailboxDir = options.mailbox === false ? undefined : mkdtempSync(join(tmpdir(), 'intersession-kit-mailbox-'))
  const removeMailbox = (): void => {
    if (mailboxDir !== undefined) rmSync(mailboxDir, { recursive: true, force: true, maxRetries: 3 })
  }
  const logs: Record<string, unknown>[] = []
  const offline = new Set<string>()
  let run: RelayRun | undefined
  const launch = async (): Promise<void> => {
    const args = [
      ...command.slice(1),
      '--port',
      String(port),
      '--test-control',
      ...(mailboxDir === undefined ? ['--no-mailbox'] : ['--mailbox-dir', mailboxDir]),
      ...(auth === 'dev' ? ['--dev'] : []),
      ...(options.args ?? []),
    ]
    const env = { ...process.env, INTERSESSION_DEV: '', ...(secret !== undefined && { INTERSESSION_JWT_SECRET: secret }) }
    run = await spawnRelay([command[0]!, ...args], { cwd: options.cwd ?? process.cwd(), env, logs, timeoutMs: options.startTimeoutMs ?? 30_000 })
    port = run.port
    for (const peer of offline) await control(`offline?peer=${encodeURIComponent(peer)}`)
  }
  // The first start, once something uses the relay; `observed` once a method call awaited it (and so reported its failure).
  let started: Promise<void> | undefined
  let observed = false
  const begin = (): Promise<void> => {
    if (started === undefined) {
      started = launch()
      started.catch(() => {}) // a getter started it: the next method call, or dispose(), reports a failure
    }
    return started
  }
  const use = (): Promise<void> => {
    observed = true
    return begin()
  }
  const control = async (path: string): Promise<unknown> => {
    const response = await fetch(`http://127.0.0.1:${port}/test/${path}`, { method: path === 'peers' ? 'GET' : 'POST' })
    if (!response.ok) throw new Error(`relay /test/${path} answered ${response.status}: ${await response.text()}`)
    return response.json()
  }
  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    // A start in flight ends first; a relay stopped before its first use never starts by itself.
    started ??= Promise.resolve()
    await started.catch(() => {})
    const current = run
    run = undefined
    if (current === undefined) return
    const grace = setTimeout(() => void current.kill(), 5000)
    await current.stop(signal)
    clearTimeout(grace)
  }
  return {
    get url() {
      void begin()
      return `ws://127.0.0.1:${port}`
    },
    get port() {
      void begin()
      return port
    },
    get pid() {
      if (run !== undefined) return run.pid
      if (started === undefined) {
        void begin()
        throw new Error('the relay has not started yet: it starts on first use; await one of its methods (e.g. relay.health()) before reading pid')
      }
      throw new Error('the relay is not running (starting, stopped, or it failed to start)')
    },
    mailboxDir,
    async token(peerId) {
      if (typeof peerId !== 'string' || peerId === '') throw new TypeError('peerId must be a non-empty string')
      await use()
      if (key === undefined) return `dev:${peerId}`
      return signJwt(key, peerId)
    },
    async connectedPeers() {
      await use()
      return ((await control('peers')) as { peers: string[] }).peers
    },
    async setPeerOnline(peer, online) {
      await use()
      if (online) offline.delete(peer)
      else offline.add(peer)
      if (run !== undefined) await control(`${online ? 'online' : 'offline'}?peer=${encodeURIComponent(peer)}`)
    },
    async restart({ signal = 'SIGTERM', downMs = 0 } = {}) {
      observed = true
      await stop(signal)
      if (downMs > 0) await new Promise((resolve) => setTimeout(resolve, downMs))
      await launch()
    },
    stop: () => stop(),
    logs: () => [...logs],
    async health() {
      await use()
      const response = await fetch(`http://127.0.0.1:${port}/health`)
      if (!response.ok) throw new Error(`relay /health answered ${response.status}`)
      return (await response.json()) as KitRelayHealth
    },
    async dispose() {
      const failure =
        observed || started === undefined
          ? undefined
          : await started.then(
              () => undefined,
              (error: unknown) => ({ error }),
            )
      await stop()
      removeMailbox()
      if (failure !== undefined) throw failure.error
    },
  }
}

/** A port free now on 127.0.0.1 (bound, then released) for a relay that starts on it later. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })
}

/** An HS256 JWT for `peerId` (`sub`), valid for an hour, as the relay's `jwtSecret` auth checks it; signed with WebCrypto. */
async function signJwt(key: CryptoKey, peerId: string): Promise<string> {
  const part = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  const now = Math.floor(Date.now() / 1000)
  const signed = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ sub: peerId, iat: now, exp: now + 3600 })}`
  const signature = await crypto.subtle.sign('HMAC', key, new TextEncoder().encode(signed))
  return `${signed}.${Buffer.from(signature).toString('base64url')}`
}

/** `node <bin>` of the `intersession-relay` package as the app (`cwd`) resolves it. */
function defaultRelayCommand(cwd: string): string[] {
  let manifest: string
  try {
    manifest = createRequire(join(cwd, 'package.json')).resolve('intersession-relay/package.json')
  } catch (error) {
    throw new Error(
      'intersession/playwright runs the relay of the intersession-relay package: install it (npm i -D intersession-relay), or set the relay option `command`',
      { cause: error },
    )
  }
  const { bin } = JSON.parse(readFileSync(manifest, 'utf8')) as { bin?: string | Record<string, string> }
  const cli = typeof bin === 'string' ? bin : bin?.['intersession-relay']
  if (cli === undefined) throw new Error(`${manifest} names no intersession-relay bin: set the relay option \`command\``)
  return [process.execPath, join(dirname(manifest), cli)]
}

/** A relay process {@link spawnRelay} started, once it listens. */
export interface RelayRun {
  /** `ws://127.0.0.1:PORT` as the relay printed it. */
  readonly url: string
  readonly port: number
  /** The relay's own process (with `pidOf`, the wrapped one). */
  readonly pid: number
  /** Its parsed JSON log lines so far (with `logs`, that array's). */
  logs(): Record<string, unknown>[]
  /** Sends `signal` (default SIGTERM) to the relay; resolves with the exit code (or signal name) once the spawned process exited. */
  stop(signal?: NodeJS.Signals): Promise<number | string>
  /** SIGKILL: a crash. Resolves once the spawned process is gone. */
  kill(): Promise<void>
}

/** Options of {@link spawnRelay}. */
export interface SpawnRelayOptions {
  readonly cwd: string
  /** The whole environment of the process. */
  readonly env: NodeJS.ProcessEnv
  readonly timeoutMs: number
  /** Where parsed log lines go (e.g. one array across restarts); default a new one. */
  readonly logs?: Record<string, unknown>[]
  /** The relay's pid when `command` wraps it (e.g. in strace), from the spawned process's; signals go to it. */
  readonly pidOf?: (spawned: number) => number
  /** Appended to the error when the program cannot run at all (e.g. how to install it). */
  readonly hint?: string
}

/**
 * Runs the relay CLI `command` (its `--port` among the arguments) and
 * resolves once it printed its `listening` line. Rejects naming the command
 * and port, with the end of its stderr, if it exits or stays silent first.
 * The one relay launcher: the `relay` fixture and this repository's tests use it.
 */
export function spawnRelay(command: readonly string[], options: SpawnRelayOptions): Promise<RelayRun> {
  const [file, ...args] = command
  if (file === undefined) throw new RangeError('command must not be empty')
  const port = command[command.lastIndexOf('--port') + 1]
  const what = `relay process \`${command.join(' ')}\` (port ${port === '0' ? '0: any free one' : port})`
  const logs = options.logs ?? []
  const child = spawn(file, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)))
  const running = (): boolean => child.exitCode === null && child.signalCode === null
  const onExit = (): void => {
    if (running()) child.kill('SIGKILL')
  }
  process.once('exit', onExit)
  child.once('exit', () => process.off('exit', onExit))
  let stderr = ''
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (chunk: string) => void (stderr = (stderr + chunk).slice(-8192)))
  return new Promise<RelayRun>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${what} did not print listening within ${options.timeoutMs} ms; stderr ends: ${stderr.trim() || '(nothing)'}`))
    }, options.timeoutMs)
    // A program that cannot run (e.g. a missing wrapper) emits `error` and never `exit`.
    child.once('error', (error) => {
      clearTimeout(timer)
      reject(new Error(`could not start ${what}: ${error.message}${options.hint === undefined ? '' : `; ${options.hint}`}`, { cause: error }))
    })
    // 'close' comes after stderr is drained, so the message carries the relay's last words.
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`${what} exited (${code ?? signal}) before listening; stderr ends: ${stderr.trim() || '(nothing)'}`))
    })
    let buffered = ''
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (chunk: string) => {
      buffered += chunk
      let newline: number
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline)
        buffered = buffered.slice(newline + 1)
        let entry: Record<string, unknown>
        try {
          entry = JSON.parse(line) as Record<string, unknown>
        } catch {
          continue
        }
        logs.push(entry)
        if (entry.event !== 'listening' || typeof entry.port !== 'number') continue
        clearTimeout(timer)
        let pid = child.pid ?? -1
        try {
          if (options.pidOf !== undefined) pid = options.pidOf(pid)
        } catch (error) {
          child.kill('SIGKILL')
          reject(error)
          return
        }
        const signal = (name: NodeJS.Signals): void => {
          if (!running()) return
          try {
            process.kill(pid, name)
          } catch {
            // Already gone.
          }
        }
        resolve({
          url: typeof entry.url === 'string' ? entry.url : `ws://127.0.0.1:${entry.port}`,
          port: entry.port,
          pid,
          logs: () => [...logs],
          stop(name = 'SIGTERM') {
            signal(name)
            return exited
          },
          async kill() {
            signal('SIGKILL')
            await exited
          },
        })
      }
    })
  })
}
