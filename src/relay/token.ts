import { SignJWT } from 'jose'
import { isPeerId } from '../core/ids.js'

/** Options of {@link createToken}. */
export interface CreateTokenOptions {
  /** The relay's `jwtSecret`. */
  readonly secret: string | Uint8Array
  /** The peer id the token proves (the JWT subject). */
  readonly peerId: string
  /**
   * Lifetime: seconds from now (a number; negative gives an already expired
   * token, for tests) or a jose time span such as `'2h'`, `'15m'`. Default `'1h'`.
   */
  readonly expiresIn?: number | string
}

/**
 * Signs a login token for a relay started with `jwtSecret`: an HS256 JWT with
 * `sub` = peer id, `iat` and `exp`. For servers issuing tokens to their
 * users, and for tests.
 * @throws TypeError for an invalid peer id or an empty secret.
 */
export async function createToken(options: CreateTokenOptions): Promise<string> {
  const { secret, peerId, expiresIn = '1h' } = options
  if (!isPeerId(peerId)) throw new TypeError('peerId is not a valid peer id')
  const key = typeof secret === 'string' ? new TextEncoder().encode(secret) : secret
  if (!(key instanceof Uint8Array) || key.byteLength === 0) throw new TypeError('secret must be a non-empty string or Uint8Array')
  const now = Math.floor(Date.now() / 1000)
  const exp = typeof expiresIn === 'number' ? now + Math.trunc(expiresIn) : expiresIn
  return new SignJWT({}).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setSubject(peerId).setIssuedAt(now).setExpirationTime(exp).sign(key)
}
