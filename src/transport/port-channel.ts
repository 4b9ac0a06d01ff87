import { parsePipeUp } from '../protocol/channel-pipe.js'
import type { DataChannelLike } from './data-channel.js'

/**
 * The worker's end of a data channel the page keeps (engines that cannot
 * transfer channels to workers): a {@link DataChannelLike} over a
 * `MessagePort`. `bufferedAmount` is what was posted to the page and not yet
 * handed to the channel, plus what the channel itself still buffers, as last
 * reported; `bufferedamountlow` fires when a report brings it to the
 * threshold or below.
 */
export class PortChannel extends EventTarget implements DataChannelLike {
  binaryType: BinaryType = 'arraybuffer'
  bufferedAmountLowThreshold = 0
  onopen: ((event: Event) => void) | null = null
  onmessage: ((event: MessageEvent) => void) | null = null
  onclose: ((event: Event) => void) | null = null
  readonly #port: MessagePort
  #state: RTCDataChannelState = 'connecting'
  #posted = 0
  #handedOver = 0
  #channelBuffered = 0

  constructor(port: MessagePort) {
    super()
    this.#port = port
    port.onmessage = (event: MessageEvent) => this.#receive(event.data)
  }

  get readyState(): RTCDataChannelState {
    return this.#state
  }

  get bufferedAmount(): number {
    return this.#posted - this.#handedOver + this.#channelBuffered
  }

  /** Posts `data` to the page for the channel. Throws `InvalidStateError` unless open, as a channel does. */
  send(data: ArrayBuffer | Uint8Array<ArrayBuffer>): void {
    if (this.#state !== 'open') throw new DOMException('the data channel is not open', 'InvalidStateError')
    const buffer = data instanceof ArrayBuffer ? data : data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data.buffer : data.slice().buffer
    this.#posted += buffer.byteLength
    // Copied, not transferred: the caller may still hold the frame (a retransmission sends it again).
    this.#port.postMessage({ t: 'send', data: buffer })
  }

  close(): void {
    if (this.#state === 'closed') return
    this.#port.postMessage({ t: 'close' })
    this.#closed()
  }

  #receive(value: unknown): void {
    const message = parsePipeUp(value)
    if (message === undefined || this.#state === 'closed') return
    switch (message.t) {
      case 'open': {
        if (this.#state !== 'connecting') return
        this.#state = 'open'
        this.#fire('open', new Event('open'))
        return
      }
      case 'close': {
        this.#closed()
        return
      }
      case 'message': {
        this.#fire('message', new MessageEvent('message', { data: message.data }))
        return
      }
      case 'sent': {
        const before = this.bufferedAmount
        this.#handedOver = Math.min(message.sent, this.#posted)
        this.#channelBuffered = message.buffered
        if (before > this.bufferedAmountLowThreshold && this.bufferedAmount <= this.bufferedAmountLowThreshold)
          this.dispatchEvent(new Event('bufferedamountlow'))
        return
      }
    }
  }

  #closed(): void {
    this.#state = 'closed'
    this.#port.close()
    this.#fire('close', new Event('close'))
  }

  #fire(type: 'open' | 'message' | 'close', event: Event): void {
    const handler = type === 'open' ? this.onopen : type === 'message' ? this.onmessage : this.onclose
    handler?.call(this, event as MessageEvent)
    this.dispatchEvent(event)
  }
}
