/// <reference types="node" />
/**
 * Real engines over the production WebSocketTransport for the end-to-end
 * encryption tests: logged in with `dev:<id>` tokens (the relay runs with
 * `--dev`), short retransmission timeouts, recording what they are handed
 * and the `peer-key-changed` events they raise.
 */
import WebSocket from 'ws'
import type { E2EFactory } from '../../src/core/e2e.js'
import { ILM, MemoryStore, type Message, type StatusEvent } from '../../src/index.js'
import { WebSocketTransport } from '../../src/transport/websocket.js'

/** An engine on a relay (or a proxy in front of one). */
export interface E2EPeer {
  readonly id: string
  readonly ilm: ILM
  readonly transport: WebSocketTransport
  readonly got: Message[]
  readonly statuses: StatusEvent[]
  /** Peers named by `peer-key-changed` events, in order. */
  readonly keyChanged: string[]
}

/** Options of {@link openE2EPeer}. */
export interface E2EPeerOptions {
  readonly store?: MemoryStore
  /** As `ILM.open`'s: absent means on (the default). */
  readonly encryption?: E2EFactory | false
  /** Resolve before the transport is online. */
  readonly offline?: boolean
}

/** Opens `id` on `url`; resolves once its transport is online. */
export async function openE2EPeer(url: string, id: string, options: E2EPeerOptions = {}): Promise<E2EPeer> {
  const transport = new WebSocketTransport({ localId: id, url, token: `dev:${id}`, WebSocket, backoff: { initialMs: 20, maxMs: 200 } })
  const ilm = await ILM.open({
    store: options.store ?? new MemoryStore(),
    transport,
    limits: { retransmitMs: 200, maxRetransmitMs: 1000 },
    ...(options.encryption !== undefined && { encryption: options.encryption }),
  })
  const peer: E2EPeer = { id, ilm, transport, got: [], statuses: [], keyChanged: [] }
  ilm.onMessage((m) => void peer.got.push(m))
  ilm.on('status', (s) => void peer.statuses.push(s))
  ilm.on('peer-key-changed', (e) => void peer.keyChanged.push(e.peer))
  if (options.offline !== true) await waitFor(() => transport.state.status === 'online', `${id} online`)
  return peer
}

/** Polls `cond` every 20 ms; throws naming `what` after `timeoutMs`. */
export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await cond()) return
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(`timed out waiting for ${what}`)
}

/** Waits `ms` (for "nothing more happens" checks, after a positive wait). */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
