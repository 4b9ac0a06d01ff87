import { chromium, test as base } from '@playwright/test'
import { KitPeer, type Peer, type PeerOptions } from './peer.js'
import { kitRelay, type KitRelay, type KitRelayOptions } from './relay.js'

/** The fixtures `intersession/playwright`'s `test` adds. */
export interface IntersessionFixtures {
  /** A real relay process for this test (see {@link KitRelay}), started on first use; stopped and removed after it. */
  relay: KitRelay
  /** Opens an identity of the app in a browser of its own (see {@link Peer}); closed and removed after the test. */
  peer: (name: string, options: PeerOptions) => Promise<Peer>
}

/** Options the kit's fixtures take (`test.use({ relayOptions: { auth: 'jwt' } })`). */
export interface IntersessionOptions {
  /** How the `relay` fixture starts the relay. */
  relayOptions: KitRelayOptions
}

/**
 * Playwright Test with the kit's `relay` and `peer` fixtures. Peers launch
 * the browser named by the config's `launchOptions.executablePath` (else
 * Playwright's own Chromium) with its `launchOptions.args`.
 */
export const test = base.extend<IntersessionFixtures & IntersessionOptions>({
  relayOptions: [{}, { option: true }],
  relay: async ({ relayOptions }, use) => {
    const relay = await kitRelay(relayOptions)
    try {
      await use(relay)
    } finally {
      await relay.dispose()
    }
  },
  peer: async ({ relay, launchOptions, baseURL }, use) => {
    const peers: KitPeer[] = []
    const launch = { executablePath: launchOptions.executablePath ?? chromium.executablePath(), args: launchOptions.args ?? [] }
    try {
      await use(async (name, options) => {
        if (typeof options?.url !== 'string') throw new TypeError('options.url is required')
        const peer = await KitPeer.open(name, launch, relay, { ...options, url: new URL(options.url, baseURL).href })
        peers.push(peer)
        return peer
      })
    } finally {
      for (const peer of peers.reverse()) await peer.dispose().catch((error: unknown) => console.warn(`peer ${peer.name} cleanup: ${String(error)}`))
    }
  },
})
