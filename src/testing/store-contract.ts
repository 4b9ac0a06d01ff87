import { isIlmError } from '../core/errors.js'
import type { IlmErrorCode } from '../core/errors.js'
import { makeEpoch } from '../core/ids.js'
import type { MessageId, PeerId } from '../core/ids.js'
import type { InboxRow, OutboxRow, PeerStore, Receipt, Store, StoreOp } from '../core/store.js'
import { check, checkEqual, checkRejects } from './contract.js'
import type { ContractCase } from './contract.js'

/**
 * The contract every {@link Store} must keep (see {@link PeerStore}), as a
 * runner-agnostic list of cases. `makeStore` may return the same store for
 * every case: each case uses identities of its own.
 *
 * @example
 * for (const c of storeContract(() => new MemoryStore())) it(c.name, () => c.run())
 */
export function storeContract(makeStore: () => Store | Promise<Store>): ContractCase[] {
  const open = async (name: string): Promise<{ store: Store; id: PeerId; handle: PeerStore }> => {
    const store = await makeStore()
    const id = uniquePeer(name)
    return { store, id, handle: await store.open(id) }
  }
  const cases: Record<string, () => Promise<void>> = {
    'a fresh identity is empty': async () => {
      const { handle } = await open('fresh')
      checkEqual(await handle.load(), { meta: undefined, outStreams: [], inStreams: [] }, 'load')
      checkEqual(await handle.count(), { outbound: 0, inbound: 0 }, 'count')
      checkEqual(await handle.readOutbox(B, 0, 10), [], 'readOutbox')
      checkEqual(await handle.readInbox(B, 0, 10), [], 'readInbox')
      checkEqual(await handle.readExpired(Number.MAX_SAFE_INTEGER, 10), [], 'readExpired')
      checkEqual(await handle.nextExpiry(), undefined, 'nextExpiry')
      checkEqual(await handle.findMessage(msgId('none')), undefined, 'findMessage')
    },

    'meta and stream counters round-trip and upsert': async () => {
      const { handle } = await open('meta')
      const meta = { epoch: makeEpoch(1_700_000_000_000, 'abcdef'), createdAt: 1_700_000_000_000 }
      const inB = { from: B, epoch: makeEpoch(5, 'zzzzzz'), receivedUpTo: 4, nextIndex: 7, processedBelow: 2 }
      await handle.commit([
        { op: 'meta', meta },
        { op: 'outStream', stream: { to: B, nextSeq: 3, ackedUpTo: -1 } },
        { op: 'outStream', stream: { to: C, nextSeq: 9, ackedUpTo: 5 } },
        { op: 'inStream', stream: inB },
      ])
      await handle.commit([{ op: 'outStream', stream: { to: B, nextSeq: 4, ackedUpTo: 0 } }])
      const snap = await handle.load()
      checkEqual(snap.meta, meta, 'meta')
      checkEqual(
        byKey(snap.outStreams, (s) => s.to),
        [
          { to: B, nextSeq: 4, ackedUpTo: 0 },
          { to: C, nextSeq: 9, ackedUpTo: 5 },
        ],
        'outStreams (one per peer, last write wins)',
      )
      checkEqual(snap.inStreams, [inB], 'inStreams')
    },

    "the cipher's records round-trip as copies, commit atomically with other ops, and survive a reopen": async () => {
      const { store, id, handle } = await open('keys')
      checkEqual(await handle.readKeys(), new Map(), 'a fresh identity has no records')
      const pin = { pinned: { peer: 'b', identityKey: new Uint8Array([1, 2, 3]) } }
      await handle.commit([
        { op: 'putKey', name: 'identity', value: { epoch: 'e1', publicKey: new Uint8Array(32).fill(7) } },
        { op: 'putKey', name: 'peer:b', value: pin },
        { op: 'outStream', stream: { to: B, nextSeq: 1, ackedUpTo: -1 } },
      ])
      const read = await handle.readKeys()
      checkEqual([...read.keys()].sort(), ['identity', 'peer:b'], 'names')
      checkEqual(read.get('peer:b'), pin, 'value')
      ;(read.get('peer:b') as typeof pin).pinned.identityKey[0] = 99
      checkEqual((await handle.readKeys()).get('peer:b'), pin, 'a read is a copy')
      // One op refused: nothing of the commit lands, the record put beside it neither.
      const refused = await checkRejects(
        handle.commit([
          { op: 'putKey', name: 'peer:c', value: { pinned: 1 } },
          { op: 'putOutbox', row: { to: B, seq: -5 } as unknown as OutboxRow },
        ]),
        'a commit with a malformed op',
      )
      check(isIlmError(refused, 'STORE_FAILED'), 'refused with STORE_FAILED')
      check(!(await handle.readKeys()).has('peer:c'), 'the refused commit put no record')
      await handle.commit([
        { op: 'deleteKey', name: 'identity' },
        { op: 'putKey', name: 'peer:b', value: { pinned: 2 } },
      ])
      const again = await (await store.open(id)).readKeys()
      checkEqual([...again.entries()], [['peer:b', { pinned: 2 }]], 'after a delete, an overwrite and a reopen')
    },

    'readOutbox pages by fromSeq and limit in seq order': async () => {
      const { handle } = await open('page')
      const rows = range(0, 10).map((seq) => outRow(B, seq))
      await handle.commit(rows.slice(0, 4).map((row) => put(row)))
      await handle.commit(rows.slice(4).map((row) => put(row)))
      await handle.commit([put(outRow(C, 0))])
      checkEqual(await handle.readOutbox(B, 0, 100), rows, 'all rows')
      checkEqual(await handle.readOutbox(B, 3, 4), rows.slice(3, 7), 'fromSeq 3, limit 4')
      checkEqual(await handle.readOutbox(B, 8, 10), rows.slice(8), 'past the end')
      checkEqual(await handle.readOutbox(B, 10, 5), [], 'fromSeq above the highest')
      checkEqual(await handle.readOutbox(B, 0, 0), [], 'limit 0')
      checkEqual(await handle.readOutbox(B, -1, 1), rows.slice(0, 1), 'fromSeq -1')
      checkEqual(await handle.readOutbox(C, 0, 10), [outRow(C, 0)], 'other stream')
      checkEqual(await handle.readOutbox(D, 0, 10), [], 'unknown stream')
      await handle.commit([{ op: 'ack', to: B, upTo: 5, at: 1 }])
      checkEqual(await handle.readOutbox(B, 0, 2), rows.slice(6, 8), 'fromSeq below the lowest starts at the lowest')
    },

    'ack removes exactly the rows <= upTo and returns their receipts in order': async () => {
      const { handle } = await open('ack')
      await handle.commit(range(0, 6).map((seq) => put(outRow(B, seq))))
      await handle.commit([put(outRow(C, 0))])
      const receipts = await handle.commit([{ op: 'ack', to: B, upTo: 2, at: 500 }])
      checkEqual(
        receipts,
        range(0, 3).map((seq) => receipt(B, seq, 'delivered', 500)),
        'receipts',
      )
      checkEqual(seqs(await handle.readOutbox(B, 0, 100)), [3, 4, 5], 'rows left')
      checkEqual(seqs(await handle.readOutbox(C, 0, 100)), [0], 'other stream untouched')
      checkEqual(await handle.count(), { outbound: 4, inbound: 0 }, 'count')
      checkEqual(await handle.commit([{ op: 'ack', to: B, upTo: 2, at: 600 }]), [], 'acking again writes nothing')
      checkEqual(await handle.commit([{ op: 'ack', to: D, upTo: 9, at: 600 }]), [], 'ack of an unknown stream')
      const all = await handle.commit([{ op: 'ack', to: B, upTo: 1_000, at: 700 }])
      checkEqual(seqs(all), [3, 4, 5], 'upTo above the highest removes the rest')
      checkEqual(await handle.readOutbox(B, 0, 100), [], 'stream empty')
    },

    'an ack settles the rows it finds: rows queued above them wait, and no row is queued at or below them again': async () => {
      const { handle } = await open('settled')
      await handle.commit([put(outRow(B, 0)), put(outRow(B, 1))])
      checkEqual(seqs(await handle.commit([{ op: 'ack', to: B, upTo: 5, at: 10 }])), [0, 1], 'an ack above the rows there are')
      await handle.commit([put(outRow(B, 2)), put(outRow(B, 3))])
      checkEqual(seqs(await handle.readOutbox(B, 0, 10)), [2, 3], 'rows queued after it, above the rows it settled, wait')
      checkEqual(await handle.count(), { outbound: 2, inbound: 0 }, 'count')
      checkEqual(seqs(await handle.commit([{ op: 'ack', to: B, upTo: 2, at: 20 }])), [2], 'a later ack settles them')
      await handle.commit([{ op: 'pruneReceipts', before: 1e15 }])
      await checkCode(handle.commit([put(outRow(B, 1, { id: msgId('again_b1') }))]), 'STORE_FAILED', 'a seq settled and pruned')
      const before = await state(handle)
      const ops: StoreOp[] = [
        put(outRow(C, 0)),
        { op: 'ack', to: C, upTo: 0, at: 30 },
        { op: 'pruneReceipts', before: 1e15 },
        put(outRow(C, 0, { id: msgId('again_c0') })),
      ]
      await checkCode(handle.commit(ops), 'STORE_FAILED', 'a seq settled and pruned earlier in the same commit')
      checkEqual(await state(handle), before, 'the refused commit changed nothing')
      checkEqual(seqs(await handle.readOutbox(B, 0, 10)), [3], 'the stream goes on above')
      await handle.commit([{ op: 'ack', to: D, upTo: 0, at: 40 }, put(outRow(D, 0))])
      checkEqual(await handle.count(), { outbound: 2, inbound: 0 }, 'a row queued after an ack that found nothing waits')
    },

    'receipts of several ack ops come back in op order': async () => {
      const { handle } = await open('ack-order')
      await handle.commit([put(outRow(B, 0)), put(outRow(B, 1)), put(outRow(C, 0)), put(outRow(C, 1))])
      const receipts = await handle.commit([
        { op: 'ack', to: C, upTo: 1, at: 10 },
        { op: 'ack', to: B, upTo: 0, at: 11 },
      ])
      checkEqual(receipts, [receipt(C, 0, 'delivered', 10), receipt(C, 1, 'delivered', 10), receipt(B, 0, 'delivered', 11)], 'receipts')
    },

    'expire drops contents, keeps the row, and acks as expired': async () => {
      const { handle } = await open('expire')
      const row = outRow(B, 0, { expiresAt: 100 })
      await handle.commit([put(row), put(outRow(B, 1))])
      await handle.commit([{ op: 'expire', to: B, seq: 0 }])
      const [stored] = await handle.readOutbox(B, 0, 1)
      checkEqual(stored, { ...row, contents: new Uint8Array(0), expired: true }, 'expired row')
      checkEqual(await handle.count(), { outbound: 2, inbound: 0 }, 'expired rows still count')
      checkEqual(await handle.readExpired(1_000, 10), [], 'an expired row is not due again')
      checkEqual(await handle.nextExpiry(), undefined, 'nor is it the next expiry')
      checkEqual(await handle.findMessage(row.id), { where: 'outbox', to: B, seq: 0, expired: true }, 'findMessage')
      await handle.commit([{ op: 'expire', to: B, seq: 7 }])
      await handle.commit([{ op: 'expire', to: D, seq: 0 }])
      checkEqual(seqs(await handle.readOutbox(B, 0, 10)), [0, 1], 'expiring a missing row is a no-op')
      const receipts = await handle.commit([{ op: 'ack', to: B, upTo: 1, at: 200 }])
      checkEqual(receipts, [receipt(B, 0, 'expired', 200), receipt(B, 1, 'delivered', 200)], 'receipts')
    },

    "a snapshot's nextSeq is one above the stream's highest outbox row": async () => {
      const { handle } = await open('implied-next')
      await handle.commit([put(outRow(B, 0)), outStream(B, 1)])
      await handle.commit([put(outRow(B, 1)), put(outRow(B, 2))])
      checkEqual((await handle.load()).outStreams, [{ to: B, nextSeq: 3, ackedUpTo: -1 }], 'rows queued without the op')
      await handle.commit([
        { op: 'ack', to: B, upTo: 2, at: 5 },
        { op: 'outStream', stream: { to: B, nextSeq: 3, ackedUpTo: 2 } },
      ])
      await handle.commit([put(outRow(B, 3))])
      checkEqual((await handle.load()).outStreams, [{ to: B, nextSeq: 4, ackedUpTo: 2 }], 'queued after an ack')
      await handle.commit([{ op: 'pruneReceipts', before: 10 }])
      checkEqual((await handle.load()).outStreams, [{ to: B, nextSeq: 4, ackedUpTo: 2 }], 'receipts pruned')
      await handle.commit([
        { op: 'ack', to: B, upTo: 3, at: 20 },
        { op: 'outStream', stream: { to: B, nextSeq: 4, ackedUpTo: 3 } },
      ])
      await handle.commit([{ op: 'pruneReceipts', before: 30 }])
      checkEqual((await handle.load()).outStreams, [{ to: B, nextSeq: 4, ackedUpTo: 3 }], 'no row left: the record says')
      await handle.commit([put(outRow(C, 0))])
      checkEqual((await handle.load()).outStreams, [{ to: B, nextSeq: 4, ackedUpTo: 3 }], 'rows without a record make no stream')
    },

    'release drops contents and keeps the row; a failed expiry keeps its reason through the receipt': async () => {
      const { handle } = await open('release')
      const row = outRow(B, 0)
      await handle.commit([put(row), put(outRow(B, 1)), put(outRow(B, 2, { expiresAt: 100 }))])
      await handle.commit([
        { op: 'release', to: B, seq: 0 },
        { op: 'release', to: B, seq: 9 },
        { op: 'outStream', stream: { to: B, nextSeq: 3, ackedUpTo: -1, storedUpTo: 0 } },
      ])
      checkEqual((await handle.readOutbox(B, 0, 1))[0], { ...row, contents: new Uint8Array(0) }, 'released row')
      checkEqual((await handle.load()).outStreams, [{ to: B, nextSeq: 3, ackedUpTo: -1, storedUpTo: 0 }], 'storedUpTo persists')
      await handle.commit([
        { op: 'expire', to: B, seq: 1, reason: 'full_bytes' },
        { op: 'expire', to: B, seq: 2, reason: 'retention' },
      ])
      checkEqual((await handle.readOutbox(B, 1, 1))[0], { ...outRow(B, 1), contents: new Uint8Array(0), expired: true, failed: 'full_bytes' }, 'failed row')
      checkEqual(await handle.readExpired(1_000, 10), [], 'a failed row is not due to expire')
      checkEqual(await handle.findMessage(outRow(B, 1).id), { where: 'outbox', to: B, seq: 1, expired: true, failed: 'full_bytes' }, 'findMessage')
      const receipts = await handle.commit([{ op: 'ack', to: B, upTo: 2, at: 300 }])
      checkEqual(
        receipts,
        [receipt(B, 0, 'delivered', 300), { ...receipt(B, 1, 'failed', 300), reason: 'full_bytes' }, { ...receipt(B, 2, 'failed', 300), reason: 'retention' }],
        'receipts',
      )
      checkEqual(
        await handle.findMessage(outRow(B, 2).id),
        { where: 'receipt', receipt: { ...receipt(B, 2, 'failed', 300), reason: 'retention' } },
        'failed receipt',
      )
    },

    'readExpired and nextExpiry follow expiresAt of unexpired rows': async () => {
      const { handle } = await open('due')
      await handle.commit([
        put(outRow(B, 0, { expiresAt: 100 })),
        put(outRow(B, 1)),
        put(outRow(B, 2, { expiresAt: 300 })),
        put(outRow(C, 0, { expiresAt: 50 })),
      ])
      checkEqual(await handle.nextExpiry(), 50, 'nextExpiry')
      checkEqual(await handle.readExpired(49, 10), [], 'nothing due yet')
      checkEqual(await handle.readExpired(50, 10), [outRow(C, 0, { expiresAt: 50 })], 'due at exactly expiresAt')
      checkEqual(ids(await handle.readExpired(299, 10)).sort(), [outRow(B, 0).id, outRow(C, 0).id].sort(), 'two due')
      checkEqual((await handle.readExpired(1_000, 2)).length, 2, 'limit')
      checkEqual((await handle.readExpired(1_000, 10)).length, 3, 'rows without expiresAt are never due')
      await handle.commit([{ op: 'ack', to: C, upTo: 0, at: 1 }])
      checkEqual(await handle.nextExpiry(), 100, 'after acking the earliest')
      await handle.commit([{ op: 'expire', to: B, seq: 0 }])
      checkEqual(await handle.nextExpiry(), 300, 'after expiring the earliest')
    },

    'inbox rows are put, paged by index and deleted': async () => {
      const { handle } = await open('inbox')
      const rows = range(0, 6).map((index) => inRow(B, index))
      await handle.commit(rows.map((row) => ({ op: 'putInbox', row })))
      await handle.commit([{ op: 'putInbox', row: inRow(C, 0) }])
      checkEqual(await handle.readInbox(B, 0, 100), rows, 'all rows')
      checkEqual(await handle.readInbox(B, 2, 3), rows.slice(2, 5), 'fromIndex 2, limit 3')
      checkEqual(await handle.readInbox(B, 6, 3), [], 'fromIndex above the highest')
      checkEqual(await handle.count(), { outbound: 0, inbound: 7 }, 'count')
      await handle.commit([{ op: 'deleteInbox', from: B, below: 2 }])
      checkEqual(indexes(await handle.readInbox(B, 0, 100)), [2, 3, 4, 5], 'rows left')
      checkEqual(indexes(await handle.readInbox(B, 3, 2)), [3, 4], 'paging from inside')
      checkEqual(await handle.readInbox(C, 0, 10), [inRow(C, 0)], 'other stream untouched')
      await handle.commit([{ op: 'deleteInbox', from: B, below: 1 }])
      checkEqual(await handle.count(), { outbound: 0, inbound: 5 }, 'deleting below what is left is a no-op')
      await handle.commit([{ op: 'deleteInbox', from: B, below: 99 }])
      checkEqual(await handle.readInbox(B, 0, 100), [], 'deleting above the highest empties the stream')
      checkEqual(await handle.count(), { outbound: 0, inbound: 1 }, 'count after')
    },

    'rows stored together can be deleted in part, in any later commit or the same one': async () => {
      const { handle } = await open('inbox-part')
      await handle.commit(range(0, 6).map((index) => ({ op: 'putInbox', row: inRow(B, index) })))
      await handle.commit([{ op: 'deleteInbox', from: B, below: 3 }])
      checkEqual(
        await handle.readInbox(B, 0, 100),
        range(3, 6).map((index) => inRow(B, index)),
        'the rows above',
      )
      checkEqual(await handle.count(), { outbound: 0, inbound: 3 }, 'count')
      checkEqual(indexes(await handle.readInbox(B, 4, 1)), [4], 'paging')
      await handle.commit([
        { op: 'putInbox', row: inRow(B, 6) },
        { op: 'putInbox', row: inRow(B, 7) },
        { op: 'deleteInbox', from: B, below: 4 },
        { op: 'putInbox', row: inRow(B, 8) },
        { op: 'deleteInbox', from: B, below: 7 },
        { op: 'putInbox', row: inRow(B, 9) },
      ])
      checkEqual(
        await handle.readInbox(B, 0, 100),
        range(7, 10).map((index) => inRow(B, index)),
        'deletes between puts of one commit',
      )
      checkEqual(await handle.count(), { outbound: 0, inbound: 3 }, 'count after')
    },

    "a stream's inbox rows are contiguous: each one above the highest stored": async () => {
      const { handle } = await open('inbox-contiguous')
      await handle.commit([
        { op: 'putInbox', row: inRow(B, 5) },
        { op: 'putInbox', row: inRow(C, 0) },
      ])
      const before = await state(handle)
      const refused: StoreOp[][] = [
        [{ op: 'putInbox', row: inRow(B, 7) }],
        [{ op: 'putInbox', row: inRow(B, 5) }],
        [{ op: 'putInbox', row: inRow(B, 4) }],
        [
          { op: 'putInbox', row: inRow(B, 6) },
          { op: 'putInbox', row: inRow(B, 8) },
        ],
        [
          { op: 'putInbox', row: inRow(B, 6) },
          { op: 'putInbox', row: inRow(B, 6) },
        ],
        [
          { op: 'putInbox', row: inRow(B, 6) },
          { op: 'putInbox', row: inRow(C, 1) },
          { op: 'putInbox', row: inRow(B, 6) },
        ],
        [
          { op: 'deleteInbox', from: B, below: 6 },
          { op: 'putInbox', row: inRow(C, 1) },
          { op: 'putInbox', row: inRow(C, 3) },
        ],
      ]
      for (const [i, ops] of refused.entries()) {
        await checkCode(handle.commit(ops), 'STORE_FAILED', `refused ${i}`)
        checkEqual(await state(handle), before, `refused ${i} changed nothing`)
      }
      await handle.commit([
        { op: 'putInbox', row: inRow(B, 6) },
        { op: 'putInbox', row: inRow(C, 1) },
        { op: 'putInbox', row: inRow(B, 7) },
      ])
      checkEqual(indexes(await handle.readInbox(B, 0, 10)), [5, 6, 7], 'interleaved streams')
      await handle.commit([
        { op: 'deleteInbox', from: B, below: 8 },
        { op: 'putInbox', row: inRow(B, 20) },
      ])
      checkEqual(indexes(await handle.readInbox(B, 0, 10)), [20], 'an emptied stream takes any index')
      checkEqual(await handle.count(), { outbound: 0, inbound: 3 }, 'count')
    },

    'the rows waiting on a stream are contiguous: each one above the highest, or above the acknowledged ones when none waits': async () => {
      const { handle } = await open('outbox-contiguous')
      await handle.commit([put(outRow(B, 5)), put(outRow(B, 6)), put(outRow(B, 7)), put(outRow(C, 0))])
      const before = await state(handle)
      let ids = 0
      const fresh = (to: PeerId, seq: number): StoreOp => put(outRow(to, seq, { id: msgId(`fresh_${ids++}`) }))
      const refused: StoreOp[][] = [
        [fresh(B, 9)],
        [fresh(B, 6)],
        [fresh(B, 4)],
        [fresh(B, 8), fresh(B, 10)],
        [fresh(B, 8), fresh(C, 1), fresh(B, 8)],
        [fresh(C, 1), fresh(C, 2), fresh(C, 1)],
        [{ op: 'ack', to: B, upTo: 6, at: 1 }, fresh(B, 7)],
        [{ op: 'ack', to: B, upTo: 7, at: 1 }, fresh(B, 7)],
      ]
      for (const [i, ops] of refused.entries()) {
        await checkCode(handle.commit(ops), 'STORE_FAILED', `refused ${i}`)
        checkEqual(await state(handle), before, `refused ${i} changed nothing`)
      }
      await handle.commit([put(outRow(B, 8)), put(outRow(C, 1)), put(outRow(B, 9))])
      checkEqual(seqs(await handle.readOutbox(B, 0, 10)), [5, 6, 7, 8, 9], 'interleaved streams')
      await handle.commit([{ op: 'ack', to: B, upTo: 9, at: 2 }, put(outRow(B, 20))])
      checkEqual(seqs(await handle.readOutbox(B, 0, 10)), [20], 'a stream with nothing waiting takes any seq above the acknowledged ones')
      checkEqual(await handle.count(), { outbound: 3, inbound: 0 }, 'count')
    },

    'findMessage finds outbox rows, then receipts': async () => {
      const { handle } = await open('find')
      const row = outRow(B, 4)
      await handle.commit([put(outRow(B, 3)), put(row)])
      checkEqual(await handle.findMessage(row.id), { where: 'outbox', to: B, seq: 4, expired: false }, 'in the outbox')
      await handle.commit([{ op: 'ack', to: B, upTo: 4, at: 42 }])
      checkEqual(await handle.findMessage(row.id), { where: 'receipt', receipt: receipt(B, 4, 'delivered', 42) }, 'receipt')
      checkEqual(await handle.findMessage(msgId('unknown')), undefined, 'unknown id')
    },

    'count covers every stream': async () => {
      const { handle } = await open('count')
      await handle.commit([put(outRow(B, 0)), put(outRow(B, 1)), put(outRow(C, 0))])
      await handle.commit([
        { op: 'putInbox', row: inRow(B, 0) },
        { op: 'putInbox', row: inRow(D, 0) },
      ])
      checkEqual(await handle.count(), { outbound: 3, inbound: 2 }, 'count')
    },

    'pruneReceipts removes receipts written before the cutoff only': async () => {
      const { handle } = await open('prune')
      await handle.commit([put(outRow(B, 0)), put(outRow(B, 1)), put(outRow(B, 2))])
      await handle.commit([{ op: 'ack', to: B, upTo: 0, at: 10 }])
      await handle.commit([{ op: 'ack', to: B, upTo: 1, at: 20 }])
      await handle.commit([{ op: 'ack', to: B, upTo: 2, at: 30 }])
      await handle.commit([{ op: 'pruneReceipts', before: 20 }])
      checkEqual(await handle.findMessage(outRow(B, 0).id), undefined, 'pruned')
      checkEqual((await handle.findMessage(outRow(B, 1).id))?.where, 'receipt', 'at == before is kept')
      checkEqual((await handle.findMessage(outRow(B, 2).id))?.where, 'receipt', 'later kept')
    },

    'a commit with a conflicting op applies nothing': async () => {
      const { handle } = await open('atomic')
      await handle.commit([put(outRow(B, 0)), put(outRow(B, 1)), { op: 'putInbox', row: inRow(C, 0) }])
      await handle.commit([{ op: 'ack', to: B, upTo: 0, at: 5 }])
      const before = await state(handle)
      const attempts: StoreOp[][] = [
        [meta(1), put(outRow(B, 2)), outStream(B, 3), put(outRow(B, 1, { createdAt: 9, id: msgId('key_taken_1') }))],
        [put(outRow(B, 2)), { op: 'ack', to: B, upTo: 2, at: 6 }, put(outRow(B, 3)), put(outRow(B, 3, { id: msgId('key_taken_3') }))],
        [{ op: 'expire', to: B, seq: 1 }, put(outRow(B, 1, { id: msgId('key_taken_1') }))],
        [
          { op: 'deleteInbox', from: C, below: 1 },
          { op: 'putInbox', row: inRow(C, 1) },
          { op: 'putInbox', row: inRow(C, 1) },
        ],
        [{ op: 'pruneReceipts', before: 1e15 }, inStream(C), { op: 'putInbox', row: inRow(C, 0) }],
      ]
      for (const [i, ops] of attempts.entries()) {
        await checkCode(handle.commit(ops), 'STORE_FAILED', `attempt ${i}`)
        checkEqual(await state(handle), before, `attempt ${i} changed nothing`)
      }
      const reused = put(outRow(B, 1, { id: msgId('reused_key') }))
      await checkCode(handle.commit([{ op: 'ack', to: B, upTo: 1, at: 7 }, reused]), 'STORE_FAILED', 'a receipt keeps its key')
      await handle.commit([{ op: 'ack', to: B, upTo: 1, at: 7 }])
      await handle.commit([{ op: 'pruneReceipts', before: 8 }, put(outRow(B, 2, { id: outRow(B, 1).id }))])
      checkEqual(ids(await handle.readOutbox(B, 0, 10)), [outRow(B, 1).id], 'an id freed by a prune earlier in the same commit may be queued again')
      await checkCode(handle.commit([reused]), 'STORE_FAILED', 'a pruned receipt still keeps its seq')
      await handle.commit([
        { op: 'deleteInbox', from: C, below: 1 },
        { op: 'putInbox', row: inRow(C, 0) },
      ])
      checkEqual(indexes(await handle.readInbox(C, 0, 10)), [0], 'also an inbox key')
    },

    'a message id is never queued twice: held in the outbox, as a receipt, or twice in one commit': async () => {
      const { handle } = await open('unique-ids')
      await handle.commit([put(outRow(B, 0)), put(outRow(B, 1)), outStream(B, 2)])
      await handle.commit([{ op: 'ack', to: B, upTo: 0, at: 5 }])
      const before = await state(handle)
      const again = (seq: number, id: MessageId): StoreOp => put(outRow(C, seq, { id }))
      const attempts: StoreOp[][] = [
        [again(0, outRow(B, 1).id), outStream(C, 1)],
        [again(0, outRow(B, 0).id), outStream(C, 1)],
        [again(0, msgId('twice')), again(1, msgId('twice')), outStream(C, 2)],
        [put(outRow(C, 0)), { op: 'ack', to: B, upTo: 1, at: 6 }, again(1, outRow(B, 1).id)],
      ]
      for (const [i, ops] of attempts.entries()) {
        await checkCode(handle.commit(ops), 'DUPLICATE_ID', `attempt ${i}`)
        checkEqual(await state(handle), before, `attempt ${i} changed nothing`)
      }
      await handle.commit([again(0, msgId('new_one')), outStream(C, 1)])
      checkEqual(ids(await handle.readOutbox(C, 0, 10)), ['new_one'], 'a new id is queued')
      await handle.commit([{ op: 'pruneReceipts', before: 1e15 }])
      await handle.commit([again(1, outRow(B, 0).id), outStream(C, 2)])
      checkEqual(seqs(await handle.readOutbox(C, 0, 10)), [0, 1], 'an id whose receipt was pruned may be used again')
      await handle.commit([{ op: 'ack', to: B, upTo: 1, at: 10 }, { op: 'pruneReceipts', before: 11 }, again(2, outRow(B, 1).id), outStream(C, 3)])
      checkEqual(seqs(await handle.readOutbox(C, 0, 10)), [0, 1, 2], 'an id acknowledged and pruned earlier in the same commit may be used again')
    },

    'a malformed op fails the commit and applies nothing': async () => {
      const { handle } = await open('malformed')
      const before = await state(handle)
      const bad = [
        { op: 'bogus' },
        { op: 'putOutbox', row: { ...outRow(B, 0), seq: -1 } },
        { op: 'putOutbox', row: { ...outRow(B, 0), seq: 1.5 } },
        { op: 'putOutbox', row: { ...outRow(B, 0), contents: 'text' } },
      ] as unknown as StoreOp[]
      for (const op of bad) {
        await checkCode(handle.commit([put(outRow(B, 5)), op]), 'STORE_FAILED', JSON.stringify(op))
        checkEqual(await state(handle), before, `${JSON.stringify(op.op)} changed nothing`)
      }
    },

    'commits apply in call order': async () => {
      const { handle } = await open('order')
      const first = handle.commit([put(outRow(B, 0)), put(outRow(B, 1)), put(outRow(B, 2)), outStream(B, 4)])
      const second = handle.commit([{ op: 'ack', to: B, upTo: 1, at: 5 }, outStream(B, 5)])
      const third = handle.commit([outStream(B, 6)])
      const [, receipts] = await Promise.all([first, second, third])
      checkEqual(seqs(receipts), [0, 1], 'the second commit saw the first')
      checkEqual((await handle.load()).outStreams, [{ to: B, nextSeq: 6, ackedUpTo: -1 }], 'the last commit won')
      checkEqual(await handle.commit([]), [], 'an empty commit')
    },

    'state survives closing and reopening the handle': async () => {
      const { store, id, handle } = await open('restart')
      await handle.commit([meta(7), outStream(B, 2), inStream(C), put(outRow(B, 0, { expiresAt: 99 })), put(outRow(B, 1))])
      await handle.commit([
        { op: 'putInbox', row: inRow(C, 0) },
        { op: 'ack', to: B, upTo: 0, at: 3 },
      ])
      const before = await state(handle)
      await handle.close()
      const reopened = await store.open(id)
      checkEqual(await state(reopened), before, 'after close and open')
      checkEqual((await reopened.findMessage(outRow(B, 0).id))?.where, 'receipt', 'receipts survive')
      const crashed = await store.open(id)
      checkEqual(await state(crashed), before, 'opened again without closing (a crash)')
    },

    'reads and commits hand out copies': async () => {
      const { handle } = await open('copies')
      const row = outRow(B, 0)
      const input = { ...row, contents: new Uint8Array([1, 2, 3]) }
      const inbound = inRow(C, 0)
      const inInput = { ...inbound, contents: new Uint8Array(inbound.contents) }
      await handle.commit([put(input), { op: 'putInbox', row: inInput }, outStream(B, 1)])
      input.contents[0] = 99
      inInput.contents[0] = 99
      const [read] = await handle.readOutbox(B, 0, 1)
      checkEqual(read?.contents, new Uint8Array([1, 2, 3]), 'mutating the committed row changed nothing')
      read?.contents.fill(7)
      ;(await handle.readInbox(C, 0, 1))[0]?.contents.fill(7)
      checkEqual((await handle.readOutbox(B, 0, 1))[0]?.contents, new Uint8Array([1, 2, 3]), 'outbox row')
      checkEqual(await handle.readInbox(C, 0, 1), [inbound], 'inbox row')
      const snap = await handle.load()
      ;(snap.outStreams as unknown as { nextSeq: number }[])[0]!.nextSeq = 50
      ;(snap.outStreams as unknown[]).push({ to: D, nextSeq: 1, ackedUpTo: -1 })
      checkEqual((await handle.load()).outStreams, [{ to: B, nextSeq: 1, ackedUpTo: -1 }], 'snapshot')
      const [written] = await handle.commit([{ op: 'ack', to: B, upTo: 0, at: 1 }])
      ;(written as { status: string }).status = 'expired'
      checkEqual(await handle.findMessage(row.id), { where: 'receipt', receipt: receipt(B, 0, 'delivered', 1) }, 'receipt')
    },

    'a second open fences the first handle': async () => {
      const { store, id, handle: old } = await open('fence')
      await old.commit([outStream(B, 1)])
      const current = await store.open(id)
      for (const [name, call] of everyCall(old)) await checkCode(call(), 'STORE_FENCED', name)
      checkEqual((await current.load()).outStreams, [{ to: B, nextSeq: 1, ackedUpTo: -1 }], 'the fenced commit applied nothing')
      await old.close()
      await current.commit([outStream(B, 2)])
      checkEqual((await current.load()).outStreams, [{ to: B, nextSeq: 2, ackedUpTo: -1 }], 'closing the old handle left the new one working')
      await store.open(id)
      await checkCode(current.load(), 'STORE_FENCED', 'fenced again by a third open')
    },

    'a closed handle rejects every call with CLOSED': async () => {
      const { store, id, handle } = await open('closed')
      const other = await store.open(uniquePeer('closed-other'))
      await handle.close()
      await handle.close()
      for (const [name, call] of everyCall(handle)) await checkCode(call(), 'CLOSED', name)
      checkEqual(await other.count(), { outbound: 0, inbound: 0 }, 'another identity still works')
      const reopened = await store.open(id)
      checkEqual(await reopened.count(), { outbound: 0, inbound: 0 }, 'the identity opens again')
    },

    'identities in one store are independent': async () => {
      const store = await makeStore()
      const first = await store.open(uniquePeer('twin-a'))
      const second = await store.open(uniquePeer('twin-b'))
      await first.commit([meta(1), outStream(B, 1), put(outRow(B, 0)), { op: 'putInbox', row: inRow(C, 0) }])
      await second.commit([put(outRow(B, 0, { createdAt: 2 }))])
      checkEqual(await second.load(), { meta: undefined, outStreams: [], inStreams: [] }, 'second snapshot')
      checkEqual(await second.count(), { outbound: 1, inbound: 0 }, 'second count')
      checkEqual(await second.readOutbox(B, 0, 10), [outRow(B, 0, { createdAt: 2 })], 'same key, separate rows')
      checkEqual(await first.readOutbox(B, 0, 10), [outRow(B, 0)], 'first rows')
      await second.commit([{ op: 'ack', to: B, upTo: 0, at: 1 }])
      checkEqual(await first.findMessage(outRow(B, 0).id), { where: 'outbox', to: B, seq: 0, expired: false }, 'not acked in the first')
    },

    'seqs near Number.MAX_SAFE_INTEGER work (the last a stream uses is one below)': async () => {
      const { handle } = await open('max')
      const top = Number.MAX_SAFE_INTEGER
      const rows = [top - 3, top - 2, top - 1].map((seq) => outRow(B, seq))
      await handle.commit([...rows.map((row) => put(row)), { op: 'outStream', stream: { to: B, nextSeq: top, ackedUpTo: top - 4 } }])
      await handle.commit([{ op: 'putInbox', row: inRow(C, top) }])
      checkEqual(await handle.readOutbox(B, top - 2, 10), rows.slice(1), 'read from top - 2')
      checkEqual(await handle.readOutbox(B, 0, 1), rows.slice(0, 1), 'read from 0')
      checkEqual(await handle.readInbox(C, top, 1), [inRow(C, top)], 'inbox index')
      checkEqual(seqs(await handle.commit([{ op: 'ack', to: B, upTo: top - 2, at: 1 }])), [top - 3, top - 2], 'ack')
      checkEqual(seqs(await handle.commit([{ op: 'ack', to: B, upTo: top - 1, at: 1 }])), [top - 1], 'ack the last seq a stream can use')
      checkEqual((await handle.load()).outStreams[0]?.nextSeq, top, 'counter')
    },
  }
  return Object.entries(cases).map(([name, run]) => ({ name, run }))
}

