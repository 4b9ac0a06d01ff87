/**
 * Reads a relay's `GET /metrics` (Prometheus text format) for tests.
 */

/** One scrape: `sum(name, labels)` adds up the series called `name` whose labels include `labels`. */
export interface Scrape {
  readonly text: string
  sum(name: string, labels?: Readonly<Record<string, string>>): number
  /** Whether any series called `name` is in the scrape. */
  has(name: string): boolean
}

/** Scrapes the relay listening on `port` (loopback). */
export async function scrapeMetrics(port: number): Promise<Scrape> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`)
  if (response.status !== 200) throw new Error(`/metrics answered ${response.status}`)
  const text = await response.text()
  const series = text
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
      if (match === null) throw new Error(`not a sample line: ${line}`)
      const labels = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1]!, m[2]!]))
      return { name: match[1]!, labels, value: Number(match[3]) }
    })
  const matching = (name: string, labels: Readonly<Record<string, string>>) =>
    series.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
  return {
    text,
    sum: (name, labels = {}) => matching(name, labels).reduce((total, s) => total + s.value, 0),
    has: (name) => series.some((s) => s.name === name),
  }
}
