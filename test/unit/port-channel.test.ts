/**
 * The worker's end of a data channel the page keeps (Firefox cannot transfer
 * channels to workers): PortChannel over a real MessageChannel, the test
 * playing the page's side of the pipe.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { parsePipeDown, parsePipeUp } from '../../src/protocol/channel-pipe.js'
import { PortChannel } from '../../src/transport/port-channel.js'

const ports: MessagePort[] = []
afterEach(() => {
  for (const port of ports.splice(0)) port.close()
})

/** A PortChannel and the page's end of its port, with what the page received. */
function piped(): { channel: PortChannel; page: MessagePort; down: unknown[]; next: () => Promise<unknown> } {
  const { port1, port2 } = new MessageChannel()
  ports.push(port1, port2)
  const down: unknown[] = []
  const waiters: ((value: unknown) => void)[] = []
  port1.onmessage = (event: MessageEvent) => {
    down.push(event.data)
    waiters.shift()?.(event.data)
  }
  const next = (): Promise<unknown> => new Promise((resolve) => waiters.push(resolve))
  return { channel: new PortChannel(port2), page: port1, down, next }
}

const tick = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 20))

describe('PortChannel', () => {
  it('is connecting until the page says open; sending before throws InvalidStateError, as a channel does', async () => {
    const { channel, page } = piped()
    expect(channel.readyState).toBe('connecting')
    expect(() => channel.send(new Uint8Array([1]))).toThrow(expect.objectContaining({ name: 'InvalidStateError' }))
    const opened: string[] = []
    channel.onopen = () => opened.push('onopen')
    channel.addEventListener('open', () => opened.push('listener'))
    page.postMessage({ t: 'open' })
    await tick()
    expect(channel.readyState).toBe('open')
    expect(opened).toEqual(['onopen', 'listener'])
  })

  it('posts a copy of what it sends (the caller keeps its buffer) and counts it buffered until the page reports it handed over', async () => {
    const { channel, page, next } = piped()
    page.postMessage({ t: 'open' })
    await tick()
    const frame = new Uint8Array([1, 2, 3, 4])
    const posted = next()
    channel.send(frame)
    expect(frame.byteLength).toBe(4) // not detached
    expect(channel.bufferedAmount).toBe(4)
    const message = (await posted) as { t: string; data: ArrayBuffer }
    expect(message.t).toBe('send')
    expect([...new Uint8Array(message.data)]).toEqual([1, 2, 3, 4])
    // A view on part of a buffer sends only its bytes.
    const whole = new Uint8Array([9, 8, 7, 6, 5])
    const part = next()
    channel.send(whole.subarray(1, 3))
    expect([...new Uint8Array(((await part) as { data: ArrayBuffer }).data)]).toEqual([8, 7])
    expect(channel.bufferedAmount).toBe(6)
    page.postMessage({ t: 'sent', sent: 6, buffered: 2 })
    await tick()
    expect(channel.bufferedAmount).toBe(2)
  })

  it('fires bufferedamountlow when a report brings the buffered amount to the threshold', async () => {
    const { channel, page } = piped()
    channel.bufferedAmountLowThreshold = 10
    page.postMessage({ t: 'open' })
    await tick()
    let low = 0
    channel.addEventListener('bufferedamountlow', () => low++)
    channel.send(new Uint8Array(30))
    page.postMessage({ t: 'sent', sent: 30, buffered: 25 })
    await tick()
    expect(low).toBe(0)
    page.postMessage({ t: 'sent', sent: 30, buffered: 10 })
    await tick()
    expect(low).toBe(1)
    page.postMessage({ t: 'sent', sent: 30, buffered: 0 })
    await tick()
    expect(low).toBe(1) // already low: no second event
  })

  it('hands what arrives on the channel to onmessage as an ArrayBuffer', async () => {
    const { channel, page } = piped()
    page.postMessage({ t: 'open' })
    const got: unknown[] = []
    channel.onmessage = (event) => got.push(event.data)
    page.postMessage({ t: 'message', data: new Uint8Array([5, 6]).buffer })
    await tick()
    expect(got).toHaveLength(1)
    expect([...new Uint8Array(got[0] as ArrayBuffer)]).toEqual([5, 6])
  })

  it('ignores malformed messages from the page without changing state', async () => {
    const { channel, page } = piped()
    const fired: string[] = []
    channel.onopen = () => fired.push('open')
    channel.onmessage = () => fired.push('message')
    channel.onclose = () => fired.push('close')
    for (const bad of [
      null,
      7,
      'open',
      { t: 'opened' },
      { t: 'message', data: 'text' },
      { t: 'sent', sent: -1, buffered: 0 },
      { t: 'sent', sent: 1.5, buffered: 0 },
    ])
      page.postMessage(bad)
    await tick()
    expect(fired).toEqual([])
    expect(channel.readyState).toBe('connecting')
    expect(channel.bufferedAmount).toBe(0)
  })

  it('close() tells the page and fires close once; a close from the page closes it too', async () => {
    const a = piped()
    a.page.postMessage({ t: 'open' })
    await tick()
    let closes = 0
    a.channel.onclose = () => closes++
    const told = a.next()
    a.channel.close()
    a.channel.close()
    expect(await told).toEqual({ t: 'close' })
    expect(a.channel.readyState).toBe('closed')
    expect(closes).toBe(1)

    const b = piped()
    b.page.postMessage({ t: 'open' })
    let closed = false
    b.channel.onclose = () => (closed = true)
    b.page.postMessage({ t: 'close' })
    await tick()
    expect(closed).toBe(true)
    expect(b.channel.readyState).toBe('closed')
    expect(() => b.channel.send(new Uint8Array([1]))).toThrow(expect.objectContaining({ name: 'InvalidStateError' }))
  })
})

describe('the pipe messages', () => {
  it('accept only their own shapes', () => {
    expect(parsePipeUp({ t: 'open' })).toEqual({ t: 'open' })
    expect(parsePipeUp({ t: 'sent', sent: 3, buffered: 0 })).toEqual({ t: 'sent', sent: 3, buffered: 0 })
    expect(parsePipeUp({ t: 'send', data: new ArrayBuffer(1) })).toBeUndefined()
    expect(parsePipeDown({ t: 'send', data: new ArrayBuffer(1) })).toMatchObject({ t: 'send' })
    expect(parsePipeDown({ t: 'send', data: [1] })).toBeUndefined()
    expect(parsePipeDown({ t: 'open' })).toBeUndefined()
    expect(parsePipeDown(undefined)).toBeUndefined()
  })
})
