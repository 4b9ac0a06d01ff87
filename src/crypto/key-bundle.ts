import { isEpoch, isPeerId, type Epoch, type PeerId } from '../core/ids.js'
import { KEY_BYTES, SIGNATURE_BYTES, canonical, isBytes, isSafeUint, isU32, lengthPrefixed, readLengthPrefixed, readU64, u32, u64 } from './bytes.js'
import { assertIdentity, sign, verifySignature, type IdentityKeys } from './identity-keys.js'

const PREKEY_LABEL = 'intersession e2e v1 prekey'
const VERSION = 1

/**
 * A signed prekey: an X25519 pair that senders agree their sender keys with. It rotates; once its private half is
 * deleted, sender keys made for it can no longer be derived (the forward secrecy boundary). A plain
 * structured-clonable record.
 */
export interface Prekey {
  /** Increasing per identity (u32). */
  readonly id: number
  /** When it was made (ms since the epoch). */
  readonly createdAt: number
  /** X25519; the private half is not extractable. */
  readonly agreement: CryptoKeyPair
  /** The raw public key (32 bytes). */
  readonly publicKey: Uint8Array<ArrayBuffer>
  /** The identity's signature (64 bytes) over peer, epoch, id, createdAt and the public key. */
  readonly signature: Uint8Array<ArrayBuffer>
}

/** What a peer publishes: its identity key and current signed prekey. */
export interface KeyBundle {
  readonly v: 1
  readonly peer: PeerId
  readonly epoch: Epoch
  /** Raw Ed25519 public key (32 bytes). */
  readonly identityKey: Uint8Array
  readonly prekey: {
    readonly id: number
    readonly createdAt: number
    /** Raw X25519 public key (32 bytes). */
    readonly key: Uint8Array
    /** 64 bytes. */
    readonly signature: Uint8Array
  }
}

/** Why {@link decodeBundle} refused its input. */
export type BundleDecodeFailure = 'TRUNCATED' | 'VERSION' | 'SIZE' | 'TRAILING' | 'FIELD'

/** The result of {@link decodeBundle}: a bundle (not yet verified: {@link verifyBundle}), or a typed refusal. */
export type BundleDecodeResult =
  { readonly ok: true; readonly bundle: KeyBundle } | { readonly ok: false; readonly reason: BundleDecodeFailure; readonly detail: string }

/**
 * Makes prekey `id` of `identity`, signed by it.
 * @throws TypeError when `identity` is not identity keys; RangeError when `id` is not a u32 or `now` not a safe
 *   integer >= 0.
 */
export function createPrekey(identity: IdentityKeys, id: number, now: number): Promise<Prekey> {
  assertIdentity(identity)
  if (!isU32(id)) throw new RangeError(`prekey id ${String(id)} is not an integer in 0..2^32-1`)
  if (!isSafeUint(now)) throw new RangeError(`${String(now)} is not a time in ms`)
  return generatePrekey(identity, id, now)
}

async function generatePrekey(identity: IdentityKeys, id: number, createdAt: number): Promise<Prekey> {
  const agreement = (await crypto.subtle.generateKey({ name: 'X25519' }, false, ['deriveBits'])) as CryptoKeyPair
  const publicKey = new Uint8Array(await crypto.subtle.exportKey('raw', agreement.publicKey))
  const signature = await sign(identity, signedPart(identity.peer, identity.epoch, id, createdAt, publicKey))
  return { id, createdAt, agreement, publicKey, signature }
}

function signedPart(peer: string, epoch: string, id: number, createdAt: number, key: Uint8Array): Uint8Array<ArrayBuffer> {
  return canonical(PREKEY_LABEL, [peer, epoch, u32(id), u64(createdAt), key])
}

/**
 * The public bundle of `identity` with `prekey`.
 * @throws TypeError when `identity` is not identity keys.
 */
export function bundleOf(identity: IdentityKeys, prekey: Prekey): KeyBundle {
  assertIdentity(identity)
  const { id, createdAt, publicKey: key, signature } = prekey
  return { v: VERSION, peer: identity.peer, epoch: identity.epoch, identityKey: identity.publicKey, prekey: { id, createdAt, key, signature } }
}

/**
 * The wire and storage form of `bundle`: the version byte, then length-prefixed (u32 big-endian) peer, epoch
 * (UTF-8), identity key, prekey id (u32), createdAt (u64), prekey key and signature. At most 723 bytes for the
 * longest peer id.
 * @throws TypeError / RangeError when `bundle` is not a bundle's shape.
 */
