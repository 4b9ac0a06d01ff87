/**
 * Worker side of the durability probe, for ./durability-worker.ts (never a
 * page): records every IndexedDB transaction the worker opens.
 */
import { PROBE_CHANNEL, type TransactionRecord } from './durability.js'

/**
 * Wraps `IDBDatabase.prototype.transaction` and posts each transaction's
 * mode, object stores and the durability the browser gave it (read back from
 * the transaction, not from the options) on {@link PROBE_CHANNEL}.
 */
export function installDurabilityProbe(): void {
  const channel = new BroadcastChannel(PROBE_CHANNEL)
  const transaction = IDBDatabase.prototype.transaction
  IDBDatabase.prototype.transaction = function (this: IDBDatabase, ...args: Parameters<IDBDatabase['transaction']>): IDBTransaction {
    const tx = transaction.apply(this, args)
    const record: TransactionRecord = { db: this.name, mode: tx.mode, stores: Array.from(tx.objectStoreNames), durability: tx.durability }
    channel.postMessage(record)
    return tx
  }
}
