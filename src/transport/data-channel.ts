/**
 * What the transport uses of a data channel: an `RTCDataChannel` transferred
 * from the page, or a `PortChannel` where the page must keep the channel.
 */
export interface DataChannelLike extends EventTarget {
  readonly readyState: RTCDataChannelState
  readonly bufferedAmount: number
  binaryType: BinaryType
  bufferedAmountLowThreshold: number
  onopen: ((event: Event) => void) | null
  onmessage: ((event: MessageEvent) => void) | null
  onclose: ((event: Event) => void) | null
  send(data: Uint8Array<ArrayBuffer>): void
  close(): void
}
