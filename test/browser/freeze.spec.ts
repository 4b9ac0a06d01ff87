/**
 * Freeze the leader tab: another tab takes over.
 *
 * Playwright turns on focus emulation, which makes `Page.setWebLifecycleState`
 * a no-op, so this test starts Chromium itself (`--headless=new`, a throwaway
 * profile) and speaks plain CDP over `ws` with flattened sessions. It only
 * uses Playwright's runner (and its webServer, which serves the harness page).
 */
import { chromiumArgs, chromiumPath } from '../../playwright.config.js'
import { Cdp } from '../helpers/cdp.js'
import { CdpTab } from '../helpers/cdp-tab.js'
import { launchChromium } from '../helpers/chromium-process.js'
import { expect, test } from './fixtures.js'

// ---------------------------------------------------------------- helpers

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Polls `probe` until `done(value)` or the deadline; returns the last value (the caller asserts). */
async function pollUntil<T>(probe: () => Promise<T>, done: (value: T) => boolean, timeoutMs: number, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (done(value) || Date.now() >= deadline) return value
    await sleep(everyMs)
  }
}

// ---------------------------------------------------------------- the tests

const ORIGIN = `http://127.0.0.1:${Number(process.env.TEST_PAGE_PORT ?? 41731)}`
const PAGE = `${ORIGIN}/index.html`
const A_OPTIONS = `{ network: 'freeze', staleAfterMs: 2000, heartbeatMs: 500 }`
const B_OPTIONS = `{ network: 'freeze' }`
const TAKEOVER_MS = 10_000

interface Received {
  from: string
  seq: number
  contents: unknown
  id: string
}

interface World {
  /** The 'a' tab that leads at the start, and the one that follows. */
  readonly leader: CdpTab
  readonly follower: CdpTab
  /** Receiver 'b'. */
  readonly tabB: CdpTab
  role(tab: CdpTab): Promise<string | undefined>
  received(): Promise<Received[]>
  note(line: string): void
}

/**
 * Starts Chromium, opens two tabs of identity 'a' and one of 'b', waits until
 * one 'a' tab leads and the other follows, runs `body`, and always kills
 * Chromium and removes its profile. Prints a timeline (with console output
 * and uncaught exceptions of the pages and their workers) at the end.
 */
async function withWorld(body: (world: World) => Promise<void>): Promise<void> {
  const started = Date.now()
  const log: string[] = []
  const note = (line: string): void => void log.push(`${((Date.now() - started) / 1000).toFixed(2)}s ${line}`)
  const chromium = await launchChromium(chromiumPath, chromiumArgs)
  let cdp: Cdp | undefined
  try {
    cdp = await Cdp.connect(chromium.wsEndpoint)
    const names = new Map<string, string>()
    cdp.on('Runtime.consoleAPICalled', (p, sessionId) => {
      const args = (p.args as Array<{ value?: unknown; description?: string }>).map((a) => a.description ?? JSON.stringify(a.value))
      note(`[${names.get(sessionId ?? '') ?? '?'}] console.${String(p.type)}: ${args.join(' ')}`)
    })
    cdp.on('Runtime.exceptionThrown', (p, sessionId) => {
      const d = p.exceptionDetails as { text: string; exception?: { description?: string } }
      note(`[${names.get(sessionId ?? '') ?? '?'}] exception: ${d.exception?.description ?? d.text}`)
    })
    // The pages' workers (where the engines run) attach to their page's session.
    cdp.on('Target.attachedToTarget', (p, parent) => {
      const sessionId = p.sessionId as string
      names.set(sessionId, `${names.get(parent ?? '') ?? '?'}/${(p.targetInfo as { type: string }).type}`)
      void cdp!.send('Runtime.enable', {}, sessionId).catch(() => {})
    })
    const open = async (name: string): Promise<CdpTab> => {
      const tab = await CdpTab.open(cdp!, name, PAGE)
      names.set(tab.sessionId, name)
      await tab.send('Runtime.enable')
      await tab.send('Page.enable')
      await tab.send('Target.setAutoAttach', { autoAttach: true, waitForDebuggerOnStart: false, flatten: true })
      await tab.waitUntilReady(`document.title === 'ready' && typeof window.harness === 'object'`, 15_000)
      return tab
    }
    const tab1 = await open('a1')
    const tab2 = await open('a2')
    const tabB = await open('b')
    await tabB.evaluate(`window.harness.connect('b', ${B_OPTIONS})`)
    await tab1.evaluate(`window.harness.connect('a', ${A_OPTIONS})`)
    await tab2.evaluate(`window.harness.connect('a', ${A_OPTIONS})`)

    const role = (tab: CdpTab): Promise<string | undefined> => tab.evaluate<string | undefined>('window.harness.role()', 5000)
    const roles = async (): Promise<Array<string | undefined>> => [await role(tab1), await role(tab2)]
    const settled = await pollUntil(roles, (r) => r.includes('leader') && r.includes('follower'), 10_000)
    expect([...settled].sort(), 'one leader, one follower').toEqual(['follower', 'leader'])
    const [leader, follower] = settled[0] === 'leader' ? [tab1, tab2] : [tab2, tab1]
    note(`leader ${leader.name}, follower ${follower.name}`)
    await body({ leader, follower, tabB, role, received: () => tabB.evaluate<Received[]>('window.harness.received()', 5000), note })
    for (const tab of [tab1, tab2, tabB]) {
      note(
        `${tab.name} roles ${JSON.stringify(await tab.evaluate('window.harness.roles()', 5000).catch(String))} errors ${JSON.stringify(await tab.evaluate('window.harness.errors()', 5000).catch(String))}`,
      )
    }
  } finally {
    console.log(log.join('\n'))
    cdp?.close()
    await chromium.kill()
  }
}

