/// <reference types="node" />
/**
 * Runs a real `redis-server` (Debian's package; `npm test`'s preflight finds or installs it) on a
 * free loopback port, for cluster and mailbox tests and benchmarks, with the
 * persistence each caller states: none, or an append-only file synced on
 * every write (`appendfsync always`) in a directory of its own, which a
 * restart after a SIGKILL reads back. It can also be a replica of another.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { createClient } from 'redis'
import { freePort } from './free-port.js'

/**
 * - `none`: `--save '' --appendonly no`: a crash or restart loses everything;
 * - `aof-always`: `--appendonly yes --appendfsync always` (and no RDB
 *   snapshots): every write is on disk before Redis replies;
 * - `aof-everysec`: `--appendonly yes --appendfsync everysec`: Redis's own
 *   default AOF policy, which may lose the last second.
 */
export type RedisPersistence = 'none' | 'aof-always' | 'aof-everysec'

/** Options of {@link startRedisProcess}. */
export interface RedisProcessOptions {
  readonly persistence: RedisPersistence
  /** Start as a replica of the Redis on 127.0.0.1 at this port (`--replicaof`). */
  readonly replicaOf?: number
  /** Extra `redis-server` arguments, e.g. `['--user', ...]`. */
  readonly args?: readonly string[]
}

/** A running redis-server that can be crashed and started again on the same port (and data directory). */
export interface RedisProcess {
  readonly url: string
  readonly port: number
  /** Where its AOF lives (a fresh temporary directory, removed by `stop`). */
  readonly dir: string
  /** SIGKILL, then resolves once the process is gone. */
  kill(): Promise<void>
  /** Starts a new server on the same port and directory (after `kill`), with the same options or `options`. */
  restart(options?: RedisProcessOptions): Promise<void>
  /** SIGSTOP / SIGCONT: the process hangs without closing its connections. */
  pause(): void
  resume(): void
  /** SIGTERM, wait, and remove its directory. */
  stop(): Promise<void>
}

/** The redis-server binary: `REDIS_SERVER` (which `npm test`'s preflight sets) or `redis-server` on PATH. */
export const redisServerPath = process.env.REDIS_SERVER ?? 'redis-server'

const SETUP_HINT = "npm test's preflight (node scripts/preflight.mjs) finds or installs it; or set REDIS_SERVER"

/**
 * Starts redis-server on a free port on 127.0.0.1 and resolves once it
 * accepts connections; a replica, once its master counts it online (so a
 * `WAIT` on the master can count it).
 */
export async function startRedisProcess(options: RedisProcessOptions): Promise<RedisProcess> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'intersession-redis-'))
  let child: ChildProcess
  try {
    child = await launch(port, dir, options)
  } catch (error) {
    rmSync(dir, { recursive: true, force: true })
    throw error
  }
  if (options.replicaOf !== undefined) await online(options.replicaOf, port)
  const url = `redis://127.0.0.1:${port}`
  return {
    url,
    port,
    dir,
    async kill() {
      await terminate(child, 'SIGKILL')
    },
    async restart(next = options) {
      child = await launch(port, dir, next)
      if (next.replicaOf !== undefined) await online(next.replicaOf, port)
    },
    pause() {
      child.kill('SIGSTOP')
    },
    resume() {
      child.kill('SIGCONT')
    },
    async stop() {
      child.kill('SIGCONT')
      await terminate(child, 'SIGTERM')
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** Resolves once the master on `masterPort` lists the replica on `port` as online. */
async function online(masterPort: number, port: number, timeoutMs = 10_000): Promise<void> {
  const master = createClient({ url: `redis://127.0.0.1:${masterPort}` })
  await master.connect()
  try {
    const deadline = Date.now() + timeoutMs
    while (!new RegExp(`^slave\\d+:ip=[^,]*,port=${port},state=online`, 'm').test(await master.info('replication'))) {
      if (Date.now() > deadline) throw new Error(`the master on port ${masterPort} did not count the replica on port ${port} online within ${timeoutMs} ms`)
      await sleep(20)
    }
  } finally {
    await master.close()
  }
}

function persistenceArgs(persistence: RedisPersistence): string[] {
  switch (persistence) {
    case 'none':
      return ['--save', '', '--appendonly', 'no']
    case 'aof-always':
      return ['--save', '', '--appendonly', 'yes', '--appendfsync', 'always']
    case 'aof-everysec':
      return ['--save', '', '--appendonly', 'yes', '--appendfsync', 'everysec']
  }
}

function launch(port: number, dir: string, options: RedisProcessOptions, timeoutMs = 10_000): Promise<ChildProcess> {
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    ...persistenceArgs(options.persistence),
    '--protected-mode',
    'yes',
    // A replica that connects gets the data at once, not after the default 5 s of waiting for others.
    '--repl-diskless-sync-delay',
    '0',
    ...(options.replicaOf === undefined ? [] : ['--replicaof', '127.0.0.1', String(options.replicaOf)]),
    ...(options.args ?? []),
  ]
  // A replica is ready once it has the master's data (a full or a partial sync), not when it listens.
  const ready =
    options.replicaOf === undefined
      ? /Ready to accept connections/
      : /MASTER <-> REPLICA sync: (Finished with success|Master accepted a Partial Resynchronization)/
  const child = spawn(redisServerPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  const what = `redis-server (${redisServerPath}) on 127.0.0.1:${port}`
  // Redis logs to stdout; configuration errors go to stderr.
  let output = ''
  let errors = ''
  const tail = (): string => `; stdout ends: ${output.trim().slice(-1000) || '(nothing)'}; stderr ends: ${errors.trim().slice(-1000) || '(nothing)'}`
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${what} was not ready within ${timeoutMs} ms${tail()}`))
    }, timeoutMs)
    child.once('error', (error) => {
      clearTimeout(timer)
      reject(new Error(`could not start ${what}: ${error.message}; ${SETUP_HINT}`, { cause: error }))
    })
    const onEarlyExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      clearTimeout(timer)
      reject(new Error(`${what} exited (${code ?? signal}) before it was ready${tail()}`))
    }
    // 'close', not 'exit': it comes once stdout and stderr are drained, so the tail holds redis-server's last words.
    child.once('close', onEarlyExit)
    child.stderr.setEncoding('utf8')
    child.stderr.on('data', (chunk: string) => {
      errors = (errors + chunk).slice(-4096)
    })
    child.stdout.setEncoding('utf8')
    const onData = (chunk: string): void => {
      output = (output + chunk).slice(-4096)
      if (!ready.test(output)) return
      clearTimeout(timer)
      child.off('close', onEarlyExit)
      child.stdout.off('data', onData)
      child.stdout.resume()
      resolve(child)
    }
    child.stdout.on('data', onData)
  })
}

async function terminate(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill(signal)
  await exited
}
