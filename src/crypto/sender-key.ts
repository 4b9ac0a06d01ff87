import { isEpoch, type Epoch, type PeerId } from '../core/ids.js'
import { KEY_BYTES, SIGNATURE_BYTES, canonical, type Field, isBytes, isSafeUint, isU32, own, u32 } from './bytes.js'
import { assertIdentity, isPrivateKey, sign, verifySignature, type IdentityKeys } from './identity-keys.js'
import type { KeyBundle, Prekey } from './key-bundle.js'

const STREAM_LABEL = 'intersession e2e v1 stream'
const SENDER_KEY_LABEL = 'intersession e2e v1 sender key'
const SALT = new Uint8Array(32)

/** What every sealed frame carries so that the receiver can derive its sender key. */
export interface SenderKeyHeader {
  /** The sender key's id (u32, increasing per stream). */
  readonly kid: number
  /** The id of the receiver's prekey it was agreed with (u32). */
  readonly prekey: number
  /** The ephemeral X25519 public key (32 bytes). */
  readonly eph: Uint8Array
  /** The sender's identity signature (64 bytes) over the stream, both epochs, prekey id, kid and `eph`. */
  readonly sig: Uint8Array
}

/** The sender's side of a sender key: a plain structured-clonable record. */
export interface SenderKey {
  readonly kid: number
  readonly to: PeerId
  readonly toEpoch: Epoch
  readonly prekeyId: number
  readonly createdAt: number
  readonly header: SenderKeyHeader
  /** AES-GCM 256, not extractable. */
  readonly key: CryptoKey
}

/** What {@link createSenderKey} needs. */
export interface SenderKeyRequest {
  /** The sender's identity. */
  readonly identity: IdentityKeys
  /** The sender: must be `identity`'s peer and epoch. */
  readonly from: PeerId
  readonly fromEpoch: Epoch
  /** The receiver: must be `receiver`'s peer. */
  readonly to: PeerId
  /** The receiver's bundle, already verified ({@link verifyBundle}) and its identity key pinned by the caller. */
  readonly receiver: KeyBundle
  readonly kid: number
  readonly now: number
}

/**
 * Makes sender key `kid` for the stream `from -> to`: an ephemeral X25519 pair agrees a secret with the
 * receiver's prekey, HKDF-SHA-256 derives the AES-GCM key from it, and the ephemeral private half is dropped (it
 * is never stored). The identity signs the header.
 * @throws TypeError when an argument has the wrong shape or `from`/`fromEpoch`/`to` disagree with `identity` and
 *   `receiver`; RangeError when `kid` is not a u32 or `now` not a safe integer >= 0. Rejects with the platform's
 *   error when the receiver's prekey is not a usable X25519 key (e.g. a low-order point).
 */
export function createSenderKey(request: SenderKeyRequest): Promise<SenderKey> {
  const { identity, from, fromEpoch, to, receiver, kid, now } = request
  assertIdentity(identity)
  if (from !== identity.peer || fromEpoch !== identity.epoch) throw new TypeError('from and fromEpoch must be the peer and epoch of the sender identity')
  const bundle = receiver as Partial<KeyBundle> | undefined
  if (to !== bundle?.peer) throw new TypeError('to must be the peer of the receiver bundle')
  if (!isEpoch(bundle.epoch) || !isBytes(bundle.prekey?.key, KEY_BYTES) || !isU32(bundle.prekey.id)) throw new TypeError('not a key bundle (decodeBundle)')
  if (!isU32(kid)) throw new RangeError(`kid ${String(kid)} is not an integer in 0..2^32-1`)
  if (!isSafeUint(now)) throw new RangeError(`${String(now)} is not a time in ms`)
  return generateSenderKey(identity, receiver, kid, now)
}

async function generateSenderKey(identity: IdentityKeys, receiver: KeyBundle, kid: number, createdAt: number): Promise<SenderKey> {
  const prekeyId = receiver.prekey.id
  const ephemeral = (await crypto.subtle.generateKey({ name: 'X25519' }, false, ['deriveBits'])) as CryptoKeyPair
  const eph = new Uint8Array(await crypto.subtle.exportKey('raw', ephemeral.publicKey))
  const fields = streamFields(identity.peer, receiver.peer, identity.epoch, receiver.epoch, prekeyId, kid, eph)
  const key = await deriveKey(ephemeral.privateKey, receiver.prekey.key, fields)
  const sig = await sign(identity, canonical(SENDER_KEY_LABEL, fields))
  return { kid, to: receiver.peer, toEpoch: receiver.epoch, prekeyId, createdAt, header: { kid, prekey: prekeyId, eph, sig }, key }
}

/** Why {@link openSenderKey} refused a header. */
export type SenderKeyRefusal = 'BAD_SIGNATURE' | 'PREKEY_MISMATCH' | 'MALFORMED'

