/**
 * Test harness page: exposes intersession to Playwright as `window.harness`.
 * Everything here goes through the package's public entry points.
 */
import { connect, IlmError, type Messenger } from 'intersession/client'
import { IndexedDBStore, WebRtcTransport, WebSocketTransport, type PeerId, type Transport } from 'intersession'
import { storeContract, transportContract, type ContractCase } from 'intersession/testing'
import { PageRtc } from 'intersession/client'
import type { Message } from 'intersession'
import { openDB } from 'idb'
import { outRowsOf, type StoredOutbox } from '../../../src/storage/outbox-chunk.js'
import { storageFaults } from './storage-faults.js'
import { recoveryBench } from './recovery-bench.js'
import { soak } from './soak.js'
import { lifecycle } from './lifecycle.js'
import { crash } from './crash.js'
import { durability } from './durability.js'
import { linkState } from './link-state.js'
import { readCryptoRecords, writeCryptoRecords } from './crypto-records.js'
import { observeUpgraded, writeSchema2 } from '../../helpers/schema-2-database.js'

interface Received {
  from: string
  seq: number
  contents: unknown
  id: string
}

let messenger: Messenger | undefined
let ownWorker: Worker | undefined
const resolvedIds: string[] = []
const received: Received[] = []
const roles: string[] = []
const errors: Array<{ code: string; message: string; cause?: string }> = []
const keyChanges: string[] = []
/** What this page's `verifyPeerKey` answers (see `connect`'s `verdict`), and the peers it was asked about. */
let verdict = false
const verifyAsked: string[] = []

