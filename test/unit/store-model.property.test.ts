/**
 * IndexedDBStore against MemoryStore, the model: random schedules of commits
 * (sends, acks above and below the rows there are, expiries, mailbox releases,
 * prunes, ids used twice, seqs already settled, received rows in runs, out
 * of line or not, processed rows deleted from below, several ops in one commit,
 * sends in runs, in line or not)
 * applied to both. After every commit both must agree on its outcome (the
 * error code, or the receipts it returned) and on everything a reader sees:
 * each stream's queue, the counts, every id's lookup, the expired rows and the
 * next expiry. IndexedDB's schema 3 keeps receipts as outbox rows below a
 * per-stream watermark; the model keeps them apart: so this checks the
 * watermark, the ack log and the range prunes against the plain semantics;
 * and it keeps the rows a commit receives, or queues, on a stream in one
 * record: an inbox record straddling a processed mark stays, its rows below
 * the stream's floor hidden; an outbox record is trimmed by a prune and
 * rewritten for an ack, an expiry or a release: so this checks the records
 * against plain rows.
 */
import 'fake-indexeddb/auto'
import { IDBFactory } from 'fake-indexeddb'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { Epoch, MessageId, PeerId } from '../../src/core/ids.js'
import type { InboxRow, OutboxRow, PeerStore, StoreOp } from '../../src/core/store.js'
import { IndexedDBStore } from '../../src/storage/indexeddb.js'
import { MemoryStore } from '../../src/storage/memory.js'

const PEERS = ['bob', 'carol'] as PeerId[]

/** One op of a commit, resolved against the streams' counters when it runs. */
type Planned =
  /** `n` sends to `peer`, from its next seq shifted by `skew` (0: in line). */
  | { readonly t: 'send'; readonly peer: number; readonly big: boolean; readonly ttl: boolean; readonly n: number; readonly skew: number }
  | { readonly t: 'sendTakenId'; readonly peer: number; readonly pick: number }
  | { readonly t: 'sendSettledSeq'; readonly peer: number; readonly pick: number }
  | { readonly t: 'ack'; readonly peer: number; readonly ahead: number }
  /** The `n` seqs of `peer` from its next seq less 1 less `back`, downwards. */
  | { readonly t: 'expire' | 'release'; readonly peer: number; readonly back: number; readonly n: number }
  | { readonly t: 'prune'; readonly age: number }
  /** `n` received rows from `peer`, from its next index shifted by `skew` (0: in line). */
  | { readonly t: 'receive'; readonly peer: number; readonly n: number; readonly skew: number }
  /** The rows of `peer` below its next index less `back` processed (deleted). */
  | { readonly t: 'process'; readonly peer: number; readonly back: number }

const peer = fc.nat(PEERS.length - 1)
const skew = fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, fc.integer({ min: -2, max: 2 }))
const planned: fc.Arbitrary<Planned> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({ t: fc.constant('send' as const), peer, big: fc.boolean(), ttl: fc.boolean(), n: fc.integer({ min: 1, max: 4 }), skew }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('sendTakenId' as const), peer, pick: fc.nat(50) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('sendSettledSeq' as const), peer, pick: fc.nat(1_000) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('ack' as const), peer, ahead: fc.integer({ min: -3, max: 3 }) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constantFrom('expire' as const, 'release' as const),
      peer,
      back: fc.integer({ min: 0, max: 6 }),
      n: fc.integer({ min: 1, max: 3 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('prune' as const), age: fc.integer({ min: 0, max: 60 }) }) },
  {
    weight: 4,
    arbitrary: fc.record({
      t: fc.constant('receive' as const),
      peer,
      n: fc.integer({ min: 1, max: 4 }),
      skew,
    }),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('process' as const), peer, back: fc.integer({ min: 0, max: 5 }) }) },
)

