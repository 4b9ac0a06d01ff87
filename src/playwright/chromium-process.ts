/// <reference types="node" />
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A headless Chromium with a profile on disk (IndexedDB persists as in real use) and its DevTools endpoint. */
export interface ChromiumProcess {
  readonly process: ChildProcess
  /** The browser process's id (the leader of its process group). */
  readonly pid: number
  readonly wsEndpoint: string
  /** The profile directory. */
  readonly userDataDir: string
  /** Resolves once the browser process exited, however it ended. */
  readonly exited: Promise<void>
  /**
   * Kills the process group (SIGKILL after a grace period) and removes the
   * profile unless the caller gave it. Never throws; safe to call twice.
   */
  kill(): Promise<void>
  /**
   * A crash: SIGKILL to the whole process group at once (browser, renderers,
   * GPU, network, storage), no grace period; resolves once every process of
   * the group is gone (at most 5 s), so that a new launch on the profile
   * finds what the browser had written and no helper still holding its
   * files. Never throws.
   */
  crash(): Promise<void>
}

/** Options of {@link launchChromium}. */
export interface ChromiumLaunchOptions {
  /** How long to wait for the DevTools endpoint; default 20,000 ms. */
  readonly timeoutMs?: number
  /**
   * A profile directory to use and keep (e.g. to relaunch on it after a
   * crash); default a fresh temporary one, removed by `kill()`.
   */
  readonly userDataDir?: string
}

/**
 * Starts `executable` (`--headless=new`, DevTools on an ephemeral loopback
 * port) in its own process group, and resolves once it printed its DevTools
 * endpoint. `options` may also be the timeout in ms, as before.
 */
export async function launchChromium(executable: string, args: readonly string[], options: number | ChromiumLaunchOptions = {}): Promise<ChromiumProcess> {
  const { timeoutMs = 20_000, userDataDir: given } = typeof options === 'number' ? { timeoutMs: options } : options
  const userDataDir = given ?? mkdtempSync(join(tmpdir(), 'intersession-chromium-'))
  const removeProfile = (): void => {
    if (given === undefined) rmSync(userDataDir, { recursive: true, force: true, maxRetries: 3 })
  }
  const child = spawn(
    executable,
    [...args, '--headless=new', '--remote-debugging-port=0', '--remote-debugging-address=127.0.0.1', `--user-data-dir=${userDataDir}`, 'about:blank'],
    { stdio: ['ignore', 'ignore', 'pipe'], detached: true },
  )
  let killed = false
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  // Chromium runs in its own process group, so that its helpers (renderers, GPU, network) go with it.
  const signal = (sig: NodeJS.Signals): void => {
    try {
      process.kill(-child.pid!, sig)
    } catch {
      // Already gone.
    }
  }
  // The detached group must not outlive this process, whatever ends it (a test timeout included).
  const onExit = (): void => {
    signal('SIGKILL')
    try {
      removeProfile()
    } catch {
      // Best effort: a helper may still be writing.
    }
  }
  process.once('exit', onExit)
  child.once('exit', () => process.off('exit', onExit))
  const kill = async (): Promise<void> => {
    if (!killed) {
      killed = true
      if (child.exitCode === null && child.signalCode === null) {
        signal('SIGTERM')
        const timer = setTimeout(() => signal('SIGKILL'), 3000)
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000))])
        clearTimeout(timer)
      }
      signal('SIGKILL') // stragglers of the group
    }
    // Never throws: a cleanup failure must not hide the caller's own error.
    for (let attempt = 0; attempt < 10; attempt++) {
      try {
        removeProfile()
        return
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
    }
    console.warn(`could not remove ${userDataDir}`)
  }
  const crash = async (): Promise<void> => {
    killed = true
    signal('SIGKILL')
    const deadline = Date.now() + 5000
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000))])
    // The browser goes first; its storage service, which holds the profile's IndexedDB open, may outlive it a moment.
    const pid = child.pid
    while (pid !== undefined && groupAlive(pid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
  }
  try {
    const wsEndpoint = await new Promise<string>((resolve, reject) => {
      let stderr = ''
      const timer = setTimeout(() => reject(new Error(`Chromium printed no DevTools endpoint within ${timeoutMs} ms:\n${stderr}`)), timeoutMs)
      child.stderr.setEncoding('utf8')
      child.stderr.on('data', (chunk: string) => {
        if (stderr.length < 64 * 1024) stderr += chunk
        const match = /DevTools listening on (ws:\/\/\S+)/.exec(stderr)
        if (match !== null) {
          clearTimeout(timer)
          resolve(match[1]!)
        }
      })
      child.once('error', (error) => {
        clearTimeout(timer)
        reject(
          new Error(
            `could not start Chromium (${executable}): ${error.message}; npm test's preflight (node scripts/preflight.mjs) finds or installs one; or set CHROMIUM_PATH`,
            { cause: error },
          ),
        )
      })
      child.once(
        'exit',
        (code, sig) => (clearTimeout(timer), reject(new Error(`Chromium (${executable}) exited (${code ?? sig}) before listening:\n${stderr}`))),
      )
    })
    // Keep draining stderr so that the pipe never fills up and blocks Chromium.
    child.stderr.removeAllListeners('data')
    child.stderr.resume()
    return { process: child, pid: child.pid!, wsEndpoint, userDataDir, exited, kill, crash }
  } catch (error) {
    await kill()
    throw error
  }
}

/**
 * Whether a process of group `pgid` still runs. From /proc where there is one, so that zombies (dead, waiting for a
 * parent to reap them, as in a container whose first process reaps nothing) count as gone; else by signal 0.
 */
function groupAlive(pgid: number): boolean {
  let pids: string[]
  try {
    pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name))
  } catch {
    try {
      process.kill(-pgid, 0)
      return true
    } catch {
      return false
    }
  }
  for (const pid of pids) {
    let stat: string
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    } catch {
      continue // gone meanwhile
    }
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so read after its last ')'.
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    if (Number(pgrp) === pgid && state !== 'Z' && state !== 'X') return true
  }
  return false
}
