/** Where the relay is: `config.json` from the demo server, or a guess from the page's own URL. */

export interface DemoConfig {
  /** The relay's WebSocket URL. */
  readonly relayUrl: string
  /** The dev relay's HTTP base, whose `GET /peers` lists who is connected. */
  readonly directoryUrl: string
}

const DEFAULT_RELAY_PORT = 8787
const TIMEOUT_MS = 4000

/**
 * Reads `./config.json` (through the service worker, so it still answers from
 * the cache when the server is down). Without one: the relay on this page's
 * host, at the port given as `?relay=PORT`, or 8787.
 */
export async function loadConfig(location: Location = window.location): Promise<DemoConfig> {
  try {
    const response = await fetch('./config.json', { cache: 'no-store', signal: AbortSignal.timeout(TIMEOUT_MS) })
    if (response.ok) {
      const config = parse(await response.json())
      if (config !== undefined) return config
    }
  } catch {
    // No server, or not the demo server: fall back below.
  }
  return fallback(location)
}

function parse(value: unknown): DemoConfig | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  const { relayUrl, directoryUrl } = value as Record<string, unknown>
  if (typeof relayUrl !== 'string' || !/^wss?:\/\//.test(relayUrl)) return undefined
  if (typeof directoryUrl !== 'string' || !/^https?:\/\//.test(directoryUrl)) return undefined
  return { relayUrl, directoryUrl }
}

function fallback(location: Location): DemoConfig {
  const given = Number(new URLSearchParams(location.search).get('relay'))
  const port = Number.isInteger(given) && given > 0 && given < 65_536 ? given : DEFAULT_RELAY_PORT
  const secure = location.protocol === 'https:'
  return {
    relayUrl: `${secure ? 'wss' : 'ws'}://${location.hostname}:${port}`,
    directoryUrl: `${secure ? 'https' : 'http'}://${location.hostname}:${port}`,
  }
}