const range = (prefix: string, count: number): string[] => Array.from({ length: count }, (_, i) => `${prefix}${i}`)

test('Freeze the leader tab: another tab takes over', async () => {
  test.setTimeout(60_000)
  await withWorld(async ({ leader, follower, tabB, role, received, note }) => {
    // Through the leader while all is well.
    await follower.evaluate(`window.harness.sendMany('b', 'm', 0, 5)`)
    const first = await pollUntil(received, (r) => r.length >= 5, 10_000)
    expect(first.map((r) => String(r.contents))).toEqual(range('m', 5))

    // b goes away, so that what is sent next is still queued (committed, undelivered) at the freeze.
    await tabB.evaluate('window.harness.close()')
    const burst = await follower.evaluate<string[]>(`window.harness.sendBurst('b', 'p', 20)`)
    expect(new Set(burst).size).toBe(20)
    // Freeze an idle leader: its answer to pending() means its last transaction has finished.
    expect(await follower.evaluate<{ outbound: number }>('window.harness.pending()')).toMatchObject({ outbound: 20 })
    await leader.send('Page.setWebLifecycleState', { state: 'frozen' })
    const frozenAt = Date.now()
    note(`froze ${leader.name}`)

    const takeover = await pollUntil(
      () => role(follower),
      (r) => r === 'leader',
      TAKEOVER_MS,
    )
    expect(takeover, `the follower takes over within ${TAKEOVER_MS} ms`).toBe('leader')
    note(`${follower.name} leads ${Date.now() - frozenAt} ms after the freeze`)
    await follower.evaluate(`window.harness.sendMany('b', 'q', 0, 10)`)
    // The new leader has the burst from the store, not from memory.
    expect(await follower.evaluate<{ outbound: number }>('window.harness.pending()')).toMatchObject({ outbound: 30 })

    // b comes back: the new leader delivers the queued burst and what it sent itself.
    await tabB.evaluate(`window.harness.connect('b', ${B_OPTIONS})`)
    const expected = [...range('m', 5), ...range('p', 20), ...range('q', 10)]
    const afterTakeover = await pollUntil(received, (r) => r.length >= expected.length, 15_000)
    note(`b has ${afterTakeover.length} messages ${Date.now() - frozenAt} ms after the freeze`)
    checkStream(afterTakeover, expected, burst)

    // The old leader resumes: it must learn it was replaced, step down, and write nothing.
    await leader.send('Page.setWebLifecycleState', { state: 'active' })
    note(`resumed ${leader.name}`)
    const demoted = await pollUntil(
      () => role(leader),
      (r) => r === 'follower',
      10_000,
    )
    expect(demoted, 'the resumed tab steps down').toBe('follower')
    note(`${leader.name} is ${demoted}`)
    // Give a stale engine time to do damage (late commits, retransmissions), then look again.
    await sleep(1500)
    expect([await role(leader), await role(follower)], 'exactly one leader').toEqual(['follower', 'leader'])

    // The resumed tab now forwards its sends to the new leader.
    await leader.evaluate(`window.harness.sendMany('b', 'r', 0, 3)`)
    const all = [...expected, ...range('r', 3)]
    await pollUntil(received, (r) => r.length >= all.length, 10_000)
    await sleep(1000) // duplicates would arrive late
    checkStream(await received(), all, burst)
    expect(await follower.evaluate<{ outbound: number }>('window.harness.pending()').then((p) => p.outbound)).toBeLessThanOrEqual(3)
  })
})

