import { KEY_BYTES, canonical, isBytes } from './bytes.js'

const SAFETY_LABEL = 'intersession e2e v1 safety number'
const DIGITS = 60
const GROUP = 5

/** One side of a conversation, as its safety number covers it. */
export interface SafetyParty {
  readonly peer: string
  /** Raw Ed25519 identity key (32 bytes). */
  readonly identityKey: Uint8Array
}

/**
 * The fingerprint two users compare out of band: SHA-256 over both (peer, identity key) pairs, ordered by peer id,
 * as 60 decimal digits (the digest modulo 10^60) in 12 groups of 5, e.g. `'01234 56789 …'`. Both sides get the
 * same number whichever order they pass the parties in; it changes when either identity key does.
 * @throws TypeError when a party has no string peer or no 32-byte identity key.
 */
export function safetyNumber(a: SafetyParty, b: SafetyParty): Promise<string> {
  for (const party of [a, b]) {
    if (typeof party.peer !== 'string' || !isBytes(party.identityKey, KEY_BYTES)) throw new TypeError('a party is { peer: string, identityKey: 32 bytes }')
  }
  const [first, second] = ordered(a, b)
  const input = canonical(SAFETY_LABEL, [first.peer, first.identityKey, second.peer, second.identityKey])
  return crypto.subtle.digest('SHA-256', input).then((digest) => {
    const value = BigInt(`0x${Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, '0')).join('')}`)
    const digits = (value % 10n ** BigInt(DIGITS)).toString().padStart(DIGITS, '0')
    return Array.from({ length: DIGITS / GROUP }, (_, i) => digits.slice(i * GROUP, (i + 1) * GROUP)).join(' ')
  })
}

/** The parties by peer id (UTF-16 code units, the same everywhere), then by key bytes when a peer talks to itself. */
function ordered(a: SafetyParty, b: SafetyParty): [SafetyParty, SafetyParty] {
  if (a.peer !== b.peer) return a.peer < b.peer ? [a, b] : [b, a]
  const at = a.identityKey.findIndex((byte, i) => byte !== b.identityKey[i])
  return at >= 0 && (a.identityKey[at] ?? 0) > (b.identityKey[at] ?? 0) ? [b, a] : [a, b]
}
