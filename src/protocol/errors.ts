import { IlmError, isIlmError, type IlmErrorCode } from '../core/errors.js'

/** An error as it crosses a structured-clone boundary (worker, BroadcastChannel). */
export interface SerializedError {
  readonly name: string
  readonly message: string
  readonly code?: string
  readonly cause?: { readonly name: string; readonly message: string }
}

const BUILT_IN: Record<string, new (message: string) => Error> = { TypeError, RangeError, SyntaxError }

/** Flattens an error so that its class, `code` and the gist of its `cause` survive cloning. */
export function serializeError(error: unknown): SerializedError {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error) }
  const cause = error.cause instanceof Error ? { name: error.cause.name, message: error.cause.message } : undefined
  return {
    name: error.name,
    message: error.message,
    ...(isIlmError(error) && { code: error.code }),
    ...(cause !== undefined && { cause }),
  }
}

/** Rebuilds an {@link IlmError} (or a TypeError/RangeError) from its wire form. */
export function deserializeError(wire: SerializedError): Error {
  const cause = wire.cause === undefined ? undefined : Object.assign(new Error(wire.cause.message), { name: wire.cause.name })
  const options = cause === undefined ? undefined : { cause }
  if (wire.name === 'IlmError' && typeof wire.code === 'string') {
    return new IlmError(wire.code as IlmErrorCode, wire.message, options)
  }
  const Class = BUILT_IN[wire.name]
  if (Class !== undefined) return new Class(wire.message)
  return Object.assign(new Error(wire.message, options), { name: wire.name })
}