/** The schedule's memory: what it queued, so that ops can aim at real rows and ids. */
class Plan {
  readonly next = PEERS.map(() => 0)
  /** Per stream, the inbox index the next received row gets. */
  readonly inNext = PEERS.map(() => 0)
  /** Per stream, the highest seq an ack was aimed at so far (acks aim around it). */
  readonly acked = PEERS.map(() => -1)
  readonly ids: MessageId[] = []
  now = 1_000
  #fresh = 0

  /** The store ops of one commit, and whether it may fail two ways at once (a taken id and a taken or settled seq). */
  ops(commit: readonly Planned[]): { ops: StoreOp[]; ambiguous: boolean } {
    const next = [...this.next]
    const inNext = [...this.inNext]
    const ops: StoreOp[] = []
    let takenId = false
    let oldSeq = false
    let skewed = false
    for (const p of commit) {
      this.now += 1
      switch (p.t) {
        case 'send': {
          const to = PEERS[p.peer]!
          const first = Math.max(0, next[p.peer]! + p.skew)
          oldSeq ||= first !== next[p.peer]
          for (let seq = first; seq < first + p.n; seq++) {
            const contents = new Uint8Array(p.big ? 300 : 8).fill(seq & 0xff)
            ops.push({ op: 'putOutbox', row: this.#row(to, seq, this.#newId(), contents, p.ttl ? this.now + 30 : undefined) })
          }
          next[p.peer] = Math.max(next[p.peer]!, first + p.n)
          break
        }
        case 'sendTakenId': {
          const id = this.ids[p.pick % Math.max(1, this.ids.length)]
          if (id === undefined) break
          takenId = true
          ops.push({ op: 'putOutbox', row: this.#row(PEERS[p.peer]!, next[p.peer]!, id, new Uint8Array(8), undefined) })
          next[p.peer]!++
          break
        }
        case 'sendSettledSeq': {
          // Any seq already used: queued, acknowledged, or acknowledged and pruned.
          if (next[p.peer] === 0) break
          const seq = p.pick % next[p.peer]!
          oldSeq = true
          ops.push({ op: 'putOutbox', row: this.#row(PEERS[p.peer]!, seq, this.#newId(), new Uint8Array(8), undefined) })
          break
        }
        case 'ack': {
          const upTo = Math.max(-1, this.acked[p.peer]! + p.ahead)
          ops.push({ op: 'ack', to: PEERS[p.peer]!, upTo, at: this.now })
          this.acked[p.peer] = Math.max(this.acked[p.peer]!, upTo)
          break
        }
        case 'expire':
        case 'release': {
          for (let seq = next[p.peer]! - 1 - p.back; seq > next[p.peer]! - 1 - p.back - p.n && seq >= 0; seq--) {
            ops.push(p.t === 'expire' ? { op: 'expire', to: PEERS[p.peer]!, seq } : { op: 'release', to: PEERS[p.peer]!, seq })
          }
          break
        }
        case 'prune':
          ops.push({ op: 'pruneReceipts', before: this.now - p.age })
          break
        case 'receive': {
          const first = Math.max(0, inNext[p.peer]! + p.skew)
          skewed ||= first !== inNext[p.peer]
          for (let index = first; index < first + p.n; index++) ops.push({ op: 'putInbox', row: this.#inRow(PEERS[p.peer]!, index) })
          inNext[p.peer] = Math.max(inNext[p.peer]!, first + p.n)
          break
        }
        case 'process':
          ops.push({ op: 'deleteInbox', from: PEERS[p.peer]!, below: Math.max(0, inNext[p.peer]! - p.back) })
          break
      }
    }
    // A taken id and another refusal in one commit: which one a store reports first is its own business.
    return { ops, ambiguous: takenId && (oldSeq || skewed) }
  }

  /** The commit of `ops` applied: the counters move as its rows say. */
  applied(ops: readonly StoreOp[]): void {
    for (const op of ops) {
      if (op.op === 'putOutbox') this.next[PEERS.indexOf(op.row.to)] = Math.max(this.next[PEERS.indexOf(op.row.to)]!, op.row.seq + 1)
      if (op.op === 'putInbox') this.inNext[PEERS.indexOf(op.row.from)] = Math.max(this.inNext[PEERS.indexOf(op.row.from)]!, op.row.index + 1)
    }
  }

  #inRow(from: PeerId, index: number): InboxRow {
    const contents = new Uint8Array([index & 0xff, (index >> 8) & 0xff])
    return {
      from,
      index,
      id: `in-${from}-${index}` as MessageId,
      epoch: '000000001.abcdef' as Epoch,
      seq: index,
      contentKind: 'b',
      contents,
      receivedAt: this.now,
    }
  }

  #newId(): MessageId {
    const id = `m${this.#fresh++}` as MessageId
    this.ids.push(id)
    return id
  }

  #row(to: PeerId, seq: number, id: MessageId, contents: Uint8Array, expiresAt: number | undefined): OutboxRow {
    return { to, seq, id, contentKind: 'b', contents, createdAt: this.now, ...(expiresAt !== undefined && { expiresAt }) }
  }
}

/** Everything a reader of `store` can see, for the ids the schedule used. */
async function observe(store: PeerStore, ids: readonly MessageId[]): Promise<unknown> {
  return {
    queues: await Promise.all(PEERS.map((to) => store.readOutbox(to, 0, 1_000))),
    queuePages: await Promise.all(PEERS.map((to) => store.readOutbox(to, 3, 2))),
    inboxes: await Promise.all(PEERS.map((from) => store.readInbox(from, 0, 1_000))),
    inboxPages: await Promise.all(PEERS.map((from) => store.readInbox(from, 3, 2))),
    count: await store.count(),
    lookups: await Promise.all(ids.map((id) => store.findMessage(id))),
    // The contract leaves the order of expired rows open.
    expired: [...(await store.readExpired(Number.MAX_SAFE_INTEGER, 1_000))].sort((x, y) => x.to.localeCompare(y.to) || x.seq - y.seq),
    nextExpiry: await store.nextExpiry(),
  }
}

async function outcome(store: PeerStore, ops: readonly StoreOp[]): Promise<{ ok: true; receipts: unknown } | { ok: false; code: unknown }> {
  try {
    return { ok: true, receipts: await store.commit(ops) }
  } catch (error) {
    return { ok: false, code: (error as { code?: unknown }).code }
  }
}

let identities = 0

describe('IndexedDBStore against the MemoryStore model', () => {
  it('agrees on every outcome and every read over random schedules of commits', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(planned, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 25 }), async (commits) => {
        const id = `model-${identities++}` as PeerId
        const model = await new MemoryStore().open(id)
        const real = await new IndexedDBStore({ indexedDB: new IDBFactory(), pageSize: 4 }).open(id)
        const plan = new Plan()
        for (const commit of commits) {
          const { ops, ambiguous } = plan.ops(commit)
          const [expected, got] = [await outcome(model, ops), await outcome(real, ops)]
          if (ambiguous && !expected.ok && !got.ok) expect(['DUPLICATE_ID', 'STORE_FAILED']).toContain(got.code)
          else expect(got).toEqual(expected)
          if (expected.ok) plan.applied(ops)
          expect(await observe(real, plan.ids)).toEqual(await observe(model, plan.ids))
        }
        await real.close()
      }),
      {
        numRuns: 200,
        examples: [
          // Found in CI: a queued row acknowledged, its receipt pruned, and its id queued again, all in one commit.
          [
            [
              [
                { t: 'send', peer: 0, big: false, ttl: false, n: 1, skew: 0 },
                { t: 'ack', peer: 0, ahead: 0 },
              ],
              [
                { t: 'ack', peer: 0, ahead: 1 },
                { t: 'prune', age: 0 },
                { t: 'sendTakenId', peer: 0, pick: 0 },
              ],
              [{ t: 'ack', peer: 0, ahead: 0 }],
            ],
          ],
        ],
      },
    )
  }, 120_000)
})
