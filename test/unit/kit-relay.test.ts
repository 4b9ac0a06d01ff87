/**
 * The Playwright kit's `relay` fixture starts its process on first use
 * (src/playwright/relay.ts): none for a test that never uses it, a URL known
 * before the process runs, and a start failure reported either by the method
 * call that awaited it or, when none did, by `dispose()` at the test's end.
 */
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { kitRelay } from '../../src/playwright/relay.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const REPO_RELAY = { command: [process.execPath, '--import', 'tsx', 'src/relay/cli.ts'], cwd: ROOT }
/** A relay command that exits at once, before it listens. */
const BROKEN = { command: [process.execPath, '-e', 'process.exit(3)', '--'], cwd: ROOT }

describe('the kit relay starts on first use', () => {
  it('starts no process until used; its url is known before, and it listens there once a method resolves', async () => {
    const relay = await kitRelay({ ...REPO_RELAY, mailbox: false })
    try {
      expect(relay.mailboxDir).toBeUndefined()
      expect(relay.logs()).toEqual([])
      expect(() => relay.pid).toThrow(/has not started yet/) // and starts it
      const url = relay.url
      expect((await relay.health()).authenticated).toBe(0)
      expect(relay.logs().filter((e) => e.event === 'listening')).toMatchObject([{ port: Number(new URL(url).port) }])
      expect(relay.url).toBe(url)
      expect(relay.pid).toBeGreaterThan(0)
      expect(relay.logs().filter((e) => e.event === 'listening')).toHaveLength(1) // one start, however many uses
    } finally {
      await relay.dispose()
    }
  })

  it('a relay never used starts nothing, and its mailbox is removed', async () => {
    const relay = await kitRelay(BROKEN)
    const dir = relay.mailboxDir!
    expect(existsSync(dir)).toBe(true)
    await relay.dispose() // the broken command never ran: nothing to report
    expect(existsSync(dir)).toBe(false)
    expect(relay.logs()).toEqual([])
  })

  it('a start failure rejects the method call that awaited it; dispose() then resolves', async () => {
    const relay = await kitRelay(BROKEN)
    await expect(relay.connectedPeers()).rejects.toThrow(/exited \(3\) before listening/)
    await expect(relay.token('alice')).rejects.toThrow(/exited \(3\) before listening/)
    await relay.dispose()
  })

  it('a start failure nothing awaited (only url was read) fails dispose()', async () => {
    const relay = await kitRelay(BROKEN)
    expect(relay.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/)
    await expect(relay.dispose()).rejects.toThrow(/exited \(3\) before listening/)
  })

  it('a relay stopped before its first use does not start by itself', async () => {
    const relay = await kitRelay(BROKEN)
    await relay.stop()
    expect(relay.url).toMatch(/^ws:/) // reading it would start a relay not stopped
    await relay.dispose()
    expect(relay.logs()).toEqual([])
  })

  it('refuses a mailbox option that is not a boolean', async () => {
    await expect(kitRelay({ ...REPO_RELAY, mailbox: 'no' as unknown as boolean })).rejects.toThrow(TypeError)
  })
})
