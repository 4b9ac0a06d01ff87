import type { Cdp } from './cdp.js'

/** A page target attached with a flattened CDP session: commands to it and evaluation in it. */
export class CdpTab {
  constructor(
    readonly cdp: Cdp,
    readonly name: string,
    readonly sessionId: string,
  ) {}

  /** Opens `url` in a new window and attaches to it. */
  static async open(cdp: Cdp, name: string, url: string): Promise<CdpTab> {
    return new CdpTab(cdp, name, await CdpTab.attachNew(cdp, url))
  }

  /** Creates a page target at `url` in a new window; resolves with the flattened session attached to it. */
  static async attachNew(cdp: Cdp, url: string): Promise<string> {
    const { targetId } = await cdp.send<{ targetId: string }>('Target.createTarget', { url, newWindow: true })
    const { sessionId } = await cdp.send<{ sessionId: string }>('Target.attachToTarget', { targetId, flatten: true })
    return sessionId
  }

  /** Sends one command to this page's session. */
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

  /** Polls `condition` (a page expression) every 100 ms until it is true; throws `page not ready` after `timeoutMs`. */
  async waitUntilReady(condition: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      try {
        if (await this.evaluate<boolean>(condition, 2000)) return
      } catch {
        // Still navigating: the context may not exist yet.
      }
      if (Date.now() > deadline) throw new Error(`[${this.name}] page not ready within ${timeoutMs} ms`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
}
