/**
 * A link that waits for its peer's hello keeps its retransmission timer until
 * the session is on, whatever else arrives meanwhile. An ack for rows sent by
 * the previous incarnation (in flight when it crashed) used to cancel that
 * timer: with the hello lost too, the link waited for good and the rows queued
 * behind the ack were never sent (found by the delivery property test:
 * processBatch 1, 39 % of frames dropped, a crash of the sender).
 */
import { describe, expect, it } from 'vitest'
import { decodeFrame, encodeFrame } from '../../src/core/codec.js'
import type { Frame } from '../../src/core/frame.js'
import type { PeerId } from '../../src/core/ids.js'
import { ILM, MemoryStore } from '../../src/index.js'
import { ManualClock } from '../../src/testing/manual-clock.js'
import { ProbeTransport } from '../helpers/engine-probes.js'
import { tick } from '../helpers/engines.js'

const bob = 'bob' as PeerId

const framesOf = (transport: ProbeTransport, from = 0): Frame[] =>
  transport.sent.slice(from).flatMap(({ data }) => {
    const decoded = decodeFrame(data, 1 << 20)
    return decoded.ok ? [decoded.frame] : []
  })

describe('a link awaiting its peer hello', () => {
  it('an ack arriving meanwhile does not stop it: the timer says hello again and sends what is queued', async () => {
    const clock = new ManualClock()
    const transport = new ProbeTransport('alice')
    // Frames are made by hand, in clear: the timers are the same with encryption on.
    const ilm = await ILM.open({ store: new MemoryStore(), transport, clock, encryption: false, limits: { retransmitMs: 100, maxRetransmitMs: 800 } })
    try {
      for (let n = 0; n < 3; n++) await ilm.send('bob', { n })
      transport.presence('bob', true)
      await tick()
      const hello = framesOf(transport).find((f) => f.kind === 'hello')
      if (hello?.kind !== 'hello') throw new Error('no hello sent')
      // Bob's hello never comes; an ack of seq 0 does (as one in flight to the incarnation before would).
      const mark = transport.sent.length
      transport.inject('bob', encodeFrame({ kind: 'ack', from: bob, to: hello.from, epoch: hello.epoch, upTo: 0 }))
      await tick()
      for (let i = 0; i < 20; i++) {
        clock.advance(100)
        await tick()
      }
      const after = framesOf(transport, mark)
      expect(after.filter((f) => f.kind === 'hello').length, 'hello sent again').toBeGreaterThan(0)
      expect(
        after.flatMap((f) => (f.kind === 'msg' ? [f.seq] : [])),
        'what is queued past the ack is sent',
      ).toEqual(expect.arrayContaining([1, 2]))
    } finally {
      await ilm.close()
    }
  })
})
