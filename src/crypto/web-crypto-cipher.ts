import type { TimerHandle } from '../core/clock.js'
import type { Cipher, CipherContext, E2EFactory, LearnResult, OpenFailure, PeerKeyStatus, SealContext, SendContext } from '../core/e2e.js'
import { IlmError } from '../core/errors.js'
import type { Epoch, PeerId } from '../core/ids.js'
import type { StoreOp } from '../core/store.js'
import { createIdentityKeys, type IdentityKeys } from './identity-keys.js'
import { bundleOf, createPrekey, decodeBundle, encodeBundle, verifyBundle, type KeyBundle, type Prekey } from './key-bundle.js'
import { safetyNumber } from './safety-number.js'
import { open, seal } from './seal.js'
import { MAX_KID, decodeSealedBody, encodeSealedBody } from './sealed-body.js'
import { createSenderKey, openSenderKey, type OpenedSenderKey, type SenderKey, type SenderKeyHeader } from './sender-key.js'

/** Options of {@link webCryptoE2E}. */
export interface WebCryptoE2EOptions {
  /** A prekey (and a sender key) is replaced after this long. Default 24 h. */
  readonly rotateAfterMs?: number
  /** ...or after this many messages opened under it (sealed under it, for a sender key) in one session. Default 10,000. */
  readonly rotateAfterMessages?: number
  /**
   * How long a replaced prekey still opens what was sealed for it (frames in
   * flight, and in the relay's mailbox: keep it at least the mailbox's
   * retention). Its private half is deleted after that. Default 7 days.
   */
  readonly keepRetiredMs?: number
  /**
   * Your own check of a peer's identity key (a PKI, a QR code scanned
   * earlier): called when a peer presents a key other than the pinned one,
   * with a copy of the key (32 bytes, Ed25519). `true` pins the new key at
   * once, without `peer-key-changed`; `false` holds the peer's messages until
   * `acceptPeerKey(peer)`, as without the hook. So does a function that
   * throws or does not answer within `verifyTimeoutMs` (reported as an
   * `error` event, `KEY_VERIFY_FAILED`); a late answer is ignored.
   */
  readonly verifyPeerKey?: (peer: PeerId, identityKey: Uint8Array) => boolean | Promise<boolean>
  /** How long `verifyPeerKey` may take. Default 10,000 ms. */
  readonly verifyTimeoutMs?: number
}

const DAY_MS = 24 * 3600 * 1000
const DERIVED_CACHE = 1024

/** A peer's pinned identity key, its newest bundle under that key, and a different key it presented, if any. */
interface PeerKeys {
  readonly pinned: KeyBundle
  readonly presented?: KeyBundle
}

/** This end's prekeys: the current one, and the ones it replaced within `keepRetiredMs` (for frames in flight or in a mailbox). */
interface Prekeys {
  readonly current: Prekey
  readonly retired: readonly { readonly prekey: Prekey; readonly at: number }[]
}

/**
 * A sender key's record: `fresh` is the lowest seq never sealed under an older key toward the peer (absent in records
 * older than short bodies: every body under such a key is full).
 */
interface SenderKeyRecord extends SenderKey {
  readonly fresh?: number
}

/** What replaces a sender key record when its peer is pinned anew: only its kid, so that kids never repeat toward the peer. */
interface RetiredSenderKey {
  readonly kid: number
  readonly retired: true
}

/**
 * A sender key as kept: with how many messages it sealed this session, and `probe`, the first seq at or above its
 * `fresh` it sealed this session. Once the receiver acknowledged `probe`, it opened a body under this key, and no such
 * body was short before: so it `kept` the header, and later bodies may leave it out. Which kid was kept is recorded
 * (`kept:<peer>`), so that a restart does not probe again.
 */
interface SendState {
  readonly key: SenderKeyRecord
  sealed: number
  probe: number | undefined
  kept: boolean
}

/** A sender key header this end kept (as receiver), from a full body that opened under it. */
interface KeptHeader {
  readonly epoch: Epoch
  readonly header: SenderKeyHeader
}

/** Per sender, the headers kept: its newest kids, so that short bodies open, also after a restart. */
const KEPT_HEADERS = 4

