/// <reference types="node" />
import { rmSync } from 'node:fs'
import { chromium, type Browser, type BrowserContext, type Page } from '@playwright/test'
import type { ConnectionState, MessageStatus, PendingCounts } from '../client/index.js'
import { launchChromium, type ChromiumProcess } from './chromium-process.js'
import { installPageHook, RECEIVED_BINDING, type PageKit } from './page-hook.js'
import type { KitRelay } from './relay.js'

/** Options of `peer(name, options)`. */
export interface PeerOptions {
  /** The app's page for this identity (its query usually carries the relay URL and the peer id); relative to the config's `baseURL`. */
  readonly url: string
  /** How long to wait for the page to call `connect()`; default 30,000 ms. */
  readonly readyTimeoutMs?: number
  /**
   * Whether opening the app (`peer()`, `newTab()`, `reload()`,
   * `killBrowser()`) waits until the page called `connect()`; default true.
   * With false they resolve once the page loaded, for apps that connect
   * later (after a login, or when the test tells them to). The messenger
   * helpers (`send`, `pending`, `connection`, ...) and `offline()`/`online()`
   * need a page that has connected by the time they are called.
   */
  readonly waitForConnect?: boolean
}

/** Options of `peer.offline()`. */
export interface OfflineOptions {
  /**
   * Whether the relay closes and refuses the peer too; default true. `false`
   * cuts the browser only (its network offline, its WebRTC connections
   * closed), as a laptop losing its Wi-Fi: the relay is not told, and lets
   * the peer in again as soon as the browser is back online.
   */
  readonly relay?: boolean
}

/** How peers launch their browser: from Playwright's `launchOptions`. */
export interface PeerLaunch {
  readonly executablePath: string
  readonly args: readonly string[]
}

/** A message a tab's handlers were handed, as the kit's hook saw it. */
export interface ReceivedMessage {
  readonly id: string
  readonly from: string
}

/**
 * One identity of the app: a Chromium of its own on a profile on disk
 * (IndexedDB persists as in real use), with the app open in `page`.
 */
export interface Peer {
  /** The peer id: the relay's name for it, used by `offline()`. */
  readonly name: string
  readonly context: BrowserContext
  /** The first tab (a new one after `killBrowser()`). */
  readonly page: Page
  /** The profile directory. */
  readonly userDataDir: string
  /** Opens the app in another tab of the same identity and waits until it called `connect()` (unless `waitForConnect` is false). */
  newTab(): Promise<Page>
  /** The tabs: `page` first, then those `newTab()` opened, in order (the index `received(tab)` and the rest take). */
  readonly tabs: readonly Page[]
  /**
   * Cuts this identity off on every path: the relay closes its connection
   * and refuses it, the browser's network is offline, and every WebRTC peer
   * connection of its tabs is closed (`setOffline` alone leaves them open);
   * resolves once the relay no longer lists it, the page's connection is not
   * `online` and no tab has a connected peer connection. New ones cannot form
   * meanwhile: their signalling goes through the relay.
   * With `{ relay: false }` the relay is left alone (only the browser is cut)
   * and it is not waited for.
   */
  offline(options?: OfflineOptions): Promise<void>
  /** Undoes `offline()`; resolves once the relay lists the peer and the page's connection is `online` again. */
  online(): Promise<void>
  /** Freezes tab `tab` (default 0, `page`) as Chromium does a background tab (Page lifecycle `frozen`, over CDP). */
  freeze(tab?: number): Promise<void>
  /** Resumes a frozen tab (default 0, `page`). */
  resume(tab?: number): Promise<void>
  /**
   * Kills the engine's worker of `page` (the one `connect()` started, named
   * `intersession:<peer id>`) as a crash would: no event, no cleanup, an open
   * IndexedDB transaction aborted. Resolves once it is gone. The page's
   * messenger notices and starts another, making its pending calls again
   * (or, after more than 3 deaths in a minute, rejects them with `WORKER_FAILED`).
   */
  crashWorker(): Promise<void>
  /** Reloads `page` and waits until the app called `connect()` again (unless `waitForConnect` is false). */
  reload(): Promise<void>
  /** SIGKILLs this peer's whole browser, then relaunches it on the same profile and opens the app again. */
  killBrowser(): Promise<void>
  /**
   * Quits this peer's browser as its user would (`Browser.close` over CDP:
   * an orderly shutdown, what it holds written to the profile) and resolves
   * once its process exited; throws if it is still running after 15 s.
   * The profile stays for `reopen()`; until then the peer has no pages.
   */
  close(): Promise<void>
  /** Launches the browser again on the profile `close()` left and opens the app, as `killBrowser()` does after its kill. */
  reopen(): Promise<void>
  /** The connection state of `page`'s messenger. */
  connection(): Promise<ConnectionState>
  /** How many WebRTC peer connections of `tab` (default 0) are `connected`: direct paths to other peers. */
  rtcConnected(tab?: number): Promise<number>
  /** Messages waiting in IndexedDB. */
  pending(): Promise<PendingCounts>
  /** The status of a message this identity sent. */
  status(id: string): Promise<MessageStatus>
  /** Sends through `page`'s messenger; resolves with the message id once it is durably queued. */
  send(to: string, contents: unknown): Promise<string>
  /** Resolves once every one of `ids` is `delivered`; throws after `timeoutMs` (default 30,000) naming how many were not. */
  waitDelivered(ids: readonly string[], options?: { readonly timeoutMs?: number }): Promise<void>
  /** Resolves once every one of `ids` was handed to the app's handlers in `tab` (default 0); throws after `timeoutMs` (default 30,000). */
  waitReceived(ids: readonly string[], options?: { readonly tab?: number; readonly timeoutMs?: number }): Promise<void>
  /** Ids handed to the app's handlers in `tab` (default 0, `page`), in order, across reloads and browser kills. */
  received(tab?: number): string[]
  /** As `received`, with senders. */
  receivedMessages(tab?: number): ReceivedMessage[]
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `probe` every 100 ms until it returns true; throws `what` after `timeoutMs`. */
async function until(probe: () => Promise<boolean>, timeoutMs: number, what: () => Promise<string> | string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await probe().catch(() => false)) return
    if (Date.now() > deadline) throw new Error(await what())
    await sleep(100)
  }
}

