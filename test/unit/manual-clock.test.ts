import { describe, expect, it } from 'vitest'
import { ManualClock } from '../../src/testing/manual-clock.js'

describe('ManualClock', () => {
  it('starts at a fixed default time, a number, or a Date', () => {
    expect(new ManualClock().now()).toBe(Date.UTC(2025, 0, 1))
    expect(new ManualClock(0).now()).toBe(0)
    expect(new ManualClock(new Date('2030-05-06T07:08:09Z')).now()).toBe(Date.UTC(2030, 4, 6, 7, 8, 9))
    expect(() => new ManualClock(Number.NaN)).toThrow(RangeError)
  })

  it('fires due timers in time order, FIFO for equal times, with now() at each due time', () => {
    const clock = new ManualClock(1000)
    const log: string[] = []
    clock.setTimeout(() => log.push(`c@${clock.now()}`), 30)
    clock.setTimeout(() => log.push(`a@${clock.now()}`), 10)
    clock.setTimeout(() => log.push(`b1@${clock.now()}`), 20)
    clock.setTimeout(() => log.push(`b2@${clock.now()}`), 20)
    clock.setTimeout(() => log.push(`d@${clock.now()}`), 31)
    expect(clock.advance(9)).toBe(0)
    expect(log).toEqual([])
    expect(clock.advance(21)).toBe(4)
    expect(log).toEqual(['a@1010', 'b1@1020', 'b2@1020', 'c@1030'])
    expect(clock.now()).toBe(1030)
    expect(clock.pending).toBe(1)
  })

  it('fires timers set by callbacks when they fall within the window, and not beyond', () => {
    const clock = new ManualClock(0)
    const log: string[] = []
    clock.setTimeout(() => {
      log.push('outer')
      clock.setTimeout(() => log.push(`inner@${clock.now()}`), 5)
      clock.setTimeout(() => log.push(`late@${clock.now()}`), 50)
      clock.setTimeout(() => log.push(`zero@${clock.now()}`), 0)
    }, 10)
    clock.setTimeout(() => log.push(`same@${clock.now()}`), 10)
    clock.advance(20)
    expect(log).toEqual(['outer', 'same@10', 'zero@10', 'inner@15'])
    expect(clock.now()).toBe(20)
    expect(clock.pending).toBe(1)
    clock.advance(40)
    expect(log.at(-1)).toBe('late@60')
  })

  it('advance(0) fires timers due now; negative and NaN delays count as 0', () => {
    const clock = new ManualClock(0)
    const log: number[] = []
    clock.setTimeout(() => log.push(1), 0)
    clock.setTimeout(() => log.push(2), -5)
    clock.setTimeout(() => log.push(3), Number.NaN)
    expect(log).toEqual([])
    clock.advance(0)
    expect(log).toEqual([1, 2, 3])
    expect(() => clock.advance(-1)).toThrow(RangeError)
    expect(() => clock.advance(Number.POSITIVE_INFINITY)).toThrow(RangeError)
  })

  it('clearTimeout cancels; unknown, fired, foreign and repeated handles are ignored', () => {
    const clock = new ManualClock(0)
    const other = new ManualClock(0)
    const log: string[] = []
    const a = clock.setTimeout(() => log.push('a'), 10)
    const b = clock.setTimeout(() => log.push('b'), 10)
    const foreign = other.setTimeout(() => log.push('foreign'), 10)
    expect(typeof a).toBe('object')
    expect(a).not.toBe(b)
    expect(clock.pending).toBe(2)
    clock.clearTimeout(a)
    clock.clearTimeout(a)
    clock.clearTimeout(foreign)
    clock.clearTimeout({})
    clock.clearTimeout(42)
    expect(clock.pending).toBe(1)
    expect(other.pending).toBe(1)
    clock.advance(10)
    expect(log).toEqual(['b'])
    clock.clearTimeout(b)
    expect(clock.pending).toBe(0)
    other.advance(10)
    expect(log).toEqual(['b', 'foreign'])
  })

  it('stays correct under heavy set/clear churn', () => {
    const clock = new ManualClock(0)
    const fired: number[] = []
    const handles = Array.from({ length: 1000 }, (_, i) => clock.setTimeout(() => fired.push(i), 1000 - i))
    handles.forEach((h, i) => {
      if (i % 100 !== 0) clock.clearTimeout(h)
    })
    expect(clock.pending).toBe(10)
    clock.advance(1000)
    expect(fired).toEqual([900, 800, 700, 600, 500, 400, 300, 200, 100, 0])
    expect(clock.pending).toBe(0)
  })

  it('next() jumps to and fires one timer at a time', () => {
    const clock = new ManualClock(0)
    const log: string[] = []
    clock.setTimeout(() => log.push('x'), 100)
    clock.setTimeout(() => log.push('y'), 100)
    clock.setTimeout(() => log.push('z'), 250)
    expect(clock.next()).toBe(true)
    expect(log).toEqual(['x'])
    expect(clock.now()).toBe(100)
    expect(clock.next()).toBe(true)
    expect(clock.next()).toBe(true)
    expect(log).toEqual(['x', 'y', 'z'])
    expect(clock.now()).toBe(250)
    expect(clock.next()).toBe(false)
    expect(clock.now()).toBe(250)
  })

  it('runAll() runs chains to completion and refuses endless loops', () => {
    const clock = new ManualClock(0)
    let count = 0
    const chain = (): void => {
      if (++count < 5) clock.setTimeout(chain, 1000)
    }
    clock.setTimeout(chain, 1000)
    expect(clock.runAll()).toBe(5)
    expect(clock.now()).toBe(5000)
    expect(clock.pending).toBe(0)

    const forever = (): void => void clock.setTimeout(forever, 1)
    clock.setTimeout(forever, 1)
    expect(() => clock.runAll(50)).toThrow(/more than 50 timers/)
    expect(clock.pending).toBe(1)
  })

  it('lets a throwing callback propagate, leaving time at its due time and later timers pending', () => {
    const clock = new ManualClock(0)
    const log: string[] = []
    clock.setTimeout(() => {
      throw new Error('boom')
    }, 10)
    clock.setTimeout(() => log.push('after'), 20)
    expect(() => clock.advance(100)).toThrow('boom')
    expect(clock.now()).toBe(10)
    expect(clock.pending).toBe(1)
    clock.advance(90)
    expect(log).toEqual(['after'])
    expect(clock.now()).toBe(100)
  })

  it('refuses to advance from inside a timer callback', () => {
    const clock = new ManualClock(0)
    let error: unknown
    clock.setTimeout(() => {
      try {
        clock.advance(1)
      } catch (e) {
        error = e
      }
    }, 1)
    clock.advance(1)
    expect(error).toBeInstanceOf(Error)
  })
})
