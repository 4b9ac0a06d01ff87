/// <reference types="node" />
/**
 * Runs the real relay CLI (`src/relay/cli.ts` through tsx, no build needed)
 * in a child process on an ephemeral loopback port, for tests that need a
 * real, killable relay process.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

export interface RelayProcess {
  readonly url: string
  readonly port: number
  readonly pid: number
  /** Parsed JSON log lines printed so far. */
  logs(): Record<string, unknown>[]
  /** Sends `signal` (default SIGTERM) and resolves with the exit code (or the signal name) once the process exited. */
  stop(signal?: NodeJS.Signals): Promise<number | string>
  /** SIGKILL: a crash. Resolves once the process is gone. */
  kill(): Promise<void>
}

/**
 * Starts `intersession-relay --port 0 ...args` and resolves once it printed its
 * `listening` line. Without `--mailbox-dir` in `args` the relay runs with
 * `--no-mailbox`. `env` is added to this process's environment; when it has
 * neither INTERSESSION_JWT_SECRET nor INTERSESSION_DEV and `args` has no
 * `--dev`, pass one yourself (the CLI refuses to start without auth).
 */
export function startRelayProcess(args: readonly string[] = [], env: Record<string, string> = {}, timeoutMs = 15_000): Promise<RelayProcess> {
  // Processes share the working directory: each mailbox test names its own directory.
  const mailbox = args.includes('--mailbox-dir') || args.includes('--redis') ? [] : ['--no-mailbox']
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/relay/cli.ts', '--port', '0', ...mailbox, ...args], {
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
      reject(new Error(`relay process did not start within ${timeoutMs} ms; stderr: ${stderr}`))
    }, timeoutMs)
    let buffered = ''
    child.stdout!.setEncoding('utf8')
    child.stdout!.on('data', (chunk: string) => {
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
          resolve(handle(child, entry.url, entry.port, logs, exited))
        }
      }
    })
    child.stderr!.setEncoding('utf8')
    child.stderr!.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-8192)
    })
    void exited.then((code) => {
      clearTimeout(timer)
      reject(new Error(`relay process exited (${code}) before listening; stderr: ${stderr}`))
    })
  })
}

function handle(child: ChildProcess, url: string, port: number, logs: Record<string, unknown>[], exited: Promise<number | string>): RelayProcess {
  return {
    url,
    port,
    pid: child.pid!,
    logs: () => [...logs],
    stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      return exited
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      await exited
    },
  }
}