const B = 'peer-b' as PeerId
const C = 'peer-c' as PeerId
const D = 'peer-d' as PeerId

let peerCounter = 0

/** An identity no earlier run used, so a persistent store can be shared. */
function uniquePeer(name: string): PeerId {
  peerCounter += 1
  const random = Math.random().toString(36).slice(2, 10)
  return `contract-${name}-${Date.now().toString(36)}-${random}-${peerCounter}` as PeerId
}

function msgId(name: string): MessageId {
  return name as MessageId
}

function outRow(to: PeerId, seq: number, extra: Partial<OutboxRow> = {}): OutboxRow {
  return {
    to,
    seq,
    id: msgId(`out_${to}_${seq}`),
    contentKind: 'b',
    contents: new Uint8Array([seq % 256, 1, 2]),
    createdAt: 1_000 + (seq % 1_000),
    ...extra,
  }
}

function inRow(from: PeerId, index: number): InboxRow {
  return {
    from,
    index,
    id: msgId(`in_${from}_${index}`),
    epoch: makeEpoch(1, 'epochx'),
    seq: index,
    contentKind: 's',
    contents: new Uint8Array([104, 105, index % 256]),
    receivedAt: 2_000,
  }
}

function receipt(to: PeerId, seq: number, status: Receipt['status'], at: number): Receipt {
  return { id: outRow(to, seq).id, to, seq, status, at }
}

