/**
 * Bad input to the page client (`connect`, `Messenger`), run inside the
 * harness page for test/browser/api-input.spec.ts. Each probe records how a
 * call ended, as plain data.
 */
import { connect, IlmError, type Messenger } from 'intersession/client'

/** How one call ended. */
export interface Probe {
  readonly call: string
  readonly outcome: 'ok' | 'threw' | 'rejected' | 'pending'
  readonly name?: string
  readonly code?: string
  readonly isIlmError?: boolean
}

const PENDING_AFTER_MS = 5000
const HUGE = 'x'.repeat(1024 * 1024 + 1)

/** Runs `fn` and describes how it ended; a promise still pending after 5 s counts as `pending` (a hang). */
async function probe(call: string, fn: () => unknown): Promise<Probe> {
  let result: unknown
  try {
    result = fn()
  } catch (error) {
    return { call, outcome: 'threw', ...describe(error) }
  }
  if (!(result instanceof Promise)) return { call, outcome: 'ok' }
  let timer: ReturnType<typeof setTimeout> | undefined
  const hang = new Promise<'pending'>((resolve) => (timer = setTimeout(() => resolve('pending'), PENDING_AFTER_MS)))
  try {
    const settled = await Promise.race([result.then(() => 'ok' as const), hang])
    return { call, outcome: settled }
  } catch (error) {
    return { call, outcome: 'rejected', ...describe(error) }
  } finally {
    clearTimeout(timer)
  }
}

function describe(error: unknown): Pick<Probe, 'name' | 'code' | 'isIlmError'> {
  const code = (error as { code?: unknown }).code
  return { name: (error as Error).name, ...(typeof code === 'string' && { code }), isIlmError: error instanceof IlmError }
}

const transport = { kind: 'broadcast-channel', network: 'api-input' } as const

/**
 * `connect()` with bad options. A connect that wrongly succeeds is closed
 * again at once, so the next probe starts clean.
 */
export async function connectProbes(): Promise<Probe[]> {
  const cases: Array<[string, unknown]> = [
    ['no options', undefined],
    ['null options', null],
    ['number options', 42],
    ['empty peerId', { peerId: '', transport }],
    ['peerId with a space', { peerId: 'a b', transport }],
    ['number peerId', { peerId: 42, transport }],
    ['huge peerId', { peerId: HUGE, transport }],
    ['no transport', { peerId: 'api-x' }],
    ['unknown transport kind', { peerId: 'api-x', transport: { kind: 'carrier-pigeon' } }],
    ['http relay url', { peerId: 'api-x', transport: { kind: 'websocket', url: 'http://127.0.0.1:1', token: 't' } }],
    ['empty url list', { peerId: 'api-x', transport: { kind: 'websocket', url: [], token: 't' } }],
    ['limits not an object', { peerId: 'api-x', transport, limits: 42 }],
    ['unknown limit', { peerId: 'api-x', transport, limits: { nope: 1 } }],
    ['window 0', { peerId: 'api-x', transport, limits: { window: 0 } }],
    ['window as a string', { peerId: 'api-x', transport, limits: { window: '5' } }],
    ['dbName not a string', { peerId: 'api-x', transport, dbName: 42 }],
    ['heartbeatMs -1', { peerId: 'api-x', transport, heartbeatMs: -1 }],
    ['staleAfterMs as a string', { peerId: 'api-x', transport, staleAfterMs: 'soon' }],
  ]
  const probes: Probe[] = []
  for (const [call, options] of cases) {
    let made: Messenger | undefined
    probes.push(await probe(call, async () => void (made = await connect(options as never))))
    await made?.close()
  }
  return probes
}

/** Messenger methods with bad input, on a connected messenger `m` (a send to `to` is valid). */
export async function messengerProbes(m: Messenger, to: string): Promise<Probe[]> {
  const probes: Probe[] = []
  const run = async (call: string, fn: () => unknown): Promise<void> => void probes.push(await probe(call, fn))
  for (const [call, peer] of [
    ['number', 42],
    ['empty', ''],
    ['space', 'a b'],
    ['huge', HUGE],
    ['self', m.localId],
  ] as const) {
    await run(`send to ${call} peer`, () => m.send(peer as string, 'x'))
  }
  await run('send a function', () => m.send(to, () => 1))
  await run('send a symbol', () => m.send(to, Symbol('s')))
  await run('send a bigint', () => m.send(to, 10n))
  await run('send a Map', () => m.send(to, new Map([[1, 2]])))
  await run('send huge contents', () => m.send(to, HUGE))
  await run('send null options', () => m.send(to, 'x', null as never))
  await run('send string options', () => m.send(to, 'x', 'fast' as never))
  await run('send ttlMs -1', () => m.send(to, 'x', { ttlMs: -1 }))
  await run('send bad id', () => m.send(to, 'x', { id: 'has space' }))
  await run('status of a number', () => m.status(42 as never))
  await run('delivered of null', () => m.delivered(null as never))
  await run('onMessage with a number', () => m.onMessage(42 as never))
  await run('on an unknown event', () => m.on('nope' as never, () => {}))
  await run('on with a string listener', () => m.on('status', 'f' as never))
  await run('setOnline with a string', () => m.setOnline('yes' as never))
  await run('shutdown with null options', () => m.shutdown(null as never))
  await run('shutdown with timeoutMs -1', () => m.shutdown({ timeoutMs: -1 }))
  return probes
}

/**
 * Sends made in one turn where one cannot cross to the worker (a function):
 * that one is refused, the others are stored. Resolves with each outcome.
 */
export async function mixedTurn(m: Messenger, to: string): Promise<Array<Probe & { seq?: number }>> {
  const calls = ['a', () => 1, 'b'].map((contents) => m.send(to, contents))
  return Promise.all(
    calls.map((call, i) =>
      call.then(
        (r) => ({ call: `send ${i}`, outcome: 'ok' as const, seq: r.seq }),
        (error: unknown) => ({ call: `send ${i}`, outcome: 'rejected' as const, ...describe(error) }),
      ),
    ),
  )
}

/** Every method after `close()`. */
export async function closedProbes(m: Messenger, to: string): Promise<Probe[]> {
  await m.close()
  const probes: Probe[] = []
  const run = async (call: string, fn: () => unknown): Promise<void> => void probes.push(await probe(call, fn))
  await run('send', () => m.send(to, 'x'))
  await run('status', () => m.status('some-id'))
  await run('delivered', () => m.delivered('some-id'))
  await run('pending', () => m.pending())
  await run('connectedPeers', () => m.connectedPeers())
  await run('setOnline', () => m.setOnline(false))
  await run('onMessage', () => m.onMessage(() => {}))
  await run('close again', () => m.close())
  await run('shutdown', () => m.shutdown())
  return probes
}
