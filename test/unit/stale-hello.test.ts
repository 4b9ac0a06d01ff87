/**
 * A hello from a stale incarnation of a peer (an older epoch than the one the
 * engine follows, e.g. a tab still running on a store the user has since
 * replaced) must not acknowledge anything: what that store claims to have
 * stored says nothing about the peer's live store.
 */
import { describe, expect, it } from 'vitest'
import { decodeFrame, encodeFrame } from '../../src/core/codec.js'
import type { Epoch, PeerId } from '../../src/core/ids.js'
import { ILM, MemoryStore } from '../../src/index.js'
import { ProbeTransport } from '../helpers/engine-probes.js'

const alice = 'alice' as PeerId
const bob = 'bob' as PeerId
const OLD = '000000001.staleaaaa' as Epoch
const LIVE = '000000002.liveeeeee' as Epoch

const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 50))

function hello(epoch: Epoch, known: Epoch | null, upTo: number): Uint8Array {
  return encodeFrame({ kind: 'hello', from: alice, to: bob, epoch, floor: 0, known, upTo, reply: true })
}

describe('a hello from an older epoch of the peer', () => {
  it('acknowledges nothing; the live epoch hello does', async () => {
    const transport = new ProbeTransport('bob')
    // The frames here are made by hand, in clear: the protocol is the same with encryption on (e2e-engine.test.ts).
    const ilm = await ILM.open({ store: new MemoryStore(), transport, encryption: false })
    transport.presence('alice', true)
    transport.inject('alice', hello(LIVE, null, -1))
    await settle()
    const ids: string[] = []
    for (let n = 0; n < 3; n++) ids.push((await ilm.send('alice', { n })).id)
    await settle()
    const bobsHello = transport.sent.map((s) => decodeFrame(s.data, 1 << 20)).find((d) => d.ok && d.frame.kind === 'hello')
    if (bobsHello === undefined || !bobsHello.ok) throw new Error('bob sent no hello')
    const bobEpoch = bobsHello.frame.epoch

    transport.inject('alice', hello(OLD, bobEpoch, 2))
    await settle()
    expect(await ilm.pending()).toEqual({ outbound: 3, inbound: 0 })
    for (const id of ids) expect(await ilm.status(id)).not.toBe('delivered')

    transport.inject('alice', hello(LIVE, bobEpoch, 2))
    await settle()
    expect(await ilm.pending()).toEqual({ outbound: 0, inbound: 0 })
    for (const id of ids) expect(await ilm.status(id)).toBe('delivered')
    await ilm.close()
  })
})
