/** The contents of a chunk's rows stored by column: each row's length, and their bytes one after the other. */
export interface PackedContents {
  readonly lengths: readonly number[]
  readonly bytes: Uint8Array
}

/** Packs the rows' contents into one buffer of their own. */
export function packContents(rows: readonly { readonly contents: Uint8Array }[]): PackedContents {
  const lengths = rows.map((row) => row.contents.byteLength)
  const bytes = new Uint8Array(lengths.reduce((sum, length) => sum + length, 0))
  let at = 0
  for (const row of rows) {
    bytes.set(row.contents, at)
    at += row.contents.byteLength
  }
  return { lengths, bytes }
}

/** Each row's contents, as views into the packed bytes. */
export function unpackContents({ lengths, bytes }: PackedContents): Uint8Array[] {
  let at = 0
  return lengths.map((length) => bytes.subarray(at, (at += length)))
}