/** A {@link Peer}; `dispose()` kills its browser and removes its profile. */
export class KitPeer implements Peer {
  readonly #launch: PeerLaunch
  readonly #relay: KitRelay
  readonly #options: PeerOptions
  readonly #received: ReceivedMessage[][] = []
  #chromium: ChromiumProcess
  #browser: Browser
  #context: BrowserContext
  #tabs: Page[] = []
  /** Whether `offline()` cut the browser, and the relay. */
  #cut = false
  #cutAtRelay = false
  #closed = false

  private constructor(
    readonly name: string,
    launch: PeerLaunch,
    relay: KitRelay,
    options: PeerOptions,
    chromium: ChromiumProcess,
    browser: Browser,
    context: BrowserContext,
  ) {
    this.#launch = launch
    this.#relay = relay
    this.#options = options
    this.#chromium = chromium
    this.#browser = browser
    this.#context = context
  }

  /** Launches the browser on a new profile and opens the app at `options.url`. */
  static async open(name: string, launch: PeerLaunch, relay: KitRelay, options: PeerOptions): Promise<KitPeer> {
    if (typeof name !== 'string' || name === '') throw new TypeError('name must be the peer id')
    if (typeof options?.url !== 'string') throw new TypeError('options.url is required')
    if (options.waitForConnect !== undefined && typeof options.waitForConnect !== 'boolean') throw new TypeError('options.waitForConnect must be a boolean')
    const process = await launchChromium(launch.executablePath, launch.args)
    try {
      const { browser, context } = await KitPeer.#attach(process)
      const peer = new KitPeer(name, launch, relay, options, process, browser, context)
      await peer.#setUp()
      return peer
    } catch (error) {
      await process.kill()
      throw error
    }
  }

