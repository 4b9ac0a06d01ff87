/**
 * A batch keeps one `ack` op per stream: the last (acks are cumulative), where
 * it stands among the row ops; the store settles every row the dropped acks
 * would have, from its own watermark.
 */
import { describe, expect, it } from 'vitest'
import { Draft, EngineState } from '../../src/core/state.js'
import type { Epoch, PeerId } from '../../src/core/ids.js'

const B = 'b' as PeerId
const C = 'c' as PeerId

describe('Draft.ops coalesces acks', () => {
  it('one ack per stream, the last one, at its place', () => {
    const draft = new Draft(new EngineState({ epoch: 'e' as Epoch, createdAt: 0 }))
    draft.write({ op: 'ack', to: B, upTo: 3, at: 1 })
    draft.write({ op: 'ack', to: C, upTo: 0, at: 1 })
    draft.write({ op: 'expire', to: B, seq: 9 })
    draft.write({ op: 'ack', to: B, upTo: 7, at: 2 })
    draft.write({ op: 'ack', to: B, upTo: 12, at: 3 })
    expect(draft.ops()).toEqual([
      { op: 'ack', to: C, upTo: 0, at: 1 },
      { op: 'expire', to: B, seq: 9 },
      { op: 'ack', to: B, upTo: 12, at: 3 },
    ])
  })
})