/** The result of {@link openSenderKey}: the AES-GCM key, or a typed refusal. */
export type OpenedSenderKey = { readonly ok: true; readonly key: CryptoKey } | { readonly ok: false; readonly reason: SenderKeyRefusal }

/** What {@link openSenderKey} needs. */
export interface OpenSenderKeyRequest {
  /** The receiver's identity. */
  readonly identity: IdentityKeys
  /** The receiver's prekey the header names, with its private half. */
  readonly prekey: Prekey
  readonly from: PeerId
  readonly fromEpoch: Epoch
  /** The sender's pinned identity key (raw Ed25519, 32 bytes). */
  readonly senderIdentityKey: Uint8Array
  /** As received: network input, checked here. */
  readonly header: SenderKeyHeader
}

/**
 * The receiver's side: checks the header's shape (`MALFORMED`), that it names `prekey` (`PREKEY_MISMATCH`), and
 * its signature under the pinned `senderIdentityKey` over this stream and both epochs (`BAD_SIGNATURE`), all
 * before deriving anything; then derives the same AES-GCM key as the sender. A bad header never throws.
 * @throws TypeError when `identity`, `prekey`, `from`, `fromEpoch` or `senderIdentityKey` has the wrong shape.
 */
export function openSenderKey(request: OpenSenderKeyRequest): Promise<OpenedSenderKey> {
  const { identity, prekey, from, fromEpoch, senderIdentityKey, header } = request
  assertIdentity(identity)
  const mine = prekey as Partial<Prekey> | undefined
  if (!isPrivateKey(mine?.agreement?.privateKey, 'X25519') || !isU32(mine.id)) throw new TypeError('not a prekey (createPrekey)')
  if (typeof from !== 'string' || typeof fromEpoch !== 'string') throw new TypeError('from and fromEpoch are strings')
  if (!isBytes(senderIdentityKey, KEY_BYTES)) throw new TypeError('senderIdentityKey is a 32-byte Uint8Array')
  return derive(identity, prekey, from, fromEpoch, senderIdentityKey, header)
}

async function derive(
  identity: IdentityKeys,
  prekey: Prekey,
  from: PeerId,
  fromEpoch: Epoch,
  senderIdentityKey: Uint8Array,
  header: SenderKeyHeader,
): Promise<OpenedSenderKey> {
  if (!isHeader(header)) return { ok: false, reason: 'MALFORMED' }
  if (header.prekey !== prekey.id) return { ok: false, reason: 'PREKEY_MISMATCH' }
  const fields = streamFields(from, identity.peer, fromEpoch, identity.epoch, prekey.id, header.kid, header.eph)
  if (!(await verifySignature(senderIdentityKey, header.sig, canonical(SENDER_KEY_LABEL, fields)))) return { ok: false, reason: 'BAD_SIGNATURE' }
  try {
    return { ok: true, key: await deriveKey(prekey.agreement.privateKey, header.eph, fields) }
  } catch {
    // A signed but unusable ephemeral key (a low-order point gives an all-zero secret, which WebCrypto refuses).
    return { ok: false, reason: 'MALFORMED' }
  }
}

function isHeader(header: unknown): header is SenderKeyHeader {
  if (typeof header !== 'object' || header === null) return false
  const { kid, prekey, eph, sig } = header as Record<string, unknown>
  return isU32(kid) && isU32(prekey) && isBytes(eph, KEY_BYTES) && isBytes(sig, SIGNATURE_BYTES)
}

/** The fields both the HKDF info and the header signature cover, in the spec's order. */
function streamFields(from: string, to: string, fromEpoch: string, toEpoch: string, prekeyId: number, kid: number, eph: Uint8Array): Field[] {
  return [from, to, fromEpoch, toEpoch, u32(prekeyId), u32(kid), eph]
}

/** X25519(`privateKey`, `publicKey`) -> HKDF-SHA-256 (32 zero bytes of salt, the stream info) -> AES-GCM 256. */
async function deriveKey(privateKey: CryptoKey, publicKey: Uint8Array, fields: readonly Field[]): Promise<CryptoKey> {
  const peerKey = await crypto.subtle.importKey('raw', own(publicKey), { name: 'X25519' }, false, [])
  const secret = await crypto.subtle.deriveBits({ name: 'X25519', public: peerKey }, privateKey, 256)
  const material = await crypto.subtle.importKey('raw', secret, 'HKDF', false, ['deriveKey'])
  return crypto.subtle.deriveKey(
    { name: 'HKDF', hash: 'SHA-256', salt: SALT, info: canonical(STREAM_LABEL, fields) },
    material,
    { name: 'AES-GCM', length: 256 },
    false,
    ['encrypt', 'decrypt'],
  )
}
