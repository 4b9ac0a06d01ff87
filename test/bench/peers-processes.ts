/**
 * Child processes of bench:peers: the peer systems' servers
 * (peers-server.ts) and the fault proxies (peers-proxy.ts), each a tsx script
 * on an ephemeral loopback port that announces itself with a
 * `{"event":"listening","port":N}` line.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const START_WITHIN_MS = 15_000

/** A running child: where it listens, and how to stop it. */
export interface Child {
  readonly port: number
  readonly pid: number
  /** SIGTERM, then resolves once it exited. */
  stop(): Promise<void>
}

/** What a proxy did in a cut. */
export interface CutReport {
  /** When it reset the connections, epoch ms (`performance.timeOrigin + performance.now()` of the proxy). */
  readonly at: number
  /** Sockets reset: two per connection carried (client side and server side). */
  readonly resetSockets: number
  /** Connection attempts reset at once while refusing. */
  readonly refused: number
}

/** A running fault proxy. */
export interface Proxy extends Child {
  /** The URL that, POSTed (by the receiver's page), makes the proxy cut for `ms`. */
  cutUrl(ms: number): string
  /** Reports of the cuts finished so far, oldest first. */
  readonly cuts: readonly CutReport[]
  /** Resolves once every cut begun so far has finished (or after `timeoutMs`). */
  settled(timeoutMs: number): Promise<void>
}

/** Starts `test/bench/<script> ...args`, with an IPC channel when `ipc`; resolves once it printed its port. */
function startChild(script: string, args: readonly string[], ipc: boolean): Promise<{ child: ChildProcess; listening: Listening; stop(): Promise<void> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', `test/bench/${script}`, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe', ...(ipc ? (['ipc'] as const) : [])],
  })
  let stderr = ''
  child.stderr!.setEncoding('utf8')
  child.stderr!.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-8192)
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    await exited
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${script} did not start within ${START_WITHIN_MS} ms; stderr: ${stderr}`))
    }, START_WITHIN_MS)
    let buffered = ''
    child.stdout!.setEncoding('utf8')
    child.stdout!.on('data', (chunk: string) => {
      buffered += chunk
      for (let newline = buffered.indexOf('\n'); newline >= 0; newline = buffered.indexOf('\n')) {
        const line = buffered.slice(0, newline)
        buffered = buffered.slice(newline + 1)
        const listening = parseListening(line)
        if (listening === undefined) continue
        clearTimeout(timer)
        resolve({ child, listening, stop })
      }
    })
    void exited.then(() => {
      clearTimeout(timer)
      reject(new Error(`${script} exited before listening; stderr: ${stderr}`))
    })
  })
}

/** A child's `listening` line: its port, and a proxy's control port. */
interface Listening {
  readonly port: number
  readonly control?: number
}

/** The ports of a `{"event":"listening","port":N}` line, else `undefined`. */
function parseListening(line: string): Listening | undefined {
  try {
    const entry = JSON.parse(line) as { event?: unknown; port?: unknown; control?: unknown }
    if (entry.event !== 'listening' || typeof entry.port !== 'number') return undefined
    return typeof entry.control === 'number' ? { port: entry.port, control: entry.control } : { port: entry.port }
  } catch {
    return undefined
  }
}

/** The server of `kind` (peers-server.ts) in its own process. */
export async function startPeerServer(kind: 'mqtt' | 'socketio'): Promise<Child & { readonly url: string }> {
  const { child, listening, stop } = await startChild('peers-server.ts', [kind], false)
  return { port: listening.port, pid: child.pid!, url: `ws://127.0.0.1:${listening.port}`, stop }
}

/** A fault proxy (peers-proxy.ts) in front of loopback port `target`, in its own process. */
export async function startProxy(target: number): Promise<Proxy> {
  const { child, listening, stop } = await startChild('peers-proxy.ts', [String(target)], true)
  if (listening.control === undefined) throw new Error('the proxy did not say its control port')
  const control = `http://127.0.0.1:${listening.control}`
  const cuts: CutReport[] = []
  let begun = 0
  child.on('message', (message: { begun?: true; cut?: CutReport }) => {
    if (message.begun === true) begun++
    if (message.cut !== undefined) cuts.push(message.cut)
  })
  return {
    port: listening.port,
    pid: child.pid!,
    stop,
    cutUrl: (ms) => `${control}/cut?ms=${ms}`,
    cuts,
    async settled(timeoutMs) {
      const deadline = Date.now() + timeoutMs
      while (cuts.length < begun && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
    },
  }
}
