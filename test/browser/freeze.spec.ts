/**
 * Freeze the leader tab: another tab takes over.
 *
 * Playwright turns on focus emulation, which makes `Page.setWebLifecycleState`
 * a no-op, so this test starts Chromium itself (`--headless=new`, a throwaway
 * profile) and speaks plain CDP over `ws` with flattened sessions. It only
 * uses Playwright's runner (and its webServer, which serves the harness page).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect, test } from '@playwright/test'
import WebSocket from 'ws'
import { chromiumArgs, chromiumPath } from '../../playwright.config'

// ---------------------------------------------------------------- a minimal CDP client

interface Pending {
  resolve(value: unknown): void
  reject(error: unknown): void
  timer: ReturnType<typeof setTimeout>
}

type CdpListener = (params: Record<string, unknown>, sessionId: string | undefined) => void

/** One websocket to the browser endpoint; commands go to the browser or to a flattened session. */
class Cdp {
  readonly #ws: WebSocket
  readonly #pending = new Map<number, Pending>()
  readonly #listeners = new Map<string, Set<CdpListener>>()
  #nextId = 1
  #closed = false

  private constructor(ws: WebSocket) {
    this.#ws = ws
    ws.on('message', (data) => this.#onMessage(String(data)))
    ws.on('close', () => {
      this.#closed = true
      for (const p of this.#pending.values()) {
        clearTimeout(p.timer)
        p.reject(new Error('CDP connection closed'))
      }
      this.#pending.clear()
    })
  }

  static async connect(url: string, timeoutMs = 10_000): Promise<Cdp> {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 256 * 1024 * 1024 })
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`CDP connect to ${url} timed out`)), timeoutMs)
      ws.once('open', () => (clearTimeout(timer), resolve()))
      ws.once('error', (error) => (clearTimeout(timer), reject(error)))
    })
    return new Cdp(ws)
  }

  /** Sends one command; rejects on a protocol error or after `timeoutMs`. */
  send<T = Record<string, unknown>>(method: string, params: Record<string, unknown> = {}, sessionId?: string, timeoutMs = 15_000): Promise<T> {
    if (this.#closed) return Promise.reject(new Error('CDP connection closed'))
    const id = this.#nextId++
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        reject(new Error(`CDP ${method} timed out after ${timeoutMs} ms`))
      }, timeoutMs)
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer })
      this.#ws.send(JSON.stringify({ id, method, params, ...(sessionId !== undefined && { sessionId }) }))
    })
  }

  on(event: string, listener: CdpListener): () => void {
    let set = this.#listeners.get(event)
    if (set === undefined) this.#listeners.set(event, (set = new Set()))
    set.add(listener)
    return () => void set.delete(listener)
  }

  close(): void {
    this.#ws.close()
  }

  #onMessage(text: string): void {
    const m = JSON.parse(text) as { id?: number; method?: string; params?: Record<string, unknown>; sessionId?: string; result?: unknown; error?: { message: string; data?: string } }
    if (m.id !== undefined) {
      const p = this.#pending.get(m.id)
      if (p === undefined) return
      this.#pending.delete(m.id)
      clearTimeout(p.timer)
      if (m.error !== undefined) p.reject(new Error(`CDP error: ${m.error.message}${m.error.data ? ` (${m.error.data})` : ''}`))
      else p.resolve(m.result)
      return
    }
    if (m.method === undefined) return
    for (const listener of this.#listeners.get(m.method) ?? []) listener(m.params ?? {}, m.sessionId)
  }
}

/** A Chromium process with a temporary profile and its DevTools endpoint. */
interface LaunchedChromium {
  readonly process: ChildProcess
  readonly wsEndpoint: string
  readonly userDataDir: string
  /** Kills the process (SIGKILL after a grace period) and removes the profile. Safe to call twice. */
  kill(): Promise<void>
}

