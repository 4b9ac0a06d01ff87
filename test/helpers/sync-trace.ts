/**
 * Reads what `strace -f -yy -xx -s <big> -o FILE` recorded of a relay and
 * decides, for each message, whether the relay had its LevelDB mailbox write
 * on disk before it told the sender `stored`:
 *
 * 1. the write to the mailbox's write-ahead log (`<dir>/NNNNNN.log`) that
 *    holds the message (its id, found in the log's records with LevelDB's
 *    32 KiB block framing taken off, so an id split by a block header is
 *    still found) must be followed by a successful `fsync`/`fdatasync` of
 *    that same file, started after the write ended,
 * 2. which must have returned before the socket write (`write`, `writev`,
 *    `sendto` or `sendmsg`) that carried the message's `stored` control frame
 *    (matched by its exact bytes) started.
 *
 * `sync_file_range` does not count: it neither flushes the disk's cache nor
 * the file's metadata. Order is the order of strace's lines, which is the
 * order in which it saw the calls start and return: a thread stopped at the
 * return of `fdatasync` cannot go on to wake the thread that writes `stored`
 * before strace printed that return.
 */

/** One system call in the trace: where it starts and returns (line numbers), its fd's path and the bytes it wrote. */
export interface TracedCall {
  readonly name: string
  readonly pid: number
  readonly start: number
  readonly end: number
  /** The fd's description from `-yy`: a path, or e.g. `TCP:[a->b]`; `''` when the call has no fd. */
  readonly target: string
  readonly result: string
  readonly data: Buffer
}

/** What {@link checkSyncBeforeStored} expects for one message. */
export interface ExpectedMessage {
  /** A string that occurs in the message's mailbox write and nowhere else in the log (e.g. its id). */
  readonly marker: string
  /** The exact bytes of the `stored` control message sent for it (the JSON text). */
  readonly stored: string
}

/** The verdict on one message: `problem` is undefined when the sync came first. */
export interface MessageVerdict {
  readonly marker: string
  /** Line where the log write that holds the message started. */
  readonly logWrite?: number
  /** Line where the sync that covered it returned. */
  readonly synced?: number
  /** Line where the socket write carrying `stored` started. */
  readonly storedAt?: number
  readonly problem?: string
}

const WRITES = new Set(['write', 'writev', 'sendto', 'sendmsg', 'pwrite64'])
const SYNCS = new Set(['fsync', 'fdatasync'])
const LINE = /^(\d+)\s+(?:\d\d:\d\d:\d\d\.\d+\s+)?(.*)$/
const CALL = /^([a-z_0-9]+)\((.*)$/
const RESUMED = /^<\.\.\. ([a-z_0-9]+) resumed>(.*)$/
const UNFINISHED = ' <unfinished ...>'
const RESULT = /\)\s+=\s+(-?\d+|\?)(.*)$/
const FD = /^(\d+)<(.*?)>(?=[,)])/
const BLOCK = 32 * 1024
const HEADER = 7

function unhex(text: string): string {
  return text.replace(/\\x([0-9a-f]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)))
}

/** The bytes of every string argument (`"\x.."`) of a call, in order; throws on a string strace cut short. */
function strings(args: string, line: number): Buffer {
  const parts: Buffer[] = []
  for (const match of args.matchAll(/"((?:\\x[0-9a-f]{2})*)"(\.\.\.)?/g)) {
    if (match[2] !== undefined) throw new Error(`trace line ${line}: a string was cut short; run strace with a larger -s`)
    parts.push(Buffer.from(unhex(match[1]!), 'latin1'))
  }
  return Buffer.concat(parts)
}

/** The calls of an strace log written with `-f -yy -xx` (and optionally `-tt`), unfinished calls joined to their return. */
export function parseTrace(text: string): TracedCall[] {
  const calls: TracedCall[] = []
  const open = new Map<number, { name: string; start: number; args: string }>()
  text.split('\n').forEach((raw, index) => {
    const line = LINE.exec(raw)
    if (line === null) return
    const pid = Number(line[1])
    const body = line[2]!
    let name: string
    let start = index
    let args: string
    const resumed = RESUMED.exec(body)
    if (resumed !== null) {
      const begun = open.get(pid)
      if (begun === undefined || begun.name !== resumed[1]) return
      open.delete(pid)
      ;({ name, start } = begun)
      args = begun.args + resumed[2]!
    } else {
      const call = CALL.exec(body)
      if (call === null) return
      name = call[1]!
      args = call[2]!
      if (args.endsWith(UNFINISHED)) {
        open.set(pid, { name, start, args: args.slice(0, -UNFINISHED.length) })
        return
      }
    }
    const result = RESULT.exec(args)
    const fd = FD.exec(args)
    const data = WRITES.has(name) ? strings(args.slice(fd?.[0].length ?? 0, result?.index), index) : Buffer.alloc(0)
    if (data.length < Number(result?.[1]))
      throw new Error(`trace line ${index}: ${name} wrote ${result?.[1]} bytes, the trace shows ${data.length}; run strace with a larger -s`)
    calls.push({ name, pid, start, end: index, target: fd === null ? '' : unhex(fd[2]!), result: result === null ? '?' : result[1]!, data })
  })
  return calls
}

