/** How the relay connection reads in the header: "online", "reconnecting in 4s", "offline"... */
import type { ConnectionState } from 'intersession/client'

export type ConnectionKind = 'online' | 'connecting' | 'reconnecting' | 'offline' | 'failed' | 'closed'

export interface ConnectionLabel {
  readonly kind: ConnectionKind
  readonly text: string
  /** Details for the tooltip. */
  readonly title: string
}

export function connectionLabel(state: ConnectionState, now: number): ConnectionLabel {
  const why = state.reason !== undefined ? ` (${state.reason})` : ''
  switch (state.status) {
    case 'online':
      return { kind: 'online', text: 'online', title: `connected to ${state.url ?? 'the relay'}` }
    case 'connecting':
      return { kind: 'connecting', text: 'connecting…', title: `connecting to ${state.url ?? 'the relay'}` }
    case 'offline': {
      if (state.nextRetryAt === undefined) return { kind: 'offline', text: 'offline', title: `not connected${why}` }
      const seconds = Math.max(0, Math.ceil((state.nextRetryAt - now) / 1000))
      return { kind: 'reconnecting', text: seconds > 0 ? `reconnecting in ${seconds}s` : 'reconnecting…', title: `disconnected${why}` }
    }
    case 'failed':
      return { kind: 'failed', text: 'refused by the relay', title: `the relay refused this name${why}` }
    case 'closed':
      return {
        kind: 'closed',
        text: /replaced/i.test(state.reason ?? '') ? 'signed in elsewhere' : 'closed',
        title: `connection closed${why}`,
      }
  }
}
