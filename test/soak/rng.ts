import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64'
import { uniformInt } from 'pure-rand/distribution/uniformInt'
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus'
import type { RandomGenerator } from 'pure-rand/types/RandomGenerator'

/**
 * The soak's only source of randomness: a seeded xoroshiro128+. Each part of
 * the harness takes its own `fork`, so that one part drawing more numbers
 * (a busier proxy) does not shift the choices of another.
 */
export class Rng {
  readonly #gen: RandomGenerator

  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`)
    this.#gen = xoroshiro128plus(seed)
  }

  /** An integer in `min..max`, both included. */
  int(min: number, max: number): number {
    return uniformInt(this.#gen, min, max)
  }

  /** A float in `[0, 1)`. */
  float(): number {
    return uniformFloat64(this.#gen)
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.float() < p
  }

  /** One element of a non-empty list. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick from an empty list')
    return items[this.int(0, items.length - 1)]!
  }

  /** One key of `weights`, with probability proportional to its weight. */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K {
    const entries = Object.entries(weights) as Array<[K, number]>
    const total = entries.reduce((sum, [, w]) => sum + w, 0)
    let x = this.float() * total
    for (const [key, weight] of entries) {
      x -= weight
      if (x < 0) return key
    }
    return entries[entries.length - 1]![0]
  }

  /** An independent generator seeded from this one. */
  fork(): Rng {
    return new Rng(this.int(0, 0x7fffffff))
  }
}
