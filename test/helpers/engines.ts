/**
 * Helpers for unit tests that drive whole engines (`ILM`) over a
 * MemoryNetwork on ManualClocks: settling promise chains, polling and
 * advancing virtual time in bounded steps, opening recording peers, and a few
 * small projections of received messages.
 */
import { expect } from 'vitest'
import {
  encodeFrame,
  ILM,
  IlmError,
  MemoryStore,
  type Epoch,
  type Limits,
  type Message,
  type MessageId,
  type MsgFrame,
  type PeerId,
  type Transport,
} from '../../src/index.js'
import type { E2EFactory } from '../../src/core/e2e.js'
import { ManualClock } from '../../src/testing/manual-clock.js'

/**
 * Lets promise chains and the network's queue settle (a few macrotask turns).
 * Each turn also waits for a WebCrypto job: the engines seal and open on
 * Node's thread pool, whose results come back in a later turn of the loop.
 */
export async function tick(turns = 3): Promise<void> {
  for (let i = 0; i < turns; i++) {
    await new Promise<void>((resolve) => setImmediate(resolve))
    await crypto.subtle.digest('SHA-256', TICK_BYTES)
  }
}

const TICK_BYTES = new Uint8Array(1)

/** How {@link until} polls: the clocks to advance between polls, by how much, and how many times at most. */
export interface UntilOptions {
  clocks?: ManualClock[]
  stepMs?: number
  steps?: number
}

/** Polls `cond`, settling promises (and advancing `clocks`, if any) between polls; bounded. */
export async function until(cond: () => boolean | Promise<boolean>, { clocks = [], stepMs = 100, steps = 300 }: UntilOptions = {}): Promise<void> {
  for (let i = 0; i < steps; i++) {
    if (await cond()) return
    await tick(2)
    for (const clock of clocks) clock.advance(stepMs)
  }
  if (await cond()) return
  throw new Error(`condition not met after ${steps} steps`)
}

/** Advances `clocks` by `totalMs` in steps of `stepMs`, settling promises after each step; returns the timer callbacks fired. */
export async function elapse(clocks: ManualClock[], totalMs: number, stepMs = 100): Promise<number> {
  let fired = 0
  for (let t = 0; t < totalMs; t += stepMs) {
    for (const clock of clocks) fired += clock.advance(stepMs)
    await tick(2)
  }
  return fired
}

/** The IlmError code a promise rejects with (fails if it resolves or rejects with something else). */
export async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise
  } catch (error) {
    expect(error).toBeInstanceOf(IlmError)
    return (error as IlmError).code
  }
  throw new Error('expected a rejection')
}

/** An open engine with what it handed over and the errors it reported. */
export interface Peer {
  readonly ilm: ILM
  readonly got: Message[]
  readonly errors: IlmError[]
}

/** What {@link openPeer} opens the engine with; each defaults to a fresh one (no limits, generated ids). */
export interface PeerOptions {
  store?: MemoryStore
  clock?: ManualClock
  limits?: Partial<Limits>
  newId?: () => string
  /** End-to-end encryption; the default (WebCrypto, keys pinned on first use) when absent. */
  encryption?: E2EFactory | false
}

/**
 * Opens an engine on `transport` that records its errors and, when
 * `subscribe` (the default), every message it hands over.
 */
export async function openPeer(
  transport: Transport,
  { store = new MemoryStore(), clock = new ManualClock(), limits = {}, newId, encryption }: PeerOptions = {},
  subscribe = true,
): Promise<Peer> {
  // Acks go and commit at once unless a test asks otherwise: these tests await `delivered` without moving the clock.
  // The deferrals themselves are tested in critical-path.test.ts and delayed-ack.test.ts, and drawn by the delivery property test.
  const ilm = await ILM.open({
    store,
    transport,
    clock,
    limits: { deferCommitMs: 0, ackDelayMs: 0, ...limits },
    ...(newId !== undefined && { newId }),
    ...(encryption !== undefined && { encryption }),
  })
  const got: Message[] = []
  const errors: IlmError[] = []
  ilm.on('error', (e) => void errors.push(e))
  if (subscribe) ilm.onMessage((m) => void got.push(m))
  return { ilm, got, errors }
}

/** Whether `p`'s engine currently sees `other` online (whether or not it knows its keys). */
export const connected = async (p: Pick<Peer, 'ilm'>, other: string): Promise<boolean> => ((await p.ilm.connectedPeers()) as string[]).includes(other)

/** Whether `p`'s engine currently sees `other` online and, when it encrypts, has its keys (so frames flow). */
export const online = async (p: Pick<Peer, 'ilm'>, other: string): Promise<boolean> =>
  ((await p.ilm.connectedPeers()) as string[]).includes(other) && (await p.ilm.safetyNumber(other).catch(() => 'no encryption')) !== undefined

/** The contents of `messages`, in order. */
export const contentsOf = (messages: readonly Message[]): Message['contents'][] => messages.map((m) => m.contents)

/** The seqs of `messages`, in order. */
export const seqsOf = (messages: readonly Message[]): number[] => messages.map((m) => m.seq)

/** `n` consecutive integers from `start`. */
export const range = (n: number, start = 0): number[] => Array.from({ length: n }, (_, i) => start + i)

/**
 * A `msg` frame from `a` to `b` in clear, encoded as a peer speaking raw frames sends it: contents `s` for a string, `b`
 * for bytes; floor 0 and id `m<seq>` unless `fields` say otherwise.
 */
export function rawMsg(epoch: Epoch, seq: number, contents: string | Uint8Array, fields: Partial<MsgFrame> = {}): Uint8Array {
  const text = typeof contents === 'string'
  return encodeFrame({
    kind: 'msg',
    from: 'a' as PeerId,
    to: 'b' as PeerId,
    epoch,
    seq,
    floor: 0,
    id: `m${seq}` as MessageId,
    contentKind: text ? 's' : 'b',
    contents: text ? new TextEncoder().encode(contents) : contents,
    ...fields,
  })
}
