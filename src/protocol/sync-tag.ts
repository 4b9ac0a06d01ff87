import { isPeerId } from '../core/ids.js'

const PREFIX = 'intersession-sync:'

/** The Background Sync tag a page registers when it queued messages for `peerId` while offline. */
export function syncTag(peerId: string): string {
  return PREFIX + peerId
}

/** The peer id a sync tag of {@link syncTag} names, or undefined for any other tag (the app's own). */
export function peerOfSyncTag(tag: string): string | undefined {
  if (!tag.startsWith(PREFIX)) return undefined
  const peer = tag.slice(PREFIX.length)
  return isPeerId(peer) ? peer : undefined
}
