/** The mark beside a sent message: clock (queued), ✓ (sent), ✓✓ (delivered), ⚠ (expired or failed, reason on hover). */
import { h, svg } from './dom.js'
import type { LogEntry } from './history.js'

// A drawn clock rather than the 🕓 emoji, which many systems lack a font for.
const CLOCK = `<svg viewBox="0 0 16 16" width="13" height="13" aria-hidden="true"><circle cx="8" cy="8" r="6.25" fill="none" stroke="currentColor" stroke-width="1.5"/><path d="M8 4.5V8l2.5 1.5" fill="none" stroke="currentColor" stroke-width="1.5" stroke-linecap="round"/></svg>`

const LABELS: Record<LogEntry['status'], string> = {
  sending: 'queued',
  queued: 'queued: stored on this device, waiting to be sent',
  sent: 'sent: on its way, not yet stored by the receiver',
  stored: 'stored by the relay: the receiver gets it when it comes online',
  delivered: 'delivered: stored by the receiver',
  expired: 'expired',
  failed: 'failed',
  received: 'received',
}

export function statusGlyph(entry: LogEntry): HTMLElement {
  const title = entry.reason !== undefined ? `${LABELS[entry.status]}: ${entry.reason}` : LABELS[entry.status]
  const mark = h('span', { class: `status status-${entry.status}`, 'data-testid': 'status', title, 'aria-label': title })
  switch (entry.status) {
    case 'sending':
    case 'queued':
      mark.append(svg(CLOCK))
      break
    case 'sent':
    case 'stored':
      mark.append('✓')
      break
    case 'delivered':
      mark.append('✓✓')
      break
    case 'expired':
    case 'failed':
      mark.append('⚠')
      break
    case 'received':
      break
  }
  return mark
}
