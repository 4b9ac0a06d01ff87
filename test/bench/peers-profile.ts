/**
 * Where the engine workers of bench:peers spend their time: the page of
 * bench:peers built unminified, two Chromium processes on persistent
 * profiles (as bench:peers), a relay process, and the CDP sampling profiler
 * on each page's engine worker while A sends B pipelined messages (as
 * bench:peers' pipelined run) or paced ones. The systems named are run in
 * turn, `--rounds` times (reversed every other round), and each worker's
 * self time is summed per function over the rounds: busy ms per message,
 * and the top functions, per system and side.
 *
 * The CPU time each process and thread used (Linux: /proc, user + system) is
 * counted around the same runs, per message: the sender's and the receiver's
 * Chromium (every process of each) and the relay, and per thread name. On a
 * loaded machine the profiler's times swell with every preemption; CPU time
 * does not. With `--no-profile`, only CPU time is counted.
 *
 * `--pages dir,dir` measures the pages of several builds in one run (e.g.
 * another checkout's test/bench/peers-app/.dist-profile, built from its
 * dist/), alternated as the systems are: before/after in one run.
 *
 *   npx vite build --config test/bench/peers-app/vite.config.ts --minify false --outDir .dist-profile
 *   npx tsx test/bench/peers-profile.ts [--systems intersession,intersession-plain] [--messages 2000] [--window 500] [--rate 0 | --awaited | --away] [--rounds 2] [--top 25] [--out dir] [--no-profile] [--pages dir,dir] [--floor N] [--idle MS]
 *
 * `--rate N` sends paced at N msgs/s instead of pipelined; `--awaited`
 * awaits each send before the next (bench:peers' awaited run); `--away`
 * does so with page B's engine closed first, so that the relay's mailbox
 * stores every message (its relay has a mailbox, in a temporary directory;
 * only page A is profiled). `--floor N`
 * first counts the CPU time of bench:peers' storage floor in page A (N
 * sequential strict single-put transactions in a worker), per commit: what
 * one durable write costs this machine, beside what a message costs.
 * `--idle MS` counts the CPU time of MS ms of doing nothing after each
 * warm-up: the share of a paced run's CPU per message that is not the
 * messages'. With `--out`,
 * writes each .cpuprofile there (open in Chrome DevTools). `--alloc` samples
 * the engine workers' allocations instead of their CPU (CDP's sampling heap
 * profiler): bytes allocated per message, per function.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromiumArgs, chromiumPath } from '../../playwright.config.js'
import { launchChromium } from '../../src/playwright/chromium-process.js'
import { Cdp } from '../helpers/cdp.js'
import { CdpTab } from '../helpers/cdp-tab.js'
import { startRelayProcess } from '../helpers/relay-process.js'
import { serveStatic } from '../helpers/static-server.js'
import { intArg, makeProfile, removeProfile, runBench } from './browser-harness.js'
import type { SystemName } from './peers-app/peer.js'
import type { Tally } from './peers-app/receiver.js'

const PAGE_DIRS = process.argv.includes('--pages')
  ? process.argv[process.argv.indexOf('--pages') + 1]!.split(',')
  : [fileURLToPath(new URL('./peers-app/.dist-profile', import.meta.url))]
const N = intArg('--messages', 2000)
const WINDOW = intArg('--window', 500)
const RATE = process.argv.includes('--rate') ? Number(process.argv[process.argv.indexOf('--rate') + 1]) : 0
const AWAITED = process.argv.includes('--awaited')
const AWAY = process.argv.includes('--away')
const ROUNDS = intArg('--rounds', 2)
const TOP = intArg('--top', 25)
const OUT = process.argv.includes('--out') ? process.argv[process.argv.indexOf('--out') + 1] : undefined
const SYSTEMS = (process.argv.includes('--systems') ? process.argv[process.argv.indexOf('--systems') + 1]! : 'intersession,intersession-plain').split(',') as SystemName[]
const WARMUP = 200
const ALLOC = process.argv.includes('--alloc')
const PROFILE = !process.argv.includes('--no-profile') && !ALLOC
const FLOOR = process.argv.includes('--floor') ? intArg('--floor', 1) : 0
const IDLE = process.argv.includes('--idle') ? intArg('--idle', 1) : 0
/** Clock ticks per second of /proc's CPU times (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100

/** A Chromium process's `--type` (renderer, utility, gpu-process), `browser` for the browser process, `node` for the relay. */
function processType(pid: number): string {
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split(/[\0 ]/)
    if (!args[0]!.includes('chrom')) return 'node'
    return args.find((arg) => arg.startsWith('--type='))?.slice(7) ?? 'browser'
  } catch {
    return '?'
  }
}

