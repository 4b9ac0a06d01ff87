/**
 * "Sent while the app was closed": when the chat opens, the note the service
 * worker left after a background sync of this name (./sync-worker.ts) is
 * shown once, above the chat, then dropped.
 */
import { h } from './dom.js'
import { NOTE_CACHE, NOTE_KEY, type SyncNote } from './sync-note-record.js'

export async function showSyncNote(name: string, where: HTMLElement): Promise<void> {
  if (typeof caches === 'undefined') return
  const cache = await caches.open(NOTE_CACHE)
  const response = await cache.match(NOTE_KEY(name))
  if (response === undefined) return
  const note = (await response.json()) as SyncNote
  await cache.delete(NOTE_KEY(name))
  const time = new Date(note.at).toLocaleTimeString()
  const sent = note.flushed ? 'sent the messages you wrote offline' : 'sent some of the messages you wrote offline (the rest go now)'
  const arrived = note.arrived > 0 ? `, and received ${note.arrived} new message${note.arrived === 1 ? '' : 's'} for you` : ''
  const banner = h(
    'p',
    { class: 'sync-note', role: 'status' },
    `While the app was closed, at ${time}, its service worker ${sent}${arrived}.`,
    h('button', { type: 'button', onclick: () => banner.remove() }, 'OK'),
  )
  where.prepend(banner)
}