const harness = {
  faults: storageFaults(() => messenger),
  recovery: recoveryBench,
  soak, // npm run soak
  lifecycle, // client-lifecycle.spec.ts
  crash,
  durability,
  linkState, // link-state.spec.ts
  async connect(
    peerId: string,
    options: {
      network?: string
      relay?: string
      webrtc?: boolean | { iceTransportPolicy?: RTCIceTransportPolicy }
      subscribe?: boolean
      staleAfterMs?: number
      heartbeatMs?: number
      /** The engine's `limits.deferCommitMs`. */
      deferCommitMs?: number
      /** Run the engine in ./fault-worker.ts, whose storage faults a test arms. */
      faultyWorker?: boolean
      /** The IndexedDB database (another one is a wiped store: a new epoch and new keys). */
      dbName?: string
      /** Give connect() a `verifyPeerKey` that answers this (`setVerdict` changes it). */
      verdict?: boolean
      /** connect()'s `encryption` (on by default). */
      encryption?: boolean
    } = {},
  ) {
    verdict = options.verdict ?? false
    const worker = options.faultyWorker === true ? new Worker(new URL('./fault-worker.ts', import.meta.url), { type: 'module' }) : undefined
    messenger = await connect({
      peerId,
      transport:
        options.relay === undefined
          ? { kind: 'broadcast-channel', network: options.network ?? 'tests' }
          : {
              kind: 'websocket',
              url: options.relay,
              token: async () => `dev:${peerId}`,
              heartbeatMs: 2000,
              ...(options.webrtc !== undefined && { webrtc: options.webrtc }),
            },
      ...(options.staleAfterMs !== undefined && { staleAfterMs: options.staleAfterMs }),
      ...(options.heartbeatMs !== undefined && { heartbeatMs: options.heartbeatMs }),
      ...(options.deferCommitMs !== undefined && { limits: { deferCommitMs: options.deferCommitMs } }),
      ...(worker !== undefined && { worker }),
      ...(options.dbName !== undefined && { dbName: options.dbName }),
      ...(options.encryption !== undefined && { encryption: options.encryption }),
      ...(options.verdict !== undefined && {
        verifyPeerKey: (peer: string) => {
          verifyAsked.push(peer)
          return verdict
        },
      }),
    })
    messenger.on('role', (role) => roles.push(role))
    messenger.on('error', (e) => errors.push({ code: e.code, message: e.message, ...(e.cause instanceof Error && { cause: e.cause.message }) }))
    messenger.on('peer-key-changed', (e) => void keyChanges.push(e.peer))
    if (options.subscribe !== false) messenger.onMessage((m: Message) => void received.push({ from: m.from, seq: m.seq, contents: m.contents, id: m.id }))
    return messenger.role
  },
  /** Like connect, with a worker this page made itself (so a test can terminate it). */
  async connectOwnWorker(peerId: string, network = 'tests') {
    ownWorker = new Worker(new URL('./own-worker.ts', import.meta.url), { type: 'module' })
    messenger = await connect({ peerId, transport: { kind: 'broadcast-channel', network }, worker: ownWorker })
    return messenger.role
  },
  /**
   * Like connect over BroadcastChannel, with a worker that records every
   * IndexedDB transaction it opens (./durability-worker.ts); with `relaxed`,
   * that worker's store commits with `durability: 'relaxed'`.
   */
  async connectProbed(peerId: string, network: string, relaxed: boolean) {
    durability.listen()
    const worker = new Worker(new URL('./durability-worker.ts', import.meta.url), { type: 'module', name: relaxed ? 'relaxed' : 'default' })
    messenger = await connect({ peerId, transport: { kind: 'broadcast-channel', network }, worker })
    messenger.onMessage((m: Message) => void received.push({ from: m.from, seq: m.seq, contents: m.contents, id: m.id }))
    return messenger.role
  },
  terminateWorker() {
    ownWorker?.terminate()
    ownWorker = undefined
    messenger = undefined
  },
  /** Fires `count` sends at once (they share group commits); records each id as its send resolves. */
  burst(to: string, prefix: string, count: number) {
    for (let i = 0; i < count; i++)
      void messenger!.send(to, `${prefix}${i}`).then(
        ({ id }) => void resolvedIds.push(id),
        () => {},
      )
  },
  resolvedIds: () => resolvedIds,
  async sendBurst(to: string, prefix: string, count: number) {
    const receipts = await Promise.all(Array.from({ length: count }, (_, i) => messenger!.send(to, `${prefix}${i}`)))
    return receipts.map((r) => r.id)
  },
  /** Reads the outbox of `peerId` straight from IndexedDB. */
  async outboxRows(peerId: string) {
    const db = await openDB(`intersession:${peerId}`)
    const settled = (await db.getAll('settled')) as Array<{ to: string; upTo: number }>
    // A record holds the rows one commit queued on a stream (by column, read by the store's own outRowsOf), or one row.
    // Acknowledged rows stay as receipts, at or below their stream's watermark: the rows above it are the outbox.
    const rows = ((await db.getAll('outbox')) as StoredOutbox[]).flatMap(outRowsOf).filter((r) => r.seq > (settled.find((s) => s.to === r.to)?.upTo ?? -1))
    db.close()
    return rows.map((r) => ({ to: r.to, seq: r.seq, id: String(r.id), text: new TextDecoder().decode(r.contents) }))
  },
  /** Registers ./sync-sw.ts (service-worker.spec.ts, test/engines/service-worker.test.ts) for the whole origin and waits until it is active. */
  async registerSyncWorker(relay: string, budgetMs: number) {
    await navigator.serviceWorker.register(`/sync-sw.js?relay=${encodeURIComponent(relay)}&budget=${budgetMs}`, { scope: '/' })
    await navigator.serviceWorker.ready
  },
  /** What this browser offers for Background Sync, and the sync tags this origin registered (none without `registration.sync`). */
  async backgroundSync() {
    const registration = (await navigator.serviceWorker.getRegistration()) as
      (ServiceWorkerRegistration & { sync?: { getTags(): Promise<string[]> } }) | undefined
    return {
      syncManager: 'SyncManager' in globalThis,
      registrationSync: registration !== undefined && 'sync' in registration,
      tags: (await registration?.sync?.getTags()) ?? [],
    }
  },
  role: () => messenger?.role,
  connection: () => messenger?.connection,
  roles: () => roles,
  errors: () => errors,
  received: () => received,
  receivedCount: () => received.length,
  async send(to: string, contents: unknown) {
    return messenger!.send(to, contents)
  },
  /** Sends `count` messages `${prefix}${i}` one after another; resolves with how many resolved. */
  async sendMany(to: string, prefix: string, from: number, count: number) {
    const ids: string[] = []
    for (let i = from; i < from + count; i++) ids.push((await messenger!.send(to, `${prefix}${i}`)).id)
    return ids
  },
  pending: () => messenger!.pending(),
  status: (id: string) => messenger!.status(id),
  delivered: (id: string) => messenger!.delivered(id),
  connectedPeers: () => messenger!.connectedPeers(),
  /** Peers that presented a changed identity key (`peer-key-changed`), in order. */
  keyChanges: () => [...keyChanges],
  acceptPeerKey: (peer: string) => messenger!.acceptPeerKey(peer),
  rejectPeerKey: (peer: string) => messenger!.rejectPeerKey(peer),
  setVerdict: (yes: boolean) => void (verdict = yes),
  /** Peers this page's `verifyPeerKey` was asked about, in order. */
  verifyAsked: () => [...verifyAsked],
  /** The engine's own key records in IndexedDB: its identity key (hex) and whether any private key there is extractable. */
  engineKeys,
  safetyNumber: (peer: string) => messenger!.safetyNumber(peer),
  close: () => messenger!.close(),
  async sendError(to: unknown, contents: unknown) {
    try {
      await messenger!.send(to as string, contents)
      return undefined
    } catch (error) {
      return {
        isIlmError: error instanceof IlmError,
        name: (error as Error).name,
        code: (error as { code?: string }).code,
        message: (error as Error).message,
        isTypeError: error instanceof TypeError,
      }
    }
  },
  /** src/crypto's records through IndexedDB (test/engines/crypto-records.test.ts). */
  cryptoRecords: { write: writeCryptoRecords, read: readCryptoRecords },
  /** Runs the store contract against IndexedDBStore in this browser. */
  storeContract: () => runCases(storeContract(() => new IndexedDBStore())),
  /** Writes a schema 2 database (test/helpers/schema-2-database.ts), opens it with IndexedDBStore and says what the upgraded store shows. */
  async schema2Upgrade() {
    const id = `upgrade-${crypto.randomUUID()}` as PeerId
    await writeSchema2(indexedDB, `intersession:${id}`)
    const handle = await new IndexedDBStore().open(id)
    try {
      return await observeUpgraded(handle)
    } finally {
      await handle.close()
    }
  },
  /**
   * Runs the transport contract against WebRtcTransport: two peers in this
   * page, each with its own relay login and RTCPeerConnections. Also says how
   * many frames went over data channels and how many through the relay.
   */
  async webrtcContract(relay: string) {
    const counts = { direct: 0, relayed: 0 }
    let pair = 0
    const make = (id: string): WebRtcTransport => {
      const ws = new WebSocketTransport({ localId: id, url: relay, token: `dev:${id}` })
      let transport!: WebRtcTransport
      const rtc = new PageRtc(
        {
          rtcSignal: (peer, data) => transport.signal(peer as PeerId, data),
          rtcChannel: (peer, channel) => transport.attachChannel(peer as PeerId, channel),
          rtcFailed: (peer) => transport.connectFailed(peer as PeerId),
        },
        {},
      )
      transport = new WebRtcTransport({
        relay: ws,
        connector: {
          connect: (p, i) => rtc.command({ t: 'connect', peer: p, initiator: i }),
          signal: (p, d) => rtc.command({ t: 'signal', peer: p, data: d }),
          disconnect: (p) => rtc.command({ t: 'disconnect', peer: p }),
        },
      })
      return transport
    }
    const results = await runCases(
      transportContract(
        () => {
          pair++
          const a = make(`rtc-a${pair}`)
          const b = make(`rtc-b${pair}`)
          a.watch([b.localId as PeerId])
          b.watch([a.localId as PeerId])
          return {
            a: directOnce(a, b.localId as PeerId),
            b: directOnce(b, a.localId as PeerId),
            cleanup: () => {
              for (const t of [a, b]) {
                counts.direct += t.counts.direct
                counts.relayed += t.counts.relayed
              }
            },
          }
        },
        { timeoutMs: WEBRTC_CONTRACT_TIMEOUT_MS },
      ),
    )
    return { results, counts }
  },
}

