/**
 * Harness for the connection-state checks (link-state.spec.ts), as
 * `window.harness.linkState`: a messenger on a relay with the transport's default
 * heartbeat (unlike `harness.connect`, which sets its own), and a timeline of
 * its `connection` events stamped with `Date.now()`, so a test can tell how
 * long after a fault the state changed.
 */
import { connect, type ConnectionState, type Messenger } from 'intersession/client'

interface Change {
  readonly at: number
  readonly status: ConnectionState['status']
  readonly reason?: string
}

let messenger: Messenger | undefined
const changes: Change[] = []

export const linkState = {
  /** Connects `peerId` to `relay` with the default heartbeat; `heartbeatMs` overrides it. */
  async connect(peerId: string, relay: string, heartbeatMs?: number): Promise<void> {
    messenger = await connect({
      peerId,
      transport: {
        kind: 'websocket',
        url: relay,
        token: async () => `dev:${peerId}`,
        ...(heartbeatMs !== undefined && { heartbeatMs }),
      },
    })
    messenger.on('connection', (state) => {
      changes.push({ at: Date.now(), status: state.status, ...(state.reason !== undefined && { reason: state.reason }) })
    })
  },
  connection: (): ConnectionState | undefined => messenger?.connection,
  /** Every connection change since `connect`, oldest first. */
  changes: (): readonly Change[] => changes,
  /** The first change at or after `since` (epoch ms) to `status`, if any. */
  firstSince: (since: number, status: ConnectionState['status']): Change | undefined => changes.find((c) => c.at >= since && c.status === status),
}
