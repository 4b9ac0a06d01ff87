/**
 * A Firefox peer and a Chromium peer talking: through a real relay process,
 * and with WebRTC on. Also: the page client refuses bad input with
 * the same error codes in both engines.
 */
import type { Page } from 'puppeteer-core'
import { afterAll, afterEach, beforeAll, beforeEach, expect, test } from 'vitest'
import { startRelayProcess, type RelayProcess } from '../helpers/relay-process.js'
import type { StaticServer } from '../helpers/static-server.js'
import { openPage, openProfile, type Engine, type Profile } from './driver.js'
import { pollPage, serveHarness, texts } from './harness.js'

let server: StaticServer
let relay: RelayProcess
const profiles: Profile[] = []

beforeAll(async () => {
  server = await serveHarness()
})
afterAll(() => server?.stop())
beforeEach(async () => {
  relay = await startRelayProcess(['--dev'])
})
afterEach(async () => {
  for (const profile of profiles.splice(0)) await profile.dispose()
  await relay?.kill()
})

async function framesIn(): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${relay.port}/health`)
  return ((await response.json()) as { framesIn: number }).framesIn
}

/** A peer `id` in `engine` on a profile of its own, online through the relay. */
async function peer(engine: Engine, id: string, webrtc?: boolean | { iceTransportPolicy: RTCIceTransportPolicy }): Promise<Page> {
  const profile = await openProfile(engine)
  profiles.push(profile)
  const page = await openPage(profile.browser, `${server.url}/index.html`)
  await page.evaluate((id, url, webrtc) => window.harness.connect(id, { relay: url, ...(webrtc !== undefined && { webrtc }) }), id, relay.url, webrtc)
  await pollPage(page, () => window.harness.connection()?.status, 'online')
  return page
}

const contentsFrom = (page: Page, from: string): Promise<unknown[]> =>
  page.evaluate(
    (from) =>
      window.harness
        .received()
        .filter((m) => m.from === from)
        .map((m) => m.contents),
    from,
  )

test('Firefox and Chromium peers exchange through the relay, both ways, once and in order', async () => {
  const fox = await peer('firefox', 'fox')
  const chrome = await peer('chromium', 'chrome')
  await fox.evaluate(() => window.harness.sendMany('chrome', 'f', 0, 20))
  await chrome.evaluate(() => window.harness.sendMany('fox', 'c', 0, 20))
  await pollPage(chrome, () => window.harness.receivedCount(), 20)
  await pollPage(fox, () => window.harness.receivedCount(), 20)
  expect(await contentsFrom(chrome, 'fox')).toEqual(texts('f', 20))
  expect(await contentsFrom(fox, 'chrome')).toEqual(texts('c', 20))
  await pollPage(fox, () => window.harness.pending(), { outbound: 0, inbound: 0 })
  await pollPage(chrome, () => window.harness.pending(), { outbound: 0, inbound: 0 })
})

/**
 * Firefox cannot transfer an RTCDataChannel to a worker (DataCloneError), so
 * its page keeps the channel and pipes it to the worker over a MessagePort;
 * Chromium transfers its channel. Once the channel is up, frames go direct:
 * the relay sees almost none of them.
 */
test('Firefox and Chromium peers with WebRTC on exchange directly, once and in order', async () => {
  const fox = await peer('firefox', 'rtc-fox', true)
  const chrome = await peer('chromium', 'rtc-chrome', true)
  // The first message each way opens the streams both sides watch; then the channel comes up.
  await fox.evaluate(() => window.harness.sendMany('rtc-chrome', 'warm', 0, 1))
  await pollPage(chrome, () => window.harness.receivedCount(), 1)
  await chrome.evaluate(() => window.harness.sendMany('rtc-fox', 'warm', 0, 1))
  await pollPage(fox, () => window.harness.receivedCount(), 1)
  // Probe until one exchange both ways passes the relay by (at most 20 s).
  let probes = 0
  for (const deadline = Date.now() + 20_000; ;) {
    const at = await framesIn()
    await fox.evaluate((n) => window.harness.sendMany('rtc-chrome', 'p', n, 1), probes)
    await chrome.evaluate((n) => window.harness.sendMany('rtc-fox', 'p', n, 1), probes)
    probes++
    await pollPage(chrome, () => window.harness.receivedCount(), 1 + probes)
    await pollPage(fox, () => window.harness.receivedCount(), 1 + probes)
    if ((await framesIn()) - at < 2) break
    if (Date.now() > deadline) throw new Error(`no direct channel after ${probes} probes`)
    await new Promise((resolve) => setTimeout(resolve, 500))
  }
  const before = await framesIn()
  await fox.evaluate(() => window.harness.sendMany('rtc-chrome', 'd', 0, 100))
  await chrome.evaluate(() => window.harness.sendMany('rtc-fox', 'd', 0, 100))
  await pollPage(chrome, () => window.harness.receivedCount(), 101 + probes, 30_000)
  await pollPage(fox, () => window.harness.receivedCount(), 101 + probes, 30_000)
  const relayed = (await framesIn()) - before
  console.log(`interop webrtc: ${probes} probe(s) before the channel carried them; relay frames in during 200 messages: ${relayed}`)
  expect(relayed).toBeLessThan(10)
  expect(await contentsFrom(chrome, 'rtc-fox')).toEqual(['warm0', ...texts('p', probes), ...texts('d', 100)])
  expect(await contentsFrom(fox, 'rtc-chrome')).toEqual(['warm0', ...texts('p', probes), ...texts('d', 100)])
})

test('Firefox and Chromium peers with WebRTC on but direct paths blocked fall back to the relay, once and in order', async () => {
  // ICE restricted to TURN relays, and none given: no candidate pair can form, the channel never opens.
  const blocked = { iceTransportPolicy: 'relay' as const }
  const fox = await peer('firefox', 'blocked-fox', blocked)
  const chrome = await peer('chromium', 'blocked-chrome', blocked)
  await fox.evaluate(() => window.harness.sendMany('blocked-chrome', 'r', 0, 1))
  await pollPage(chrome, () => window.harness.receivedCount(), 1)
  const before = await framesIn()
  await fox.evaluate(() => window.harness.sendMany('blocked-chrome', 'r', 1, 100))
  await chrome.evaluate(() => window.harness.sendMany('blocked-fox', 'c', 0, 100))
  await pollPage(chrome, () => window.harness.receivedCount(), 101, 30_000)
  await pollPage(fox, () => window.harness.receivedCount(), 100, 30_000)
  expect((await framesIn()) - before).toBeGreaterThanOrEqual(200)
  expect(await contentsFrom(chrome, 'blocked-fox')).toEqual(texts('r', 101))
  expect(await contentsFrom(fox, 'blocked-chrome')).toEqual(texts('c', 100))
})

test('bad input is refused with the same errors in Firefox as in Chromium', async () => {
  const outcomes: Record<Engine, unknown> = { chromium: undefined, firefox: undefined }
  for (const engine of ['chromium', 'firefox'] as const) {
    const profile = await openProfile(engine)
    profiles.push(profile)
    const page = await openPage(profile.browser, `${server.url}/index.html`)
    await page.evaluate(() => window.harness.connect('api-a', { network: 'engines-api-input' }))
    await pollPage(page, () => window.harness.role(), 'leader')
    const probes = await page.evaluate(() => window.harness.faults.input.messenger('api-b'))
    outcomes[engine] = probes.map((p) => ({ call: p.call, outcome: p.outcome, name: p.name, code: p.code }))
  }
  const chromium = outcomes.chromium as Array<{ call: string; code?: string }>
  expect(chromium.filter((p) => p.code === 'INVALID_PEER_ID').length).toBeGreaterThanOrEqual(3)
  expect(chromium.some((p) => p.call === 'send a function' && p.code === 'UNSERIALIZABLE')).toBe(true)
  expect(outcomes.firefox).toEqual(outcomes.chromium)
})
