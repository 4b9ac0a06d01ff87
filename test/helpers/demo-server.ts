/// <reference types="node" />
/**
 * Runs `demo/server.ts` (the demo's page server and its dev relay) in a child
 * process on free ports, for the demo's tests in Chromium (Playwright) and in
 * Firefox (test/engines). Needs `npm run build && npm run build:demo` first.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** A running demo server. */
export interface DemoServer {
  readonly url: string
  readonly port: number
  readonly relayPort: number
  /** SIGTERM; resolves once the process has exited. */
  stop(): Promise<void>
}

/** Starts `demo/server.ts` (page server + dev relay, mailbox in `mailboxDir`) and resolves once it printed its URL. */
export function startDemoServer(mailboxDir: string, port = 0, relayPort = 0, timeoutMs = 20_000): Promise<DemoServer> {
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', 'demo/server.ts', '--port', String(port), '--relay-port', String(relayPort), '--mailbox-dir', mailboxDir],
    {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  let output = ''
  return new Promise<DemoServer>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`the demo server did not start within ${timeoutMs} ms: ${output}`))
    }, timeoutMs)
    const onData = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-8192)
      const match = /intersession demo: (http:\/\/127\.0\.0\.1:(\d+)) +\(relay ws:\/\/127\.0\.0\.1:(\d+)/.exec(output)
      if (match === null) return
      clearTimeout(timer)
      child.stdout!.off('data', onData)
      resolve({
        url: match[1]!,
        port: Number(match[2]),
        relayPort: Number(match[3]),
        async stop() {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
          const killer = setTimeout(() => child.kill('SIGKILL'), 10_000)
          await exited
          clearTimeout(killer)
        },
      })
    }
    child.stdout!.on('data', onData)
    child.stderr!.on('data', (chunk: Buffer) => (output = (output + chunk.toString('utf8')).slice(-8192)))
    void exited.then(() => {
      clearTimeout(timer)
      reject(new Error(`the demo server exited before it was ready: ${output}`))
    })
  })
}
