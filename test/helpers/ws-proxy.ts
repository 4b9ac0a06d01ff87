/// <reference types="node" />
/**
 * A WebSocket man in the middle for end-to-end encryption tests: clients
 * connect to it as to a relay, it opens one connection to the real relay per
 * client and forwards every message both ways, recording each one as it
 * arrives. A `rewrite` hook may change or drop any message on its way: that
 * is the hostile relay. A pack (several envelopes in one WebSocket message,
 * src/protocol/relay.ts) is taken apart: each envelope is a message here,
 * recorded and rewritten on its own, and those forwarded go on together.
 */
import type { AddressInfo } from 'node:net'
import WebSocket, { WebSocketServer, type RawData } from 'ws'
import { pack, unpack } from '../../src/protocol/relay.js'

/** One message as the proxy received it, before any rewrite. */
export interface ProxiedMessage {
  /** `up`: client to relay; `down`: relay to client. */
  readonly dir: 'up' | 'down'
  /** The client's peer id, from its `dev:<id>` login token (undefined before it sent `auth`). */
  readonly peer: string | undefined
  readonly binary: boolean
  readonly data: Buffer
}

/** What to forward instead of a message: `undefined` forwards it unchanged, `null` drops it. */
export type Rewrite = (message: ProxiedMessage) => Buffer | null | undefined

/** A running proxy in front of the relay at `target`. */
export interface WsProxy {
  /** `ws://127.0.0.1:PORT` for clients. */
  readonly url: string
  /** Every message seen, both ways, unchanged. */
  readonly log: ProxiedMessage[]
  /** The hostile part; replace it at any time (undefined: pass everything). */
  rewrite: Rewrite | undefined
  /** Ends every client and relay connection (the clients reconnect). */
  drop(): void
  close(): Promise<void>
}

const toBuffer = (data: RawData): Buffer => (Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data))

/** Starts a proxy on an ephemeral loopback port in front of `target` (a `ws://` relay URL). */
export async function startWsProxy(target: string, rewrite?: Rewrite): Promise<WsProxy> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false })
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve)
    server.once('error', reject)
  })
  const sockets = new Set<WebSocket>()
  const proxy: WsProxy = {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}`,
    log: [],
    rewrite,
    drop() {
      for (const socket of sockets) socket.terminate()
    },
    async close() {
      proxy.drop()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
  server.on('connection', (client, request) => {
    const upstream = new WebSocket(target + (request.url ?? '/'), { perMessageDeflate: false })
    sockets.add(client).add(upstream)
    let peer: string | undefined
    const early: { data: Buffer; binary: boolean }[] = []
    const forward = (dir: 'up' | 'down', data: Buffer, binary: boolean): void => {
      if (dir === 'up' && !binary && peer === undefined) {
        try {
          const auth = JSON.parse(data.toString('utf8')) as { t?: unknown; token?: unknown }
          if (auth.t === 'auth' && typeof auth.token === 'string' && auth.token.startsWith('dev:')) peer = auth.token.slice(4)
        } catch {
          // Not JSON: forwarded as is.
        }
      }
      const parts = binary ? (unpack(data) ?? [data]) : [data]
      const outs: Uint8Array[] = []
      for (const part of parts) {
        const message: ProxiedMessage = { dir, peer, binary, data: Buffer.from(part.buffer, part.byteOffset, part.byteLength) }
        proxy.log.push(message)
        const out = proxy.rewrite?.(message)
        if (out !== null) outs.push(out ?? part)
      }
      if (outs.length === 0) return
      const sent = outs.length === 1 ? outs[0]! : pack(outs)
      const to = dir === 'up' ? upstream : client
      if (dir === 'up' && upstream.readyState === WebSocket.CONNECTING) return void early.push({ data: Buffer.from(sent), binary })
      if (to.readyState === WebSocket.OPEN) to.send(sent, { binary })
    }
    upstream.on('open', () => {
      for (const m of early.splice(0)) upstream.send(m.data, { binary: m.binary })
    })
    client.on('message', (data, binary) => forward('up', toBuffer(data), binary))
    upstream.on('message', (data, binary) => forward('down', toBuffer(data), binary))
    const end = (): void => {
      sockets.delete(client)
      sockets.delete(upstream)
      client.terminate()
      upstream.terminate()
    }
    client.on('close', end)
    upstream.on('close', end)
    client.on('error', end)
    upstream.on('error', end)
  })
  return proxy
}
