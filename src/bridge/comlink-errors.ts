import { transferHandlers, type TransferHandler } from 'comlink'
import { deserializeError, serializeError, type SerializedError } from '../protocol/errors.js'

type Thrown = { value: unknown }
type Serialized = { isError: true; value: SerializedError } | { isError: false; value: unknown }

let installed = false

/**
 * Replaces Comlink's `throw` transfer handler so that errors keep their class
 * and `code` across the worker bridge (Comlink's own keeps only name, message
 * and stack). Both sides must call it; repeated calls are no-ops.
 */
export function installErrorTransfer(): void {
  if (installed) return
  installed = true
  const original = transferHandlers.get('throw') as TransferHandler<Thrown, Serialized>
  const handler: TransferHandler<Thrown, Serialized> = {
    canHandle: (value): value is Thrown => original.canHandle(value),
    serialize: ({ value }) => [value instanceof Error ? { isError: true, value: serializeError(value) } : { isError: false, value }, []],
    deserialize: (serialized) => {
      throw serialized.isError ? deserializeError(serialized.value) : serialized.value
    },
  }
  transferHandlers.set('throw', handler)
}
