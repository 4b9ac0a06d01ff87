/** This process's wall clock in ms, comparable with `performance.timeOrigin + performance.now()` in a page. */
export const clock = (): number => performance.timeOrigin + performance.now()

/**
 * A page's clock minus this process's, estimated from the fastest of
 * `rounds` round trips to `pageNow` (the page's own `clock`), with that
 * round trip's duration.
 */
export async function clockOffset(pageNow: () => Promise<number>, rounds: number): Promise<{ offset: number; rtt: number }> {
  let best = { offset: 0, rtt: Infinity }
  for (let i = 0; i < rounds; i++) {
    const t0 = clock()
    const inPage = await pageNow()
    const t1 = clock()
    if (t1 - t0 < best.rtt) best = { offset: inPage - (t0 + t1) / 2, rtt: t1 - t0 }
  }
  return best
}
