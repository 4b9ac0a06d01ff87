import type { Cdp } from './cdp.js'

/** A page target of the soak's Chromium, attached with a flattened CDP session. */
export class Tab {
  private constructor(
    readonly cdp: Cdp,
    readonly name: string,
    readonly url: string,
    readonly sessionId: string,
  ) {}

  /**
   * Opens `url` in a new window with the `soakReport` binding installed
   * (it survives reloads).
   */
  static async open(cdp: Cdp, name: string, url: string): Promise<Tab> {
    const { targetId } = await cdp.send<{ targetId: string }>('Target.createTarget', { url: 'about:blank', newWindow: true })
    const { sessionId } = await cdp.send<{ sessionId: string }>('Target.attachToTarget', { targetId, flatten: true })
    const tab = new Tab(cdp, name, url, sessionId)
    await tab.send('Runtime.enable')
    await tab.send('Page.enable')
    await tab.send('Runtime.addBinding', { name: 'soakReport' })
    // The page's workers (where engines run) attach to this session: their exceptions and lifetimes show in the log.
    await tab.send('Target.setAutoAttach', { autoAttach: true, waitForDebuggerOnStart: false, flatten: true })
    await tab.send('Page.navigate', { url })
    await tab.ready()
    return tab
  }

  send<T = Record<string, unknown>>(method: string, params: Record<string, unknown> = {}, timeoutMs?: number): Promise<T> {
    return this.cdp.send<T>(method, params, this.sessionId, timeoutMs)
  }

  /** Evaluates `expression` in the page (awaiting a promise) and returns its value; throws what the page threw. */
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

  /** Reloads the page (a crash of the page and its worker, as far as the app can tell) and waits until it is ready. */
  async reload(): Promise<void> {
    await this.send('Page.navigate', { url: this.url })
    await this.ready()
  }

  /** `frozen` or `active`: what the browser does to a background tab. */
  async lifecycle(state: 'frozen' | 'active'): Promise<void> {
    await this.send('Page.setWebLifecycleState', { state })
  }

  /** Waits until the harness page says it is ready. */
  async ready(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      try {
        if (await this.evaluate<boolean>(`document.title === 'ready' && typeof window.harness.soak === 'object'`, 2000)) return
      } catch {
        // Still navigating: the context may not exist yet.
      }
      if (Date.now() > deadline) throw new Error(`[${this.name}] page not ready within ${timeoutMs} ms`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
}
