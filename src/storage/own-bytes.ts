/**
 * The bytes of `contents` alone. Structured clone copies a view's whole
 * buffer (a Node Buffer from the pool is a view on 8 KiB), so a partial view,
 * a subclass or a shared buffer is copied first.
 */
export function ownBytes(contents: Uint8Array): Uint8Array {
  const whole =
    contents.constructor === Uint8Array &&
    contents.byteOffset === 0 &&
    contents.buffer instanceof ArrayBuffer &&
    contents.byteLength === contents.buffer.byteLength
  return whole ? contents : new Uint8Array(contents)
}
