import type { SendOptions } from '../core/api.js'
import type { RemoteMethod } from '../worker/tab-protocol.js'

/**
 * The arguments of a call made again after its first attempt may have landed
 * (leader change, worker restart): a `send` must then look its id up instead
 * of trusting it to be fresh. Every other call is safe to repeat as is.
 */
export function asRetry(method: RemoteMethod, args: readonly unknown[]): readonly unknown[] {
  if (method !== 'send') return args
  const [to, contents, options] = args as [unknown, unknown, SendOptions | undefined]
  return [to, contents, { ...options, fresh: false }]
}
