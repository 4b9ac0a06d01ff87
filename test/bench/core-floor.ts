/**
 * The store-and-codec floor of bench:core: the least work that moving a
 * message durably from one memory store to another over the memory network
 * takes with this repository's store, codec and network, whatever the engine
 * around them. Per message, as the engines' run, in turns of `chunk` sends:
 * - the sender copies the caller's bytes, resolves one promise per send after
 *   one commit per turn (a `putOutbox` per message), and encodes and sends a
 *   `msg` frame;
 * - the receiver decodes it and, per batch of frames that arrive in one turn,
 *   commits them (a `putInbox` each and the stream), acks the batch in one
 *   frame, hands each message to the handler, and commits them processed;
 * - the sender decodes the ack and commits it (each row becomes its receipt).
 *
 * Nothing else: no window, no retransmission timers, no hello, no status
 * events, no receipt pruning, no checks of what peers send beyond the
 * decoder's, no failure handling. So it is below any engine that keeps the
 * guarantees: the engines' figure divided by it is the engine's own overhead.
 */
import { decodeFrame, encodeFrame, MemoryNetwork, MemoryStore, type Message, type MsgFrame, type PeerId, type StoreOp } from '../../src/index.js'
import { ByteSlab } from '../../src/core/byte-slab.js'
import { decodeContents } from '../../src/core/contents.js'
import { makeEpoch, type MessageId } from '../../src/core/ids.js'
import { randomId } from '../../src/runtime/random-id.js'

const MAX_FRAME_BYTES = 1 << 20

/** Moves `count` copies of `payload` from `a` to `b` as described above; resolves with wall time and process CPU (µs). */
export async function storeAndCodecFloor(count: number, payload: Uint8Array, chunk: number): Promise<{ ms: number; cpuUs: number }> {
  const A = 'a' as PeerId
  const B = 'b' as PeerId
  const net = new MemoryNetwork()
  const storeA = await new MemoryStore().open(A)
  const storeB = await new MemoryStore().open(B)
  const epoch = makeEpoch(Date.now(), randomId())
  const a = net.connect(A)
  const b = net.connect(B)
  const slabA = new ByteSlab()
  const slabB = new ByteSlab()

  // The receiver.
  let handed = 0
  let done!: () => void
  let fail!: (error: unknown) => void
  const finished = new Promise<void>((resolve, reject) => {
    done = resolve
    fail = reject
  })
  const handler = (message: Message): void => {
    if (message.from !== A || message.seq !== handed) throw new Error(`floor: message ${message.seq} handed over as number ${handed}`)
    if (++handed === count) done()
  }
  let receivedUpTo = -1
  let nextIndex = 0
  let arriving: MsgFrame[] = []
  const store = async (frames: readonly MsgFrame[]): Promise<void> => {
    const ops: StoreOp[] = []
    const receivedAt = Date.now()
    for (const frame of frames) {
      if (frame.seq !== receivedUpTo + 1) continue
      receivedUpTo = frame.seq
      const { from, id, seq, contentKind, contents } = frame
      ops.push({ op: 'putInbox', row: { from, index: nextIndex++, id, epoch, seq, contentKind, contents, receivedAt } })
    }
    const stream = { from: A, epoch, receivedUpTo, nextIndex, processedBelow: nextIndex - ops.length }
    await storeB.commit([...ops, { op: 'inStream', stream }])
    b.send(A, encodeFrame({ kind: 'ack', from: B, to: A, epoch, upTo: receivedUpTo }, slabB))
    for (const op of ops) {
      if (op.op !== 'putInbox') continue
      const { id, from, seq, contentKind, contents } = op.row
      handler({ id, from, to: B, seq, epoch, contents: decodeContents(contentKind, contents)!.value })
    }
    await storeB.commit([
      { op: 'deleteInbox', from: A, below: nextIndex },
      { op: 'inStream', stream: { ...stream, processedBelow: stream.nextIndex } },
    ])
  }
  b.open({
    frame(_from, data) {
      const decoded = decodeFrame(data, MAX_FRAME_BYTES)
      if (!decoded.ok || decoded.frame.kind !== 'msg') return
      if (arriving.length === 0) {
        queueMicrotask(() => {
          const frames = arriving
          arriving = []
          store(frames).catch(fail)
        })
      }
      arriving.push(decoded.frame)
    },
    peer() {},
    closed() {},
  })

  // The sender.
  let nextSeq = 0
  let ackedUpTo = -1
  a.open({
    frame(_from, data) {
      const decoded = decodeFrame(data, MAX_FRAME_BYTES)
      if (!decoded.ok || decoded.frame.kind !== 'ack' || decoded.frame.upTo <= ackedUpTo) return
      ackedUpTo = decoded.frame.upTo
      storeA
        .commit([
          { op: 'ack', to: B, upTo: ackedUpTo, at: Date.now() },
          { op: 'outStream', stream: { to: B, nextSeq, ackedUpTo } },
        ])
        .catch(fail)
    },
    peer() {},
    closed() {},
  })
  const sendTurn = async (sends: number): Promise<void> => {
    const ops: StoreOp[] = []
    const resolves: ((receipt: { id: MessageId; seq: number }) => void)[] = []
    const settled: Promise<unknown>[] = []
    const createdAt = Date.now()
    for (let i = 0; i < sends; i++) {
      const row = { to: B, seq: nextSeq++, id: randomId() as MessageId, contentKind: 'b' as const, contents: payload.slice(), createdAt }
      ops.push({ op: 'putOutbox', row })
      settled.push(new Promise((resolve) => resolves.push(resolve)))
    }
    await storeA.commit(ops)
    ops.forEach((op, i) => {
      if (op.op !== 'putOutbox') return
      const { seq, id, contentKind, contents } = op.row
      resolves[i]!({ id, seq })
      a.send(B, encodeFrame({ kind: 'msg', from: A, to: B, epoch, seq, floor: ackedUpTo + 1, id, contentKind, contents }, slabA))
    })
    await Promise.all(settled)
  }

  await new Promise((resolve) => setTimeout(resolve, 20))
  const cpu = process.cpuUsage()
  const start = performance.now()
  for (let i = 0; i < count; i += chunk) await sendTurn(Math.min(chunk, count - i))
  // Nothing here retransmits: a lost frame would wait forever, so a deadline says so instead.
  let timer: ReturnType<typeof setTimeout> | undefined
  const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`floor: ${handed} of ${count} handed over after 120 s`)), 120_000)))
  await Promise.race([finished, deadline]).finally(() => clearTimeout(timer))
  const ms = performance.now() - start
  const used = process.cpuUsage(cpu)
  // Its own check: every message was handed over once and in order (above), and both stores are empty once the last ack lands.
  for (let waited = 0; ackedUpTo < count - 1; waited++) {
    if (waited > 10_000) throw new Error(`floor: acked up to ${ackedUpTo} of ${count - 1}`)
    await new Promise((resolve) => setTimeout(resolve, 1))
  }
  const [left, right] = [await storeA.count(), await storeB.count()]
  if (left.outbound + right.inbound !== 0) throw new Error(`floor: ${left.outbound} outbox and ${right.inbound} inbox rows left`)
  a.close()
  b.close()
  return { ms, cpuUs: used.user + used.system }
}
