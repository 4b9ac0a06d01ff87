/**
 * The benchmark message: a 64-character ASCII string (64 bytes as UTF-8) that
 * carries its run's phase tag, its index and its send time. Every system
 * under test sends this same string, in the form each takes natively
 * (intersession contents, an MQTT payload, a Socket.IO event argument).
 */

/** Length of every message, characters = UTF-8 bytes. */
export const MESSAGE_BYTES = 64

/** What a message carries. */
export interface Stamp {
  readonly phase: number
  readonly index: number
  /** Send time, ms on the shared clock ({@link now}). */
  readonly sentAt: number
}

/** The clock both pages share: wall-clock ms with sub-ms resolution. */
export const now = (): number => performance.timeOrigin + performance.now()

/** Message `index` of `phase`, stamped with the current time, padded to {@link MESSAGE_BYTES}. */
export function stamp(phase: number, index: number): string {
  return `${phase}:${index}:${now().toFixed(3)}:`.padEnd(MESSAGE_BYTES, '.')
}

/** The stamp in `text`, or `undefined` when `text` is not a benchmark message. */
export function readStamp(text: string): Stamp | undefined {
  if (text.length !== MESSAGE_BYTES) return undefined
  const [phase, index, sentAt] = text.split(':', 3).map(Number)
  if (phase === undefined || index === undefined || sentAt === undefined) return undefined
  if (!Number.isSafeInteger(phase) || !Number.isSafeInteger(index) || index < 0 || !Number.isFinite(sentAt)) return undefined
  return { phase, index, sentAt }
}
