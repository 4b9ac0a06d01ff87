/**
 * Hands out fresh byte arrays as views into shared chunks, as Node's `Buffer`
 * pool does. V8 keeps the bytes of an array over 64 bytes off its heap, which
 * costs an allocation and a finalizer per array; frames are written and
 * dropped at the rate of messages, so they share chunks instead.
 *
 * Invariant: no byte is handed out twice, so a view is never overwritten and
 * its owner may keep it. A kept view keeps its whole chunk alive; a structured
 * clone or a transfer of a view takes its whole buffer, so whoever posts one
 * copies it first (every transport here does).
 */
export class ByteSlab {
  readonly #chunkBytes: number
  #chunk: Uint8Array<ArrayBuffer>
  #used = 0

  /** `chunkBytes` per shared chunk; an array over a quarter of that gets a buffer of its own. */
  constructor(chunkBytes = 64 * 1024) {
    this.#chunkBytes = chunkBytes
    this.#chunk = new Uint8Array(chunkBytes)
  }

  /** `bytes` zeroed bytes that nothing else holds. */
  take(bytes: number): Uint8Array<ArrayBuffer> {
    if (bytes > this.#chunkBytes >>> 2) return new Uint8Array(bytes)
    if (this.#used + bytes > this.#chunkBytes) {
      this.#chunk = new Uint8Array(this.#chunkBytes)
      this.#used = 0
    }
    const view = this.#chunk.subarray(this.#used, this.#used + bytes)
    this.#used += bytes
    return view
  }

  /** A copy of `bytes` that nothing else holds. */
  copy(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
    const copy = this.take(bytes.byteLength)
    copy.set(bytes)
    return copy
  }
}
