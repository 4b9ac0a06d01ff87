/** The positive integer after `name` on the command line (e.g. `--messages 20000`), or `fallback` when `name` is absent. */
export function intArg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name)
  const value = i > 0 ? Number(process.argv[i + 1]) : fallback
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer`)
  return value
}