test('Freeze the leader tab inside a commit: another tab takes over', async () => {
  // A frozen worker would keep its open IndexedDB transaction (and block the
  // new leader's for ~60 s, until Chromium aborts it): the page terminates its
  // worker on `freeze`, which this test proves.
  test.setTimeout(60_000)
  await withWorld(async ({ leader, follower, role, received, note }) => {
    await follower.evaluate(`window.harness.sendMany('b', 'm', 0, 5)`)
    expect((await pollUntil(received, (r) => r.length >= 5, 10_000)).map((r) => String(r.contents))).toEqual(range('m', 5))
    // A burst through the leader: freeze it while it commits (once the first sends resolved).
    await follower.evaluate(`window.harness.burst('b', 'p', 500)`)
    await pollUntil(
      () => follower.evaluate<string[]>('window.harness.resolvedIds()'),
      (ids) => ids.length > 0,
      10_000,
      5,
    )
    await leader.send('Page.setWebLifecycleState', { state: 'frozen' })
    const frozenAt = Date.now()
    note(`froze ${leader.name}`)
    const takeover = await pollUntil(
      () => role(follower),
      (r) => r === 'leader',
      TAKEOVER_MS,
    )
    note(`${follower.name} is ${takeover} ${Date.now() - frozenAt} ms after the freeze`)
    if (takeover !== 'leader') {
      note(`locks ${JSON.stringify(await follower.evaluate('navigator.locks.query()'))}`)
      note(`a readonly transaction from the follower page: ${await follower.evaluate<string>(IDB_PROBE)}`)
    }
    expect(takeover, `the follower takes over within ${TAKEOVER_MS} ms`).toBe('leader')

    // What the fixed engine must then do: every send resolves once, b gets all exactly once, in order.
    const ids = await pollUntil(
      () => follower.evaluate<string[]>('window.harness.resolvedIds()'),
      (r) => r.length >= 500,
      15_000,
    )
    expect(new Set(ids).size).toBe(500)
    const expected = [...range('m', 5), ...range('p', 500)]
    checkStream(await pollUntil(received, (r) => r.length >= expected.length, 15_000), expected, ids)
    await leader.send('Page.setWebLifecycleState', { state: 'active' })
    expect(
      await pollUntil(
        () => role(leader),
        (r) => r === 'follower',
        10_000,
      ),
    ).toBe('follower')
  })
})

/** Reads the fencing counter of 'a' from a page; says `timeout` if the read waits more than 2 s. */
const IDB_PROBE = `new Promise((resolve) => {
  const timer = setTimeout(() => resolve('timeout after 2 s (blocked)'), 2000)
  const open = indexedDB.open('intersession:a')
  open.onerror = () => resolve('open failed')
  open.onblocked = () => resolve('open blocked')
  open.onsuccess = () => {
    const db = open.result
    const get = db.transaction('meta', 'readonly').objectStore('meta').get('generation')
    get.onsuccess = () => { clearTimeout(timer); db.close(); resolve('generation ' + get.result) }
  }
})`

/**
 * b saw exactly `expected` from 'a', each once, with seqs 0, 1, 2, ...; the
 * groups (m, p, q, r) in the order they were sent, m/q/r in index order, and
 * the concurrent burst p in the order its ids were assigned seqs (`burstIds`
 * in resolution order is not that order, so only membership is checked).
 */
function checkStream(received: readonly Received[], expected: readonly string[], burstIds: readonly string[]): void {
  const texts = received.map((r) => String(r.contents))
  expect(
    received.every((r) => r.from === 'a'),
    'all from a',
  ).toBe(true)
  expect(new Set(received.map((r) => r.id)).size, 'no id twice').toBe(received.length)
  expect(new Set(texts).size, 'no contents twice').toBe(texts.length)
  expect(
    received.map((r) => r.seq),
    'seqs contiguous from 0, in order',
  ).toEqual(received.map((_, i) => i))
  expect([...texts].sort(), 'exactly the messages sent').toEqual([...expected].sort())
  const burst = new Set(burstIds)
  expect(
    received.filter((r) => String(r.contents).startsWith('p')).every((r) => burst.has(r.id)),
    'burst ids as resolved',
  ).toBe(true)
  for (const prefix of ['m', 'q', 'r']) {
    const mine = texts.filter((t) => t.startsWith(prefix))
    expect(mine, `${prefix}* in send order`).toEqual([...mine].sort((x, y) => Number(x.slice(1)) - Number(y.slice(1))))
  }
  const group = texts.map((t) => 'mpqr'.indexOf(t[0]!))
  expect(group, 'groups in send order').toEqual([...group].sort((x, y) => x - y))
}
