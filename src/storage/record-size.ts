/**
 * The most bytes of rows one IndexedDB record of several rows holds. Chromium
 * keeps a value whose serialized form exceeds 64 KiB as a blob of its own
 * (Blink's `IDBValueWrapper::kWrapThreshold`): a file beside LevelDB, far
 * dearer to write and read than a LevelDB value. So a chunk of rows stays
 * under that, with room to spare.
 */
const RECORD_BYTES = 48 * 1024

/**
 * The most rows one record holds: an outbox record is read and written whole
 * for an expiry, a release or a prune that straddles it, so this bounds that
 * work per op while keeping most of the saving per row (for the inbox it
 * measured 5 % less receiver CPU than up to 192 rows, before floors).
 */
export const RECORD_ROWS = 64

/** A row's serialized size beyond its contents, at most: its ids, epoch, numbers and field names. */
const ROW_OVERHEAD_BYTES = 256

/**
 * Whether `next` joins `run` (rows of one stream with consecutive keys) in
 * one record: the same stream, the next key, and the record within
 * {@link RECORD_ROWS} and {@link RECORD_BYTES}.
 */
export function joinsRecord<R extends { readonly contents: Uint8Array }>(
  run: readonly [R, ...R[]],
  next: R,
  stream: (row: R) => string,
  key: (row: R) => number,
): boolean {
  if (run.length >= RECORD_ROWS || stream(next) !== stream(run[0]) || key(next) !== key(run[0]) + run.length) return false
  // Summed in place: asked once per row as a run grows, a copy of the run each time was most of a commit's garbage.
  let bytes = next.contents.byteLength + ROW_OVERHEAD_BYTES
  for (let i = 0; i < run.length; i++) bytes += (run[i] as R).contents.byteLength + ROW_OVERHEAD_BYTES
  return bytes <= RECORD_BYTES
}
