/**
 * Peers for the relay-cluster tests: real engines over the production
 * WebSocketTransport with HS256 tokens, recording what they are handed and
 * the statuses they see.
 */
import WebSocket from 'ws'
import { ILM, MemoryStore, type Message, type StatusEvent } from '../../src/index.js'
import { createToken } from '../../src/relay/token.js'
import { WebSocketTransport } from '../../src/transport/websocket.js'

/** An engine on the relays at `urls`, and what it recorded. */
export interface ClusterPeer {
  readonly id: string
  readonly ilm: ILM
  readonly transport: WebSocketTransport
  readonly got: Message[]
  readonly statuses: StatusEvent[]
}

/** Polls `check` every 25 ms; throws naming `what` after `timeoutMs`. */
export async function waitFor(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

/**
 * Opens a peer with fast backoff and retransmits (`retransmitMs`, default
 * 300), registers its close in `cleanups`, and resolves once it is online.
 * `store` carries it (and its keys) across sessions.
 */
export async function openClusterPeer(
  id: string,
  urls: readonly string[],
  secret: string,
  cleanups: (() => unknown)[],
  store: MemoryStore = new MemoryStore(),
  retransmitMs = 300,
): Promise<ClusterPeer> {
  const transport = new WebSocketTransport({
    localId: id,
    urls,
    token: () => createToken({ secret, peerId: id }),
    WebSocket,
    backoff: { initialMs: 50, maxMs: 400 },
  })
  const ilm = await ILM.open({ store, transport, limits: { retransmitMs, maxRetransmitMs: Math.max(retransmitMs, 30_000) } })
  const got: Message[] = []
  const statuses: StatusEvent[] = []
  ilm.onMessage((m) => void got.push(m))
  ilm.on('status', (s) => void statuses.push(s))
  cleanups.push(() => ilm.close())
  await waitFor(() => transport.state.status === 'online', `${id} online`)
  return { id, ilm, transport, got, statuses }
}

/**
 * `id` logs in once on `store` and leaves, as a receiver that was online
 * before: its key bundle is in the relay's directory (cluster-wide), so
 * senders can seal messages for it while it is offline.
 */
export async function registerClusterPeer(id: string, urls: readonly string[], secret: string, store: MemoryStore): Promise<void> {
  const cleanups: (() => unknown)[] = []
  const p = await openClusterPeer(id, urls, secret, cleanups, store)
  await waitFor(async () => (await p.transport.fetchKeys(id as never)) !== null, `${id}'s keys in the directory`)
  for (const cleanup of cleanups) await cleanup()
}

/** The n-s that `to` got from `from`, in hand-over order. */
export const seen = (to: ClusterPeer, from: ClusterPeer): number[] => to.got.filter((m) => m.from === from.id).map((m) => (m.contents as { n: number }).n)
