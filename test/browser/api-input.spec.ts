import { expect, test } from '../../src/playwright/index.js'
import { HARNESS, harnessTab, REPO_RELAY } from './fixtures.js'

test.use({ relayOptions: REPO_RELAY })

/** Bad input to the page client; the engine's own API is covered in test/unit/api-input.test.ts. */
test('the page client refuses bad input with typed errors, changes nothing, and refuses everything after close', async ({ peer }) => {
  const page = await harnessTab(await peer('api-a', HARNESS), true)
  const connects = await page.evaluate(() => window.harness.faults.input.connect())
  for (const p of connects)
    expect.soft(p, p.call).toMatchObject({ outcome: 'rejected', isIlmError: false, name: expect.stringMatching(/^(TypeError|RangeError)$/) })
  // None of those opened anything: no database, and the identity is free.
  expect(await page.evaluate(async () => (await indexedDB.databases()).map((d) => d.name))).toEqual([])

  await page.evaluate(() => window.harness.connect('api-a', { network: 'api-input' }))
  await expect.poll(() => page.evaluate(() => window.harness.role())).toBe('leader')
  const first = await page.evaluate(() => window.harness.send('api-b', 'first'))
  const probes = await page.evaluate(() => window.harness.faults.input.messenger('api-b'))
  const expected: Record<string, object> = {
    'send to number peer': { code: 'INVALID_PEER_ID' },
    'send to empty peer': { code: 'INVALID_PEER_ID' },
    'send to space peer': { code: 'INVALID_PEER_ID' },
    'send to huge peer': { code: 'INVALID_PEER_ID' },
    'send to self peer': { code: 'SELF_SEND' },
    'send a function': { code: 'UNSERIALIZABLE' },
    'send a symbol': { code: 'UNSERIALIZABLE' },
    'send a bigint': { code: 'UNSERIALIZABLE' },
    'send a Map': { code: 'UNSERIALIZABLE' },
    'send huge contents': { code: 'TOO_LARGE' },
    'send null options': { name: 'TypeError' },
    'send string options': { name: 'TypeError' },
    'send ttlMs -1': { name: 'RangeError' },
    'send bad id': { name: 'TypeError' },
    'status of a number': { name: 'TypeError' },
    'delivered of null': { name: 'TypeError' },
    'onMessage with a number': { outcome: 'threw', name: 'TypeError' },
    'on an unknown event': { outcome: 'threw', name: 'TypeError' },
    'on with a string listener': { outcome: 'threw', name: 'TypeError' },
    'setOnline with a string': { outcome: 'threw', name: 'TypeError' },
    'shutdown with null options': { name: 'TypeError' },
    'shutdown with timeoutMs -1': { name: 'RangeError' },
  }
  expect(probes.map((p) => p.call)).toEqual(Object.keys(expected))
  for (const p of probes) {
    const want = expected[p.call]!
    const typed = 'code' in want ? { outcome: 'rejected', isIlmError: true, name: 'IlmError' } : { outcome: 'rejected', isIlmError: false }
    expect.soft(p, p.call).toMatchObject({ ...typed, ...want })
  }
  // A send that cannot cross to the worker fails alone; the others of its turn are stored.
  const mixed = await page.evaluate(() => window.harness.faults.input.mixedTurn('api-b'))
  expect(mixed).toMatchObject([{ outcome: 'ok' }, { outcome: 'rejected', code: 'UNSERIALIZABLE' }, { outcome: 'ok' }])
  // Nothing else was queued, and the misused messenger is still open: seqs go on from `first`.
  const next = await page.evaluate(() => window.harness.send('api-b', 'next'))
  expect([mixed[0]!.seq, mixed[2]!.seq, next.seq]).toEqual([first.seq + 1, first.seq + 2, first.seq + 3])
  expect(await page.evaluate(() => window.harness.pending())).toEqual({ outbound: 4, inbound: 0 })
  const rows = await page.evaluate(() => window.harness.faults.readStore('api-a'))
  expect(rows?.outbox.map((r) => r.seq)).toEqual([0, 1, 2, 3])

  const closed = await page.evaluate(() => window.harness.faults.input.closed('api-b'))
  const byCall = Object.fromEntries(closed.map((p) => [p.call, p]))
  for (const call of ['send', 'status', 'delivered', 'pending', 'connectedPeers']) {
    expect.soft(byCall[call], call).toMatchObject({ outcome: 'rejected', isIlmError: true, code: 'CLOSED' })
  }
  for (const call of ['setOnline', 'onMessage', 'close again', 'shutdown']) expect.soft(byCall[call], call).toMatchObject({ outcome: 'ok' })
  expect((await page.evaluate(() => window.harness.faults.readStore('api-a')))?.outbox.length).toBe(4)
})