/** CPU ms (user + system) of `pid`'s threads by name, and of its descendants', under `prefix`. */
function cpuByThread(pid: number, prefix: string, into = new Map<string, number>()): Map<string, number> {
  let tids: string[]
  try {
    tids = readdirSync(`/proc/${pid}/task`)
  } catch {
    return into
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')).replace(/\d+$/, '')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      const ms = ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND
      const key = `${prefix} ${processType(pid)} ${name}`
      into.set(key, (into.get(key) ?? 0) + ms)
      for (const child of readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean)) cpuByThread(Number(child), prefix, into)
    } catch {
      // The thread ended meanwhile.
    }
  }
  return into
}

/** The parts of a V8 CPU profile read here. */
interface CpuProfile {
  readonly nodes: ReadonlyArray<{ readonly id: number; readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number } }>
  readonly samples: readonly number[]
  readonly timeDeltas: readonly number[]
}

/** A node of a V8 sampling heap profile. */
interface AllocNode {
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
  readonly selfSize: number
  readonly children: readonly AllocNode[]
}

/** Bytes allocated per function (`name file:line`) under `node`, added to `out`. */
function allocations(node: AllocNode, out: Map<string, number>): Map<string, number> {
  const { functionName, url, lineNumber } = node.callFrame
  const name = `${functionName || '(anonymous)'} ${url.split('/').pop() ?? ''}:${lineNumber + 1}`
  out.set(name, (out.get(name) ?? 0) + node.selfSize)
  for (const child of node.children) allocations(child, out)
  return out
}

/** Self time (ms) per function (`name file:line`) of `profile`. */
function selfTimes(profile: CpuProfile): Map<string, number> {
  const names = new Map(profile.nodes.map(({ id, callFrame: { functionName, url, lineNumber } }) => [id, `${functionName || '(anonymous)'} ${url.split('/').pop() ?? ''}:${lineNumber + 1}`]))
  const out = new Map<string, number>()
  profile.samples.forEach((node, i) => {
    const name = names.get(node)!
    out.set(name, (out.get(name) ?? 0) + (profile.timeDeltas[i + 1] ?? 0) / 1000)
  })
  return out
}

/** The relay's envelope counters (GET /metrics). */
async function relayFrames(url: string): Promise<{ in: number; out: number; controlIn: number; bytesIn: number; packsIn: number }> {
  const text = await (await fetch(`${url.replace(/^ws/, 'http')}/metrics`)).text()
  const count = (name: string, kind = ''): number => Number(new RegExp(`intersession_relay_${name}_total\\{${kind}[^}]*\\} (\\d+)`).exec(text)?.[1] ?? NaN)
  const packsIn = Number(/intersession_relay_packs_in_total(?:\{[^}]*\})? (\d+)/.exec(text)?.[1] ?? NaN)
  return { in: count('frames_in', 'kind="envelope"'), out: count('frames_out', 'kind="envelope"'), controlIn: count('frames_in', 'kind="control"'), bytesIn: count('bytes_in'), packsIn }
}

const call = <T>(tab: CdpTab, method: string, ...args: unknown[]): Promise<T> =>
  tab.evaluate<T>(`window.peers.${method}(${args.map((arg) => JSON.stringify(arg)).join(', ')})`, 180_000)

