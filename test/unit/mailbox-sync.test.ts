/// <reference types="node" />
/**
 * The LevelDB mailbox has a message on disk before the relay answers
 * `stored`: a real relay process runs under strace, and the trace must show
 * each message's write to LevelDB's log, then a sync of that file, then the
 * socket write carrying its `stored` (test/helpers/sync-trace.ts). The checker
 * itself is tested first, on traces with each failure it claims to catch.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { encodeFrame } from '../../src/core/codec.js'
import { makeEpoch, type MessageId, type PeerId } from '../../src/core/ids.js'
import { envelope } from '../../src/protocol/relay.js'
import { RawClient } from '../helpers/relay-clients.js'
import { startRelayProcess } from '../helpers/relay-process.js'
import { checkSyncBeforeStored, logSyncs, parseTrace } from '../helpers/sync-trace.js'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

// ---- synthetic traces ----------------------------------------------------------

const DIR = '/data/mailbox'
const LOG = `${DIR}/000003.log`
const STORED = '{"t":"stored","peer":"bob","epoch":"e","seq":7}'

const hex = (bytes: Buffer | string): string => [...Buffer.from(bytes)].map((b) => `\\x${b.toString(16).padStart(2, '0')}`).join('')
const path = (p: string): string => hex(p)
/** A LevelDB log record (full type) around `data`. */
const record = (data: string): Buffer => {
  const header = Buffer.alloc(7)
  header.writeUInt16LE(data.length, 4)
  header[6] = 1
  return Buffer.concat([header, Buffer.from(data, 'latin1')])
}
const write = (pid: number, target: string, data: Buffer): string =>
  `${pid} 10:00:00.000001 write(3<${target}>, "${hex(data)}", ${data.length}) = ${data.length}`
const sync = (pid: number, target: string, name = 'fdatasync', result = '0'): string => `${pid} 10:00:00.000002 ${name}(3<${target}>) = ${result}`
const storedWrite = (pid = 1, text = STORED): string => {
  const frame = Buffer.from(text)
  return `${pid} 10:00:00.000003 writev(9<TCP:[127.0.0.1:1->127.0.0.1:2]>, [{iov_base="${hex(Buffer.of(0x81, frame.length))}", iov_len=2}, {iov_base="${hex(frame)}", iov_len=${frame.length}}], 2) = ${frame.length + 2}`
}
const verdict = (lines: readonly string[]) => checkSyncBeforeStored(parseTrace(lines.join('\n')), DIR, [{ marker: 'MSG-7', stored: STORED }])[0]!

describe('the sync-before-stored checker', () => {
  const logWrite = write(2, path(LOG), record('{"id":"MSG-7"}'))

  it('accepts a log write, then its sync, then the stored frame', () => {
    expect(verdict([logWrite, sync(2, path(LOG)), storedWrite()])).toEqual({ marker: 'MSG-7', logWrite: 0, synced: 1, storedAt: 2 })
  })

  it('catches a stored frame with no sync before it', () => {
    expect(verdict([logWrite, storedWrite(), sync(2, path(LOG))]).problem).toMatch(/no fsync\/fdatasync/)
    expect(verdict([logWrite, storedWrite()]).problem).toMatch(/no fsync\/fdatasync/)
  })

  it('catches a sync of another file, a sync before the write, a failed sync and sync_file_range', () => {
    expect(verdict([logWrite, sync(2, path(`${DIR}/MANIFEST-000002`)), storedWrite()]).problem).toMatch(/no fsync/)
    expect(verdict([logWrite, sync(2, path(`/elsewhere/000003.log`)), storedWrite()]).problem).toMatch(/no fsync/)
    expect(verdict([sync(2, path(LOG)), logWrite, storedWrite()]).problem).toMatch(/no fsync/)
    expect(verdict([logWrite, sync(2, path(LOG), 'fdatasync', '-1 EIO (Input/output error)'), storedWrite()]).problem).toMatch(/no fsync/)
    expect(verdict([logWrite, sync(2, path(LOG), 'sync_file_range'), storedWrite()]).problem).toMatch(/no fsync/)
  })

  it('catches a sync still running when the stored frame goes out', () => {
    const lines = [logWrite, `2 10:00:00.1 fdatasync(3<${path(LOG)}> <unfinished ...>`, storedWrite(), '2 10:00:00.2 <... fdatasync resumed>) = 0']
    expect(verdict(lines).problem).toMatch(/no fsync/)
    const inOrder = [logWrite, `2 10:00:00.1 fdatasync(3<${path(LOG)}> <unfinished ...>`, '2 10:00:00.2 <... fdatasync resumed>) = 0', storedWrite()]
    expect(verdict(inOrder)).toEqual({ marker: 'MSG-7', logWrite: 0, synced: 2, storedAt: 3 })
  })

  it('catches a message missing from the log, and a stored frame never written', () => {
    expect(verdict([write(2, path(LOG), record('{"id":"MSG-8"}')), sync(2, path(LOG)), storedWrite()]).problem).toMatch(/no write to a mailbox log/)
    expect(verdict([logWrite, sync(2, path(LOG))]).problem).toMatch(/no socket write/)
    expect(verdict([logWrite, sync(2, path(LOG)), storedWrite(1, STORED.replace('7', '8'))]).problem).toMatch(/no socket write/)
  })

  it('finds a message split by a block header, in the write that holds its last byte', () => {
    // A first record fills the 32 KiB block up to 3 bytes into the marker; the rest follows the next block's header.
    const body = '{"id":"MSG-7"}'
    const cut = body.indexOf('MSG-7') + 3
    const first = record('x'.repeat(32 * 1024 - 7 - 7 - cut))
    const head = Buffer.concat([first, Buffer.from([0, 0, 0, 0, cut, 0, 2]), Buffer.from(body.slice(0, cut))])
    expect(head.length).toBe(32 * 1024)
    const tail = Buffer.concat([Buffer.from([0, 0, 0, 0, body.length - cut, 0, 4]), Buffer.from(body.slice(cut))])
    const lines = [write(2, path(LOG), head), sync(2, path(LOG)), write(2, path(LOG), tail), storedWrite(), sync(2, path(LOG))]
    expect(verdict(lines)).toMatchObject({ logWrite: 2, problem: expect.stringMatching(/no fsync/) })
    expect(verdict([write(2, path(LOG), head), write(2, path(LOG), tail), sync(2, path(LOG)), storedWrite()])).toEqual({
      marker: 'MSG-7',
      logWrite: 1,
      synced: 2,
      storedAt: 3,
    })
  })

  it('refuses a trace whose strings strace cut short', () => {
    expect(() => parseTrace(`2 10:00:00.1 write(3<${path(LOG)}>, "\\x41"..., 9) = 9`)).toThrow(/larger -s/)
  })
})

