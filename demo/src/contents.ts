/** What a chat message carries over intersession: its text and when its sender wrote it. */

export interface ChatContents {
  readonly text: string
  /** The sender's clock, ms since epoch. */
  readonly writtenAt: number
}

export function chatContents(text: string, writtenAt: number): ChatContents {
  return { text, writtenAt }
}

/** Reads a received message's contents; anything else a peer sent shows as text. */
export function readContents(contents: unknown, receivedAt: number): ChatContents {
  if (typeof contents === 'string') return { text: contents, writtenAt: receivedAt }
  if (typeof contents === 'object' && contents !== null && !(contents instanceof Uint8Array)) {
    const { text, writtenAt } = contents as Record<string, unknown>
    if (typeof text === 'string') return { text, writtenAt: typeof writtenAt === 'number' && Number.isFinite(writtenAt) ? writtenAt : receivedAt }
  }
  if (contents instanceof Uint8Array) return { text: `(${contents.byteLength} bytes)`, writtenAt: receivedAt }
  return { text: JSON.stringify(contents), writtenAt: receivedAt }
}
