/**
 * One round of bench:core-ab (see core-ab.ts) in a process of its own: bench:core's two-engine run (two engines over
 * the memory network and memory stores, encryption off, turns of 1,000 sends) with the engines of the checkout given,
 * imported from its `src/index.ts`. Prints one line of JSON: process CPU (user + system, GC threads included) per
 * message, and msgs/s.
 *
 *   npx tsx test/bench/core-ab-run.ts <checkout> [messages]
 */
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { sendInTurns } from './send-turns.js'

const checkout = process.argv[2]
const N = Number(process.argv[3] ?? 100_000)
if (checkout === undefined || !Number.isSafeInteger(N) || N < 1) throw new TypeError('usage: core-ab-run.ts <checkout> [messages]')
const CHUNK = 1000
const payload = new Uint8Array(64).fill(7)

// A checkout of any commit since the engine had these three: an older one ignores the option it does not know.
type Engines = typeof import('../../src/index.js')
const { ILM, MemoryNetwork, MemoryStore } = (await import(pathToFileURL(join(resolve(checkout), 'src/index.ts')).href)) as Engines
const net = new MemoryNetwork()
const options = (id: string): Parameters<typeof ILM.open>[0] => ({ store: new MemoryStore(), transport: net.connect(id), encryption: false })
const a = await ILM.open(options('a'))
const b = await ILM.open(options('b'))
let received = 0
let done!: () => void
const finished = new Promise<void>((resolve) => (done = resolve))
b.onMessage(() => {
  if (++received === N) done()
})
await new Promise((resolve) => setTimeout(resolve, 20))
const cpu = process.cpuUsage()
const start = performance.now()
await sendInTurns(N, CHUNK, () => a.send('b', payload))
await finished
const ms = performance.now() - start
const used = process.cpuUsage(cpu)
console.log(JSON.stringify({ cpuMicrosPerMsg: (used.user + used.system) / N, msgsPerSec: N / (ms / 1000) }))
await a.close()
await b.close()
