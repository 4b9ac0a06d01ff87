/** What the kit's init script keeps in each page, as `window.__intersessionKit__`. */
export interface PageKit {
  /** The messengers `connect()` made in this page, oldest first. */
  readonly messengers: unknown[]
  /** Closes every WebRTC peer connection of the page, as a network outage ends them (`peer.offline()`). */
  cutRtc(): void
  /** How many of the page's WebRTC peer connections are `connected` now. */
  rtcConnected(): number
}

/** The binding the hook reports each received message to: `(id, from)`. */
export const RECEIVED_BINDING = '__intersessionKitReceived__'

/**
 * Runs in every page before the app (Playwright's `addInitScript`): installs
 * the hook `connect()` calls with each new messenger, keeps the messenger,
 * and wraps its `onMessage` so that every message is reported to the test
 * (through {@link RECEIVED_BINDING}) before the app's handler gets it. It
 * also keeps the page's WebRTC peer connections, because Playwright's
 * `setOffline` leaves them open (playwright#42623): `offline()` closes them.
 * Self-contained: Playwright serializes it into the page.
 */
export function installPageHook(binding: string): void {
  type Handler = (message: { id: string; from: string }) => unknown
  const w = window as unknown as Record<string, unknown>
  const connections = new Set<RTCPeerConnection>()
  const live = (): RTCPeerConnection[] => {
    for (const pc of connections) if (pc.signalingState === 'closed') connections.delete(pc)
    return [...connections]
  }
  const Native = w.RTCPeerConnection as typeof RTCPeerConnection | undefined
  if (typeof Native === 'function') {
    w.RTCPeerConnection = class extends Native {
      constructor(config?: RTCConfiguration) {
        super(config)
        connections.add(this)
      }
    }
  }
  const kit: PageKit = {
    messengers: [],
    cutRtc: () => {
      for (const pc of live()) pc.close()
    },
    rtcConnected: () => live().filter((pc) => pc.connectionState === 'connected').length,
  }
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
