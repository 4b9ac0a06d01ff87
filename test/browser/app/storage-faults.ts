/**
 * Harness functions for test/browser/storage-faults.spec.ts: sends whose
 * outcomes are kept (typed errors included), and direct reads of an
 * identity's IndexedDB database, to check what a fault left behind.
 */
import type { SendOptions } from 'intersession'
import type { Messenger } from 'intersession/client'
import { IlmError } from 'intersession/client'
import { openDB } from 'idb'
import { impliedOutStream, type OutStreamState } from '../../../src/core/store.js'
import { outRowsOf, type StoredOutbox } from '../../../src/storage/outbox-chunk.js'
import { closedProbes, connectProbes, messengerProbes, mixedTurn } from './api-input.js'

/** How one send ended, as plain data (it crosses to Playwright). */
export type Outcome =
  | { readonly ok: true; readonly id: string; readonly seq: number }
  | {
      readonly ok: false
      readonly name: string
      readonly code: string | undefined
      readonly isIlmError: boolean
      readonly message: string
      /** The name of the platform error under it, if it crossed the bridge. */
      readonly cause: string | undefined
    }

/** One send of {@link StorageFaults.sendAll}. */
export interface SendSpec {
  readonly contents: unknown
  readonly options?: SendOptions
}

/** An identity's database as stored, or `undefined` when it does not exist. */
export interface StoredState {
  readonly epoch: string | undefined
  readonly generation: number | undefined
  readonly outStreams: ReadonlyArray<{ to: string; nextSeq: number; ackedUpTo: number }>
  readonly inStreams: ReadonlyArray<{ from: string; epoch: string; receivedUpTo: number; nextIndex: number; processedBelow: number }>
  readonly outbox: ReadonlyArray<{ to: string; seq: number; id: string; text: string }>
}

/** Text of `kib` KiB, distinct per `tag`: big enough to need quota. */
function filler(tag: string, kib: number): string {
  return `${tag}:`.padEnd(kib * 1024, tag.slice(-1) || 'x')
}

function outcomeOf(error: unknown): Outcome {
  return {
    ok: false,
    name: (error as Error).name,
    code: (error as { code?: string }).code,
    isIlmError: error instanceof IlmError,
    message: (error as Error).message,
    cause: ((error as Error).cause as Error | undefined)?.name,
  }
}

/**
 * The storage-fault functions, on the messenger the harness page holds
 * (`current` returns it, or undefined before `connect`).
 */
