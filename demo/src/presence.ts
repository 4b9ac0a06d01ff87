/**
 * Who is online: the dev relay's directory (`GET /peers`, polled), merged
 * with intersession's `peer-online` / `peer-offline` events, which arrive at
 * once for everyone this name has a conversation with.
 */
import type { Messenger } from 'intersession/client'

const POLL_MS = 2000
const TIMEOUT_MS = 1500

export class Presence {
  readonly #self: string
  readonly #url: string
  readonly #online = new Set<string>()
  readonly #listeners = new Set<() => void>()
  readonly #stop: (() => void)[] = []
  #reachable = false

  constructor(self: string, directoryUrl: string, messenger: Messenger) {
    this.#self = self
    this.#url = new URL('/peers', directoryUrl).href
    this.#stop.push(
      messenger.on('peer-online', ({ peer }) => this.#set(peer, true)),
      messenger.on('peer-offline', ({ peer }) => this.#set(peer, false)),
    )
    const timer = setInterval(() => void this.#poll(), POLL_MS)
    this.#stop.push(() => clearInterval(timer))
    void this.#poll()
  }

  /** Peers online now, this one left out, sorted. */
  online(): string[] {
    return [...this.#online].sort()
  }

  isOnline(peer: string): boolean {
    return this.#online.has(peer)
  }

  /** Whether the last directory request was answered. */
  get reachable(): boolean {
    return this.#reachable
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  close(): void {
    for (const stop of this.#stop) stop()
    this.#listeners.clear()
  }

  async #poll(): Promise<void> {
    let peers: string[] | undefined
    try {
      const response = await fetch(this.#url, { cache: 'no-store', signal: AbortSignal.timeout(TIMEOUT_MS) })
      const body = response.ok ? ((await response.json()) as { peers?: unknown }) : undefined
      if (Array.isArray(body?.peers)) peers = body.peers.filter((p): p is string => typeof p === 'string')
    } catch {
      // The relay is down or unreachable: nobody can be reached through it.
    }
    const next = new Set((peers ?? []).filter((peer) => peer !== this.#self))
    const changed = this.#reachable !== (peers !== undefined) || next.size !== this.#online.size || [...next].some((p) => !this.#online.has(p))
    this.#reachable = peers !== undefined
    if (!changed) return
    this.#online.clear()
    for (const peer of next) this.#online.add(peer)
    this.#emit()
  }

  #set(peer: string, online: boolean): void {
    if (peer === this.#self || this.#online.has(peer) === online) return
    if (online) this.#online.add(peer)
    else this.#online.delete(peer)
    this.#emit()
  }

  #emit(): void {
    for (const listener of this.#listeners) listener()
  }
}
