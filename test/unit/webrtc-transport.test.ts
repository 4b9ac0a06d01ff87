/**
 * WebRtcTransport's choice of path, with a scripted relay and connector on a
 * ManualClock: when it tries a direct channel, and when it waits.
 */
import { describe, expect, it } from 'vitest'
import type { PeerId } from '../../src/core/ids.js'
import type { TransportEvents } from '../../src/core/transport.js'
import { ManualClock } from '../../src/testing/index.js'
import type { DataChannelLike } from '../../src/transport/data-channel.js'
import { WebRtcTransport, type RtcConnector, type SignallingTransport } from '../../src/transport/webrtc.js'

const BOB = 'bob' as PeerId

/** A data channel the test opens and closes. */
class ScriptedChannel extends EventTarget implements DataChannelLike {
  readyState: RTCDataChannelState = 'connecting'
  readonly bufferedAmount = 0
  binaryType: BinaryType = 'arraybuffer'
  bufferedAmountLowThreshold = 0
  onopen: ((event: Event) => void) | null = null
  onmessage: ((event: MessageEvent) => void) | null = null
  onclose: ((event: Event) => void) | null = null
  readonly sent: Uint8Array[] = []

  send(data: Uint8Array): void {
    this.sent.push(data)
  }

  open(): void {
    this.readyState = 'open'
    this.onopen?.(new Event('open'))
  }

  /** Closed from the far side or by the network. */
  drop(): void {
    this.readyState = 'closed'
    this.onclose?.(new Event('close'))
  }

  close(): void {
    this.readyState = 'closed'
  }
}

function setUp(): { transport: WebRtcTransport; clock: ManualClock; connects: PeerId[]; peer: (online: boolean) => void; channel: () => ScriptedChannel } {
  const clock = new ManualClock()
  let events: Pick<TransportEvents, 'peer'> | undefined
  const relay: SignallingTransport = {
    localId: 'alice',
    open: (e) => void (events = e),
    send: () => {},
    close: () => {},
    signal: () => {},
    onSignal: undefined,
  }
  const connects: PeerId[] = []
  const connector: RtcConnector = { connect: (peer) => void connects.push(peer), signal: () => {}, disconnect: () => {} }
  const transport = new WebRtcTransport({ relay, connector, clock, retryAfterMs: 30_000 })
  void transport.open({ frame: () => {}, peer: () => {}, closed: () => {} })
  transport.watch([BOB])
  return {
    transport,
    clock,
    connects,
    peer: (online) => events?.peer(BOB, online),
    channel: () => {
      const channel = new ScriptedChannel()
      transport.attachChannel(BOB, channel)
      channel.open()
      return channel
    },
  }
}

describe('WebRtcTransport', () => {
  it('waits retryAfterMs before trying again after a channel failed while the peer stayed online', () => {
    const { transport, clock, connects, peer, channel } = setUp()
    peer(true)
    expect(connects).toEqual([BOB])
    channel().drop()
    expect(transport.route(BOB)).toBe('relay')
    clock.advance(29_999)
    expect(connects).toEqual([BOB])
    clock.advance(1)
    expect(connects).toEqual([BOB, BOB])
  })

  it('tries again at once when the peer comes back online after a failed channel (the network that ended it is back)', () => {
    const { transport, clock, connects, peer, channel } = setUp()
    peer(true)
    channel().drop()
    peer(false)
    peer(true)
    expect(connects).toEqual([BOB, BOB])
    expect(transport.route(BOB)).toBe('connecting')
    channel()
    expect(transport.route(BOB)).toBe('direct')
    // The cancelled retry does not fire later.
    clock.advance(60_000)
    expect(connects).toEqual([BOB, BOB])
  })
})
