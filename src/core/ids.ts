declare const brand: unique symbol

/** A nominal string type: `Brand<string, 'PeerId'>` is not assignable from a plain string. */
export type Brand<T, B extends string> = T & { readonly [brand]: B }

/** A peer's stable identity: 1..128 printable characters, no whitespace. */
export type PeerId = Brand<string, 'PeerId'>

/** The public id of one message (a nanoid), stable across retransmissions and restarts. */
export type MessageId = Brand<string, 'MessageId'>

/**
 * A sender's epoch: created when its store is first initialised. Epochs order
 * by creation time (fixed-width base-36 milliseconds, then a random suffix), so
 * a receiver can tell a wiped-and-recreated sender from a stale frame.
 */
export type Epoch = Brand<string, 'Epoch'>

// Printable, no whitespace, no control characters (ASCII or Unicode).
const PEER_ID = /^[^\s\p{Cc}\p{Cf}]{1,128}$/u
const EPOCH = /^[0-9a-z]{9}\.[A-Za-z0-9_-]{6,32}$/
const MESSAGE_ID = /^[A-Za-z0-9_-]{1,64}$/

/** True when `value` is a valid {@link PeerId}. */
export function isPeerId(value: unknown): value is PeerId {
  return typeof value === 'string' && PEER_ID.test(value)
}

/** True when `value` is a well-formed {@link Epoch}. */
export function isEpoch(value: unknown): value is Epoch {
  return typeof value === 'string' && EPOCH.test(value)
}

/** True when `value` could be a {@link MessageId} (1..64 url-safe characters). */
export function isMessageId(value: unknown): value is MessageId {
  return typeof value === 'string' && MESSAGE_ID.test(value)
}

/** Builds an epoch from a creation time and a random suffix. */
export function makeEpoch(nowMs: number, random: string): Epoch {
  const time = Math.max(0, Math.floor(nowMs)).toString(36).padStart(9, '0')
  return `${time}.${random}` as Epoch
}

/** Seqs are non-negative safe integers; -1 means "none yet". */
export function isSeq(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0
}
