/**
 * Where the relay keeps each peer's public key bundle (the key directory):
 * opaque bytes under the peer's authenticated id, the latest publish
 * replacing the one before. The relay validates only shape and size; the
 * engines verify bundles. Every {@link Mailbox} is one (so a relay with a
 * LevelDB mailbox keeps bundles across restarts, and relay nodes sharing a
 * Redis mailbox share them); a relay without a mailbox uses
 * {@link MemoryKeyDirectory}.
 */
export interface KeyDirectory {
  /** Stores `bundle` as `peer`'s, replacing any earlier one; resolves once it is as durable as a mailbox `put`. */
  putKeys(peer: string, bundle: Uint8Array): Promise<void>
  /** `peer`'s bundle, or `undefined` when none was stored. Sees every `putKeys` called before it on this directory. */
  getKeys(peer: string): Promise<Uint8Array | undefined>
}

/** A {@link KeyDirectory} in memory (lost on restart). Bundles are copied in and out. */
export class MemoryKeyDirectory implements KeyDirectory {
  readonly #bundles = new Map<string, Uint8Array>()

  async putKeys(peer: string, bundle: Uint8Array): Promise<void> {
    this.#bundles.set(peer, Uint8Array.from(bundle))
  }

  async getKeys(peer: string): Promise<Uint8Array | undefined> {
    const bundle = this.#bundles.get(peer)
    return bundle === undefined ? undefined : Uint8Array.from(bundle)
  }
}
