/**
 * Freeze the leader tab: another tab takes over.
 *
 * The tabs are one kit peer's (intersession/playwright): its own Chromium on
 * a throwaway profile, attached without Playwright's focus emulation (which
 * would make `Page.setWebLifecycleState` a no-op), frozen with `peer.freeze(tab)`.
 * The tabs talk over a BroadcastChannel network; the kit's relay is unused.
 */
import type { Page } from '@playwright/test'
import { expect, test, type Peer } from '../../src/playwright/index.js'
import { REPO_RELAY } from './fixtures.js'

test.use({ relayOptions: REPO_RELAY })

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

const A_OPTIONS = `{ network: 'freeze', staleAfterMs: 2000, heartbeatMs: 500 }`
const B_OPTIONS = `{ network: 'freeze' }`
const TAKEOVER_MS = 10_000

interface Received {
  from: string
  seq: number
  contents: unknown
  id: string
}

/** A tab of the peer: its index (for `freeze`/`resume`), a name for the timeline, and evaluation in it with a timeout. */
interface Tab {
  readonly index: number
  readonly name: string
  readonly page: Page
  readonly evaluate: <T = unknown>(expression: string, timeoutMs?: number) => Promise<T>
}

interface World {
  /** The 'a' tab that leads at the start, and the one that follows. */
  readonly leader: Tab
  readonly follower: Tab
  /** Receiver 'b'. */
  readonly tabB: Tab
  /** The kit peer whose browser holds the three tabs. */
  readonly browser: Peer
  role(tab: Tab): Promise<string | undefined>
  received(): Promise<Received[]>
  note(line: string): void
}

/** Evaluates `expression` (awaiting a promise) in `page`; throws if it takes longer than `timeoutMs` (a frozen page never answers). */
async function evaluateIn<T>(page: Page, name: string, expression: string, timeoutMs = 15_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`[${name}] ${expression}: no answer within ${timeoutMs} ms`)), timeoutMs)
  })
  try {
    return await Promise.race([page.evaluate<T>(expression), timeout])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Opens three tabs in one kit peer's browser, two of identity 'a' and one of
 * 'b', waits until one 'a' tab leads and the other follows, and runs `body`
 * (the kit closes the browser and removes its profile after the test).
 * Prints a timeline (with console output and uncaught exceptions of the
 * pages) at the end.
 */
async function withWorld(
  peer: (name: string, options: { url: string; waitForConnect: boolean }) => Promise<Peer>,
  body: (world: World) => Promise<void>,
): Promise<void> {
  const started = Date.now()
  const log: string[] = []
  const note = (line: string): void => void log.push(`${((Date.now() - started) / 1000).toFixed(2)}s ${line}`)
  try {
    const browser = await peer('a', { url: '/index.html', waitForConnect: false })
    await browser.newTab()
    await browser.newTab()
    const tabs = browser.tabs.map((page, index): Tab => {
      const name = ['a1', 'a2', 'b'][index]!
      page.on('console', (m) => note(`[${name}] console.${m.type()}: ${m.text()}`))
      page.on('pageerror', (e) => note(`[${name}] exception: ${e.stack ?? e.message}`))
      page.on('worker', (w) => note(`[${name}] worker ${w.url()}`))
      return { index, name, page, evaluate: (expression, timeoutMs) => evaluateIn(page, name, expression, timeoutMs) }
    })
    const [tab1, tab2, tabB] = tabs as [Tab, Tab, Tab]
    for (const tab of tabs)
      await tab.page.waitForFunction(() => document.title === 'ready' && typeof (window as { harness?: unknown }).harness === 'object', undefined, {
        timeout: 15_000,
      })
    await tabB.evaluate(`window.harness.connect('b', ${B_OPTIONS})`)
    await tab1.evaluate(`window.harness.connect('a', ${A_OPTIONS})`)
    await tab2.evaluate(`window.harness.connect('a', ${A_OPTIONS})`)

    const role = (tab: Tab): Promise<string | undefined> => tab.evaluate<string | undefined>('window.harness.role()', 5000)
    const roles = async (): Promise<Array<string | undefined>> => [await role(tab1), await role(tab2)]
    const settled = await pollUntil(roles, (r) => r.includes('leader') && r.includes('follower'), 10_000)
    expect([...settled].sort(), 'one leader, one follower').toEqual(['follower', 'leader'])
    const [leader, follower] = settled[0] === 'leader' ? [tab1, tab2] : [tab2, tab1]
    note(`leader ${leader.name}, follower ${follower.name}`)
    await body({ leader, follower, tabB, browser, role, received: () => tabB.evaluate<Received[]>('window.harness.received()', 5000), note })
    for (const tab of tabs) {
      note(
        `${tab.name} roles ${JSON.stringify(await tab.evaluate('window.harness.roles()', 5000).catch(String))} errors ${JSON.stringify(await tab.evaluate('window.harness.errors()', 5000).catch(String))}`,
      )
    }
  } finally {
    console.log(log.join('\n'))
  }
}

const range = (prefix: string, count: number): string[] => Array.from({ length: count }, (_, i) => `${prefix}${i}`)

test('Freeze the leader tab: another tab takes over', async ({ peer }) => {
  test.setTimeout(60_000)
  await withWorld(peer, async ({ leader, follower, tabB, browser, role, received, note }) => {
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
    await browser.freeze(leader.index)
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
    await browser.resume(leader.index)
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

test('Freeze the leader tab inside a commit: another tab takes over', async ({ peer }) => {
  // A frozen worker would keep its open IndexedDB transaction (and block the
  // new leader's for ~60 s, until Chromium aborts it): the page terminates its
  // worker on `freeze`, which this test proves.
  test.setTimeout(60_000)
  await withWorld(peer, async ({ leader, follower, browser, role, received, note }) => {
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
    await browser.freeze(leader.index)
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
    await browser.resume(leader.index)
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
