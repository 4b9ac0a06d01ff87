/**
 * Contacts whose security key changed and is not accepted yet. intersession
 * says so once (`peer-key-changed`) and holds that peer's messages both ways
 * until `acceptPeerKey(peer)`; it has no call that asks again, so the demo
 * keeps the list in localStorage: after a reload the warning is still there,
 * and every tab of this name shows the same list.
 */
import { isIlmError, type Messenger } from 'intersession/client'

export class KeyChanges {
  readonly #key: string
  readonly #messenger: Messenger
  readonly #listeners = new Set<() => void>()
  readonly #stops: (() => void)[] = []
  #peers: Set<string>

  constructor(self: string, messenger: Messenger) {
    this.#key = `intersession-demo:key-changed:${self}`
    this.#messenger = messenger
    this.#peers = this.#read()
    this.#stops.push(messenger.on('peer-key-changed', ({ peer }) => this.#update((peers) => peers.add(peer))))
    const onStorage = (event: StorageEvent): void => {
      if (event.key !== this.#key) return
      this.#peers = this.#read()
      this.#emit()
    }
    window.addEventListener('storage', onStorage)
    this.#stops.push(() => window.removeEventListener('storage', onStorage))
  }

  has(peer: string): boolean {
    return this.#peers.has(peer)
  }

  /** Pins `peer`'s new key: its held messages flow again. */
  async accept(peer: string): Promise<void> {
    try {
      await this.#messenger.acceptPeerKey(peer)
    } catch (error) {
      // No key of the peer known (this side's own store was wiped since): nothing is held, nothing to accept.
      if (!(isIlmError(error) && error.code === 'KEY_UNAVAILABLE')) throw error
    }
    this.#update((peers) => peers.delete(peer))
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  close(): void {
    for (const stop of this.#stops) stop()
    this.#listeners.clear()
  }

  #update(change: (peers: Set<string>) => void): void {
    // Another tab may have written meanwhile: change what is stored now.
    const peers = this.#read()
    change(peers)
    localStorage.setItem(this.#key, JSON.stringify([...peers]))
    this.#peers = peers
    this.#emit()
  }

  #read(): Set<string> {
    try {
      const peers: unknown = JSON.parse(localStorage.getItem(this.#key) ?? '[]')
      return new Set(Array.isArray(peers) ? peers.filter((p): p is string => typeof p === 'string') : [])
    } catch {
      return new Set()
    }
  }

  #emit(): void {
    for (const listener of this.#listeners) listener()
  }
}
