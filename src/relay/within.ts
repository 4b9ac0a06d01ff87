/**
 * `work`, or a rejection with `late()` once `ms` have passed, whichever comes first. Given up, `giveUp` is called and
 * `work` runs on, its outcome ignored: a Redis command already written cannot be taken back, and node-redis's own
 * command timeout covers only commands not yet written, so one that a stalled Redis holds would otherwise wait until
 * TCP gives up on the connection.
 */
export function within<T>(work: Promise<T>, ms: number, late: () => Error, giveUp: () => void = () => {}): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      giveUp()
      reject(late())
    }, ms)
    // As every relay timer: it never keeps a process alive by itself.
    timer.unref()
  })
  return Promise.race([work, expired]).finally(() => clearTimeout(timer))
}
