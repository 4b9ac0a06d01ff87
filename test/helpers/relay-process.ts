/// <reference types="node" />
/**
 * Runs the real relay CLI (`src/relay/cli.ts` through tsx, no build needed)
 * in a child process on an ephemeral loopback port, for tests that need a
 * real, killable relay process.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

export interface RelayProcess {
  readonly url: string
  readonly port: number
  /** The relay's own process (with `wrap`, the wrapped node process, not the wrapper). */
  readonly pid: number
  /** Parsed JSON log lines printed so far. */
  logs(): Record<string, unknown>[]
  /** Sends `signal` (default SIGTERM) to the relay and resolves with the exit code (or the signal name) once the process (with `wrap`, the wrapper) exited. */
  stop(signal?: NodeJS.Signals): Promise<number | string>
  /** SIGKILL: a crash. Resolves once the process (and any wrapper) is gone. */
  kill(): Promise<void>
}

/** Options of {@link startRelayProcess}. */
export interface RelayProcessOptions {
  /**
   * A command that runs the relay, e.g. `['strace', '-f', '-o', file]`: the
   * relay's command line is appended to it. The wrapper must exit once the
   * relay does; signals go to the relay itself (its child).
   */
  readonly wrap?: readonly string[]
}

/**
 * Starts `intersession-relay --port 0 ...args` and resolves once it printed its
 * `listening` line. Without `--mailbox-dir` in `args` the relay runs with
 * `--no-mailbox`. `env` is added to this process's environment; when it has
 * neither INTERSESSION_JWT_SECRET nor INTERSESSION_DEV and `args` has no
 * `--dev`, pass one yourself (the CLI refuses to start without auth).
 */
export function startRelayProcess(
  args: readonly string[] = [],
  env: Record<string, string> = {},
  timeoutMs = 15_000,
  options: RelayProcessOptions = {},
): Promise<RelayProcess> {
  // Processes share the working directory: each mailbox test names its own directory.
  const mailbox = args.includes('--mailbox-dir') || args.includes('--redis') || args.includes('--redis-cluster') ? [] : ['--no-mailbox']
  const command = [...(options.wrap ?? []), process.execPath, '--import', 'tsx', 'src/relay/cli.ts', '--port', '0', ...mailbox, ...args]
  const port = command[command.lastIndexOf('--port') + 1]
  const what = `relay process \`${command.join(' ')}\` (port ${port === '0' ? '0: any free one' : port})`
  const child = spawn(command[0]!, command.slice(1), {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const logs: Record<string, unknown>[] = []
  let stderr = ''
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? -1))
  })
  return new Promise<RelayProcess>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${what} did not print listening within ${timeoutMs} ms; stderr ends: ${stderr.trim() || '(nothing)'}`))
    }, timeoutMs)
    // A program that cannot run (e.g. a missing `wrap`) emits `error` and never `exit`.
    child.once('error', (error) => {
      clearTimeout(timer)
      reject(
        new Error(`could not start ${what}: ${error.message}; npm test's preflight (node scripts/preflight.mjs) finds or installs what the tests run`, {
          cause: error,
        }),
      )
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
        if (entry.event === 'listening' && typeof entry.url === 'string' && typeof entry.port === 'number') {
          clearTimeout(timer)
          let pid: number
          try {
            pid = options.wrap === undefined ? child.pid! : wrappedPid(child.pid!)
          } catch (error) {
            child.kill('SIGKILL')
            reject(error)
            return
          }
          resolve(handle(child, pid, entry.url, entry.port, logs, exited))
        }
      }
    })
    child.stderr.setEncoding('utf8')
    child.stderr.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-8192)
    })
    // 'close' comes after stderr is drained, so the message carries the relay's last words.
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`${what} exited (${code ?? signal}) before listening; stderr ends: ${stderr.trim() || '(nothing)'}`))
    })
  })
}

function handle(child: ChildProcess, pid: number, url: string, port: number, logs: Record<string, unknown>[], exited: Promise<number | string>): RelayProcess {
  const signal = (name: NodeJS.Signals): void => {
    if (child.exitCode !== null || child.signalCode !== null) return
    try {
      process.kill(pid, name)
    } catch {
      // Already gone.
    }
  }
  return {
    url,
    port,
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
  }
}

/** The one child of the wrapper `pid` (Linux: /proc), which by then printed `listening`. */
function wrappedPid(pid: number): number {
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
    .trim()
    .split(/\s+/)
    .filter((c) => c !== '')
  if (children.length !== 1) throw new Error(`relay wrapper ${pid} has ${children.length} child processes, expected 1`)
  return Number(children[0])
}
