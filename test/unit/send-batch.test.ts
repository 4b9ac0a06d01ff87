/**
 * The sends of one turn commit as one writer intent (src/core/send-batch.ts):
 * one transaction, one stream counter op, and still one outcome per send.
 */
import { describe, expect, it } from 'vitest'
import { ILM, IlmError, MemoryNetwork, MemoryStore, type SendReceipt } from '../../src/index.js'
import type { PeerId } from '../../src/core/ids.js'
import type { PeerStore, Store, StoreOp } from '../../src/core/store.js'
import { ManualClock } from '../../src/testing/manual-clock.js'

/** A MemoryStore whose commits are recorded (their ops), and can be made to fail. */
class RecordingStore implements Store {
  readonly inner = new MemoryStore()
  readonly commits: StoreOp[][] = []
  failNext = false

  async open(localId: PeerId): Promise<PeerStore> {
    const handle = await this.inner.open(localId)
    return Object.assign(Object.create(handle) as PeerStore, {
      commit: (ops: readonly StoreOp[]) => {
        this.commits.push([...ops])
        if (this.failNext) {
          this.failNext = false
          return Promise.reject(new IlmError('STORE_FAILED', 'planted failure'))
        }
        return handle.commit(ops)
      },
    })
  }

  /** Commits since `from` that queued messages, as their putOutbox counts. */
  sendCommits(from = 0): number[] {
    return this.commits
      .slice(from)
      .map((ops) => ops.filter((op) => op.op === 'putOutbox').length)
      .filter((n) => n > 0)
  }
}

async function sender(limits: { maxPendingPerPeer?: number } = {}) {
  const net = new MemoryNetwork()
  const store = new RecordingStore()
  const ilm = await ILM.open({ store, transport: net.connect('a'), clock: new ManualClock(), limits: { deferCommitMs: 0, ...limits } })
  return { ilm, store, net }
}

type Settled = { ok: true; value: SendReceipt } | { ok: false; code: string }
const settleAll = (sends: Promise<SendReceipt>[]): Promise<Settled[]> =>
  Promise.all(
    sends.map((p) =>
      p.then(
        (value): Settled => ({ ok: true, value }),
        (error: unknown): Settled => ({ ok: false, code: (error as IlmError).code }),
      ),
    ),
  )
/** Each send's seq, or the code it was refused with. */
const outcomes = (results: readonly Settled[]): Array<number | string> => results.map((r) => (r.ok ? r.value.seq : r.code))

describe('sends of one turn: one intent, one commit', () => {
  it('commits a turn of sends in one transaction with one stream counter op, each with its own seq', async () => {
    const { ilm, store } = await sender()
    const from = store.commits.length
    const receipts = await Promise.all(Array.from({ length: 50 }, (_, i) => ilm.send('b', i)))
    expect(receipts.map((r) => r.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i))
    expect(store.sendCommits(from)).toEqual([50])
    const commit = store.commits.find((ops) => ops.some((op) => op.op === 'putOutbox'))!
    expect(commit.filter((op) => op.op === 'outStream')).toEqual([{ op: 'outStream', stream: { to: 'b', nextSeq: 50, ackedUpTo: -1 } }])
    expect(await ilm.pending()).toEqual({ outbound: 50, inbound: 0 })
    await ilm.close()
  })

  it('splits a larger turn into transactions of at most 1,024 sends, in order', async () => {
    const { ilm, store } = await sender({ maxPendingPerPeer: 10_000 })
    const from = store.commits.length
    const receipts = await Promise.all(Array.from({ length: 2500 }, (_, i) => ilm.send('b', i)))
    expect(receipts.map((r) => r.seq)).toEqual(Array.from({ length: 2500 }, (_, i) => i))
    const sizes = store.sendCommits(from)
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(2500)
    expect(Math.max(...sizes)).toBeLessThanOrEqual(1024)
    await ilm.close()
  })

  it('streams to two peers in one batch each get their own consecutive seqs and one counter op', async () => {
    const { ilm, store } = await sender()
    const from = store.commits.length
    const sends = ['b', 'c', 'b', 'c', 'b'].map((to, i) => ilm.send(to, i))
    expect((await Promise.all(sends)).map((r) => r.seq)).toEqual([0, 0, 1, 1, 2])
    const commit = store.commits.slice(from).find((ops) => ops.some((op) => op.op === 'putOutbox'))!
    expect(commit.flatMap((op) => (op.op === 'outStream' ? [op.stream] : []))).toEqual([
      { to: 'b', nextSeq: 3, ackedUpTo: -1 },
      { to: 'c', nextSeq: 2, ackedUpTo: -1 },
    ])
    await ilm.close()
  })
})

