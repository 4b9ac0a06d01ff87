/**
 * The floor's storage half, in a dedicated worker as intersession's engine
 * is: `count` strict single-put IndexedDB transactions, one after the other
 * (each awaited to `complete`), each putting one 64-byte row into a fresh
 * database. Posts back each transaction's duration (creation -> complete, ms)
 * and the whole run's time.
 */
const ROW = 'x'.repeat(64)

function open(name: string): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(name, 1)
    request.onupgradeneeded = () => request.result.createObjectStore('rows')
    request.onsuccess = () => resolve(request.result)
    request.onerror = () => reject(request.error)
  })
}

function putOne(db: IDBDatabase, key: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const tx = db.transaction('rows', 'readwrite', { durability: 'strict' })
    tx.objectStore('rows').put({ key, text: ROW }, key)
    tx.oncomplete = () => resolve()
    tx.onerror = () => reject(tx.error)
    tx.onabort = () => reject(tx.error ?? new Error('transaction aborted'))
  })
}

self.onmessage = async (event: MessageEvent<{ count: number; name: string }>) => {
  const { count, name } = event.data
  try {
    const db = await open(name)
    const durations: number[] = []
    const start = performance.now()
    for (let i = 0; i < count; i++) {
      const t0 = performance.now()
      await putOne(db, i)
      durations.push(performance.now() - t0)
    }
    const totalMs = performance.now() - start
    db.close()
    indexedDB.deleteDatabase(name)
    self.postMessage({ durations, totalMs })
  } catch (error) {
    self.postMessage({ error: String(error) })
  }
}
