import { describe, expect, it } from 'vitest'
import { environmentNetworkStatus, isNetworkStatusSource } from '../../src/transport/network-status.js'

/** A global scope as a window (or a Firefox worker) has it: online/offline events and navigator.connection. */
function scope(options: { events: boolean; connection: boolean }): {
  scope: object
  navigator: { onLine: boolean }
  fire(type: 'online' | 'offline'): void
  change(onLine: boolean): void
  listeners(): number
} {
  const global = new EventTarget()
  const connection = new EventTarget()
  const navigator = { onLine: true }
  let count = 0
  const counting = (target: EventTarget): Pick<EventTarget, 'addEventListener' | 'removeEventListener'> => ({
    addEventListener: (type: string, listener: EventListenerOrEventListenerObject | null) => {
      count++
      target.addEventListener(type, listener)
    },
    removeEventListener: (type: string, listener: EventListenerOrEventListenerObject | null) => {
      count--
      target.removeEventListener(type, listener)
    },
  })
  if (options.connection) Object.assign(navigator, { connection: counting(connection) })
  return {
    scope: { navigator, ...(options.events && counting(global)) },
    navigator,
    fire(type) {
      navigator.onLine = type === 'online'
      global.dispatchEvent(new Event(type))
    },
    change(onLine) {
      navigator.onLine = onLine
      connection.dispatchEvent(new Event('change'))
    },
    listeners: () => count,
  }
}

describe('environmentNetworkStatus', () => {
  it('a window: online/offline events, each reported', () => {
    const w = scope({ events: true, connection: false })
    const seen: boolean[] = []
    const off = environmentNetworkStatus(w.scope).subscribe((online) => void seen.push(online))
    w.fire('offline')
    w.fire('online')
    expect(seen).toEqual([false, true])
    off()
    expect(w.listeners()).toBe(0)
    w.fire('offline')
    expect(seen).toEqual([false, true])
  })

  it('a Chromium worker (no online/offline events): navigator.connection change with navigator.onLine, only when onLine changed', () => {
    const w = scope({ events: false, connection: true })
    const seen: boolean[] = []
    const off = environmentNetworkStatus(w.scope).subscribe((online) => void seen.push(online))
    w.change(true) // a bandwidth estimate changed: no news
    w.change(false)
    w.change(false)
    w.change(true)
    expect(seen).toEqual([false, true])
    off()
    expect(w.listeners()).toBe(0)
  })

  it('both signals for one transition (a window in Chromium): reported once', () => {
    const w = scope({ events: true, connection: true })
    const seen: boolean[] = []
    environmentNetworkStatus(w.scope).subscribe((online) => void seen.push(online))
    w.fire('offline')
    w.change(false)
    w.fire('online')
    w.change(true)
    expect(seen).toEqual([false, true])
  })

  it('Node (no events, no navigator): nothing to listen to, nothing reported', () => {
    const seen: boolean[] = []
    const off = environmentNetworkStatus({}).subscribe((online) => void seen.push(online))
    off()
    expect(seen).toEqual([])
    expect(isNetworkStatusSource(environmentNetworkStatus())).toBe(true)
    expect(isNetworkStatusSource({ subscribe: 1 })).toBe(false)
  })
})