/**
 * intersession's cipher: WebCrypto only (Ed25519 identities, X25519 prekeys
 * and ephemeral sender keys, HKDF-SHA-256, AES-GCM 256), its records kept in
 * the identity's own store. Pins peers' identity keys on first use.
 */
export function webCryptoE2E(options: WebCryptoE2EOptions = {}): E2EFactory {
  // Callers in JavaScript can pass anything.
  const given: unknown = options
  if (typeof given !== 'object' || given === null) throw new TypeError('options must be an object')
  const rotateAfterMs = options.rotateAfterMs ?? DAY_MS
  const rotateAfterMessages = options.rotateAfterMessages ?? 10_000
  const keepRetiredMs = options.keepRetiredMs ?? 7 * DAY_MS
  const verifyTimeoutMs = options.verifyTimeoutMs ?? 10_000
  if (!Number.isSafeInteger(keepRetiredMs) || keepRetiredMs < 0) throw new RangeError('keepRetiredMs must be a non-negative integer')
  if (!Number.isSafeInteger(rotateAfterMs) || rotateAfterMs < 1) throw new RangeError('rotateAfterMs must be a positive integer')
  if (!Number.isSafeInteger(rotateAfterMessages) || rotateAfterMessages < 1) throw new RangeError('rotateAfterMessages must be a positive integer')
  if (!Number.isSafeInteger(verifyTimeoutMs) || verifyTimeoutMs < 1) throw new RangeError('verifyTimeoutMs must be a positive integer')
  if (options.verifyPeerKey !== undefined && typeof options.verifyPeerKey !== 'function') throw new TypeError('verifyPeerKey must be a function')
  return (context) =>
    WebCryptoCipher.load(context, { rotateAfterMs, rotateAfterMessages, keepRetiredMs, verifyTimeoutMs, verifyPeerKey: options.verifyPeerKey })
}

interface Settings {
  readonly rotateAfterMs: number
  readonly rotateAfterMessages: number
  readonly keepRetiredMs: number
  readonly verifyTimeoutMs: number
  readonly verifyPeerKey: WebCryptoE2EOptions['verifyPeerKey'] | undefined
}

class WebCryptoCipher implements Cipher {
  readonly #context: CipherContext
  readonly #settings: Settings
  readonly #identity: IdentityKeys
  #prekeys: Prekeys
  #bundle: Uint8Array
  /** Messages opened under the current prekey this session. */
  #opened = 0
  readonly #peers: Map<PeerId, PeerKeys>
  /** The sender key toward each peer (undefined after a failed attempt), one making at a time. */
  readonly #sending = new Map<PeerId, Promise<SendState | undefined>>()
  /** The sender key toward each peer made (or read) last, once it is: what {@link #senderKey} gives at once while it fits. */
  readonly #ready = new Map<PeerId, SendState>()
  readonly #derived = new Map<string, Promise<OpenedSenderKey>>()
  /** Per sender, the headers kept (committed, or being committed: see {@link #keep}). */
  readonly #kept: Map<PeerId, { readonly entry: KeptHeader; readonly committed: Promise<void> }[]>
  readonly #listeners = new Set<(bundle: Uint8Array) => void>()
  #rotating: Promise<void> | undefined

  private constructor(
    context: CipherContext,
    settings: Settings,
    identity: IdentityKeys,
    prekeys: Prekeys,
    peers: Map<PeerId, PeerKeys>,
    kept: Map<PeerId, readonly KeptHeader[]>,
  ) {
    this.#context = context
    this.#settings = settings
    this.#identity = identity
    this.#prekeys = prekeys
    this.#bundle = encodeBundle(bundleOf(identity, prekeys.current))
    this.#peers = peers
    this.#kept = new Map([...kept].map(([peer, entries]) => [peer, entries.map((entry) => ({ entry, committed: Promise.resolve() }))]))
  }

