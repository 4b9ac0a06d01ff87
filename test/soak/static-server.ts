/// <reference types="node" />
import { createReadStream, statSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { extname, join, normalize, sep } from 'node:path'

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.map': 'application/json',
  '.css': 'text/css',
  '.wasm': 'application/wasm',
}

/** Serves the files under `root` on an ephemeral loopback port (GET only, nothing outside `root`). */
export async function serveStatic(root: string): Promise<{ origin: string; close(): Promise<void> }> {
  const base = normalize(root + sep)
  const server = http.createServer((req, res) => {
    const path = normalize(join(base, decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)))
    let size = -1
    try {
      if (path.startsWith(base)) size = statSync(path).isFile() ? statSync(path).size : -1
    } catch {
      size = -1
    }
    if (req.method !== 'GET' || size < 0) {
      res.writeHead(404).end()
      return
    }
    res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream', 'content-length': size, 'cache-control': 'no-store' })
    createReadStream(path).pipe(res)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}
