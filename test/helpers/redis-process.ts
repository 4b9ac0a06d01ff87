/// <reference types="node" />
/**
 * Runs a real `redis-server` (Debian's package; `.ci/run` installs it) on a
 * free loopback port, without persistence, for cluster tests and benchmarks.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { freePort } from './free-port.js'

/** A running redis-server that can be crashed and started again on the same port. */
export interface RedisProcess {
  readonly url: string
  readonly port: number
  /** SIGKILL, then resolves once the process is gone. */
  kill(): Promise<void>
  /** Starts a new server on the same port (after `kill`). */
  restart(): Promise<void>
  /** SIGTERM and wait. */
  stop(): Promise<void>
}

/** The redis-server binary: `REDIS_SERVER` or `/usr/bin/redis-server`. */
export const redisServerPath = process.env.REDIS_SERVER ?? '/usr/bin/redis-server'

/** Starts redis-server on a free port on 127.0.0.1 and resolves once it accepts connections. */
export async function startRedisProcess(): Promise<RedisProcess> {
  const port = await freePort()
  let child = await launch(port)
  const url = `redis://127.0.0.1:${port}`
  return {
    url,
    port,
    async kill() {
      await terminate(child, 'SIGKILL')
    },
    async restart() {
      child = await launch(port)
    },
    async stop() {
      await terminate(child, 'SIGTERM')
    },
  }
}

function launch(port: number, timeoutMs = 10_000): Promise<ChildProcess> {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes']
  const child = spawn(redisServerPath, args, { stdio: ['ignore', 'pipe', 'ignore'] })
  let output = ''
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`redis-server did not start within ${timeoutMs} ms: ${output}`))
    }, timeoutMs)
    child.once('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    const onEarlyExit = (code: number | null): void => {
      clearTimeout(timer)
      reject(new Error(`redis-server exited (${code}) before it was ready: ${output}`))
    }
    child.once('exit', onEarlyExit)
    child.stdout!.setEncoding('utf8')
    const onData = (chunk: string): void => {
      output = (output + chunk).slice(-4096)
      if (!output.includes('Ready to accept connections')) return
      clearTimeout(timer)
      child.off('exit', onEarlyExit)
      child.stdout!.off('data', onData)
      child.stdout!.resume()
      resolve(child)
    }
    child.stdout!.on('data', onData)
  })
}

async function terminate(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill(signal)
  await exited
}
