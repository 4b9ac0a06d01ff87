import type { Clock } from '../core/clock.js'

/** How long after a stream's last failed put its later seqs wait for the failed one: past the engine's longest backoff (30 s). */
export const HOLD_BACK_MS = 60_000

interface Gate {
  readonly epoch: string
  /** Seqs whose put failed and that were not put again since. */
  readonly failed: Set<number>
  until: number
}

/**
 * Keeps each sender's stream in seq order in the mailbox across failed puts.
 *
 * The mailbox keeps entries in put order. A put that fails (Redis restarting,
 * a disk error) is answered nothing, and its sender sends it again later; if
 * its later seqs were stored meanwhile, the mailbox would hand them to the
 * receiver first. So once a put of seq s fails on a connection, that
 * connection's frames of the stream above s are dropped (the sender's
 * go-back-N retransmission brings them again, in order, behind s) until s is
 * put again. A failure is known before any later put can succeed: a lost
 * Redis connection fails every command in flight, and a put while Redis is
 * unreachable or unchecked fails at once. A put can also fail after its
 * entry was written (a later step of it was cut off): its resend is then a
 * duplicate, and the seqs stored after it are not held back, as they are
 * not among the failed.
 *
 * A gate ends with its connection, when the stream is forwarded live (the
 * receiver is back: the sender's retransmissions reach it directly), once no
 * failed seq waits, or {@link HOLD_BACK_MS} after the stream's last failed
 * put (so a sender that never sends s again, because the receiver acked it
 * on an earlier path, is held back at most that long).
 */
export class HeldBackStreams {
  readonly #clock: Clock
  readonly #gates = new WeakMap<object, Map<string, Gate>>()

  constructor(clock: Clock) {
    this.#clock = clock
  }

  /** Whether `conn` may put seq `seq` of its stream (`to`, `epoch`) now: no lower seq of it failed and waits. */
  admit(conn: object, to: string, epoch: string, seq: number): boolean {
    const gates = this.#gates.get(conn)
    const gate = gates?.get(to)
    if (gates === undefined || gate === undefined) return true
    if (gate.epoch !== epoch || this.#clock.now() >= gate.until) {
      gates.delete(to)
      return true
    }
    for (const failed of gate.failed) if (failed < seq) return false
    // Taken at once, not when stored: the seqs right behind it in the same resend are then taken too.
    gate.failed.delete(seq)
    if (gate.failed.size === 0) gates.delete(to)
    return true
  }

  /** A put of seq `seq` of the stream failed: nothing above it is put until it is. */
  failed(conn: object, to: string, epoch: string, seq: number): void {
    let gates = this.#gates.get(conn)
    if (gates === undefined) this.#gates.set(conn, (gates = new Map<string, Gate>()))
    const until = this.#clock.now() + HOLD_BACK_MS
    const gate = gates.get(to)
    if (gate === undefined || gate.epoch !== epoch) gates.set(to, { epoch, failed: new Set([seq]), until })
    else {
      gate.failed.add(seq)
      gate.until = until
    }
  }

  /** `conn`'s frame to `to` went to `to` directly: the mailbox is out of that stream's path. */
  forwarded(conn: object, to: string): void {
    this.#gates.get(conn)?.delete(to)
  }
}
