import { describe, expect, it } from 'vitest'
import { isIlmError } from '../../src/core/errors.js'
import type { PeerId } from '../../src/core/ids.js'
import type { OutboxRow, StoreOp } from '../../src/core/store.js'
import { MemoryStore } from '../../src/storage/memory.js'
import { storeContract } from '../../src/testing/store-contract.js'
import { runContract } from '../helpers/contract.js'

const A = 'alice' as PeerId
const B = 'bob' as PeerId

function row(seq: number, extra: Partial<OutboxRow> = {}): OutboxRow {
  return { to: B, seq, id: `m${seq}` as OutboxRow['id'], contentKind: 'b', contents: new Uint8Array([seq]), createdAt: 1, ...extra }
}

const put = (seq: number, extra: Partial<OutboxRow> = {}): StoreOp => ({ op: 'putOutbox', row: row(seq, extra) })

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => expect.unreachable('expected a rejection'),
    (error: unknown) => error,
  )
}

describe('MemoryStore contract', () => {
  const shared = new MemoryStore()
  runContract(storeContract(() => new MemoryStore()))
  runContract(
    storeContract(() => shared),
    '(one shared store)',
  )
})

describe('MemoryStore', () => {
  it('an injected commit fault rejects with STORE_FAILED and applies nothing', async () => {
    const store = new MemoryStore()
    const handle = await store.open(A)
    await handle.commit([put(0)])
    const seen: (readonly StoreOp[])[] = []
    store.faults({ commit: (ops) => (seen.push(ops), true) })
    const error = await rejection(handle.commit([put(1), { op: 'ack', to: B, upTo: 0, at: 1 }]))
    expect(isIlmError(error, 'STORE_FAILED')).toBe(true)
    expect((error as Error).cause).toEqual(new Error('injected fault'))
    expect(seen).toHaveLength(1)
    store.faults(undefined)
    expect((await handle.readOutbox(B, 0, 10)).map((r) => r.seq)).toEqual([0])
    expect(await handle.findMessage(row(0).id)).toEqual({ where: 'outbox', to: B, seq: 0, expired: false })
  })

  it('an injected read fault rejects every read, and a selective fault only some commits', async () => {
    const store = new MemoryStore({ faults: { read: () => true, commit: (ops) => ops.some((op) => op.op === 'ack') } })
    const handle = await store.open(A)
    for (const call of [
      () => handle.load(),
      () => handle.readOutbox(B, 0, 1),
      () => handle.readInbox(B, 0, 1),
      () => handle.readExpired(0, 1),
      () => handle.nextExpiry(),
      () => handle.findMessage(row(0).id),
      () => handle.count(),
    ]) {
      expect(isIlmError(await rejection(call()), 'STORE_FAILED')).toBe(true)
    }
    await handle.commit([put(0)])
    expect(isIlmError(await rejection(handle.commit([{ op: 'ack', to: B, upTo: 0, at: 1 }])), 'STORE_FAILED')).toBe(true)
    store.faults(undefined)
    expect(await handle.count()).toEqual({ outbound: 1, inbound: 0 })
  })

  it('applies a commit before its promise settles', async () => {
    const handle = await new MemoryStore().open(A)
    void handle.commit([put(0)])
    const read = handle.readOutbox(B, 0, 10)
    expect((await read).map((r) => r.seq)).toEqual([0])
  })

  it('rejects an invalid local id', async () => {
    expect(isIlmError(await rejection(new MemoryStore().open('has space' as PeerId)), 'INVALID_PEER_ID')).toBe(true)
  })

  it('keeps paging O(limit) over a long stream acked from the bottom', async () => {
    const handle = await new MemoryStore().open(A)
    const n = 50_000
    for (let seq = 0; seq < n; seq += 1_000) {
      await handle.commit(Array.from({ length: 1_000 }, (_, i) => put(seq + i)))
    }
    // Half the rows stay, so a read that walks every row would take seconds.
    await handle.commit([{ op: 'ack', to: B, upTo: n / 2 - 1, at: 1 }])
    expect((await handle.readOutbox(B, 0, 3)).map((r) => r.seq)).toEqual([n / 2, n / 2 + 1, n / 2 + 2])
    expect(await handle.count()).toEqual({ outbound: n / 2, inbound: 0 })
    // Reading at the far end costs what reading at the near end costs (a row walk would be ~25,000x).
    const time = async (fromSeq: number): Promise<number> => {
      const started = performance.now()
      for (let i = 0; i < 5_000; i++) await handle.readOutbox(B, fromSeq, 2)
      return performance.now() - started
    }
    await time(n / 2) // warm-up
    const near = await time(n / 2)
    const far = await time(n - 5)
    expect(far / near).toBeLessThan(20)
  })

  it('keeps key order, and refuses a waiting stream a row that is not one above its highest', async () => {
    const handle = await new MemoryStore().open(A)
    await handle.commit([put(5), put(6)])
    for (const seq of [2, 5, 6, 8])
      await expect(handle.commit([put(seq, { id: `again${seq}` as OutboxRow['id'] })])).rejects.toMatchObject({ code: 'STORE_FAILED' })
    await handle.commit([put(7), put(8), put(9)])
    expect((await handle.readOutbox(B, 0, 10)).map((r) => r.seq)).toEqual([5, 6, 7, 8, 9])
    expect((await handle.readOutbox(B, 6, 2)).map((r) => r.seq)).toEqual([6, 7])
    expect((await handle.commit([{ op: 'ack', to: B, upTo: 9, at: 1 }])).map((r) => r.seq)).toEqual([5, 6, 7, 8, 9])
    // Nothing waits: any seq above the acknowledged ones.
    await handle.commit([put(12)])
    expect((await handle.readOutbox(B, 0, 10)).map((r) => r.seq)).toEqual([12])
  })

  it('keeps the expiry index right through expire and ack', async () => {
    const handle = await new MemoryStore().open(A)
    await handle.commit([put(0, { expiresAt: 5 }), put(1, { expiresAt: 3 }), put(2)])
    await handle.commit([
      { op: 'expire', to: B, seq: 1 },
      { op: 'expire', to: B, seq: 1 },
    ])
    expect(await handle.nextExpiry()).toBe(5)
    await handle.commit([{ op: 'ack', to: B, upTo: 2, at: 1 }])
    expect(await handle.nextExpiry()).toBeUndefined()
    expect(await handle.readExpired(100, 10)).toEqual([])
  })
})