function put(row: OutboxRow): StoreOp {
  return { op: 'putOutbox', row }
}

function meta(createdAt: number): StoreOp {
  return { op: 'meta', meta: { epoch: makeEpoch(createdAt, 'metaxx'), createdAt } }
}

function outStream(to: PeerId, nextSeq: number): StoreOp {
  return { op: 'outStream', stream: { to, nextSeq, ackedUpTo: -1 } }
}

function inStream(from: PeerId): StoreOp {
  return { op: 'inStream', stream: { from, epoch: makeEpoch(1, 'epochx'), receivedUpTo: 0, nextIndex: 1, processedBelow: 0 } }
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i)
}

function seqs(rows: readonly { seq: number }[]): number[] {
  return rows.map((row) => row.seq)
}

function ids(rows: readonly { id: MessageId }[]): string[] {
  return rows.map((row) => row.id)
}

function indexes(rows: readonly InboxRow[]): number[] {
  return rows.map((row) => row.index)
}

function byKey<T>(items: readonly T[], key: (item: T) => string): T[] {
  return [...items].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0))
}

/** Everything observable about the peers these cases use, for before/after comparisons. */
async function state(handle: PeerStore): Promise<unknown> {
  const snap = await handle.load()
  const streams = [B, C, D]
  return {
    meta: snap.meta,
    outStreams: byKey(snap.outStreams, (s) => s.to),
    inStreams: byKey(snap.inStreams, (s) => s.from),
    outbox: await Promise.all(streams.map((p) => handle.readOutbox(p, 0, 1_000))),
    inbox: await Promise.all(streams.map((p) => handle.readInbox(p, 0, 1_000))),
    count: await handle.count(),
    nextExpiry: await handle.nextExpiry(),
    receipts: await Promise.all(streams.flatMap((p) => range(0, 3).map((seq) => handle.findMessage(outRow(p, seq).id)))),
  }
}

/** One call of every method, each a fresh promise. */
function everyCall(handle: PeerStore): [string, () => Promise<unknown>][] {
  return [
    ['load', () => handle.load()],
    ['commit', () => handle.commit([outStream(B, 9)])],
    ['readOutbox', () => handle.readOutbox(B, 0, 10)],
    ['readInbox', () => handle.readInbox(B, 0, 10)],
    ['readExpired', () => handle.readExpired(0, 10)],
    ['nextExpiry', () => handle.nextExpiry()],
    ['findMessage', () => handle.findMessage(msgId('x'))],
    ['count', () => handle.count()],
  ]
}

async function checkCode(promise: Promise<unknown>, code: IlmErrorCode, what: string): Promise<void> {
  const error = await checkRejects(promise, what)
  check(isIlmError(error, code), `${what}: expected IlmError ${code}, got ${String(error)}`)
}