describe('the stream counter op of a send commit', () => {
  it('is left out once the stream has one and only nextSeq moves: a reopened engine goes on above the rows', async () => {
    const { ilm, store, net } = await sender()
    await Promise.all([0, 1, 2].map((i) => ilm.send('b', i)))
    const from = store.commits.length
    expect((await Promise.all([3, 4].map((i) => ilm.send('b', i)))).map((r) => r.seq)).toEqual([3, 4])
    const later = store.commits.slice(from).filter((ops) => ops.some((op) => op.op === 'putOutbox'))
    expect(later).toHaveLength(1)
    expect(later[0]?.filter((op) => op.op === 'outStream')).toEqual([])
    await ilm.close()
    const again = await ILM.open({ store, transport: net.connect('a'), clock: new ManualClock(), limits: { deferCommitMs: 0 } })
    expect((await again.send('b', 5)).seq).toBe(5)
    expect(await again.pending()).toEqual({ outbound: 6, inbound: 0 })
    await again.close()
  })
})

describe('per-message failure within a batch', () => {
  it('QUEUE_FULL rejects only the sends past maxPendingPerPeer; the rest commit', async () => {
    const { ilm, store } = await sender({ maxPendingPerPeer: 3 })
    const from = store.commits.length
    const results = await settleAll(['b', 'b', 'c', 'b', 'b'].map((to, i) => ilm.send(to, i)))
    expect(outcomes(results)).toEqual([0, 1, 0, 2, 'QUEUE_FULL'])
    expect(store.sendCommits(from)).toEqual([4])
    expect(await ilm.pending()).toEqual({ outbound: 4, inbound: 0 })
    await ilm.close()
  })

  it('an id repeated in the batch: the same peer shares one row and outcome, another peer is DUPLICATE_ID alone', async () => {
    const { ilm } = await sender()
    const results = await settleAll([
      ilm.send('b', 'x', { id: 'twin' }),
      ilm.send('b', 'y'),
      ilm.send('b', 'x', { id: 'twin' }),
      ilm.send('c', 'x', { id: 'twin' }),
      ilm.send('b', 'z'),
    ])
    expect(outcomes(results)).toEqual([0, 1, 0, 'DUPLICATE_ID', 2])
    expect(await ilm.pending()).toEqual({ outbound: 3, inbound: 0 })
    await ilm.close()
  })

  it('an id the store holds sets aside only its sends: the first receipt, or DUPLICATE_ID for another peer; the others commit', async () => {
    const { ilm, store } = await sender()
    const first = await ilm.send('b', 'first', { id: 'kept' })
    await ilm.send('c', 'other', { id: 'elsewhere' })
    const from = store.commits.length
    const results = await settleAll([
      ilm.send('b', 'a'),
      ilm.send('b', 'again', { id: 'kept' }),
      ilm.send('b', 'stolen', { id: 'elsewhere' }),
      ilm.send('b', 'c'),
    ])
    expect(outcomes(results)).toEqual([1, 0, 'DUPLICATE_ID', 2])
    expect(results[1]).toEqual({ ok: true, value: first })
    // The refused batch, then the same batch without the taken ids.
    expect(store.sendCommits(from)).toEqual([4, 2])
    expect(await ilm.pending()).toEqual({ outbound: 4, inbound: 0 })
    await ilm.close()
  })

  it('a failed commit rejects every send of the batch and changes nothing; the next batch commits', async () => {
    const { ilm, store } = await sender()
    const errors: IlmError[] = []
    ilm.on('error', (e) => void errors.push(e))
    store.failNext = true
    const failed = await settleAll([ilm.send('b', 1), ilm.send('b', 2)])
    expect(failed).toEqual([
      { ok: false, code: 'STORE_FAILED' },
      { ok: false, code: 'STORE_FAILED' },
    ])
    expect(errors.map((e) => e.code)).toEqual(['STORE_FAILED'])
    expect((await ilm.send('b', 3)).seq).toBe(0)
    expect(await ilm.pending()).toEqual({ outbound: 1, inbound: 0 })
    await ilm.close()
  })

  it('close() commits the sends already queued, and later ones reject CLOSED', async () => {
    const { ilm, store } = await sender()
    const queued = Array.from({ length: 5 }, (_, i) => ilm.send('b', i))
    const closing = ilm.close()
    await expect(ilm.send('b', 'late')).rejects.toMatchObject({ code: 'CLOSED' })
    expect((await Promise.all(queued)).map((r) => r.seq)).toEqual([0, 1, 2, 3, 4])
    await closing
    expect(store.sendCommits()).toEqual([5])
  })
})
