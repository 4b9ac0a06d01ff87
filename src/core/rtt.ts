/**
 * Retransmission timeout from measured round trips (RFC 6298: smoothed RTT
 * plus four deviations), bounded by `[min, max]`. Without samples it is `min`.
 */
export class RttEstimator {
  #srtt: number | undefined
  #rttvar = 0

  constructor(
    private readonly min: number,
    private readonly max: number,
  ) {}

  /** A round trip of a frame that was sent once (Karn: never of a retransmitted one). */
  sample(ms: number): void {
    if (!(ms >= 0)) return
    if (this.#srtt === undefined) {
      this.#srtt = ms
      this.#rttvar = ms / 2
    } else {
      this.#rttvar = 0.75 * this.#rttvar + 0.25 * Math.abs(this.#srtt - ms)
      this.#srtt = 0.875 * this.#srtt + 0.125 * ms
    }
  }

  get timeout(): number {
    if (this.#srtt === undefined) return this.min
    return Math.min(this.max, Math.max(this.min, Math.ceil(this.#srtt + 4 * this.#rttvar)))
  }
}
