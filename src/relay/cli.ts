#!/usr/bin/env node
/// <reference types="node" />
/**
 * `intersession-relay [--port N] [--host H] [--dev]`
 *
 * Environment (flags win over it):
 * - `INTERSESSION_RELAY_PORT`, `INTERSESSION_RELAY_HOST` (default 127.0.0.1)
 * - `INTERSESSION_JWT_SECRET`: HS256 secret of the login tokens (never on the command line)
 * - `INTERSESSION_DEV=1`: insecure demo mode, same as `--dev`
 * - limits: `INTERSESSION_RELAY_MAX_FRAME_BYTES`, `_FRAMES_PER_SECOND`, `_MAX_PENDING_BYTES`,
 *   `_MAX_CONNECTIONS`, `_AUTH_TIMEOUT_MS`, `_PING_INTERVAL_MS` (all prefixed `INTERSESSION_RELAY`)
 *
 * Logs JSON lines on stdout, the first being `{"event":"listening","url":...,"port":...}`.
 * SIGINT/SIGTERM close every socket with 1001 (going away) and exit 0.
 */
import { parseArgs } from 'node:util'
import { createRelay, type RelayLimits } from './relay.js'

const USAGE = `Usage: intersession-relay [--port N] [--host H] [--dev]

  --port N   TCP port (default $INTERSESSION_RELAY_PORT or 0 = ephemeral)
  --host H   interface (default $INTERSESSION_RELAY_HOST or 127.0.0.1)
  --dev      INSECURE demo mode: token "dev:<peerId>" logs in as anyone
             (or INTERSESSION_DEV=1)

Authentication: set INTERSESSION_JWT_SECRET (HS256; sub = peer id, exp required),
or use --dev for local demos.`

const LIMIT_ENV: Record<keyof RelayLimits, string> = {
  maxFrameBytes: 'INTERSESSION_RELAY_MAX_FRAME_BYTES',
  framesPerSecond: 'INTERSESSION_RELAY_FRAMES_PER_SECOND',
  rateLimitCloseMs: 'INTERSESSION_RELAY_RATE_LIMIT_CLOSE_MS',
  maxPendingBytes: 'INTERSESSION_RELAY_MAX_PENDING_BYTES',
  maxConnections: 'INTERSESSION_RELAY_MAX_CONNECTIONS',
  authTimeoutMs: 'INTERSESSION_RELAY_AUTH_TIMEOUT_MS',
  pingIntervalMs: 'INTERSESSION_RELAY_PING_INTERVAL_MS',
}

function fail(message: string): never {
  process.stderr.write(`intersession-relay: ${message}\n\n${USAGE}\n`)
  process.exit(2)
}

function integer(value: string, name: string): number {
  if (!/^\d+$/.test(value)) fail(`${name} must be a non-negative integer, got "${value}"`)
  return Number(value)
}

async function main(): Promise<void> {
  let parsed
  try {
    parsed = parseArgs({
      options: {
        port: { type: 'string' },
        host: { type: 'string' },
        dev: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    })
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error))
  }
  const { values } = parsed
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`)
    return
  }
  const env = process.env
  const portText = values.port ?? env.INTERSESSION_RELAY_PORT ?? '0'
  const port = integer(portText, 'port')
  const host = values.host ?? env.INTERSESSION_RELAY_HOST ?? '127.0.0.1'
  const dev = values.dev === true || env.INTERSESSION_DEV === '1' || env.INTERSESSION_DEV === 'true'
  const secret = env.INTERSESSION_JWT_SECRET
  const hasSecret = secret !== undefined && secret !== ''
  if (dev && hasSecret) fail('give either INTERSESSION_JWT_SECRET or --dev, not both')
  if (!dev && !hasSecret) fail('set INTERSESSION_JWT_SECRET, or pass --dev for an insecure local demo')
  const limits: Partial<Record<keyof RelayLimits, number>> = {}
  for (const [key, name] of Object.entries(LIMIT_ENV) as [keyof RelayLimits, string][]) {
    const value = env[name]
    if (value !== undefined && value !== '') limits[key] = integer(value, name)
  }

  let relay
  try {
    relay = await createRelay({ host, port, limits, ...(dev ? { dev: true } : { jwtSecret: secret! }) })
  } catch (error) {
    process.stderr.write(`intersession-relay: ${error instanceof Error ? error.message : String(error)}\n`)
    process.exit(1)
  }
  if (dev) process.stderr.write('\n  *** INSECURE DEV MODE: anyone can log in as any peer. Do not expose this relay. ***\n\n')

  let stopping = false
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) process.exit(1) // a second signal: give up waiting
    stopping = true
    process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), level: 'info', event: 'signal', signal })}\n`)
    relay.close().then(
      () => process.exit(0),
      () => process.exit(1),
    )
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
}

void main()
