/**
 * handOverBatch with per-message handlers: a message goes to every handler
 * before the next; a handler's promise (or any thenable) is awaited before
 * anything else is handed over; handlers that return nothing are called back
 * to back, without a microtask between messages.
 */
import { describe, expect, it } from 'vitest'
import type { Epoch, Message, MessageHandler, MessageId, PeerId } from '../../src/index.js'
import { handOverBatch, type Subscriber } from '../../src/core/hand-over.js'

const messages: Message[] = [0, 1, 2].map((seq) => ({
  id: `m${seq}` as MessageId,
  from: 'a' as PeerId,
  to: 'b' as PeerId,
  seq,
  epoch: '00000000a.aliceA' as Epoch,
  contents: seq,
}))
const each = (handler: (message: Message) => unknown): Subscriber => ({ batch: false, handler: handler as MessageHandler })

describe('handOverBatch, per-message handlers', () => {
  it('calls handlers that return nothing back to back: each message to every handler before the next, no microtask between', async () => {
    const log: string[] = []
    const progress: number[] = []
    queueMicrotask(() => log.push('microtask'))
    const outcome = handOverBatch([each((m) => void log.push(`x${m.seq}`)), each((m) => void log.push(`y${m.seq}`))], messages, (n) => progress.push(n))
    log.push('returned')
    expect(await outcome).toEqual({ handled: 3 })
    expect(log).toEqual(['x0', 'y0', 'x1', 'y1', 'x2', 'y2', 'returned', 'microtask'])
    expect(progress).toEqual([1, 2, 3])
  })

  it('awaits a returned promise, and any thenable, before the next handler or message', async () => {
    const log: string[] = []
    const later = (text: string): Promise<void> => new Promise((resolve) => setTimeout(() => resolve(void log.push(text)), 5))
    const thenable = (text: string) => ({ then: (resolve: (value?: unknown) => void) => void setTimeout(() => resolve(void log.push(text)), 5) })
    const outcome = await handOverBatch(
      [each((m) => later(`promise${m.seq}`)), each((m) => thenable(`thenable${m.seq}`)), each((m) => void log.push(`sync${m.seq}`))],
      messages,
    )
    expect(outcome).toEqual({ handled: 3 })
    expect(log).toEqual(['promise0', 'thenable0', 'sync0', 'promise1', 'thenable1', 'sync1', 'promise2', 'thenable2', 'sync2'])
  })

  it('stops at a handler that throws or rejects: handled counts the messages before it, with its error', async () => {
    const boom = new Error('boom')
    const calls: number[] = []
    const throws = await handOverBatch(
      [
        each((m) => {
          calls.push(m.seq)
          if (m.seq === 1) throw boom
        }),
      ],
      messages,
    )
    expect(throws).toEqual({ handled: 1, error: boom })
    const rejects = await handOverBatch([each((m) => (m.seq === 2 ? Promise.reject(boom) : undefined)), each((m) => void calls.push(10 + m.seq))], messages)
    expect(rejects).toEqual({ handled: 2, error: boom })
    expect(calls).toEqual([0, 1, 10, 11])
  })
})
