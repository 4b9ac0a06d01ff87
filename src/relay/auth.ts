import { jwtVerify } from 'jose'

/** What a custom verifier may return: the peer id, optionally with the credential's expiry (ms since epoch). */
export type VerifyResult = string | { readonly peerId: string; readonly expiresAt?: number }

/**
 * Checks a login token and returns the peer id it proves. Throw (or reject)
 * to refuse the login with AUTH_FAILED; an error whose `code` is
 * `'ERR_JWT_EXPIRED'` or `'AUTH_EXPIRED'` refuses it with AUTH_EXPIRED.
 */
export type VerifyToken = (token: string) => VerifyResult | Promise<VerifyResult>

/** The authentication options of `createRelay` (`RelayOptions`). */
export interface AuthOptions {
  readonly verify?: VerifyToken
  readonly jwtSecret?: string | Uint8Array
  readonly dev?: boolean
}

/** A verified login: the peer id the token proves, and when the credential expires (ms since the epoch), if it does. */
export interface Credential {
  readonly peerId: string
  readonly expiresAt: number | undefined
}

/** How the relay checks login tokens: the mode chosen in the options, and its verifier. */
export interface Authenticator {
  readonly kind: 'jwt' | 'custom' | 'dev'
  /** Resolves with the credential a token proves; rejects to refuse it. The peer id is not checked yet. */
  verify(token: string): Promise<Credential>
}

/** Whether a verifier's error means the credential expired (AUTH_EXPIRED) rather than that it is wrong (AUTH_FAILED). */
export function isExpiredCredential(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return code === 'ERR_JWT_EXPIRED' || code === 'AUTH_EXPIRED'
}

const encoder = new TextEncoder()

/**
 * The authenticator of exactly one of `verify`, `jwtSecret`, `dev: true`.
 * @throws TypeError unless exactly one is given, or when it is mistyped.
 */
export function resolveAuth(options: AuthOptions): Authenticator {
  const given = [options.verify !== undefined, options.jwtSecret !== undefined, options.dev === true].filter(Boolean).length
  if (given !== 1) throw new TypeError('give exactly one of verify, jwtSecret or dev: true')
  if (options.verify !== undefined) {
    const verify = options.verify
    if (typeof verify !== 'function') throw new TypeError('verify must be a function')
    return { kind: 'custom', verify: async (token) => credentialOf(await verify(token)) }
  }
  if (options.jwtSecret !== undefined) {
    const secret = options.jwtSecret
    const key = typeof secret === 'string' ? encoder.encode(secret) : secret
    if (!(key instanceof Uint8Array) || key.byteLength === 0) throw new TypeError('jwtSecret must be a non-empty string or Uint8Array')
    return {
      kind: 'jwt',
      verify: async (token) => {
        const { payload } = await jwtVerify(token, key, { algorithms: ['HS256'], requiredClaims: ['sub', 'exp'] })
        return credentialOf({ peerId: payload.sub ?? '', expiresAt: (payload.exp ?? 0) * 1000 })
      },
    }
  }
  return {
    kind: 'dev',
    verify: async (token) => {
      if (!token.startsWith('dev:')) throw new Error('dev tokens look like "dev:<peerId>"')
      return credentialOf(token.slice(4))
    },
  }
}

/** A verifier's answer, checked: anything but a peer id or `{ peerId }` refuses the login. */
function credentialOf(result: VerifyResult): Credential {
  if (typeof result === 'string') return { peerId: result, expiresAt: undefined }
  if (typeof result === 'object' && result !== null && typeof result.peerId === 'string') {
    const expiresAt = typeof result.expiresAt === 'number' && Number.isFinite(result.expiresAt) ? result.expiresAt : undefined
    return { peerId: result.peerId, expiresAt }
  }
  throw new TypeError('verify returned neither a peer id nor { peerId }')
}
