/**
 * Reference computations for the src/crypto tests, written independently of src/crypto with node:crypto and
 * Buffer, so that the tests pin the byte layouts of issue 16's design rather than re-running the code under test:
 * the length-prefixed encoding, X25519 + HKDF-SHA-256 + AES-256-GCM, Ed25519 signatures, SHA-256 safety numbers.
 */
import { createCipheriv, createHash, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, sign, verify, type KeyObject } from 'node:crypto'

/** The UTF-8 bytes of `label`, then each field as u32 big-endian length and bytes (strings as UTF-8). */
export function layout(label: string, fields: ReadonlyArray<string | Uint8Array>): Buffer {
  const parts: Buffer[] = [Buffer.from(label, 'utf8')]
  for (const field of fields) {
    const bytes = typeof field === 'string' ? Buffer.from(field, 'utf8') : Buffer.from(field)
    const length = Buffer.alloc(4)
    length.writeUInt32BE(bytes.length)
    parts.push(length, bytes)
  }
  return Buffer.concat(parts)
}

/** `value` as 4 bytes big-endian. */
export function be32(value: number): Buffer {
  const out = Buffer.alloc(4)
  out.writeUInt32BE(value)
  return out
}

/** `value` as 8 bytes big-endian. */
export function be64(value: number): Buffer {
  const out = Buffer.alloc(8)
  out.writeBigUInt64BE(BigInt(value))
  return out
}

/** The raw 32-byte public key of an X25519 or Ed25519 KeyObject. */
export function rawPublic(key: KeyObject): Uint8Array {
  return new Uint8Array(Buffer.from(key.export({ format: 'jwk' }).x!, 'base64url'))
}

/** An extractable (test-only) X25519 or Ed25519 pair, with its raw public key. */
export function nodePair(type: 'x25519' | 'ed25519'): { privateKey: KeyObject; publicKey: KeyObject; raw: Uint8Array } {
  const { privateKey, publicKey } = type === 'x25519' ? generateKeyPairSync('x25519') : generateKeyPairSync('ed25519')
  return { privateKey, publicKey, raw: rawPublic(publicKey) }
}

/** A node KeyObject as a WebCrypto pair (the private half imported from PKCS #8, not extractable). */
export async function toWebCrypto(pair: { privateKey: KeyObject; publicKey: KeyObject }, name: 'X25519' | 'Ed25519'): Promise<CryptoKeyPair> {
  const usages: KeyUsage[] = name === 'X25519' ? ['deriveBits'] : ['sign']
  const privateKey = await crypto.subtle.importKey('pkcs8', pair.privateKey.export({ format: 'der', type: 'pkcs8' }), { name }, false, usages)
  const publicKey = await crypto.subtle.importKey(
    'spki',
    pair.publicKey.export({ format: 'der', type: 'spki' }),
    { name },
    true,
    name === 'X25519' ? [] : ['verify'],
  )
  return { privateKey, publicKey }
}

/** A public KeyObject from its raw 32 bytes. */
export function publicFromRaw(crv: 'X25519' | 'Ed25519', raw: Uint8Array): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv, x: Buffer.from(raw).toString('base64url') }, format: 'jwk' })
}

/** Ed25519 signature of `data` by `privateKey`. */
export function edSign(privateKey: KeyObject, data: Uint8Array): Uint8Array {
  return new Uint8Array(sign(null, data, privateKey))
}

/** True when `signature` is the raw Ed25519 key `publicRaw`'s over `data`. */
export function edVerify(publicRaw: Uint8Array, data: Uint8Array, signature: Uint8Array): boolean {
  return verify(null, data, publicFromRaw('Ed25519', publicRaw), signature)
}

/** The stream key of the design: HKDF-SHA-256(X25519(privateKey, publicRaw), 32 zero bytes of salt, info), 32 bytes. */
export function streamKey(privateKey: KeyObject, publicRaw: Uint8Array, info: Uint8Array): Buffer {
  const secret = diffieHellman({ privateKey, publicKey: publicFromRaw('X25519', publicRaw) })
  return Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(32), info, 32))
}

/** AES-256-GCM of `contents` under `key`, nonce 4 zero bytes || seq u64 BE, AAD `aad`: ciphertext || 16-byte tag. */
export function gcmSeal(key: Buffer, seq: number, aad: Uint8Array, contents: Uint8Array): Buffer {
  const cipher = createCipheriv('aes-256-gcm', key, Buffer.concat([Buffer.alloc(4), be64(seq)]), { authTagLength: 16 })
  cipher.setAAD(aad)
  return Buffer.concat([cipher.update(contents), cipher.final(), cipher.getAuthTag()])
}

/** SHA-256 of `data`. */
export function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest()
}
