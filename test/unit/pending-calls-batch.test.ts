/**
 * PendingCalls.callMany: one promise for a batch of calls, each of which keeps
 * its own id, retries and outcome (the worker's sendMany goes through it).
 */
import { describe, expect, it } from 'vitest'
import { PendingCalls, type Call, type Outcome } from '../../src/bridge/pending-calls.js'
import { IlmError } from '../../src/core/errors.js'

function calls() {
  const sent: Array<{ target: string; call: Call }> = []
  const pending = new PendingCalls<string, string>((target, call) => void sent.push({ target, call }))
  return { pending, sent }
}

const summary = (outcomes: readonly Outcome[]): unknown[] => outcomes.map((o) => (o.ok ? o.value : (o.error as IlmError).code))

describe('PendingCalls.callMany', () => {
  it('resolves once every call settled, with each outcome in order, as one promise', async () => {
    const { pending, sent } = calls()
    pending.retarget('w1')
    let done = false
    const batch = pending.callMany('send', [['a'], ['b'], ['c']]).then((outcomes) => ((done = true), outcomes))
    expect(sent.map((s) => s.call.args)).toEqual([['a'], ['b'], ['c']])
    pending.settle('w1', sent[2]!.call.id, { ok: true, value: 'C' })
    pending.settle('w1', sent[0]!.call.id, { ok: false, error: new IlmError('QUEUE_FULL', 'full') })
    await Promise.resolve()
    expect(done).toBe(false)
    pending.settle('w1', sent[1]!.call.id, { ok: true, value: 'B' })
    expect(summary(await batch)).toEqual(['QUEUE_FULL', 'B', 'C'])
  })

  it('calls a target did not serve wait for the next one; those it answered stay settled', async () => {
    const { pending, sent } = calls()
    pending.retarget('w1')
    const batch = pending.callMany('send', [['a'], ['b'], ['c']])
    const [a, b, c] = sent.map((s) => s.call)
    pending.settle('w1', a!.id, { ok: true, value: 'A' })
    pending.settle('w1', b!.id, { ok: false, error: new IlmError('CLOSED', 'engine closed') })
    pending.retarget(undefined)
    pending.settle('w1', c!.id, { ok: false, error: new IlmError('STORE_FAILED', 'from a target no longer current') })
    pending.retarget('w2')
    expect(sent.slice(3).map((s) => [s.target, s.call.id])).toEqual([
      ['w2', b!.id],
      ['w2', c!.id],
    ])
    pending.settle('w2', b!.id, { ok: true, value: 'B' })
    pending.settle('w2', c!.id, { ok: true, value: 'C' })
    expect(summary(await batch)).toEqual(['A', 'B', 'C'])
  })

  it('close() ends the calls still pending with its error, and later batches at once', async () => {
    const { pending, sent } = calls()
    pending.retarget('w1')
    const batch = pending.callMany('send', [['a'], ['b']])
    pending.settle('w1', sent[0]!.call.id, { ok: true, value: 'A' })
    pending.close(new IlmError('CLOSED', 'closed'))
    expect(summary(await batch)).toEqual(['A', 'CLOSED'])
    expect(summary(await pending.callMany('send', [['c']]))).toEqual(['CLOSED'])
    expect(await pending.callMany('send', [])).toEqual([])
  })
})
