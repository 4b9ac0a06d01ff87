/**
 * One message id is queued at most once, by construction (issue 12): whatever
 * a caller repeats — the same id sent again while the first is queued, after
 * it was acknowledged, concurrently in one batch, across an engine restart,
 * or with the store committing directly — the store never holds two outbox
 * rows or receipts with one id, the receiver is handed each id once, and every
 * send of an id resolves with the same seq.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ILM, MemoryNetwork, MemoryStore, type Message } from '../../src/index.js'
import { makeEpoch, type MessageId, type PeerId } from '../../src/core/ids.js'
import { ManualClock } from '../../src/testing/manual-clock.js'
import { elapse, tick, until } from '../helpers/engines.js'

/** One step of a schedule run against the sender `a`. */
type Step =
  | { readonly t: 'send'; readonly id: number; readonly to: 'b' | 'c' }
  | { readonly t: 'burst'; readonly ids: readonly number[] }
  | { readonly t: 'restart' }
  | { readonly t: 'offline'; readonly peer: 'b' | 'c' }
  | { readonly t: 'online'; readonly peer: 'b' | 'c' }
  | { readonly t: 'time'; readonly ms: number }

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ t: fc.constant('send' as const), id: fc.nat(7), to: fc.constantFrom('b' as const, 'c' as const) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('burst' as const), ids: fc.array(fc.nat(7), { minLength: 2, maxLength: 6 }) }) },
  { weight: 1, arbitrary: fc.constant({ t: 'restart' as const }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('offline' as const), peer: fc.constantFrom('b' as const, 'c' as const) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('online' as const), peer: fc.constantFrom('b' as const, 'c' as const) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('time' as const), ms: fc.integer({ min: 1, max: 3_000 }) }) },
)

const key = (n: number): string => `key-${n}`

describe('one message id, one message', () => {
  it('holds over random schedules of repeated sends, restarts and outages', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 5, maxLength: 40 }), async (steps) => {
        const net = new MemoryNetwork()
        const clock = new ManualClock()
        const store = new MemoryStore()
        const receivers = { b: new MemoryStore(), c: new MemoryStore() }
        const got: Message[] = []
        const open = (id: 'a' | 'b' | 'c', s: MemoryStore) => ILM.open({ store: s, transport: net.connect(id), clock })
        let a = await open('a', store)
        const peers = await Promise.all((['b', 'c'] as const).map((p) => open(p, receivers[p])))
        for (const p of peers) p.onMessage((m) => void got.push(m))
        // The first destination each id was sent to; a send of it elsewhere must fail DUPLICATE_ID.
        const owner = new Map<string, 'b' | 'c'>()
        const seqs = new Map<string, number>()
        const outcomes: Array<Promise<void>> = []
        const send = (n: number, to: 'b' | 'c'): void => {
          const id = key(n)
          outcomes.push(
            a.send(to, `${id}>${to}`, { id }).then(
              (receipt) => {
                expect(owner.get(id) ?? to).toBe(to)
                owner.set(id, to)
                expect(seqs.get(id) ?? receipt.seq).toBe(receipt.seq)
                seqs.set(id, receipt.seq)
              },
              (error: { code?: string }) => {
                // Closed by a restart, or sent to the other peer than the first time.
                expect(['CLOSED', 'DUPLICATE_ID']).toContain(error.code)
              },
            ),
          )
        }
        for (const s of steps) {
          if (s.t === 'send') send(s.id, s.to)
          else if (s.t === 'burst') for (const n of s.ids) send(n, n % 2 === 0 ? 'b' : 'c')
          else if (s.t === 'restart') {
            await a.close()
            a = await open('a', store)
          } else if (s.t === 'offline') net.disconnect(s.peer)
          else if (s.t === 'online') net.reconnect(s.peer)
          else await elapse([clock], s.ms, 200)
          await tick(1)
        }
        await Promise.all(outcomes)
        net.reconnect('b')
        net.reconnect('c')
        await until(async () => (await a.pending()).outbound === 0, { clocks: [clock], stepMs: 500, steps: 400 })
        await until(() => got.length >= seqs.size, { clocks: [clock], stepMs: 200 })
        const handed = got.map((m) => m.id)
        expect(new Set(handed).size).toBe(handed.length)
        expect(new Set(handed)).toEqual(new Set(seqs.keys()))
        for (const m of got) expect(m.seq).toBe(seqs.get(m.id))
        await a.close()
        for (const p of peers) await p.close()
      }),
      { numRuns: 120 },
    )
  })

  it('the store refuses a second row or a receipt for one id, whoever commits', async () => {
    const handle = await new MemoryStore().open('a' as PeerId)
    const row = (seq: number, id: string) => ({
      op: 'putOutbox' as const,
      row: { to: 'b' as PeerId, seq, id: id as MessageId, contentKind: 'b' as const, contents: new Uint8Array([seq]), createdAt: 1 },
    })
    await handle.commit([{ op: 'meta', meta: { epoch: makeEpoch(1, 'epochx'), createdAt: 1 } }, row(0, 'x')])
    await expect(handle.commit([row(1, 'x')])).rejects.toMatchObject({ code: 'DUPLICATE_ID' })
    await handle.commit([{ op: 'ack', to: 'b' as PeerId, upTo: 0, at: 2 }])
    await expect(handle.commit([row(1, 'x')])).rejects.toMatchObject({ code: 'DUPLICATE_ID' })
    expect(await handle.count()).toEqual({ outbound: 0, inbound: 0 })
  })
})
