import type { DurableReport, DurableRequest } from './durable-worker.js'
import type { Peer, PeerOptions } from './peer.js'

/**
 * The durable pipeline floor (durable-worker.ts): a hand-built minimum that
 * keeps each message durably at both ends. The page hands the sends of one
 * turn to its worker in one postMessage (as intersession's client batches
 * its sends per turn); `send` resolves once the sender's strict commit of
 * the message completed and it is on the socket; the receiver's handler gets
 * each message once the receiver's strict commit of it completed.
 */
export function durablePeer({ url, id, other, role, onMessage }: PeerOptions): Promise<Peer> {
  const worker = new Worker(new URL('./durable-worker.ts', import.meta.url), { type: 'module' })
  const ask = (request: DurableRequest): void => worker.postMessage(request)
  /** Resolvers of sends not yet durable, in call order. */
  const unsettled: Array<() => void> = []
  let turn: string[] | undefined
  let failure: Error | undefined
  let closed: ((rows: number) => void) | undefined
  /** Messages this end handed on: sends resolved, or messages given to the handler. */
  let handled = 0
  return new Promise<Peer>((resolve, reject) => {
    worker.onerror = (event) => reject(new Error(`durable ${id}: worker failed: ${event.message}`))
    worker.onmessage = (event: MessageEvent<DurableReport>) => {
      const report = event.data
      if (report.t === 'up') {
        resolve({
          send(text) {
            if (failure !== undefined) return Promise.reject(failure)
            if (turn === undefined) {
              turn = []
              queueMicrotask(() => {
                ask({ t: 'send', texts: turn! })
                turn = undefined
              })
            }
            turn.push(text)
            return new Promise<void>((settle) => unsettled.push(settle))
          },
          close() {
            ask({ t: 'close' })
            return new Promise<void>((done, fail) => {
              const timer = setTimeout(() => {
                worker.terminate()
                fail(new Error(`durable ${id}: no close within 10 s`))
              }, 10_000)
              closed = (rows) => {
                clearTimeout(timer)
                worker.terminate()
                // Each message handled was committed: fewer rows would mean a floor that skipped its writes.
                if (rows < handled) fail(new Error(`durable ${id}: ${rows} rows stored for ${handled} messages handled`))
                else done()
              }
            })
          },
        })
      } else if (report.t === 'failed') {
        failure = new Error(`durable ${id}: ${report.error}`)
        reject(failure)
      } else if (report.t === 'durable') {
        handled += report.n
        for (const settle of unsettled.splice(0, report.n)) settle()
      } else if (report.t === 'deliver') {
        handled += report.texts.length
        for (const text of report.texts) onMessage(text)
      } else {
        closed?.(report.rows)
      }
    }
    ask({ t: 'open', url, id, other, role, db: `durable-${id}` })
  })
}
