import { IlmError } from '../core/errors.js'
import { isPeerId, isSeq } from '../core/ids.js'
import type { StoreOp } from '../core/store.js'

// What every built-in store accepts in a commit. A malformed op refuses the
// whole commit before anything is applied.

type Check = (value: unknown) => boolean

const time: Check = (v) => typeof v === 'number' && Number.isFinite(v)
const text: Check = (v) => typeof v === 'string' && v.length > 0
const bytes: Check = (v) => v instanceof Uint8Array
const kind: Check = (v) => v === 'b' || v === 's' || v === 'j'
const seqOrNone: Check = (v) => v === -1 || isSeq(v)
const keyName: Check = (v) => typeof v === 'string' && v.length > 0 && v.length <= 512
const optional =
  (check: Check): Check =>
  (v) =>
    v === undefined || check(v)
const optionalTime = optional(time)
const optionalText = optional(text)

type Fields = ReadonlyArray<readonly [string, Check]>

function shape(fields: Record<string, Check>): Check {
  const entries: Fields = Object.entries(fields)
  return (v) => typeof v === 'object' && v !== null && firstBad(entries, v as Record<string, unknown>) === undefined
}

function firstBad(fields: Fields, value: Record<string, unknown>): string | undefined {
  // An index loop: destructuring each pair through the iterator allocated per field of every op of every commit.
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i] as Fields[number]
    if (!field[1](value[field[0]])) return field[0]
  }
  return undefined
}

// The rows of every message, field by field in code: through a table of names, each field was a keyed load
// that V8 cannot specialise, 0.4 µs per message of bench:core's two-engine run.
function outboxRow(v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return false
  const r = v as Record<string, unknown>
  return (
    isPeerId(r.to) &&
    isSeq(r.seq) &&
    text(r.id) &&
    kind(r.contentKind) &&
    bytes(r.contents) &&
    time(r.createdAt) &&
    optionalTime(r.expiresAt) &&
    (r.expired === undefined || r.expired === true) &&
    optionalText(r.failed)
  )
}

function inboxRow(v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return false
  const r = v as Record<string, unknown>
  return isPeerId(r.from) && isSeq(r.index) && text(r.id) && text(r.epoch) && isSeq(r.seq) && kind(r.contentKind) && bytes(r.contents) && time(r.receivedAt)
}

/** The fields of each op kind and what they must hold. */
const OP_SHAPES: Record<StoreOp['op'], Record<string, Check>> = {
  meta: { meta: shape({ epoch: text, createdAt: time }) },
  outStream: { stream: shape({ to: isPeerId, nextSeq: isSeq, ackedUpTo: seqOrNone, storedUpTo: optional(seqOrNone) }) },
  inStream: {
    stream: shape({
      from: isPeerId,
      epoch: text,
      receivedUpTo: seqOrNone,
      nextIndex: isSeq,
      processedBelow: isSeq,
      past: optional((v) => Array.isArray(v) && v.length <= 16),
    }),
  },
  putOutbox: { row: outboxRow },
  expire: { to: isPeerId, seq: isSeq, reason: optional(text) },
  release: { to: isPeerId, seq: isSeq },
  ack: { to: isPeerId, upTo: seqOrNone, at: time },
  putInbox: { row: inboxRow },
  deleteInbox: { from: isPeerId, below: isSeq },
  pruneReceipts: { before: (v) => typeof v === 'number' && !Number.isNaN(v) },
  putKey: { name: keyName, value: (v) => v !== undefined },
  deleteKey: { name: keyName },
}

const OP_FIELDS = new Map<unknown, Fields>(Object.entries(OP_SHAPES).map(([name, fields]) => [name, Object.entries(fields)]))

/** Why `op` is malformed, or undefined when it is well formed. */
export function malformation(op: unknown): string | undefined {
  if (typeof op !== 'object' || op === null) return 'not an object'
  const name = (op as { op?: unknown }).op
  const fields = OP_FIELDS.get(name)
  if (fields === undefined) return `unknown op ${JSON.stringify(name)}`
  const bad = firstBad(fields, op as Record<string, unknown>)
  return bad && `malformed field "${bad}"`
}

/** Refuses a commit that would queue message `id` a second time, applying nothing. */
export function duplicateId(id: string): IlmError {
  return new IlmError('DUPLICATE_ID', `commit refused, nothing applied: message id ${id} is already queued or has a receipt`)
}

/** Refuses a commit, applying nothing. */
export function refused(why: string): IlmError {
  return new IlmError('STORE_FAILED', `commit refused, nothing applied: ${why}`, { cause: new Error(why) })
}

/**
 * Throws {@link refused} for the first op that is malformed or that `conflict`
 * objects to (called in op order, so it can track keys as the commit goes).
 */
export function validateOps(ops: readonly StoreOp[], conflict: (op: StoreOp) => string | undefined = () => undefined): void {
  if (!Array.isArray(ops)) throw refused('ops is not an array')
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i] as StoreOp
    const problem = malformation(op) ?? conflict(op)
    if (problem !== undefined) throw refused(`op ${i} (${String((op as { op?: unknown }).op)}): ${problem}`)
  }
}