export function encodeBundle(bundle: KeyBundle): Uint8Array<ArrayBuffer> {
  const { peer, epoch, identityKey, prekey } = bundle
  if (!isPeerId(peer) || !isEpoch(epoch)) throw new TypeError('a bundle names a valid peer and epoch')
  if (!isBytes(identityKey, KEY_BYTES) || !isBytes(prekey.key, KEY_BYTES) || !isBytes(prekey.signature, SIGNATURE_BYTES)) {
    throw new TypeError('a bundle holds 32-byte keys and a 64-byte signature')
  }
  return lengthPrefixed(Uint8Array.of(VERSION), [peer, epoch, identityKey, u32(prekey.id), u64(prekey.createdAt), prekey.key, prekey.signature])
}

/** The byte size of each field of an encoded bundle, in order; peer and epoch vary. */
const FIELD_SIZES = [undefined, undefined, KEY_BYTES, 4, 8, KEY_BYTES, SIGNATURE_BYTES] as const
type Fields = [Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array]
const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * The bundle in `bytes` ({@link encodeBundle}'s form), or why not. Any bytes give a result, never a throw; the
 * signature is not checked here ({@link verifyBundle}).
 * @throws TypeError only when `bytes` is not a Uint8Array (misuse).
 */
export function decodeBundle(bytes: Uint8Array): BundleDecodeResult {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('decodeBundle takes a Uint8Array')
  if (bytes.byteLength === 0) return refuse('TRUNCATED', 'no bytes')
  if (bytes[0] !== VERSION) return refuse('VERSION', `version ${bytes[0]}`)
  const fields = readLengthPrefixed(bytes, 1, FIELD_SIZES.length)
  if (typeof fields === 'string') return refuse(fields, fields === 'TRUNCATED' ? 'a field runs past the end' : 'bytes after the last field')
  // readLengthPrefixed returned exactly FIELD_SIZES.length fields.
  const [peerBytes, epochBytes, identityKey, id, createdAtBytes, key, signature] = fields as Fields
  for (const [i, field] of fields.entries()) {
    const size = FIELD_SIZES[i]
    if (size !== undefined && field.byteLength !== size) return refuse('SIZE', `field ${i + 1} is ${field.byteLength} bytes, not ${size}`)
  }
  const peer = text(peerBytes)
  const epoch = text(epochBytes)
  if (!isPeerId(peer)) return refuse('FIELD', 'peer is not a valid peer id')
  if (!isEpoch(epoch)) return refuse('FIELD', 'epoch is not a well-formed epoch')
  const createdAt = readU64(createdAtBytes)
  if (createdAt === undefined) return refuse('FIELD', 'createdAt is above 2^53-1')
  const prekey = { id: new DataView(id.buffer, id.byteOffset, 4).getUint32(0), createdAt, key: key.slice(), signature: signature.slice() }
  return { ok: true, bundle: { v: VERSION, peer, epoch, identityKey: identityKey.slice(), prekey } }
}

function text(bytes: Uint8Array): string | undefined {
  try {
    return utf8.decode(bytes)
  } catch {
    return undefined
  }
}

function refuse(reason: BundleDecodeFailure, detail: string): BundleDecodeResult {
  return { ok: false, reason, detail }
}

/**
 * True when `bundle` has a bundle's shape and sizes and its prekey signature verifies under its own identity key
 * over its own peer, epoch, prekey id, createdAt and prekey. False for anything else, never a throw. Whether the
 * identity key is the peer's is the caller's question (pinning).
 */
export async function verifyBundle(bundle: KeyBundle): Promise<boolean> {
  try {
    // Network input: the shape is checked, not trusted.
    const { v, peer, epoch, identityKey, prekey } = bundle as Partial<KeyBundle>
    if (v !== VERSION || !isPeerId(peer) || !isEpoch(epoch) || prekey === undefined || !isU32(prekey.id) || !isSafeUint(prekey.createdAt)) return false
    if (!isBytes(identityKey, KEY_BYTES) || !isBytes(prekey.key, KEY_BYTES) || !isBytes(prekey.signature, SIGNATURE_BYTES)) return false
    return await verifySignature(identityKey, prekey.signature, signedPart(peer, epoch, prekey.id, prekey.createdAt, prekey.key))
  } catch {
    return false
  }
}
