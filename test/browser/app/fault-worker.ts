// The engine's worker with a storage fault that a test arms: storage-faults.spec.ts.
import { exposeHost } from 'intersession/worker'

/**
 * Armed with `{ failOutboxAddAfter: n }` on the BroadcastChannel
 * `intersession-test-faults`: the outbox insert after the next `n` ones issues
 * its request twice, so the second fails with ConstraintError and aborts the
 * transaction it is part of, after `n` inserts of that transaction were issued.
 */
let countdown: number | undefined
new BroadcastChannel('intersession-test-faults').onmessage = (event: MessageEvent<{ failOutboxAddAfter?: number }>) => {
  countdown = event.data.failOutboxAddAfter
}
const add = IDBObjectStore.prototype.add
IDBObjectStore.prototype.add = function (this: IDBObjectStore, value: unknown, key?: IDBValidKey): IDBRequest<IDBValidKey> {
  if (this.name === 'outbox' && countdown !== undefined && countdown-- === 0) {
    countdown = undefined
    add.call(this, value, key)
  }
  return add.call(this, value, key)
}

exposeHost()
