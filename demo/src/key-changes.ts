/**
 * Where this device stands with each contact's security key, as intersession
 * reports it (`peerKeyStatus`): asked once per contact, then again on every
 * `peer-key-changed` and `peer-key-pinned` (every tab of this name gets both).
 * After a reload the engine still knows which keys wait for a decision: the
 * demo keeps no list of its own.
 */
import type { Messenger, PeerKeyReport } from 'intersession/client'

export class KeyChanges {
  readonly #messenger: Messenger
  readonly #status = new Map<string, PeerKeyReport>()
  /** The latest question per peer: an older answer arriving after it is dropped. */
  readonly #asking = new Map<string, Promise<void>>()
  readonly #listeners = new Set<() => void>()
  readonly #stops: (() => void)[] = []

  constructor(messenger: Messenger) {
    this.#messenger = messenger
    for (const event of ['peer-key-changed', 'peer-key-pinned'] as const) this.#stops.push(messenger.on(event, ({ peer }) => void this.#ask(peer)))
  }

  /** Asks about `peers` not asked about yet (the contacts shown). */
  watch(peers: Iterable<string>): void {
    for (const peer of peers) if (!this.#asking.has(peer)) void this.#ask(peer)
  }

  /** What intersession said of `peer`'s key last; `undefined` until it answered. */
  status(peer: string): PeerKeyReport | undefined {
    return this.#status.get(peer)
  }

  /**
   * Accepts or rejects `peer`'s new key, the one whose safety number the user was shown: if it changed again
   * meanwhile, intersession decides nothing (`KEY_MISMATCH`) and the new number is shown instead.
   */
  async decide(peer: string, accept: boolean, safetyNumber: string): Promise<void> {
    try {
      await (accept ? this.#messenger.acceptPeerKey(peer, { safetyNumber }) : this.#messenger.rejectPeerKey(peer, { safetyNumber }))
    } finally {
      await this.#ask(peer)
    }
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  close(): void {
    for (const stop of this.#stops) stop()
    this.#listeners.clear()
  }

  #ask(peer: string): Promise<void> {
    const asking: Promise<void> = this.#messenger.peerKeyStatus(peer).then(
      (status) => {
        if (this.#asking.get(peer) !== asking) return
        this.#status.set(peer, status)
        for (const listener of this.#listeners) listener()
      },
      // Closed meanwhile, or encryption off (E2E_MISMATCH): nothing to show.
      () => {},
    )
    this.#asking.set(peer, asking)
    return asking
  }
}