  /**
   * Playwright attaches over CDP with `noDefaults`: no focus emulation, which
   * would turn `Page.setWebLifecycleState` (freezing) into a no-op.
   */
  static async #attach(process: ChromiumProcess): Promise<{ browser: Browser; context: BrowserContext }> {
    const browser = await chromium.connectOverCDP(process.wsEndpoint, { noDefaults: true })
    const context = browser.contexts()[0]
    if (context === undefined) throw new Error('the browser has no default context')
    return { browser, context }
  }

  async #setUp(): Promise<void> {
    await this.#context.exposeBinding(RECEIVED_BINDING, ({ page }, id: string, from: string) => {
      const tab = Math.max(0, this.#tabs.indexOf(page))
      ;(this.#received[tab] ??= []).push({ id, from })
    })
    await this.#context.addInitScript(installPageHook, RECEIVED_BINDING)
    const first = this.#context.pages()[0] ?? (await this.#context.newPage())
    this.#tabs = [first]
    if (this.#cut) await this.#context.setOffline(true)
    await this.#open(first)
  }

  async #open(page: Page): Promise<void> {
    await page.goto(this.#options.url)
    await this.#waitConnected(page)
  }

  async #waitConnected(page: Page): Promise<void> {
    if (this.#options.waitForConnect === false) return
    const timeout = this.#options.readyTimeoutMs ?? 30_000
    await page.waitForFunction(
      () => ((window as unknown as { __intersessionKit__?: { messengers: unknown[] } }).__intersessionKit__?.messengers.length ?? 0) > 0,
      undefined,
      { timeout },
    )
  }

  get context(): BrowserContext {
    return this.#context
  }

  get page(): Page {
    return this.#tabs[0]!
  }

  get tabs(): readonly Page[] {
    return [...this.#tabs]
  }

  get userDataDir(): string {
    return this.#chromium.userDataDir
  }

  async newTab(): Promise<Page> {
    const page = await this.#context.newPage()
    this.#tabs.push(page)
    await this.#open(page)
    return page
  }

  async offline(options: OfflineOptions = {}): Promise<void> {
    if (options.relay !== undefined && typeof options.relay !== 'boolean') throw new TypeError('options.relay must be a boolean')
    const atRelay = options.relay ?? true
    this.#cut = true
    this.#cutAtRelay ||= atRelay
    if (atRelay) await this.#relay.setPeerOnline(this.name, false)
    await this.#context.setOffline(true)
    await Promise.all(this.#tabs.map((tab) => tab.evaluate(() => (window as unknown as { __intersessionKit__: PageKit }).__intersessionKit__.cutRtc())))
    const direct = async (): Promise<number[]> => Promise.all(this.#tabs.map((_, i) => this.rtcConnected(i)))
    await until(
      async () =>
        (!atRelay || !(await this.#relay.connectedPeers()).includes(this.name)) &&
        (await this.connection()).status !== 'online' &&
        (await direct()).every((n) => n === 0),
      10_000,
      async () =>
        `offline(): ${this.name} still connected: relay lists ${atRelay ? JSON.stringify(await this.#relay.connectedPeers()) : '(not asked)'}, page says ${JSON.stringify(await this.connection().catch(String))}, connected peer connections per tab ${JSON.stringify(await direct().catch(String))}`,
    )
  }

  async online(): Promise<void> {
    this.#cut = false
    // The relay first: the browser's `online` event makes the SDK retry at once, and that retry must be let in.
    if (this.#cutAtRelay) await this.#relay.setPeerOnline(this.name, true)
    this.#cutAtRelay = false
    await this.#context.setOffline(false)
    await until(
      async () => (await this.#relay.connectedPeers()).includes(this.name) && (await this.connection()).status === 'online',
      60_000,
      async () =>
        `online(): ${this.name} did not reconnect within 60 s: relay lists ${JSON.stringify(await this.#relay.connectedPeers())}, page says ${JSON.stringify(await this.connection().catch(String))}; relay log about it: ${JSON.stringify(
          this.#relay
            .logs()
            .filter((e) => e.id === this.name)
            .slice(-6),
        )}`,
    )
  }

  async freeze(tab = 0): Promise<void> {
    await this.#lifecycle(this.#tab(tab), 'frozen')
  }

  async resume(tab = 0): Promise<void> {
    await this.#lifecycle(this.#tab(tab), 'active')
  }

  #tab(tab: number): Page {
    const page = this.#tabs[tab]
    if (page === undefined) throw new RangeError(`no tab ${tab}`)
    return page
  }

  async #lifecycle(page: Page, state: 'frozen' | 'active'): Promise<void> {
    const session = await this.#context.newCDPSession(page)
    try {
      await session.send('Page.setWebLifecycleState', { state })
    } finally {
      await session.detach().catch(() => {})
    }
  }

  async crashWorker(): Promise<void> {
    const name = `intersession:${this.name}`
    const workers = this.page.workers()
    const names = await Promise.all(workers.map((worker) => worker.evaluate(() => self.name).catch(() => undefined)))
    const worker = workers.find((_, i) => names[i] === name)
    if (worker === undefined) throw new Error(`crashWorker(): ${this.name}'s page has no worker named "${name}" (workers: ${JSON.stringify(names)})`)
    const gone = new Promise<void>((resolve) => worker.once('close', () => resolve()))
    // close() from inside ends the worker at once, unannounced, as a crash: nothing is posted to the page.
    await worker.evaluate(() => self.close()).catch(() => {})
    await gone
  }

  async reload(): Promise<void> {
    await this.page.reload()
    await this.#waitConnected(this.page)
  }

  async killBrowser(): Promise<void> {
    if (this.#closed) throw new Error(`killBrowser(): ${this.name}'s browser is closed; reopen() it first`)
    await this.#chromium.crash()
    await this.#browser.close().catch(() => {})
    await this.#relaunch()
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const session = await this.#browser.newBrowserCDPSession()
    // The browser may drop the connection before it answers.
    await session.send('Browser.close').catch(() => {})
    let timer: ReturnType<typeof setTimeout> | undefined
    const exited = await Promise.race([
      this.#chromium.exited.then(() => true),
      new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), 15_000))),
    ])
    clearTimeout(timer)
    await this.#browser.close().catch(() => {})
    if (!exited) throw new Error(`close(): ${this.name}'s browser (pid ${this.#chromium.pid}) did not exit within 15 s of Browser.close`)
  }

  async reopen(): Promise<void> {
    if (!this.#closed) throw new Error(`reopen(): ${this.name}'s browser is open; close() it first`)
    await this.#relaunch()
    this.#closed = false
  }

  /** Launches the browser on the profile the last one left (it stays; the new one runs on it and is removed with it) and opens the app. */
  async #relaunch(): Promise<void> {
    this.#chromium = await launchChromium(this.#launch.executablePath, this.#launch.args, { userDataDir: this.#chromium.userDataDir })
    const { browser, context } = await KitPeer.#attach(this.#chromium)
    this.#browser = browser
    this.#context = context
    await this.#setUp()
  }

  connection(): Promise<ConnectionState> {
    return this.#call('connection') as Promise<ConnectionState>
  }

  rtcConnected(tab = 0): Promise<number> {
    return this.#tab(tab).evaluate(() => (window as unknown as { __intersessionKit__: PageKit }).__intersessionKit__.rtcConnected())
  }

  pending(): Promise<PendingCounts> {
    return this.#call('pending') as Promise<PendingCounts>
  }

  status(id: string): Promise<MessageStatus> {
    if (typeof id !== 'string') throw new TypeError('id must be a string')
    return this.#call('status', id) as Promise<MessageStatus>
  }

  async send(to: string, contents: unknown): Promise<string> {
    return ((await this.#call('send', to, contents)) as { id: string }).id
  }

  async waitDelivered(ids: readonly string[], { timeoutMs = 30_000 }: { readonly timeoutMs?: number } = {}): Promise<void> {
    let left = [...ids]
    await until(
      async () => {
        const statuses = (await this.#call('statuses', left)) as MessageStatus[]
        left = left.filter((_, i) => statuses[i] !== 'delivered')
        return left.length === 0
      },
      timeoutMs,
      () => `waitDelivered: ${left.length} of ${ids.length} not delivered within ${timeoutMs} ms (first: ${left[0]})`,
    )
  }

  async waitReceived(ids: readonly string[], { tab = 0, timeoutMs = 30_000 }: { readonly tab?: number; readonly timeoutMs?: number } = {}): Promise<void> {
    const missing = (): string[] => {
      const got = new Set(this.received(tab))
      return ids.filter((id) => !got.has(id))
    }
    await until(
      async () => missing().length === 0,
      timeoutMs,
      () =>
        `waitReceived: ${missing().length} of ${ids.length} not handed to ${this.name}'s handlers (tab ${tab}) within ${timeoutMs} ms (first: ${missing()[0]})`,
    )
  }

  received(tab = 0): string[] {
    return this.receivedMessages(tab).map((m) => m.id)
  }

  receivedMessages(tab = 0): ReceivedMessage[] {
    return [...(this.#received[tab] ?? [])]
  }

  /** Calls the newest messenger of `page`: `connection` reads the property, `statuses` maps `status`. */
  #call(method: 'connection' | 'pending' | 'status' | 'statuses' | 'send', ...args: unknown[]): Promise<unknown> {
    return this.page.evaluate(
      async ({ method, args }) => {
        type M = Record<string, (...a: unknown[]) => Promise<unknown>> & { connection: unknown }
        const messenger = (window as unknown as { __intersessionKit__?: { messengers: M[] } }).__intersessionKit__?.messengers.at(-1)
        if (messenger === undefined) throw new Error('the page has not called connect()')
        if (method === 'connection') return messenger.connection
        if (method === 'statuses') return Promise.all((args[0] as string[]).map((id) => messenger.status!(id)))
        return messenger[method]!(...args)
      },
      { method, args },
    )
  }

  /** Closes the browser and removes the profile. */
  async dispose(): Promise<void> {
    await this.#browser.close().catch(() => {})
    await this.#chromium.kill()
    // After killBrowser() the browser runs on a profile it was given, which kill() keeps.
    rmSync(this.#chromium.userDataDir, { recursive: true, force: true, maxRetries: 3 })
  }
}