/** A step's longest wait in the WebRTC contract: a clean-clone CI run once took over the default 5 s for two peers' presence. */
const WEBRTC_CONTRACT_TIMEOUT_MS = 15_000

/**
 * The transport as the contract sees it: a send to `peer` first waits (up to
 * 5 s) for the data channel, so the cases exercise the direct path.
 */
function directOnce(transport: WebRtcTransport, peer: PeerId): Transport {
  const direct = async (): Promise<void> => {
    for (let i = 0; i < 100 && transport.route(peer) === 'connecting'; i++) await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return {
    localId: transport.localId,
    open: (events) => transport.open(events),
    close: () => transport.close(),
    send: (to, data) => (to === peer && transport.route(peer) === 'connecting' ? direct().then(() => transport.send(to, data)) : transport.send(to, data)),
  }
}

async function runCases(cases: ContractCase[]) {
  const results: Array<{ name: string; ok: boolean; error?: string }> = []
  for (const c of cases) {
    try {
      await c.run()
      results.push({ name: c.name, ok: true })
    } catch (error) {
      results.push({ name: c.name, ok: false, error: String((error as Error).stack ?? error) })
    }
  }
  return results
}

/** Reads the cipher's records of `peerId`'s store (object store `keys`) as the engine keeps them. */
async function engineKeys(peerId: string, dbName = `intersession:${peerId}`) {
  const db = await openDB(dbName)
  const identity = (await db.get('keys', 'identity')) as { epoch: string; publicKey: Uint8Array; signing: CryptoKeyPair } | undefined
  const prekeys = (await db.get('keys', 'prekeys')) as { current: { agreement: CryptoKeyPair } } | undefined
  db.close()
  if (identity === undefined || prekeys === undefined) return undefined
  return {
    epoch: identity.epoch,
    identityKey: [...identity.publicKey].map((byte) => byte.toString(16).padStart(2, '0')).join(''),
    identityExtractable: identity.signing.privateKey.extractable,
    prekeyExtractable: prekeys.current.agreement.privateKey.extractable,
  }
}

declare global {
  interface Window {
    harness: typeof harness
  }
}
window.harness = harness
document.title = 'ready'
