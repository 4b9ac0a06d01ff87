/**
 * A recorder of what a transport reports to its owner, for unit tests of
 * transports: pass it to `transport.open()` and read back the frames,
 * presence changes and closes it saw.
 */
import type { PeerId } from '../../src/core/ids.js'
import type { TransportEvents } from '../../src/core/transport.js'

/** The events a transport reported, in arrival order. */
export interface TransportLog extends TransportEvents {
  readonly frames: { from: PeerId; data: Uint8Array }[]
  readonly presence: [string, boolean][]
  closedCount: number
  /** The last presence reported for `peer`, or undefined if none was. */
  online(peer: string): boolean | undefined
}

/** A fresh, empty {@link TransportLog}. */
export function transportLog(): TransportLog {
  const l: TransportLog = {
    frames: [],
    presence: [],
    closedCount: 0,
    frame: (from, data) => void l.frames.push({ from, data }),
    peer: (peer, online) => void l.presence.push([peer, online]),
    closed: () => void l.closedCount++,
    online: (peer) => l.presence.filter(([p]) => p === peer).at(-1)?.[1],
  }
  return l
}