async function launchChromium(executable: string, args: readonly string[], timeoutMs = 20_000): Promise<LaunchedChromium> {
  const userDataDir = mkdtempSync(join(tmpdir(), 'intersession-chromium-'))
  const child = spawn(
    executable,
    [...args, '--headless=new', '--remote-debugging-port=0', '--remote-debugging-address=127.0.0.1', `--user-data-dir=${userDataDir}`, 'about:blank'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  let killed = false
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const kill = async (): Promise<void> => {
    if (!killed) {
      killed = true
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM')
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000))])
        clearTimeout(timer)
      }
    }
    rmSync(userDataDir, { recursive: true, force: true, maxRetries: 3 })
  }
  try {
    const wsEndpoint = await new Promise<string>((resolve, reject) => {
      let stderr = ''
      const timer = setTimeout(() => reject(new Error(`Chromium printed no DevTools endpoint within ${timeoutMs} ms:\n${stderr}`)), timeoutMs)
      child.stderr!.setEncoding('utf8')
      child.stderr!.on('data', (chunk: string) => {
        if (stderr.length < 64 * 1024) stderr += chunk
        const match = /DevTools listening on (ws:\/\/\S+)/.exec(stderr)
        if (match !== null) {
          clearTimeout(timer)
          resolve(match[1]!)
        }
      })
      child.once('error', (error) => (clearTimeout(timer), reject(error)))
      child.once('exit', (code, signal) => (clearTimeout(timer), reject(new Error(`Chromium exited (${code ?? signal}) before listening:\n${stderr}`))))
    })
    // Keep draining stderr so that the pipe never fills up and blocks Chromium.
    child.stderr!.removeAllListeners('data')
    child.stderr!.resume()
    return { process: child, wsEndpoint, userDataDir, kill }
  } catch (error) {
    await kill()
    throw error
  }
}

/** A page target attached with a flattened session. */
class Tab {
  constructor(
    readonly cdp: Cdp,
    readonly name: string,
    readonly targetId: string,
    readonly sessionId: string,
  ) {}

  static async open(cdp: Cdp, name: string, url: string): Promise<Tab> {
    const { targetId } = await cdp.send<{ targetId: string }>('Target.createTarget', { url, newWindow: true })
    const { sessionId } = await cdp.send<{ sessionId: string }>('Target.attachToTarget', { targetId, flatten: true })
    return new Tab(cdp, name, targetId, sessionId)
  }

  send<T = Record<string, unknown>>(method: string, params: Record<string, unknown> = {}, timeoutMs?: number): Promise<T> {
    return this.cdp.send<T>(method, params, this.sessionId, timeoutMs)
  }

  /** Evaluates `expression` in the page (awaiting a promise), returning its value; throws what the page threw. */
  async evaluate<T = unknown>(expression: string, timeoutMs = 15_000): Promise<T> {
    const result = await this.send<{ result: { value?: unknown }; exceptionDetails?: { text: string; exception?: { description?: string } } }>(
      'Runtime.evaluate',
      { expression, awaitPromise: true, returnByValue: true },
      timeoutMs,
    )
    if (result.exceptionDetails !== undefined) {
      throw new Error(`[${this.name}] ${expression}: ${result.exceptionDetails.exception?.description ?? result.exceptionDetails.text}`)
    }
    return result.result.value as T
  }

  /** Waits until the harness page says it is ready. */
  async ready(timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      try {
        if (await this.evaluate<boolean>(`document.title === 'ready' && typeof window.harness === 'object'`, 2000)) return
      } catch {
        // Still navigating: the context may not exist yet.
      }
      if (Date.now() > deadline) throw new Error(`[${this.name}] page not ready within ${timeoutMs} ms`)
      await sleep(100)
    }
  }
}

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

// ---------------------------------------------------------------- the test

const ORIGIN = `http://127.0.0.1:${Number(process.env.TEST_PAGE_PORT ?? 41731)}`
const PAGE = `${ORIGIN}/index.html`
const A_OPTIONS = `{ network: 'freeze', staleAfterMs: 2000, heartbeatMs: 500 }`

interface Received {
  from: string
  seq: number
  contents: unknown
  id: string
}

