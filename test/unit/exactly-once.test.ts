import { describe, expect, it } from 'vitest'
import { exactlyOnceReport, expectExactlyOnce } from '../../src/playwright/exactly-once.js'

describe('expectExactlyOnce (intersession/playwright)', () => {
  const sent = ['a', 'b', 'c', 'd']

  it('passes when every id arrives once, in order, ignoring other senders', () => {
    expect(() => expectExactlyOnce(sent, ['x', 'a', 'b', 'y', 'c', 'd'])).not.toThrow()
    expect(exactlyOnceReport(sent, ['x', 'a', 'b', 'c', 'd']).foreign).toEqual(['x'])
  })

  it('catches a lost message', () => {
    expect(exactlyOnceReport(sent, ['a', 'c', 'd']).lost).toEqual(['b'])
    expect(() => expectExactlyOnce(sent, ['a', 'c', 'd'])).toThrow(/lost 1: b/)
  })

  it('catches a duplicate', () => {
    expect(exactlyOnceReport(sent, ['a', 'b', 'b', 'c', 'd']).duplicated).toEqual([{ id: 'b', times: 2 }])
    expect(() => expectExactlyOnce(sent, ['a', 'b', 'c', 'b', 'd'])).toThrow(/duplicated 1: b×2/)
  })

  it('accepts redelivery only when asked, and still catches loss with it', () => {
    expect(() => expectExactlyOnce(sent, ['a', 'b', 'b', 'c', 'd'], { allowRedelivery: true })).not.toThrow()
    expect(() => expectExactlyOnce(sent, ['a', 'b', 'b', 'd'], { allowRedelivery: true })).toThrow(/lost 1: c/)
  })

  it('catches reordering', () => {
    expect(exactlyOnceReport(sent, ['a', 'c', 'b', 'd']).reordered).toEqual(['b'])
    expect(() => expectExactlyOnce(sent, ['b', 'a', 'c', 'd'])).toThrow(/reordered 1: a/)
  })

  it('rejects misuse at once', () => {
    expect(() => exactlyOnceReport(['a', 'a'], [])).toThrow(RangeError)
    expect(() => exactlyOnceReport('a' as unknown as string[], [])).toThrow(TypeError)
  })
})
