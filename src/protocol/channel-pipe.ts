/**
 * A data channel piped through the page, for engines that cannot transfer an
 * `RTCDataChannel` to a worker (Firefox: `DataCloneError`). The page keeps
 * the channel and forwards over a `MessagePort`; these are the messages on
 * that port, checked on receipt like any other input.
 */

/** Page -> worker: the channel's state, what arrived on it, and how much of what was sent has left the page. */
export type PipeUp =
  | { readonly t: 'open' }
  | { readonly t: 'close' }
  | { readonly t: 'message'; readonly data: ArrayBuffer }
  /** `sent` bytes of the worker's sends have been handed to the channel, of which the channel still buffers `buffered`. */
  | { readonly t: 'sent'; readonly sent: number; readonly buffered: number }

/** Worker -> page: data to send on the channel, or close it. */
export type PipeDown = { readonly t: 'send'; readonly data: ArrayBuffer } | { readonly t: 'close' }

const count = (value: unknown): value is number => typeof value === 'number' && Number.isSafeInteger(value) && value >= 0

/** Checks a message from the page; `undefined` if it is not one. */
export function parsePipeUp(value: unknown): PipeUp | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  const m = value as Record<string, unknown>
  switch (m.t) {
    case 'open':
    case 'close':
      return { t: m.t }
    case 'message':
      return m.data instanceof ArrayBuffer ? { t: 'message', data: m.data } : undefined
    case 'sent':
      return count(m.sent) && count(m.buffered) ? { t: 'sent', sent: m.sent, buffered: m.buffered } : undefined
    default:
      return undefined
  }
}

/** Checks a message from the worker; `undefined` if it is not one. */
export function parsePipeDown(value: unknown): PipeDown | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  const m = value as Record<string, unknown>
  if (m.t === 'close') return { t: 'close' }
  return m.t === 'send' && m.data instanceof ArrayBuffer ? { t: 'send', data: m.data } : undefined
}
