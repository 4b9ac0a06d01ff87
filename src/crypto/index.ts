/**
 * End-to-end encryption primitives (issue 16), on WebCrypto only: identity keys (Ed25519), signed prekeys and
 * key bundles (X25519), sender keys (X25519 + HKDF-SHA-256 -> AES-GCM 256), sealing with a seq nonce, and safety
 * numbers. Records are plain structured-clonable objects holding CryptoKeys (private halves and AES keys are not
 * extractable), so IndexedDB can keep them. No DOM, no storage here.
 */
export { KEY_BYTES, SIGNATURE_BYTES, TAG_BYTES, NONCE_BYTES, fromBase64url, toBase64url } from './bytes.js'
export { createIdentityKeys, type IdentityKeys } from './identity-keys.js'
export {
  bundleOf,
  createPrekey,
  decodeBundle,
  encodeBundle,
  verifyBundle,
  type BundleDecodeFailure,
  type BundleDecodeResult,
  type KeyBundle,
  type Prekey,
} from './key-bundle.js'
export {
  createSenderKey,
  openSenderKey,
  type OpenSenderKeyRequest,
  type OpenedSenderKey,
  type SenderKey,
  type SenderKeyHeader,
  type SenderKeyRefusal,
  type SenderKeyRequest,
} from './sender-key.js'
export { open, seal, type SealContext } from './seal.js'
export { safetyNumber, type SafetyParty } from './safety-number.js'
export { webCryptoE2E, type WebCryptoE2EOptions } from './web-crypto-cipher.js'
export { decodeSealedBody, encodeSealedBody } from './sealed-body.js'