  /** Reads the identity's records, making its keys on first use (and anew for a new epoch). */
  static async load(context: CipherContext, settings: Settings): Promise<WebCryptoCipher> {
    const records = await context.store.readKeys()
    let identity = records.get('identity') as IdentityKeys | undefined
    let prekeys = records.get('prekeys') as Prekeys | undefined
    const peers = new Map<PeerId, PeerKeys>()
    const kept = new Map<PeerId, readonly KeptHeader[]>()
    if (identity?.epoch !== context.epoch || identity.peer !== context.localId || prekeys === undefined) {
      // A store without keys, or keys of another epoch: everything of the cipher starts afresh.
      identity = await createIdentityKeys(context.localId, context.epoch)
      prekeys = { current: await createPrekey(identity, 1, context.clock.now()), retired: [] }
      const ops: StoreOp[] = [...records.keys()].map((name) => ({ op: 'deleteKey', name }))
      ops.push({ op: 'putKey', name: 'identity', value: identity }, { op: 'putKey', name: 'prekeys', value: prekeys })
      await context.store.commit(ops)
    } else {
      for (const [name, value] of records) {
        if (name.startsWith('peer:')) peers.set(name.slice(5) as PeerId, value as PeerKeys)
        else if (name.startsWith('recv:')) kept.set(name.slice(5) as PeerId, value as KeptHeader[])
      }
    }
    const cipher = new WebCryptoCipher(context, settings, identity, prekeys, peers, kept)
    await cipher.#rotateIfDue()
    return cipher
  }

  bundle(): Uint8Array {
    return this.#bundle
  }

  onRotate(listener: (bundle: Uint8Array) => void): () => void {
    this.#listeners.add(listener)
    return () => void this.#listeners.delete(listener)
  }

  status(peer: PeerId): PeerKeyStatus {
    const keys = this.#peers.get(peer)
    return keys === undefined ? 'unknown' : keys.presented !== undefined ? 'changed' : 'ready'
  }

  async learn(peer: PeerId, bytes: Uint8Array): Promise<LearnResult> {
    const decoded = decodeBundle(bytes)
    const bundle = decoded.ok && decoded.bundle.peer === peer && (await verifyBundle(decoded.bundle)) ? decoded.bundle : undefined
    if (bundle === undefined) return { status: this.status(peer), changed: false, pinned: false, refused: true, rekeyed: false }
    const known = this.#peers.get(peer)
    if (known === undefined) {
      await this.#setPeer(peer, { pinned: bundle })
      return { status: 'ready', changed: false, pinned: true, refused: false, rekeyed: true }
    }
    if (equal(bundle.identityKey, known.pinned.identityKey)) {
      // Same identity: a newer prekey replaces the pinned bundle (senders move to it); an older one (replayed) is ignored.
      const newer = bundle.prekey.id > known.pinned.prekey.id
      if (newer) await this.#setPeer(peer, { ...known, pinned: bundle })
      return { status: this.status(peer), changed: false, pinned: false, refused: false, rekeyed: newer && known.presented === undefined }
    }
    if (known.presented !== undefined && equal(known.presented.identityKey, bundle.identityKey)) {
      if (bundle.prekey.id > known.presented.prekey.id) await this.#setPeer(peer, { ...known, presented: bundle })
      return { status: 'changed', changed: false, pinned: false, refused: false, rekeyed: false }
    }
    const verdict = await this.#verify(peer, bundle.identityKey)
    if (verdict === true) {
      await this.#repin(peer, bundle)
      return { status: 'ready', changed: false, pinned: true, refused: false, rekeyed: true }
    }
    await this.#setPeer(peer, { ...known, presented: bundle })
    return { status: 'changed', changed: true, pinned: false, refused: false, rekeyed: false, ...(verdict !== false && { failure: verdict }) }
  }

