/**
 * Page side of the durability probe (test/browser/durability.spec.ts), as
 * `window.harness.durability`: collects what ./durability-probe.ts reports
 * from the workers of this origin.
 */

/** One IndexedDB transaction as the browser opened it. */
export interface TransactionRecord {
  /** The database's name (`intersession:<peer id>`). */
  readonly db: string
  readonly mode: IDBTransactionMode
  readonly stores: readonly string[]
  readonly durability: IDBTransactionDurability
}

/** Where the probe posts its records. */
export const PROBE_CHANNEL = 'intersession-durability-probe'

const records: TransactionRecord[] = []
let channel: BroadcastChannel | undefined

export const durability = {
  /** Starts collecting (idempotent); call it before the probed workers start. */
  listen(): void {
    channel ??= new BroadcastChannel(PROBE_CHANNEL)
    channel.onmessage = (event: MessageEvent<TransactionRecord>) => void records.push(event.data)
  },
  /** Every transaction reported so far, in arrival order. */
  records: (): readonly TransactionRecord[] => records,
}