test('Freeze the leader tab: another tab takes over', async () => {
  test.setTimeout(90_000)
  const started = Date.now()
  const log: string[] = []
  const note = (line: string): void => void log.push(`${((Date.now() - started) / 1000).toFixed(2)}s ${line}`)
  const chromium = await launchChromium(chromiumPath, chromiumArgs)
  let cdp: Cdp | undefined
  try {
    cdp = await Cdp.connect(chromium.wsEndpoint)
    const names = new Map<string, string>()
    // Console output and uncaught exceptions of the pages and their workers, for the failure report.
    cdp.on('Runtime.consoleAPICalled', (p, sessionId) => {
      const args = (p.args as Array<{ value?: unknown; description?: string }>).map((a) => a.description ?? JSON.stringify(a.value))
      note(`[${names.get(sessionId ?? '') ?? '?'}] console.${String(p.type)}: ${args.join(' ')}`)
    })
    cdp.on('Runtime.exceptionThrown', (p, sessionId) => {
      const d = p.exceptionDetails as { text: string; exception?: { description?: string } }
      note(`[${names.get(sessionId ?? '') ?? '?'}] exception: ${d.exception?.description ?? d.text}`)
    })
    cdp.on('Target.attachedToTarget', (p, parent) => {
      const info = p.targetInfo as { type: string }
      const sessionId = p.sessionId as string
      names.set(sessionId, `${names.get(parent ?? '') ?? '?'}/${info.type}`)
      void cdp!.send('Runtime.enable', {}, sessionId).catch(() => {})
      void cdp!.send('Runtime.runIfWaitingForDebugger', {}, sessionId).catch(() => {})
    })
    cdp.on('Page.lifecycleEvent', (p, sessionId) => {
      if (p.name === 'freeze' || p.name === 'resume') note(`[${names.get(sessionId ?? '')}] lifecycle ${String(p.name)}`)
    })

    const open = async (name: string): Promise<Tab> => {
      const tab = await Tab.open(cdp!, name, PAGE)
      names.set(tab.sessionId, name)
      await tab.send('Runtime.enable')
      await tab.send('Page.enable')
      await tab.send('Page.setLifecycleEventsEnabled', { enabled: true })
      await tab.send('Target.setAutoAttach', { autoAttach: true, waitForDebuggerOnStart: false, flatten: true })
      await tab.ready()
      return tab
    }
    const tab1 = await open('a1')
    const tab2 = await open('a2')
    const tabB = await open('b')

    await tabB.evaluate(`window.harness.connect('b', { network: 'freeze' })`)
    await tab1.evaluate(`window.harness.connect('a', ${A_OPTIONS})`)
    await tab2.evaluate(`window.harness.connect('a', ${A_OPTIONS})`)

    const role = (tab: Tab): Promise<string | undefined> => tab.evaluate<string | undefined>('window.harness.role()', 5000)
    const roles = async (): Promise<[string | undefined, string | undefined]> => [await role(tab1), await role(tab2)]
    const settled = await pollUntil(roles, (r) => r.includes('leader') && r.includes('follower'), 10_000)
    expect(settled.sort()).toEqual(['follower', 'leader'])
    const [leader, follower] = settled[0] === 'leader' ? [tab1, tab2] : [tab2, tab1]
    note(`leader ${leader.name}, follower ${follower.name}`)

    const received = (): Promise<Received[]> => tabB.evaluate<Received[]>('window.harness.received()', 5000)
    const texts = async (): Promise<string[]> => (await received()).map((r) => String(r.contents))

    // Through the leader while all is well.
    await follower.evaluate(`window.harness.sendMany('b', 'm', 0, 5)`)
    expect(await pollUntil(texts, (t) => t.length >= 5, 10_000)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4'])

    // A burst fired just before the freeze: some may be committed by the old leader, some not even received.
    await follower.evaluate(`window.harness.burst('b', 'p', 20)`)
    await leader.send('Page.setWebLifecycleState', { state: 'frozen' })
    const frozenAt = Date.now()
    note(`froze ${leader.name}`)

    const takeover = await pollUntil(() => role(follower), (r) => r === 'leader', 10_000)
    expect(takeover, 'the follower takes over within 10 s').toBe('leader')
    note(`${follower.name} leads after ${Date.now() - frozenAt} ms`)

    // Every send of the burst resolves (retried on the new leader), each id once.
    const burstIds = await pollUntil(() => follower.evaluate<string[]>('window.harness.resolvedIds()'), (ids) => ids.length >= 20, 10_000)
    expect(burstIds).toHaveLength(20)
    expect(new Set(burstIds).size).toBe(20)

    await follower.evaluate(`window.harness.sendMany('b', 'q', 0, 10)`)
    const expected = [
      ...Array.from({ length: 5 }, (_, i) => `m${i}`),
      ...Array.from({ length: 20 }, (_, i) => `p${i}`),
      ...Array.from({ length: 10 }, (_, i) => `q${i}`),
    ]
    const afterTakeover = await pollUntil(received, (r) => r.length >= expected.length, 15_000)
    note(`b has ${afterTakeover.length} messages ${Date.now() - frozenAt} ms after the freeze`)
    checkStream(afterTakeover, expected)

    // The old leader resumes: it must learn it was replaced, step down, and write nothing.
    await leader.send('Page.setWebLifecycleState', { state: 'active' })
    note(`resumed ${leader.name}`)
    const demoted = await pollUntil(() => role(leader), (r) => r === 'follower', 10_000)
    expect(demoted, 'the resumed tab steps down').toBe('follower')
    note(`${leader.name} is ${demoted}`)
    // Give a stale engine time to do damage (retransmissions, late commits), then check roles and b again.
    await sleep(2000)
    expect(await roles()).toEqual(leader === tab1 ? ['follower', 'leader'] : ['leader', 'follower'])

    // The resumed tab now forwards to the new leader.
    await leader.evaluate(`window.harness.sendMany('b', 'r', 0, 3)`)
    const all = [...expected, 'r0', 'r1', 'r2']
    const final = await pollUntil(received, (r) => r.length >= all.length, 10_000)
    await sleep(1000)
    checkStream(await received(), all)
    expect(final.length).toBe(all.length)
    note(`errors a1 ${JSON.stringify(await tab1.evaluate('window.harness.errors()'))}`)
    note(`errors a2 ${JSON.stringify(await tab2.evaluate('window.harness.errors()'))}`)
    note(`roles a1 ${JSON.stringify(await tab1.evaluate('window.harness.roles()'))} a2 ${JSON.stringify(await tab2.evaluate('window.harness.roles()'))}`)
    note(`errors b ${JSON.stringify(await tabB.evaluate('window.harness.errors()'))}`)
  } finally {
    console.log(log.join('\n'))
    cdp?.close()
    await chromium.kill()
  }
})

/** b saw exactly `expected` from a, once each, seqs contiguous from 0, `m`/`q`/`r` in order and the burst before `q`. */
function checkStream(received: readonly Received[], expected: readonly string[]): void {
  const texts = received.map((r) => String(r.contents))
  expect(received.every((r) => r.from === 'a')).toBe(true)
  expect(new Set(received.map((r) => r.id)).size, 'no id twice').toBe(received.length)
  expect(new Set(texts).size, 'no contents twice').toBe(texts.length)
  expect(received.map((r) => r.seq), 'seqs contiguous, in order').toEqual(received.map((_, i) => i))
  expect([...texts].sort()).toEqual([...expected].sort())
  for (const prefix of ['m', 'p', 'q', 'r']) {
    const mine = texts.filter((t) => t.startsWith(prefix))
    if (prefix !== 'p') expect(mine, `${prefix}* in send order`).toEqual([...mine].sort((x, y) => Number(x.slice(1)) - Number(y.slice(1))))
  }
  // Groups in the order they were sent: m before the burst p, p before q, q before r.
  const group = texts.map((t) => 'mpqr'.indexOf(t[0]!))
  expect(group, 'groups in send order').toEqual([...group].sort((x, y) => x - y))
}
