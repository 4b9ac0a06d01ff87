/**
 * WebRTC between a worker and its page (workers cannot make
 * RTCPeerConnections): what the worker asks of the page, and the signalling
 * data peers exchange through the relay, checked on receipt.
 */

/** What the worker asks the page to do about WebRTC (workers cannot create RTCPeerConnections). */
export type RtcCommand =
  | { readonly t: 'connect'; readonly peer: string; readonly initiator: boolean }
  | { readonly t: 'signal'; readonly peer: string; readonly data: unknown }
  | { readonly t: 'disconnect'; readonly peer: string }

/** Signalling data as peers exchange it through the relay. */
export type Signal = { readonly description: RTCSessionDescriptionInit } | { readonly candidate: RTCIceCandidateInit }

/** Checks signalling data from another peer; `undefined` if it is not a well-formed offer, answer or candidate. */
export function parseSignal(data: unknown): Signal | undefined {
  if (typeof data !== 'object' || data === null) return undefined
  const d = data as Record<string, unknown>
  const description = d.description as Record<string, unknown> | undefined
  if (typeof description === 'object' && description !== null) {
    const ok = (description.type === 'offer' || description.type === 'answer') && typeof description.sdp === 'string' && description.sdp.length < 65_536
    return ok ? { description: { type: description.type as RTCSdpType, sdp: description.sdp as string } } : undefined
  }
  const candidate = d.candidate as Record<string, unknown> | undefined
  if (typeof candidate === 'object' && candidate !== null && typeof candidate.candidate === 'string' && candidate.candidate.length < 4096) {
    return {
      candidate: {
        candidate: candidate.candidate,
        sdpMid: typeof candidate.sdpMid === 'string' ? candidate.sdpMid : null,
        sdpMLineIndex: typeof candidate.sdpMLineIndex === 'number' ? candidate.sdpMLineIndex : null,
      },
    }
  }
  return undefined
}