/** The records of a LevelDB log file's bytes, joined, with the file offset of each byte. */
function logRecords(file: Buffer): { data: Buffer; offsets: number[] } {
  const data: number[] = []
  const offsets: number[] = []
  for (let block = 0; block < file.length; block += BLOCK) {
    let at = block
    const end = Math.min(block + BLOCK, file.length)
    while (at + HEADER <= end) {
      const length = file.readUInt16LE(at + 4)
      if (length === 0 && file[at + 6] === 0) break // trailer padding, or nothing written yet
      for (let i = at + HEADER; i < Math.min(at + HEADER + length, end); i++) {
        data.push(file[i]!)
        offsets.push(i)
      }
      at += HEADER + length
    }
  }
  return { data: Buffer.from(data), offsets }
}

/**
 * For each message: was a sync of the mailbox log that holds it finished
 * before its `stored` went out? `mailboxDir` is the `--mailbox-dir` as the
 * relay process saw it (an absolute path).
 */
export function checkSyncBeforeStored(calls: readonly TracedCall[], mailboxDir: string, messages: readonly ExpectedMessage[]): MessageVerdict[] {
  const dir = mailboxDir.replace(/\/+$/, '')
  const isLog = (target: string): boolean => target.startsWith(`${dir}/`) && /^\d+\.log$/.test(target.slice(dir.length + 1))
  // Each log file as written: its bytes, and which call wrote each byte.
  const logs = new Map<string, { chunks: Buffer[]; writers: TracedCall[]; ends: number[] }>()
  for (const call of calls) {
    if (!WRITES.has(call.name) || !isLog(call.target) || !(Number(call.result) > 0)) continue
    let log = logs.get(call.target)
    if (log === undefined) logs.set(call.target, (log = { chunks: [], writers: [], ends: [] }))
    const written = call.data.subarray(0, Number(call.result))
    log.chunks.push(written)
    log.writers.push(call)
    log.ends.push((log.ends.at(-1) ?? 0) + written.length)
  }
  const parsed = [...logs].map(([path, log]) => ({ path, ...log, ...logRecords(Buffer.concat(log.chunks)) }))
  const syncs = calls.filter((call) => SYNCS.has(call.name) && call.result === '0')
  const sockets = calls.filter((call) => WRITES.has(call.name) && /^TCP(v6)?:/.test(call.target))

  return messages.map(({ marker, stored }): MessageVerdict => {
    const carrier = sockets.find((call) => call.data.includes(stored))
    let logWrite: TracedCall | undefined
    let path: string | undefined
    for (const log of parsed) {
      const at = log.data.lastIndexOf(marker)
      if (at < 0) continue
      const lastByte = log.offsets[at + Buffer.byteLength(marker) - 1]!
      logWrite = log.writers[log.ends.findIndex((end) => end > lastByte)]
      path = log.path
    }
    const base = { marker, ...(logWrite !== undefined && { logWrite: logWrite.start }), ...(carrier !== undefined && { storedAt: carrier.start }) }
    if (carrier === undefined) return { ...base, problem: 'no socket write carries its stored frame' }
    if (logWrite === undefined) return { ...base, problem: 'no write to a mailbox log holds it' }
    const sync = syncs.find((call) => call.target === path && call.start > logWrite.end && call.end < carrier.start)
    if (sync === undefined)
      return {
        ...base,
        problem: `no fsync/fdatasync of ${path} returned between its log write (line ${logWrite.start}) and its stored (line ${carrier.start})`,
      }
    return { ...base, synced: sync.end }
  })
}

/** Successful fsync/fdatasync calls on the mailbox's log files. */
export function logSyncs(calls: readonly TracedCall[], mailboxDir: string): number {
  const dir = mailboxDir.replace(/\/+$/, '')
  return calls.filter((call) => SYNCS.has(call.name) && call.result === '0' && call.target.startsWith(`${dir}/`) && call.target.endsWith('.log')).length
}