/** The engine worker's session of `tab` (attached automatically when the page makes it). */
function workerSessions(cdp: Cdp, tab: CdpTab): { latest(): string | undefined } {
  let latest: string | undefined
  cdp.on('Target.attachedToTarget', (params, sessionId) => {
    const { sessionId: child, targetInfo } = params as { sessionId: string; targetInfo: { type: string; url: string } }
    if (sessionId === tab.sessionId && targetInfo.type === 'worker' && !targetInfo.url.includes('floor')) latest = child
  })
  return { latest: () => latest }
}

runBench('peers-profile', async () => {
  const pages = await Promise.all(PAGE_DIRS.map((dir) => serveStatic(dir)))
  // A build is named by its checkout (the directory above test/).
  const labels = PAGE_DIRS.map((dir) => (PAGE_DIRS.length === 1 ? '' : `@${dir.split('/test/')[0]!.split('/').pop() ?? dir}`))
  // Receiver away: the relay's mailbox stores what it gets, and its receipts come back to the sender.
  const mailboxDir = AWAY ? mkdtempSync(join(tmpdir(), 'intersession-peers-profile-mailbox-')) : undefined
  const relay = await startRelayProcess(mailboxDir === undefined ? ['--dev'] : ['--dev', '--mailbox-dir', mailboxDir], { INTERSESSION_RELAY_FRAMES_PER_SECOND: '1000000' })
  const profiles = [makeProfile('intersession-peers-profile-a-'), makeProfile('intersession-peers-profile-b-')]
  // Run in reverse: the relay stops before its mailbox directory goes.
  const stops: Array<() => unknown> = [
    () => mailboxDir !== undefined && rmSync(mailboxDir, { recursive: true, force: true }),
    ...pages.map((page) => () => page.stop()),
    () => relay.stop(),
  ]
  try {
    const tabs: CdpTab[] = []
    const pids: Array<[string, number]> = [['relay', relay.pid]]
    const workers: Array<{ latest(): string | undefined }> = []
    for (const [i, profile] of profiles.entries()) {
      const chromium = await launchChromium(chromiumPath, chromiumArgs, { userDataDir: profile })
      stops.push(() => chromium.kill())
      pids.push([i === 0 ? 'sender' : 'receiver', chromium.pid])
      const cdp = await Cdp.connect(chromium.wsEndpoint)
      stops.push(() => cdp.close())
      const tab = await CdpTab.open(cdp, i === 0 ? 'page A' : 'page B', `${pages[0]!.url}/index.html`)
      await tab.waitUntilReady(`document.title === 'ready' && typeof window.peers === 'object'`, 20_000)
      workers.push(workerSessions(cdp, tab))
      await tab.send('Target.setAutoAttach', { autoAttach: true, waitForDebuggerOnStart: false, flatten: true })
      tabs.push(tab)
    }
    const [a, b] = tabs as [CdpTab, CdpTab]
    const totals = new Map<string, { busyMs: number; messages: number; self: Map<string, number> }>()
    const cpu = new Map<string, { messages: number; ms: Map<string, number> }>()
    const cpuNow = (): Map<string, number> => {
      const into = new Map<string, number>()
      for (const [prefix, pid] of pids) cpuByThread(pid, prefix, into)
      return into
    }
    /** CPU ms each process and thread used since `before`, most first, and their total. */
    const cpuSince = (before: Map<string, number>): { total: number; top: Array<readonly [string, number]> } => {
      const used = [...cpuNow()].map(([key, ms]) => [key, ms - (before.get(key) ?? 0)] as const).filter(([, ms]) => ms > 0)
      return { total: used.reduce((sum, [, ms]) => sum + ms, 0), top: used.sort((x, y) => y[1] - x[1]).slice(0, TOP) }
    }
    if (FLOOR > 0) {
      const before = cpuNow()
      const { totalMs } = await call<{ totalMs: number }>(a, 'floor', FLOOR)
      const { total, top } = cpuSince(before)
      console.log(`floor: ${FLOOR} strict single-put commits in ${totalMs.toFixed(0)} ms, CPU ${((total / FLOOR) * 1000).toFixed(0)} us per commit (every process)`)
      for (const [key, ms] of top) console.log(`  ${`${((ms / FLOOR) * 1000).toFixed(0)} us`.padStart(9)}  ${key}`)
    }
    let phase = 1
    let shown = 0
    const runs = pages.flatMap((_, page) => SYSTEMS.map((system) => ({ page, system, key: `${system}${labels[page]!}` })))
    for (let round = 0; round < ROUNDS; round++) {
      for (const { page, system: kind, key: system } of round % 2 === 0 ? runs : [...runs].reverse()) {
        if (page !== shown) {
          for (const tab of tabs) {
            // The old page must not pass for the new one while the navigation is under way.
            await tab.evaluate(`document.title = 'leaving'`)
            await tab.send('Page.navigate', { url: `${pages[page]!.url}/index.html` })
            await tab.waitUntilReady(`document.title === 'ready' && typeof window.peers === 'object'`, 20_000)
          }
          shown = page
        }
        const nonce = `${Date.now().toString(36)}${round}`
        await call(b, 'open', kind, { url: relay.url, id: `prof-b-${nonce}`, other: `prof-a-${nonce}`, role: 'receiver' })
        await call(a, 'open', kind, { url: relay.url, id: `prof-a-${nonce}`, other: `prof-b-${nonce}`, role: 'sender' })
        await call(b, 'expect', phase, WARMUP)
        await call(a, 'send', phase++, WARMUP, WARMUP, 0)
        await call<Tally>(b, 'wait', 60_000, 10_000, 0)
        if (IDLE > 0) {
          const before = cpuNow()
          await new Promise((resolve) => setTimeout(resolve, IDLE))
          const { total, top } = cpuSince(before)
          console.log(`idle ${IDLE} ms after warm-up: CPU ${total} ms`)
          for (const [key, ms] of top) console.log(`  ${ms} ms  ${key}`)
        }
        if (AWAY) await call(b, 'close')
        const sessions = AWAY ? [workers[0]!.latest()] : [workers[0]!.latest(), workers[1]!.latest()]
        const cdpOf = (i: number): Cdp => tabs[i]!.cdp
        for (const [i, session] of PROFILE ? sessions.entries() : []) {
          if (session === undefined) throw new Error(`no engine worker attached on page ${i === 0 ? 'A' : 'B'}`)
          await cdpOf(i).send('Profiler.enable', {}, session)
          await cdpOf(i).send('Profiler.setSamplingInterval', { interval: 500 }, session)
          await cdpOf(i).send('Profiler.start', {}, session)
        }
        for (const [i, session] of ALLOC ? sessions.entries() : []) {
          if (session === undefined) throw new Error(`no engine worker attached on page ${i === 0 ? 'A' : 'B'}`)
          await cdpOf(i).send('HeapProfiler.enable', {}, session)
          await cdpOf(i).send('HeapProfiler.startSampling', { samplingInterval: 256, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true }, session)
        }
        if (!AWAY) await call(b, 'expect', phase, N)
        const cpuBefore = cpuNow()
        const framesBefore = await relayFrames(relay.url)
        const started = Date.now()
        if (AWAITED || AWAY) await call(a, 'awaited', phase++, N)
        else if (RATE > 0) await call(a, 'paced', phase++, N, RATE, 60_000)
        else await call(a, 'send', phase++, N, WINDOW, 0)
        const tally = AWAY ? { unique: 0 } : await call<Tally>(b, 'wait', 120_000, 10_000, 0)
        const wallMs = Date.now() - started
        const used = cpu.get(system) ?? { messages: 0, ms: new Map<string, number>() }
        for (const [key, ms] of cpuNow()) used.ms.set(key, (used.ms.get(key) ?? 0) + ms - (cpuBefore.get(key) ?? 0))
        used.messages += N
        cpu.set(system, used)
        const frames = await relayFrames(relay.url)
        console.log(`round ${round} ${system}: ${wallMs} ms wall, received ${tally.unique}/${N}, relay frames in ${frames.in - framesBefore.in}, out ${frames.out - framesBefore.out}, control in ${frames.controlIn - framesBefore.controlIn}, packs in ${frames.packsIn - framesBefore.packsIn}, bytes in ${frames.bytesIn - framesBefore.bytesIn}`)
        for (const [i, session] of PROFILE ? sessions.entries() : []) {
          const { profile } = await cdpOf(i).send<{ profile: CpuProfile }>('Profiler.stop', {}, session, 60_000)
          const side = i === 0 ? 'sender' : 'receiver'
          if (OUT !== undefined) {
            mkdirSync(OUT, { recursive: true })
            writeFileSync(join(OUT, `${system}-${side}-${round}.cpuprofile`), JSON.stringify(profile))
          }
          const self = selfTimes(profile)
          const busy = [...self].filter(([name]) => !name.startsWith('(idle)')).reduce((sum, [, ms]) => sum + ms, 0)
          const key = `${system} ${side}`
          const total = totals.get(key) ?? { busyMs: 0, messages: 0, self: new Map<string, number>() }
          total.busyMs += busy
          total.messages += N
          for (const [name, ms] of self) total.self.set(name, (total.self.get(name) ?? 0) + ms)
          totals.set(key, total)
          console.log(`round ${round} ${key}: busy ${busy.toFixed(0)} ms`)
        }
        for (const [i, session] of ALLOC ? sessions.entries() : []) {
          const { profile } = await cdpOf(i).send<{ profile: { head: AllocNode } }>('HeapProfiler.stopSampling', {}, session, 60_000)
          const side = i === 0 ? 'sender' : 'receiver'
          const key = `${system} ${side} (bytes allocated)`
          const total = totals.get(key) ?? { busyMs: 0, messages: 0, self: new Map<string, number>() }
          const bytes = allocations(profile.head, new Map())
          total.messages += N
          for (const [name, size] of bytes) {
            total.self.set(name, (total.self.get(name) ?? 0) + size)
            total.busyMs += size
          }
          totals.set(key, total)
        }
        await call(a, 'close')
        if (!AWAY) await call(b, 'close')
      }
    }
    for (const [system, { messages, ms }] of cpu) {
      const perMsg = (value: number): string => `${((value / messages) * 1000).toFixed(0)} us/msg`
      const sum = (prefix: string): number => [...ms].filter(([key]) => key.startsWith(prefix)).reduce((total, [, value]) => total + value, 0)
      console.log(`\n${system} CPU: sender ${perMsg(sum('sender'))}, receiver ${perMsg(sum('receiver'))}, relay ${perMsg(sum('relay'))}, all ${perMsg(sum(''))}`)
      for (const [key, value] of [...ms].filter(([, value]) => value > 0).sort((x, y) => y[1] - x[1]).slice(0, TOP)) console.log(`  ${perMsg(value).padStart(12)}  ${key}`)
    }
    // CPU: ms, shown in us per message; allocations: bytes, shown per message.
    const perMessage = (value: number, messages: number): string => (ALLOC ? `${(value / messages).toFixed(0)} B/msg` : `${((value / messages) * 1000).toFixed(2)} us/msg`)
    for (const [key, { busyMs, messages, self }] of totals) {
      console.log(`\n${key}: ${ALLOC ? 'allocated' : 'busy'} ${perMessage(busyMs, messages)}`)
      const top = [...self].sort((x, y) => y[1] - x[1]).slice(0, TOP)
      for (const [name, value] of top) console.log(`  ${perMessage(value, messages).padStart(14)}  ${name}`)
    }
  } finally {
    for (const stop of stops.reverse()) await Promise.resolve(stop()).catch(() => {})
    for (const profile of profiles) removeProfile(profile)
  }
})
