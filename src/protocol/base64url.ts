/**
 * Unpadded base64url (RFC 4648 §5), the text form of binary values in JSON
 * control messages (a key bundle). Decoding accepts only the canonical form
 * (the one {@link encodeBase64Url} makes), so one byte string has one text.
 */

const URL_ALPHABET = /^[A-Za-z0-9_-]*$/

/** `bytes` as unpadded base64url. */
export function encodeBase64Url(bytes: Uint8Array): string {
  let binary = ''
  for (let i = 0; i < bytes.byteLength; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000))
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

/** The bytes of canonical unpadded base64url `text`; `undefined` for anything else. Never throws. */
export function decodeBase64Url(text: string): Uint8Array | undefined {
  if (typeof text !== 'string' || !URL_ALPHABET.test(text) || text.length % 4 === 1) return undefined
  let binary: string
  try {
    binary = atob(text.replace(/-/g, '+').replace(/_/g, '/'))
  } catch {
    return undefined
  }
  const bytes = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
  // Non-zero bits after the last full byte would make a second text for the same bytes.
  return encodeBase64Url(bytes) === text ? bytes : undefined
}
