/** What the kit's init script keeps in each page, as `window.__intersessionKit__`. */
export interface PageKit {
  /** The messengers `connect()` made in this page, oldest first. */
  readonly messengers: unknown[]
}

/** The binding the hook reports each received message to: `(id, from)`. */
export const RECEIVED_BINDING = '__intersessionKitReceived__'

/**
 * Runs in every page before the app (Playwright's `addInitScript`): installs
 * the hook `connect()` calls with each new messenger, keeps the messenger,
 * and wraps its `onMessage` so that every message is reported to the test
 * (through {@link RECEIVED_BINDING}) before the app's handler gets it.
 * Self-contained: Playwright serializes it into the page.
 */
export function installPageHook(binding: string): void {
  type Handler = (message: { id: string; from: string }) => unknown
  const w = window as unknown as Record<string, unknown>
  const kit: PageKit = { messengers: [] }
  w.__intersessionKit__ = kit
  w.__intersessionTestHook__ = (messenger: { onMessage(handler: Handler): () => void }) => {
    kit.messengers.push(messenger)
    const onMessage = messenger.onMessage.bind(messenger)
    messenger.onMessage = (handler: Handler) => {
      if (typeof handler !== 'function') return onMessage(handler)
      return onMessage(async (message) => {
        const report = w[binding] as ((id: string, from: string) => Promise<void>) | undefined
        await report?.(message.id, message.from)
        return handler(message)
      })
    }
  }
}
