import { isEpoch, isPeerId, type Epoch, type PeerId } from '../core/ids.js'
import { KEY_BYTES, SIGNATURE_BYTES, isBytes, own } from './bytes.js'

/**
 * A store's identity for one epoch: an Ed25519 pair that signs its prekeys and sender key headers. A wiped store
 * is a new epoch and gets a new identity. A plain structured-clonable record (IndexedDB keeps it as is).
 */
export interface IdentityKeys {
  readonly peer: PeerId
  readonly epoch: Epoch
  /** Ed25519; the private half is not extractable. */
  readonly signing: CryptoKeyPair
  /** The raw public key (32 bytes), as bundles carry it and peers pin it. */
  readonly publicKey: Uint8Array<ArrayBuffer>
}

/**
 * Makes a new identity for `peer` in `epoch`.
 * @throws TypeError when `peer` is not a valid peer id or `epoch` not a well-formed epoch.
 */
export function createIdentityKeys(peer: PeerId, epoch: Epoch): Promise<IdentityKeys> {
  if (!isPeerId(peer)) throw new TypeError(`${String(peer)} is not a valid peer id`)
  if (!isEpoch(epoch)) throw new TypeError(`${String(epoch)} is not a well-formed epoch`)
  return generate(peer, epoch)
}

async function generate(peer: PeerId, epoch: Epoch): Promise<IdentityKeys> {
  const signing = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify'])
  const publicKey = new Uint8Array(await crypto.subtle.exportKey('raw', signing.publicKey))
  return { peer, epoch, signing, publicKey }
}

/**
 * @throws TypeError unless `identity` looks like {@link IdentityKeys}: a peer, an epoch and an Ed25519 private key.
 */
export function assertIdentity(identity: IdentityKeys): void {
  const shape = identity as Partial<IdentityKeys> | undefined
  if (!isPeerId(shape?.peer) || !isEpoch(shape.epoch) || !isPrivateKey(shape.signing?.privateKey, 'Ed25519') || !isBytes(shape.publicKey, KEY_BYTES)) {
    throw new TypeError('not identity keys (createIdentityKeys)')
  }
}

/** True when `key` is a private CryptoKey of algorithm `name`. */
export function isPrivateKey(key: unknown, name: string): key is CryptoKey {
  return key instanceof CryptoKey && key.type === 'private' && key.algorithm.name === name
}

/** `data` signed with `identity`'s private key (64 bytes). */
export async function sign(identity: IdentityKeys, data: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(await crypto.subtle.sign({ name: 'Ed25519' }, identity.signing.privateKey, data))
}

/** True when `signature` is `publicKey`'s (raw Ed25519) over `data`; false for any bad input, never a throw. */
export async function verifySignature(publicKey: Uint8Array, signature: Uint8Array, data: Uint8Array<ArrayBuffer>): Promise<boolean> {
  if (!isBytes(publicKey, KEY_BYTES) || !isBytes(signature, SIGNATURE_BYTES)) return false
  try {
    const key = await crypto.subtle.importKey('raw', own(publicKey), { name: 'Ed25519' }, false, ['verify'])
    return await crypto.subtle.verify({ name: 'Ed25519' }, key, own(signature), data)
  } catch {
    return false
  }
}