export function storageFaults(current: () => Messenger | undefined) {
  const messenger = (): Messenger => {
    const m = current()
    if (m === undefined) throw new Error('connect first')
    return m
  }
  let waiting: Promise<Outcome | 'delivered'> | undefined
  return {
    /** Bad input to the page client (test/browser/api-input.spec.ts); see ./api-input.ts. */
    input: {
      connect: connectProbes,
      messenger: (to: string) => messengerProbes(messenger(), to),
      mixedTurn: (to: string) => mixedTurn(messenger(), to),
      closed: (to: string) => closedProbes(messenger(), to),
    },
    /** Makes every send in one turn (so they share a bridge batch and a group commit); resolves with each outcome, in order. */
    sendAll(to: string, specs: readonly SendSpec[]): Promise<Outcome[]> {
      const m = messenger()
      return Promise.all(
        specs.map((spec) => m.send(to, spec.contents, spec.options).then((receipt): Outcome => ({ ok: true, id: receipt.id, seq: receipt.seq }), outcomeOf)),
      )
    },
    /** `count` sends of `kib` KiB each, in one turn; texts start with `${prefix}${i}:`. */
    sendLarge(to: string, prefix: string, from: number, count: number, kib: number): Promise<Outcome[]> {
      const m = messenger()
      return Promise.all(
        Array.from({ length: count }, (_, i) =>
          m.send(to, filler(`${prefix}${from + i}`, kib)).then((r): Outcome => ({ ok: true, id: r.id, seq: r.seq }), outcomeOf),
        ),
      )
    },
    /** How `delivered(id)` ends, without throwing. */
    deliveredOutcome(id: string): Promise<Outcome | 'delivered'> {
      return messenger()
        .delivered(id)
        .then(() => 'delivered' as const, outcomeOf)
    },
    /** Starts `delivered(id)` now; {@link waited} tells how it ended. */
    awaitDelivered(id: string): void {
      waiting = this.deliveredOutcome(id)
    },
    /** How the `delivered()` started by {@link awaitDelivered} ended. */
    waited(): Promise<Outcome | 'delivered'> | undefined {
      return waiting
    },
    setOnline(online: boolean): void {
      messenger().setOnline(online)
    },
    /** Arms ./fault-worker.ts: the outbox insert after the next `n` fails (ConstraintError), aborting its transaction. */
    armOutboxAddFault(n: number): void {
      const channel = new BroadcastChannel('intersession-test-faults')
      channel.postMessage({ failOutboxAddAfter: n })
      channel.close()
    },
    /** Origin usage as the browser reports it (bytes). */
    async usage(): Promise<number> {
      return (await navigator.storage.estimate()).usage ?? 0
    },
    /** Deletes the identity's database from the page, as an app "clear data" button would. Resolves once deleted. */
    deleteDatabase(peerId: string): Promise<'deleted' | 'blocked-then-deleted'> {
      return new Promise((resolve, reject) => {
        let blocked = false
        const request = indexedDB.deleteDatabase(`intersession:${peerId}`)
        request.onblocked = () => (blocked = true)
        request.onsuccess = () => resolve(blocked ? 'blocked-then-deleted' : 'deleted')
        request.onerror = () => reject(request.error)
      })
    },
    /**
     * Reads the identity's database straight from IndexedDB (never creates it:
     * `undefined` if it does not exist). A row's text is its contents up to
     * the first `:` (the tag of a {@link filler}).
     */
    async readStore(peerId: string): Promise<StoredState | undefined> {
      const name = `intersession:${peerId}`
      if (!(await indexedDB.databases()).some((d) => d.name === name)) return undefined
      const db = await openDB(name)
      try {
        if (!db.objectStoreNames.contains('meta')) return undefined
        const tx = db.transaction(['meta', 'outStreams', 'inStreams', 'outbox', 'settled'], 'readonly')
        const [identity, generation, outStreams, inStreams, rows, settled] = await Promise.all([
          tx.objectStore('meta').get('identity') as Promise<{ epoch: string } | undefined>,
          tx.objectStore('meta').get('generation') as Promise<number | undefined>,
          tx.objectStore('outStreams').getAll() as Promise<OutStreamState[]>,
          tx.objectStore('inStreams').getAll(),
          tx.objectStore('outbox').getAll() as Promise<StoredOutbox[]>,
          tx.objectStore('settled').getAll() as Promise<Array<{ to: string; upTo: number }>>,
        ])
        // A record holds the rows one commit queued on a stream (by column, read by the store's own outRowsOf), or one
        // row. Acknowledged rows stay as receipts, at or below their stream's watermark: the rows above it are the outbox.
        const all = rows.flatMap(outRowsOf)
        const outbox = all.filter((r) => r.seq > (settled.find((s) => s.to === r.to)?.upTo ?? -1))
        return {
          epoch: identity?.epoch,
          generation,
          // As the store loads them: a send commit may leave `nextSeq` behind the rows it queued.
          outStreams: outStreams.map((s) => impliedOutStream(s, Math.max(-1, ...all.filter((r) => r.to === s.to).map((r) => r.seq)))),
          inStreams,
          outbox: outbox.map((r) => ({ to: r.to, seq: r.seq, id: r.id, text: new TextDecoder().decode(r.contents.subarray(0, 64)).split(':')[0] ?? '' })),
        }
      } finally {
        db.close()
      }
    },
  }
}

/** The functions as the spec sees them on `window.harness.faults`. */
export type StorageFaults = ReturnType<typeof storageFaults>
