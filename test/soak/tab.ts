import type { Cdp } from '../helpers/cdp.js'
import { CdpTab } from '../helpers/cdp-tab.js'

/** A page target of the soak's Chromium, attached with a flattened CDP session. */
export class Tab extends CdpTab {
  private constructor(
    cdp: Cdp,
    name: string,
    readonly url: string,
    sessionId: string,
  ) {
    super(cdp, name, sessionId)
  }

  /**
   * Opens `url` in a new window with the `soakReport` binding installed
   * (it survives reloads).
   */
  static override async open(cdp: Cdp, name: string, url: string): Promise<Tab> {
    const tab = new Tab(cdp, name, url, await CdpTab.attachNew(cdp, 'about:blank'))
    await tab.send('Runtime.enable')
    await tab.send('Page.enable')
    await tab.send('Runtime.addBinding', { name: 'soakReport' })
    // The page's workers (where engines run) attach to this session: their exceptions and lifetimes show in the log.
    await tab.send('Target.setAutoAttach', { autoAttach: true, waitForDebuggerOnStart: false, flatten: true })
    await tab.send('Page.navigate', { url })
    await tab.ready()
    return tab
  }

  /** Reloads the page (a crash of the page and its worker, as far as the app can tell) and waits until it is ready. */
  async reload(): Promise<void> {
    await this.navigate()
    await this.ready()
  }

  /** Navigates to the page again; resolves once the navigation committed (the old page load is gone). */
  async navigate(): Promise<void> {
    await this.send('Page.navigate', { url: this.url })
  }

  /** `frozen` or `active`: what the browser does to a background tab. */
  async lifecycle(state: 'frozen' | 'active'): Promise<void> {
    await this.send('Page.setWebLifecycleState', { state })
  }

  /** Waits until the harness page says it is ready. */
  ready(timeoutMs = 20_000): Promise<void> {
    return this.waitUntilReady(`document.title === 'ready' && typeof window.harness.soak === 'object'`, timeoutMs)
  }
}
