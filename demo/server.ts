/// <reference types="node" />
/**
 * `tsx demo/server.ts [--port N] [--relay-port N] [--mailbox-dir DIR] [--verbose]`
 *
 * Serves the built demo (`demo/dist`) on 127.0.0.1 and runs an intersession
 * relay in dev mode (INSECURE: the token `dev:<name>` logs in as anyone) in
 * the same process, with its mailbox (messages for people who are offline)
 * in the embedded LevelDB directory `--mailbox-dir` (default
 * `./.intersession-mailbox`), so it survives restarts. The page learns where
 * the relay is from `/config.json`.
 *
 * Ports: `--port` / `PORT` (default 5173) and `--relay-port` / `RELAY_PORT`
 * (default 8787); 0 picks a free one. A default port that is taken falls back
 * to a free one; a port asked for explicitly must be free. SIGINT/SIGTERM
 * close the relay (clients reconnect when it is back) and the page server.
 */
import { existsSync, readFileSync, statSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { extname, join, normalize, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { createRelay, LevelMailbox, type Mailbox, type RelayHandle, type RelayLogEntry } from 'intersession-relay'

const HOST = '127.0.0.1'
const DEFAULT_PORT = 5173
const DEFAULT_RELAY_PORT = 8787
const ROOT = fileURLToPath(new URL('./dist', import.meta.url))

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.webmanifest': 'application/manifest+json',
}

function fail(message: string): never {
  process.stderr.write(`intersession demo: ${message}\n`)
  process.exit(1)
}

/** A port from a flag or the environment; `undefined` means "the default, or any free one". */
function port(value: string | undefined, name: string): number | undefined {
  if (value === undefined || value === '') return undefined
  if (!/^\d+$/.test(value) || Number(value) > 65_535) fail(`${name} must be a port number (0 for any free one), got "${value}"`)
  return Number(value)
}

const { values } = (() => {
  try {
    return parseArgs({
      options: { port: { type: 'string' }, 'relay-port': { type: 'string' }, 'mailbox-dir': { type: 'string' }, verbose: { type: 'boolean' } },
      strict: true,
      allowPositionals: false,
    })
  } catch (error) {
    return fail(
      `${error instanceof Error ? error.message : String(error)}\nusage: tsx demo/server.ts [--port N] [--relay-port N] [--mailbox-dir DIR] [--verbose]`,
    )
  }
})()

const pagePort = port(values.port ?? process.env.PORT, '--port')
const relayPort = port(values['relay-port'] ?? process.env.RELAY_PORT, '--relay-port')
const verbose = values.verbose === true
const mailboxDir = values['mailbox-dir'] ?? './.intersession-mailbox'

if (!existsSync(join(ROOT, 'index.html'))) fail('demo/dist is missing: run `npm run build && npm run build:demo` (or `npm start`)')

/** Relay logs: only what needs attention, unless --verbose (JSON lines, as the relay CLI prints them). */
function relayLog(entry: RelayLogEntry): void {
  // A taken port is handled below (another port, or a clear error).
  if (entry.event === 'server_error' && String(entry.message).includes('EADDRINUSE')) return
  if (verbose) process.stdout.write(`${JSON.stringify(entry)}\n`)
  else if ((entry.level === 'warn' || entry.level === 'error') && entry.event !== 'dev_mode')
    process.stderr.write(`relay: ${entry.event} ${JSON.stringify(entry)}\n`)
}

function isAddressInUse(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 'EADDRINUSE'
}

async function startRelay(mailbox: Mailbox): Promise<RelayHandle> {
  try {
    return await createRelay({ dev: true, host: HOST, port: relayPort ?? DEFAULT_RELAY_PORT, logger: relayLog, mailbox })
  } catch (error) {
    if (!isAddressInUse(error)) throw error
    if (relayPort !== undefined) fail(`relay port ${relayPort} is in use`)
    process.stderr.write(`intersession demo: relay port ${DEFAULT_RELAY_PORT} is taken, using a free one\n`)
    return createRelay({ dev: true, host: HOST, port: 0, logger: relayLog, mailbox })
  }
}

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, HOST, () => {
      server.off('error', reject)
      resolve((server.address() as AddressInfo).port)
    })
  })
}

async function startPages(config: string): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => serve(req, res, config))
  server.on('clientError', (_error, socket) => socket.destroy())
  try {
    return { server, port: await listen(server, pagePort ?? DEFAULT_PORT) }
  } catch (error) {
    if (!isAddressInUse(error)) throw error
    if (pagePort !== undefined) fail(`port ${pagePort} is in use`)
    // Another origin: its chat history and service worker are its own.
    process.stderr.write(`intersession demo: port ${DEFAULT_PORT} is taken, using a free one\n`)
    return { server, port: await listen(server, 0) }
  }
}

function serve(req: IncomingMessage, res: ServerResponse, config: string): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD' }).end()
    return
  }
  let path: string
  try {
    path = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname)
  } catch {
    res.writeHead(400).end()
    return
  }
  if (path === '/config.json') {
    send(res, 200, 'application/json', 'no-store', config, req.method === 'HEAD')
    return
  }
  if (path.endsWith('/')) path += 'index.html'
  const file = normalize(join(ROOT, path))
  if (!file.startsWith(ROOT + sep) || !existsSync(file) || !statSync(file).isFile()) {
    send(res, 404, 'text/plain; charset=utf-8', 'no-store', 'not found\n', req.method === 'HEAD')
    return
  }
  // Hashed build assets never change; everything else (index.html, sw.js, manifest) is revalidated.
  const cache = path.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache'
  send(res, 200, TYPES[extname(file)] ?? 'application/octet-stream', cache, readFileSync(file), req.method === 'HEAD')
}

function send(res: ServerResponse, status: number, type: string, cache: string, body: string | Buffer, head: boolean): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': cache, 'content-length': Buffer.byteLength(body), 'x-content-type-options': 'nosniff' })
  res.end(head ? undefined : body)
}

async function main(): Promise<void> {
  const relay = await startRelay(await LevelMailbox.open(mailboxDir))
  const directoryUrl = `http://${HOST}:${relay.port}`
  const pages = await startPages(JSON.stringify({ relayUrl: relay.url, directoryUrl }))
  process.stdout.write(`intersession demo: http://${HOST}:${pages.port}  (relay ${relay.url}, dev mode: insecure)\n`)

  let stopping = false
  const stop = (): void => {
    if (stopping) process.exit(1) // a second signal: stop waiting
    stopping = true
    const closed = new Promise<void>((resolve) => pages.server.close(() => resolve()))
    pages.server.closeAllConnections()
    Promise.all([relay.close(), closed]).then(
      () => process.exit(0),
      () => process.exit(1),
    )
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
}

main().catch((error: unknown) => fail(error instanceof Error ? error.message : String(error)))
