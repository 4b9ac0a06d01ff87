/**
 * The helpers that start redis-server and relay processes reject with an
 * Error that names the program, the port and the tail of its output when the
 * server does not start, instead of a bare ENOENT or an unhandled `error`.
 */
import { afterEach, describe, expect, it, vi } from 'vitest'
import { startRelayProcess } from '../helpers/relay-process.js'

afterEach(() => {
  vi.unstubAllEnvs()
  vi.resetModules()
})

/** redis-process.ts reads REDIS_SERVER when loaded: load it afresh with `path`. */
async function redisHelperWith(path: string | undefined): Promise<typeof import('../helpers/redis-process.js')> {
  vi.resetModules()
  if (path !== undefined) vi.stubEnv('REDIS_SERVER', path)
  return import('../helpers/redis-process.js')
}

describe('startRedisProcess', () => {
  it('rejects naming the binary, the port and how to get it when redis-server is not there', async () => {
    const { startRedisProcess } = await redisHelperWith('/nonexistent/redis-server')
    await expect(startRedisProcess({ persistence: 'none' })).rejects.toThrow(
      /^could not start redis-server \(\/nonexistent\/redis-server\) on 127\.0\.0\.1:\d+: spawn \/nonexistent\/redis-server ENOENT; npm test's preflight \(node scripts\/preflight\.mjs\) finds or installs it; or set REDIS_SERVER$/,
    )
  })

  it('rejects with the end of its output when redis-server exits before it is ready', async () => {
    const { startRedisProcess } = await redisHelperWith(process.env.REDIS_SERVER)
    await expect(startRedisProcess({ persistence: 'none', args: ['--no-such-directive', 'x'] })).rejects.toThrow(
      /^redis-server \(\S+\) on 127\.0\.0\.1:\d+ exited \(1\) before it was ready; stdout ends: .*; stderr ends: [^]*no-such-directive/,
    )
  })
})

describe('startRelayProcess', () => {
  it('rejects naming the command and port when its program cannot run', async () => {
    await expect(startRelayProcess(['--dev'], {}, 15_000, { wrap: ['/nonexistent/wrapper'] })).rejects.toThrow(
      /^could not start relay process `\/nonexistent\/wrapper \S+ --import tsx src\/relay\/cli\.ts --port 0 --no-mailbox --dev` \(port 0: any free one\): spawn \/nonexistent\/wrapper ENOENT/,
    )
  })

  it('rejects with the end of its stderr when the relay exits before listening', async () => {
    await expect(startRelayProcess(['--dev', '--no-such-option'])).rejects.toThrow(
      /^relay process `.*src\/relay\/cli\.ts --port 0 --no-mailbox --dev --no-such-option` \(port 0: any free one\) exited \(2\) before listening; stderr ends: intersession-relay: Unknown option '--no-such-option'/,
    )
  })
})
