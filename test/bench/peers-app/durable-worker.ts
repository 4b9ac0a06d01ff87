/**
 * The durable pipeline floor's worker (durable-peer.ts): the least a system
 * that keeps each message durably at both ends must do, built by hand with
 * nothing else. It owns one IndexedDB database and one plain WebSocket
 * through the relay (dev token, the relay's binary envelopes), as
 * intersession's engine worker does.
 *
 * - Group commit: while a strict transaction is in flight, what arrives
 *   waits; the next transaction takes all of it (up to {@link MAX_BATCH}).
 * - Sender: each batch is put in one strict transaction; once it completes,
 *   its messages go out in one WebSocket message (newline-separated) and the
 *   page is told how many more sends are durable.
 * - Receiver: the messages of arriving WebSocket messages are put the same
 *   way; once that transaction completes, they go to the page in one
 *   postMessage.
 *
 * No acks, nothing deleted, no ordering state, no retransmission, no
 * encryption: a lower bound, not a messenger.
 */
const MAX_BATCH = 1024
const UP_WITHIN_MS = 10_000
const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** What the page asks of this worker. */
export type DurableRequest =
  | { readonly t: 'open'; readonly url: string; readonly id: string; readonly other: string; readonly role: 'sender' | 'receiver'; readonly db: string }
  | { readonly t: 'send'; readonly texts: readonly string[] }
  | { readonly t: 'close' }

/** What this worker tells the page. */
export type DurableReport =
  | { readonly t: 'up' }
  | { readonly t: 'failed'; readonly error: string }
  /** `n` more sends, in call order, are committed and on the socket. */
  | { readonly t: 'durable'; readonly n: number }
  /** Messages committed on arrival, in arrival order. */
  | { readonly t: 'deliver'; readonly texts: readonly string[] }
  /** Closed; `rows` is how many messages the database holds (each one committed). */
  | { readonly t: 'closed'; readonly rows: number }

const post = (report: DurableReport): void => self.postMessage(report)

function openDb(name: string): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(name, 1)
    request.onupgradeneeded = () => request.result.createObjectStore('messages', { autoIncrement: true })
    request.onsuccess = () => resolve(request.result)
    request.onerror = () => reject(request.error ?? new Error('the request failed'))
  })
}

function connect(url: string, id: string): Promise<WebSocket> {
  const ws = new WebSocket(url)
  ws.binaryType = 'arraybuffer'
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`durable ${id}: no welcome within ${UP_WITHIN_MS} ms`)), UP_WITHIN_MS)
    ws.onopen = () => ws.send(JSON.stringify({ t: 'auth', token: `dev:${id}` }))
    ws.onclose = (event) => reject(new Error(`durable ${id}: closed ${event.code} ${event.reason}`))
    ws.onmessage = (event: MessageEvent<string | ArrayBuffer>) => {
      if (typeof event.data !== 'string' || (JSON.parse(event.data) as { t?: string }).t !== 'welcome') return
      clearTimeout(timer)
      resolve(ws)
    }
  })
}

let db: IDBDatabase | undefined
let ws: WebSocket | undefined
let address = new Uint8Array()
let role: 'sender' | 'receiver' = 'sender'
const waiting: string[] = []
let committing = false

/** Commits what waits, if no commit is in flight; then hands it on and commits what came meanwhile. */
function pump(): void {
  if (committing || waiting.length === 0 || db === undefined) return
  committing = true
  const batch = waiting.splice(0, MAX_BATCH)
  const tx = db.transaction('messages', 'readwrite', { durability: 'strict' })
  const store = tx.objectStore('messages')
  for (const text of batch) store.put(text)
  tx.oncomplete = () => {
    committing = false
    if (role === 'sender') {
      // relay envelope, client -> relay: [u16 BE length][to, UTF-8][frame]
      const body = encoder.encode(batch.join('\n'))
      const out = new Uint8Array(2 + address.byteLength + body.byteLength)
      out[0] = address.byteLength >> 8
      out[1] = address.byteLength & 0xff
      out.set(address, 2)
      out.set(body, 2 + address.byteLength)
      ws?.send(out)
      post({ t: 'durable', n: batch.length })
    } else {
      post({ t: 'deliver', texts: batch })
    }
    pump()
  }
  tx.onabort = () => post({ t: 'failed', error: `commit aborted: ${String(tx.error)}` })
}

function countRows(open: IDBDatabase): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = open.transaction('messages').objectStore('messages').count()
    request.onsuccess = () => resolve(request.result)
    request.onerror = () => reject(request.error ?? new Error('the request failed'))
  })
}

self.onmessage = async (event: MessageEvent<DurableRequest>) => {
  const request = event.data
  try {
    if (request.t === 'open') {
      role = request.role
      address = encoder.encode(request.other)
      db = await openDb(request.db)
      ws = await connect(request.url, request.id)
      ws.onclose = null
      ws.onmessage = (message: MessageEvent<string | ArrayBuffer>) => {
        if (role !== 'receiver' || typeof message.data === 'string') return
        // relay -> client: [u16 BE length][from, UTF-8][frame]
        const data = new Uint8Array(message.data)
        waiting.push(...decoder.decode(data.subarray(2 + ((data[0]! << 8) | data[1]!))).split('\n'))
        pump()
      }
      post({ t: 'up' })
    } else if (request.t === 'send') {
      waiting.push(...request.texts)
      pump()
    } else {
      ws?.close(1000)
      const open = db!
      const rows = await countRows(open)
      open.close()
      indexedDB.deleteDatabase(open.name)
      post({ t: 'closed', rows })
    }
  } catch (error) {
    post({ t: 'failed', error: String(error) })
  }
}