// ---- a real relay under strace --------------------------------------------------

const STRACE = ['strace', '-f', '-tt', '-yy', '-xx', '-s', String(4 << 20), '-e', 'trace=fsync,fdatasync,sync_file_range,write,writev,sendto,sendmsg']

/** Fails (never skips) when strace is missing or ptrace is not allowed here. */
function requireStrace(): void {
  const probe = spawnSync('strace', ['-f', '-o', '/dev/null', 'true'], { encoding: 'utf8' })
  if (probe.error !== undefined || probe.status !== 0) {
    throw new Error(
      `this test traces the relay with strace and cannot run here: ${probe.error?.message ?? probe.stderr.trim()} ` +
        '(install strace, Debian: apt-get install strace; it needs ptrace: CAP_SYS_PTRACE in a container, no seccomp block on ptrace)',
    )
  }
}

describe('LevelDB mailbox under strace', () => {
  it('syncs each message to disk before its stored frame is written, and groups concurrent messages into few syncs', async () => {
    requireStrace()
    const dir = mkdtempSync(join(tmpdir(), 'intersession-sync-'))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    const mailboxDir = join(dir, 'mailbox')
    const trace = join(dir, 'trace')
    const relay = await startRelayProcess(['--dev', '--mailbox-dir', mailboxDir], {}, 60_000, { wrap: [...STRACE, '-o', trace] })
    cleanups.push(() => relay.kill())
    const alice = await RawClient.login(relay.url, 'dev:alice')
    cleanups.push(() => alice.terminate())

    const epoch = makeEpoch(Date.now(), 'tracedsender')
    const id = (seq: number): string => `traced-${String(seq).padStart(6, '0')}`
    const send = (seq: number): void => {
      const frame = encodeFrame({
        kind: 'msg',
        from: 'alice' as PeerId,
        to: 'bob' as PeerId,
        epoch,
        seq,
        floor: 0,
        id: id(seq) as MessageId,
        contentKind: 's',
        contents: new TextEncoder().encode(JSON.stringify(`message ${seq}`)),
      })
      alice.sendBinary(envelope('bob', frame))
    }
    // One message alone, then a burst that arrives while syncs are in flight.
    const BURST = 200
    send(0)
    await alice.next('stored', (m) => m.seq === 0, 20_000)
    for (let seq = 1; seq <= BURST; seq++) send(seq)
    for (let seq = 1; seq <= BURST; seq++) await alice.next('stored', (m) => m.seq === seq, 20_000)
    expect(await relay.stop()).toBe(0)

    const calls = parseTrace(readFileSync(trace, 'utf8'))
    const messages = Array.from({ length: BURST + 1 }, (_, seq) => ({
      marker: id(seq),
      stored: JSON.stringify({ t: 'stored', peer: 'bob', epoch, seq }),
    }))
    const verdicts = checkSyncBeforeStored(calls, mailboxDir, messages)
    expect(verdicts.filter((v) => v.problem !== undefined).slice(0, 5)).toEqual([])
    expect(verdicts.every((v) => v.logWrite !== undefined && v.synced !== undefined && v.storedAt !== undefined)).toBe(true)
    // Group commit: far fewer syncs than messages.
    const syncs = logSyncs(calls, mailboxDir)
    expect(syncs).toBeGreaterThanOrEqual(2)
    expect(syncs).toBeLessThanOrEqual(BURST / 4)
  }, 90_000)
})