  /** The application's verdict on a changed identity key; no hook is a no, and so is a hook that failed (why, for the engine to report). */
  async #verify(peer: PeerId, identityKey: Uint8Array): Promise<boolean | IlmError> {
    const verify = this.#settings.verifyPeerKey
    if (verify === undefined) return false
    const { clock } = this.#context
    const ms = this.#settings.verifyTimeoutMs
    let timer: TimerHandle | undefined
    try {
      // Answers other than `true` are a no (the hook is the application's: JavaScript may return anything).
      const answer = await new Promise<unknown>((resolve, reject) => {
        timer = clock.setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)
        // A copy: what the hook does with its bytes cannot change the key pinned.
        Promise.resolve()
          .then(() => verify(peer, identityKey.slice()))
          .then(resolve, reject)
      })
      return answer === true
    } catch (error) {
      return new IlmError('KEY_VERIFY_FAILED', `verifyPeerKey gave no verdict on the new key of ${peer}`, { cause: error })
    } finally {
      if (timer !== undefined) clock.clearTimeout(timer)
    }
  }

  async accept(peer: PeerId): Promise<PeerKeyStatus> {
    const known = this.#peers.get(peer)
    if (known?.presented !== undefined) await this.#repin(peer, known.presented)
    return this.status(peer)
  }

  async reject(peer: PeerId): Promise<PeerKeyStatus> {
    const known = this.#peers.get(peer)
    // The pin stays as it was; its sender key too. Only the key waiting for a decision goes.
    if (known?.presented !== undefined) await this.#setPeer(peer, { pinned: known.pinned })
    return this.status(peer)
  }

  /**
   * Pins another identity key of `peer`: the sender key made for the old one goes (a prekey id and epoch can be
   * copied), all but its kid: a kid names one header at the receiver, which may have kept the old one.
   */
  async #repin(peer: PeerId, bundle: KeyBundle): Promise<void> {
    this.#sending.delete(peer)
    this.#ready.delete(peer)
    const name = `send:${peer}`
    const old = (await this.#context.store.readKeys()).get(name) as SenderKeyRecord | RetiredSenderKey | undefined
    if (old !== undefined) await this.#context.store.commit([{ op: 'putKey', name, value: { kid: old.kid, retired: true } satisfies RetiredSenderKey }])
    await this.#setPeer(peer, { pinned: bundle })
  }

  async seal(context: SendContext, plaintext: Uint8Array): Promise<Uint8Array> {
    const { seq, acked, next } = context
    const ready = this.#senderKey(context.to, next)
    const state = ready instanceof Promise ? await ready : ready
    state.sealed += 1
    const { key } = state
    if (!state.kept) {
      if (state.probe === undefined && seq >= (key.fresh ?? Infinity)) state.probe = seq
      if (state.probe !== undefined && acked >= state.probe) {
        state.kept = true
        // Best effort: lost, the next session probes again.
        this.#context.store.commit([{ op: 'putKey', name: `kept:${context.to}`, value: key.kid }]).catch(() => {})
      }
    }
    // -1: nothing acknowledged yet, or a body that must carry everything (see `SendContext`).
    const short = state.kept && acked >= 0
    const ciphertext = await seal(
      key.key,
      { from: context.from, to: context.to, fromEpoch: context.epoch, toEpoch: key.toEpoch, seq, id: context.id, contentKind: 'b', kid: key.kid },
      plaintext,
    )
    return encodeSealedBody(key.header, ciphertext, short)
  }

  async open(context: SealContext, sealed: Uint8Array): Promise<{ ok: true; plaintext: Uint8Array } | { ok: false; reason: OpenFailure }> {
    const body = decodeSealedBody(sealed)
    if (body === undefined) return { ok: false, reason: 'SEALED_MALFORMED' }
    const keys = this.#peers.get(context.from)
    if (keys === undefined) return { ok: false, reason: 'KEY_UNKNOWN' }
    if (keys.presented !== undefined) return { ok: false, reason: 'KEY_HELD' }
    const { ciphertext } = body
    const header = body.header ?? this.#keptHeader(context.from, context.epoch, body.kid)
    if (header === undefined) return { ok: false, reason: 'KEY_UNHEARD' }
    const { current, retired } = this.#prekeys
    const prekey =
      current.id === header.prekey
        ? current
        : retired.find((old) => old.prekey.id === header.prekey && this.#context.clock.now() - old.at < this.#settings.keepRetiredMs)?.prekey
    if (prekey === undefined) return { ok: false, reason: 'KEY_STALE' }
    void this.#rotateIfDue()
    const derived = await this.#derive(context, keys.pinned, prekey, header)
    if (!derived.ok) return { ok: false, reason: derived.reason === 'BAD_SIGNATURE' ? 'KEY_FORGED' : 'SEALED_MALFORMED' }
    const ctx = { ...context, fromEpoch: context.epoch, toEpoch: this.#identity.epoch, contentKind: 'b' as const, kid: header.kid }
    const plaintext = await open(derived.key, ctx, ciphertext)
    if (plaintext === undefined) return { ok: false, reason: 'DECRYPT' }
    if (body.header !== undefined) await this.#keep(context.from, context.epoch, header)
    if (prekey === this.#prekeys.current) this.#opened += 1
    return { ok: true, plaintext }
  }

  #keptHeader(from: PeerId, epoch: Epoch, kid: number): SenderKeyHeader | undefined {
    const kept = this.#kept.get(from)
    if (kept === undefined) return undefined
    for (const { entry } of kept) if (entry.header.kid === kid && entry.epoch === epoch) return entry.header
    return undefined
  }

  /**
   * Keeps the header of a full body that opened, committed before the body's `open` resolves: the engine acknowledges
   * the message only after, and a sender leaves the header out only once a message sealed under it is acknowledged.
   * A header for a kid kept with other bytes replaces it (a sender key made anew under the same kid); the oldest go
   * beyond {@link KEPT_HEADERS} per sender. Headers are public: what they open needs this end's prekey, which goes
   * as it always did (`keepRetiredMs`).
   */
  #keep(from: PeerId, epoch: Epoch, header: SenderKeyHeader): Promise<void> {
    const kept = this.#kept.get(from) ?? []
    const same = kept.find(({ entry }) => entry.epoch === epoch && entry.header.kid === header.kid)
    if (same !== undefined && sameHeader(same.entry.header, header)) return same.committed
    const entry: KeptHeader = { epoch, header: { kid: header.kid, prekey: header.prekey, eph: header.eph.slice(), sig: header.sig.slice() } }
    const others = kept.filter((old) => old !== same).slice(1 - KEPT_HEADERS)
    const record = [...others.map((old) => old.entry), entry]
    const item = { entry, committed: this.#context.store.commit([{ op: 'putKey', name: `recv:${from}`, value: record }]).then(() => undefined) }
    this.#kept.set(from, [...others, item])
    // A failed commit keeps nothing: the frame was not acknowledged, and comes again with its header.
    item.committed.catch(() => {
      const now = this.#kept.get(from)
      if (now?.includes(item))
        this.#kept.set(
          from,
          now.filter((old) => old !== item),
        )
    })
    return item.committed
  }

  async safetyNumbers(peer: PeerId): Promise<{ pinned?: string; presented?: string }> {
    const keys = this.#peers.get(peer)
    const ours = { peer: this.#identity.peer, identityKey: this.#identity.publicKey }
    const number = (theirs: KeyBundle | undefined): Promise<string | undefined> | undefined =>
      theirs && safetyNumber(ours, { peer, identityKey: theirs.identityKey })
    const [pinned, presented] = await Promise.all([number(keys?.pinned), number(keys?.presented)])
    return { ...(pinned !== undefined && { pinned }), ...(presented !== undefined && { presented }) }
  }

  /** The derived key of a sender key header, verified once per (sender, epoch, kid, ephemeral key, prekey). */
  #derive(context: SealContext, pinned: KeyBundle, prekey: Prekey, header: SenderKeyHeader): Promise<OpenedSenderKey> {
    // Both keys last and of fixed length (32 bytes, one character each): the name is unambiguous.
    const name = `${context.from}\n${context.epoch}\n${header.kid}\n${prekey.id}\n${latin1(header.eph)}${latin1(pinned.identityKey)}`
    const cached = this.#derived.get(name)
    if (cached !== undefined) return cached
    if (this.#derived.size >= DERIVED_CACHE) this.#derived.delete(this.#derived.keys().next().value as string)
    const derived = openSenderKey({
      identity: this.#identity,
      prekey,
      from: context.from,
      fromEpoch: context.epoch,
      senderIdentityKey: pinned.identityKey,
      header,
    })
    // Only a key that opened is worth keeping: a forged header is checked again (and refused again).
    derived.then(
      (result) => !result.ok && this.#derived.delete(name),
      () => this.#derived.delete(name),
    )
    this.#derived.set(name, derived)
    return derived
  }

  /**
   * The sender key toward `peer`, made (and kept) when none fits its pinned bundle, the clock and the message count:
   * at once when the one made last still fits (every seal asks), else once the making before is done.
   */
  #senderKey(peer: PeerId, nextSeq: number): SendState | Promise<SendState> {
    const keys = this.#peers.get(peer)
    if (keys === undefined || keys.presented !== undefined) return Promise.reject(new IlmError('KEY_UNAVAILABLE', `no usable key of ${peer}`))
    const fresh = (state: SendState): boolean =>
      state.key.prekeyId === keys.pinned.prekey.id &&
      state.key.toEpoch === keys.pinned.epoch &&
      state.sealed < this.#settings.rotateAfterMessages &&
      this.#context.clock.now() - state.key.createdAt < this.#settings.rotateAfterMs
    const ready = this.#ready.get(peer)
    if (ready !== undefined && fresh(ready)) return ready
    const current = this.#sending.get(peer)
    const next = (current ?? Promise.resolve(undefined)).then(async (state) => {
      if (state !== undefined && fresh(state)) return state
      const records = state === undefined ? await this.#context.store.readKeys() : undefined
      const stored = records?.get(`send:${peer}`) as SenderKeyRecord | RetiredSenderKey | undefined
      if (stored !== undefined && !('retired' in stored)) {
        const loaded = { key: stored, sealed: 0, probe: undefined, kept: records?.get(`kept:${peer}`) === stored.kid }
        if (fresh(loaded)) return loaded
      }
      const previous = state?.key ?? stored
      const kid = (previous?.kid ?? 0) + 1
      const made = await createSenderKey({
        identity: this.#identity,
        from: this.#identity.peer,
        fromEpoch: this.#identity.epoch,
        to: peer,
        receiver: keys.pinned,
        kid: kid > MAX_KID ? 1 : kid,
        now: this.#context.clock.now(),
      })
      // Seqs from `next` on were never sealed; below it, an older key may have sealed them (before the first key toward
      // the peer in this epoch, none did).
      const key: SenderKeyRecord = { ...made, fresh: previous === undefined ? 0 : nextSeq }
      // Kept, so that retransmissions after a restart are sealed identically; replaced (deleted) at rotation.
      await this.#context.store.commit([{ op: 'putKey', name: `send:${peer}`, value: key }])
      return { key, sealed: 0, probe: undefined, kept: false }
    })
    // A failed attempt is not kept: the next seal tries again.
    const kept = next.catch(() => undefined)
    this.#sending.set(peer, kept)
    // Unless the peer was pinned anew meanwhile (its sender key dropped).
    void kept.then((state) => state !== undefined && this.#sending.get(peer) === kept && this.#ready.set(peer, state))
    return next
  }

  async #setPeer(peer: PeerId, keys: PeerKeys): Promise<void> {
    await this.#context.store.commit([{ op: 'putKey', name: `peer:${peer}`, value: keys }])
    this.#peers.set(peer, keys)
  }

  /**
   * Replaces the prekey when it is old or has opened enough; a replaced one
   * opens for `keepRetiredMs` more, then its record (private half included)
   * is deleted.
   */
  #rotateIfDue(): Promise<void> {
    const now = this.#context.clock.now()
    const { current, retired } = this.#prekeys
    const due = now - current.createdAt >= this.#settings.rotateAfterMs || this.#opened >= this.#settings.rotateAfterMessages
    const expired = retired.some((old) => now - old.at >= this.#settings.keepRetiredMs)
    if (!due && !expired) return Promise.resolve()
    this.#rotating ??= (async () => {
      const kept = retired.filter((old) => now - old.at < this.#settings.keepRetiredMs)
      const prekeys = due
        ? { current: await createPrekey(this.#identity, current.id + 1, now), retired: [{ prekey: current, at: now }, ...kept] }
        : { current, retired: kept }
      await this.#context.store.commit([{ op: 'putKey', name: 'prekeys', value: prekeys }])
      this.#prekeys = prekeys
      if (!due) return
      this.#opened = 0
      this.#bundle = encodeBundle(bundleOf(this.#identity, prekeys.current))
      for (const listener of this.#listeners) listener(this.#bundle)
    })().finally(() => (this.#rotating = undefined))
    return this.#rotating
  }
}

function sameHeader(a: SenderKeyHeader, b: SenderKeyHeader): boolean {
  return a.kid === b.kid && a.prekey === b.prekey && equal(a.eph, b.eph) && equal(a.sig, b.sig)
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && a.every((byte, i) => byte === b[i])
}

/** One character per byte (`apply` takes the array as it is; a spread would iterate it). */
function latin1(bytes: Uint8Array): string {
  return String.fromCharCode.apply(null, bytes as unknown as number[])
}
