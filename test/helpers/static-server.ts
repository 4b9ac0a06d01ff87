/**
 * A static file server for built test pages, in this process, on a free
 * loopback port: a benchmark that serves its own build needs no `vite
 * preview` and shares no port or output directory with anyone.
 */
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import { extname, join, normalize, sep } from 'node:path'

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
}

/** A running {@link serveStatic}: where it serves, and how to stop it. */
export interface StaticServer {
  readonly url: string
  stop(): Promise<void>
}

/** Serves the files under `root` (GET and HEAD only) at `http://127.0.0.1:<port>`. */
export function serveStatic(root: string): Promise<StaticServer> {
  const base = normalize(root + sep)
  const server = createServer((request, response) => {
    void (async () => {
      if (request.method !== 'GET' && request.method !== 'HEAD') return void response.writeHead(405).end()
      let path: string
      try {
        path = decodeURIComponent(new URL(request.url ?? '/', 'http://localhost').pathname)
      } catch {
        return void response.writeHead(400).end()
      }
      const file = normalize(join(base, path.endsWith('/') ? `${path}index.html` : path))
      if (!file.startsWith(base)) return void response.writeHead(403).end()
      try {
        const body = await readFile(file)
        response.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' })
        response.end(request.method === 'HEAD' ? undefined : body)
      } catch {
        response.writeHead(404).end()
      }
    })()
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      if (typeof address !== 'object' || address === null) {
        reject(new Error('the static server has no address'))
        return
      }
      resolve({
        url: `http://127.0.0.1:${address.port}`,
        stop: () =>
          new Promise<void>((done) => {
            server.closeAllConnections()
            server.close(() => done())
          }),
      })
    })
  })
}
