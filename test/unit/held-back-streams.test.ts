import { describe, expect, it } from 'vitest'
import { HOLD_BACK_MS, HeldBackStreams } from '../../src/relay/held-back-streams.js'
import { ManualClock } from '../../src/testing/manual-clock.js'

/** A connection, as the gates see it: a key. */
const conn = (): object => ({})

describe('HeldBackStreams', () => {
  it('admits everything until a put fails, then nothing above a failed seq until that seq is put again', () => {
    const gates = new HeldBackStreams(new ManualClock())
    const alice = conn()
    expect([5, 3, 9].map((seq) => gates.admit(alice, 'bob', 'e1', seq))).toEqual([true, true, true])
    gates.failed(alice, 'bob', 'e1', 10)
    gates.failed(alice, 'bob', 'e1', 12)
    // Below the lowest failed seq: resends of what was stored pass; above it nothing does until it is put again.
    expect([4, 11, 12, 13].map((seq) => gates.admit(alice, 'bob', 'e1', seq))).toEqual([true, false, false, false])
    // The resend, in order: each failed seq is taken as it comes, so the ones behind it in the same resend are too.
    expect([10, 11, 13, 12, 13, 20].map((seq) => gates.admit(alice, 'bob', 'e1', seq))).toEqual([true, true, false, true, true, true])
    // A resend that fails again holds back again.
    gates.failed(alice, 'bob', 'e1', 11)
    expect([12, 11, 12].map((seq) => gates.admit(alice, 'bob', 'e1', seq))).toEqual([false, true, true])
  })

  it('holds back only behind the seqs that failed: a put that failed after its entry was written does not stall the rest', () => {
    const gates = new HeldBackStreams(new ManualClock())
    const alice = conn()
    // Seq 0 failed late (after 1 to 5 were stored); the sender resends only 0, then goes on at 6.
    gates.failed(alice, 'bob', 'e1', 0)
    expect([6, 0, 6, 7].map((seq) => gates.admit(alice, 'bob', 'e1', seq))).toEqual([false, true, true, true])
  })

  it('holds back one stream of one connection only', () => {
    const gates = new HeldBackStreams(new ManualClock())
    const alice = conn()
    const other = conn()
    gates.failed(alice, 'bob', 'e1', 0)
    expect(gates.admit(alice, 'bob', 'e1', 1)).toBe(false)
    expect(gates.admit(alice, 'carol', 'e1', 1)).toBe(true)
    expect(gates.admit(other, 'bob', 'e1', 1)).toBe(true)
    // Another epoch is another stream: the gate of the old one goes.
    expect(gates.admit(alice, 'bob', 'e2', 1)).toBe(true)
    expect(gates.admit(alice, 'bob', 'e1', 5)).toBe(true)
  })

  it('ends when the stream goes to its receiver directly, or HOLD_BACK_MS after its last failed put', () => {
    const clock = new ManualClock()
    const gates = new HeldBackStreams(clock)
    const alice = conn()
    gates.failed(alice, 'bob', 'e1', 0)
    gates.forwarded(alice, 'bob')
    expect(gates.admit(alice, 'bob', 'e1', 7)).toBe(true)

    gates.failed(alice, 'bob', 'e1', 0)
    clock.advance(HOLD_BACK_MS - 1)
    gates.failed(alice, 'bob', 'e1', 0)
    clock.advance(HOLD_BACK_MS - 1)
    expect(gates.admit(alice, 'bob', 'e1', 7)).toBe(false)
    clock.advance(1)
    expect(gates.admit(alice, 'bob', 'e1', 7)).toBe(true)
    expect(gates.admit(alice, 'bob', 'e1', 9)).toBe(true)
  })
})
