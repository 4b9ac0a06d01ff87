/**
 * A hostile relay: a WebSocket proxy between real engines (WebSocketTransport)
 * and a real relay process rewrites the frames bob receives, one attack per
 * case: flipped bits (ciphertext, tag, key header), bodies swapped between
 * streams, an old frame replayed under a new seq, a sealed body passed off as
 * clear, a substituted key bundle. Each is detected: the receiver counts the
 * typed refusal, nothing wrong reaches its handlers, and once the attack stops
 * the sender's retransmissions deliver the genuine messages, once, in order.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { decodeFrame, encodeFrame } from '../../src/core/codec.js'
import type { Frame, HelloFrame, MsgFrame } from '../../src/core/frame.js'
import { bundleOf, createIdentityKeys, createPrekey, decodeBundle, encodeBundle, toBase64url } from '../../src/crypto/index.js'
import { envelope, openEnvelope, parseRelayControl } from '../../src/protocol/relay.js'
import { openE2EPeer, sleep, waitFor, type E2EPeer } from '../helpers/e2e-peers.js'
import { startRelayProcess } from '../helpers/relay-process.js'
import { startWsProxy, type ProxiedMessage, type Rewrite, type WsProxy } from '../helpers/ws-proxy.js'

const cleanups: (() => unknown)[] = []

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** A relay process with a proxy in front, and peers connected through the proxy. */
async function setup(ids: readonly string[] = ['alice', 'bob']): Promise<{ proxy: WsProxy; peers: Record<string, E2EPeer> }> {
  const relay = await startRelayProcess(['--dev'])
  cleanups.push(() => relay.kill())
  const proxy = await startWsProxy(relay.url)
  cleanups.push(() => proxy.close())
  const peers: Record<string, E2EPeer> = {}
  for (const id of ids) {
    const p = await openE2EPeer(proxy.url, id)
    cleanups.push(() => p.ilm.close().catch(() => {}))
    peers[id] = p
  }
  return { proxy, peers }
}

/** A frame the relay forwards to `to` from `from`, decoded; `undefined` for anything else. */
function frameTo(m: ProxiedMessage, to: string): { from: string; frame: Frame; stored: boolean } | undefined {
  if (m.dir !== 'down' || !m.binary || m.peer !== to) return undefined
  const opened = openEnvelope(m.data)
  if (opened === undefined) return undefined
  const decoded = decodeFrame(opened.frame, 1 << 20)
  return decoded.ok ? { from: opened.address, frame: decoded.frame, stored: opened.stored } : undefined
}

const reenvelope = (from: string, frame: Frame, stored: boolean): Buffer => Buffer.from(envelope(from, encodeFrame(frame), stored))

/**
 * Rewrites the sealed `msg` frames `to` receives: `change` returns the frame
 * to deliver instead (`undefined`: unchanged). Stops by itself after `limit`
 * changed frames, so the sender's retransmissions then pass.
 */
function onSealed(to: string, limit: number, change: (from: string, frame: MsgFrame) => Frame | undefined): Rewrite & { hits: number } {
  const rewrite = Object.assign(
    (m: ProxiedMessage): Buffer | undefined => {
      const got = frameTo(m, to)
      if (got === undefined || got.frame.kind !== 'msg' || got.frame.sealed !== true || rewrite.hits >= limit) return undefined
      const out = change(got.from, got.frame)
      if (out === undefined) return undefined
      rewrite.hits++
      return reenvelope(got.from, out, got.stored)
    },
    { hits: 0 },
  )
  return rewrite
}

/** A copy of `bytes` with one bit flipped at `offset` (negative: from the end). */
function flip(bytes: Uint8Array, offset: number): Uint8Array {
  const out = Uint8Array.from(bytes)
  const at = offset < 0 ? out.length + offset : offset
  out[at] = out[at]! ^ 0x01
  return out
}

// A full sealed body is [kid u32][prekey id u32][eph 32][sig 64][ciphertext][tag 16], a short one [kid | 2^31 u32][ciphertext][tag 16]
// (docs/PROTOCOL.md): bodies carry the header until bob acknowledged a message sealed under it.
const EPH = 8
const SIG = 40
const isShort = (body: Uint8Array): boolean => (body[0]! & 0x80) !== 0
const ciphertextAt = (body: Uint8Array): number => (isShort(body) ? 4 : 104)

const messages = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}-${i}`)
const texts = (p: E2EPeer, from?: string): unknown[] => p.got.filter((m) => from === undefined || m.from === from).map((m) => m.contents)

/**
 * Pins keys both ways with one greeting from each of `senders` to bob, delivered and acknowledged: their bodies carry
 * the key header, the ones after it not.
 */
async function greet(peers: Record<string, E2EPeer>, senders: readonly string[] = ['alice']): Promise<void> {
  for (const id of senders) await peers[id]!.ilm.send('bob', `greeting from ${id}`)
  await waitFor(() => peers.bob!.got.length === senders.length, 'greetings')
  for (const id of senders) await waitFor(async () => (await peers[id]!.ilm.pending()).outbound === 0, `${id}'s greeting acknowledged`)
}

/**
 * Alice sends `sent` to bob under `attack` (from her greeting on, with `fromGreeting`: while her bodies still carry
 * the key header); once the attack spent itself, bob has exactly the greeting and `sent`.
 */
async function underAttack(
  attack: Rewrite & { hits: number },
  reasons: readonly string[],
  { sent = messages('m', 5), fromGreeting = false }: { sent?: readonly string[]; fromGreeting?: boolean } = {},
): Promise<Record<string, number>> {
  const { proxy, peers } = await setup()
  const bob = peers.bob!
  if (fromGreeting) proxy.rewrite = attack
  await greet(peers)
  if (!fromGreeting) {
    expect(bob.ilm.refused()).toEqual({})
    proxy.rewrite = attack
  }
  for (const text of sent) await peers.alice!.ilm.send('bob', text)
  await waitFor(() => bob.got.length === 1 + sent.length, `bob got everything (hits ${attack.hits}, refused ${JSON.stringify(bob.ilm.refused())})`)
  await sleep(500)
  expect(attack.hits).toBeGreaterThan(0)
  expect(texts(bob)).toEqual(['greeting from alice', ...sent])
  const refused = bob.ilm.refused()
  for (const reason of reasons) expect(refused[reason], `refused ${reason} in ${JSON.stringify(refused)}`).toBeGreaterThan(0)
  return refused
}

describe('a hostile relay: proxy self-test', () => {
  it('passing frames unchanged, everything is delivered once, in order, and nothing is refused', async () => {
    const { proxy, peers } = await setup(['alice', 'bob', 'carol'])
    let seen = 0
    const forms = { full: 0, short: 0 }
    proxy.rewrite = (m) => {
      const frame = frameTo(m, 'bob')?.frame
      if (frame?.kind !== 'msg') return undefined
      seen++
      if (frame.sealed === true) forms[isShort(frame.contents) ? 'short' : 'full']++
      return undefined
    }
    await greet(peers, ['alice', 'carol'])
    for (const text of messages('a', 5)) await peers.alice!.ilm.send('bob', text)
    for (const text of messages('c', 5)) await peers.carol!.ilm.send('bob', text)
    await waitFor(() => peers.bob!.got.length === 12, 'bob got 12')
    await sleep(300)
    expect(seen).toBeGreaterThanOrEqual(12)
    // Both forms passed: the greetings with the key header, later messages without it.
    expect(forms.full).toBeGreaterThanOrEqual(2)
    expect(forms.short).toBeGreaterThan(0)
    expect(texts(peers.bob!, 'alice')).toEqual(['greeting from alice', ...messages('a', 5)])
    expect(texts(peers.bob!, 'carol')).toEqual(['greeting from carol', ...messages('c', 5)])
    expect(peers.bob!.ilm.refused()).toEqual({})
    expect(peers.bob!.keyChanged).toEqual([])
  })
})

describe('a hostile relay: changed frames are refused, then the genuine ones delivered', () => {
  it('a flipped bit in the ciphertext: DECRYPT', async () => {
    await underAttack(
      onSealed('bob', 4, (_, f) => ({ ...f, contents: flip(f.contents, ciphertextAt(f.contents)) })),
      ['DECRYPT'],
    )
  })

  it('a flipped bit in the tag: DECRYPT', async () => {
    await underAttack(
      onSealed('bob', 4, (_, f) => ({ ...f, contents: flip(f.contents, -1) })),
      ['DECRYPT'],
    )
  })

  it('a flipped bit in the key header (ephemeral key, signature): KEY_FORGED', async () => {
    await underAttack(
      onSealed('bob', 6, (_, f) => (isShort(f.contents) ? undefined : { ...f, contents: flip(f.contents, f.seq % 2 === 0 ? EPH : SIG) })),
      ['KEY_FORGED'],
      { fromGreeting: true },
    )
  })

  it('a short body naming a kid bob never kept (a flipped bit in it): KEY_UNHEARD, then the retransmission with the header', async () => {
    await underAttack(
      onSealed('bob', 4, (_, f) => (isShort(f.contents) ? { ...f, contents: flip(f.contents, 3) } : undefined)),
      ['KEY_UNHEARD'],
    )
  })

  it('a full body cut short (its header stripped) before bob kept the header: KEY_UNHEARD', async () => {
    await underAttack(
      onSealed('bob', 4, (_, f) => {
        if (isShort(f.contents)) return undefined
        const contents = Uint8Array.from([...f.contents.subarray(0, 4), ...f.contents.subarray(ciphertextAt(f.contents))])
        contents[0] = contents[0]! | 0x80
        return { ...f, contents }
      }),
      ['KEY_UNHEARD'],
      { fromGreeting: true },
    )
  })

  it('a sealed body in clear (sealed flag removed): PLAINTEXT', async () => {
    await underAttack(
      onSealed('bob', 4, (_, f) => {
        const { sealed: _sealed, ...clear } = f
        return clear
      }),
      ['PLAINTEXT'],
    )
  })

  it('a sealed body passed off as a clear string: PLAINTEXT', async () => {
    await underAttack(
      onSealed('bob', 4, (_, f) => {
        const { sealed: _sealed, ...clear } = f
        return { ...clear, contentKind: 's', contents: new TextEncoder().encode('forged by the relay') }
      }),
      ['PLAINTEXT'],
    )
  })

  it('an old sealed frame replayed under a new seq: DECRYPT', async () => {
    let old: MsgFrame | undefined
    const attack = onSealed('bob', 4, (_, f) => (old === undefined ? undefined : { ...old, seq: f.seq, floor: f.floor }))
    const capture: Rewrite & { hits: number } = Object.assign(
      (m: ProxiedMessage) => {
        const got = frameTo(m, 'bob')
        // The first sealed frame after the greeting is kept (and delivered); later ones are replaced by it under their seq.
        if (old === undefined && got?.frame.kind === 'msg' && got.frame.sealed === true) return void (old = got.frame)
        const out = attack(m)
        capture.hits = attack.hits
        return out
      },
      { hits: 0 },
    )
    await underAttack(capture, ['DECRYPT'])
  })

  it('sealed bodies swapped between two streams (alice->bob and carol->bob): KEY_FORGED for a whole body, DECRYPT for the ciphertext alone', async () => {
    const { proxy, peers } = await setup(['alice', 'bob', 'carol'])
    const bob = peers.bob!
    // The greetings' bodies (one per stream) are recorded, then swapped into the other stream's frames.
    const last = new Map<string, Uint8Array>()
    let armed = false
    let hits = 0
    proxy.rewrite = (m) => {
      const got = frameTo(m, 'bob')
      if (got === undefined || got.frame.kind !== 'msg' || got.frame.sealed !== true) return undefined
      const mine = got.frame.contents
      const other = last.get(got.from === 'alice' ? 'carol' : 'alice')
      if (!armed) return void last.set(got.from, mine)
      if (other === undefined || hits >= 8) return undefined
      hits++
      // Alice's frames get carol's whole body (her signed header); carol's keep their header and get alice's ciphertext.
      const contents = got.from === 'alice' ? other : Uint8Array.from([...mine.subarray(0, ciphertextAt(mine)), ...other.subarray(ciphertextAt(other))])
      return reenvelope(got.from, { ...got.frame, contents }, got.stored)
    }
    await greet(peers, ['alice', 'carol'])
    armed = true
    const sentA = messages('a', 5)
    const sentC = messages('c', 5)
    for (let i = 0; i < 5; i++) {
      await peers.alice!.ilm.send('bob', sentA[i]!)
      await peers.carol!.ilm.send('bob', sentC[i]!)
    }
    await waitFor(() => bob.got.length === 12, `bob got 12 (hits ${hits}, refused ${JSON.stringify(bob.ilm.refused())})`)
    await sleep(500)
    expect(hits).toBeGreaterThan(1)
    expect(texts(bob, 'alice')).toEqual(['greeting from alice', ...sentA])
    expect(texts(bob, 'carol')).toEqual(['greeting from carol', ...sentC])
    expect(bob.ilm.refused().KEY_FORGED, JSON.stringify(bob.ilm.refused())).toBeGreaterThan(0)
    expect(bob.ilm.refused().DECRYPT, JSON.stringify(bob.ilm.refused())).toBeGreaterThan(0)
  })
})

/**
 * Substitutes `victim`'s keys as `to` hears them: the bundle in the victim's
 * hellos and the relay directory's `key` answers. The attacker's bundle (its
 * own identity and prekey, for the victim's id and epoch) is made when the
 * first genuine bundle passes; until then those messages are dropped.
 */
function substituteKeys(victim: string, to: string): Rewrite & { bundle: Uint8Array | undefined; substituted: number } {
  let making: Promise<void> | undefined
  const rewrite = Object.assign(
    (m: ProxiedMessage): Buffer | null | undefined => {
      if (m.dir !== 'down' || m.peer !== to) return undefined
      if (!m.binary) {
        const control = parseRelayControl(m.data.toString('utf8'))
        if (control?.t !== 'key' || control.peer !== victim || control.bundle === null) return undefined
        if (rewrite.bundle === undefined) return null
        rewrite.substituted++
        return Buffer.from(JSON.stringify({ ...control, bundle: toBase64url(rewrite.bundle) }))
      }
      const got = frameTo(m, to)
      if (got?.from !== victim || got.frame.kind !== 'hello' || got.frame.keys === undefined) return undefined
      const hello: HelloFrame = got.frame
      if (rewrite.bundle === undefined) {
        const genuine = decodeBundle(hello.keys!)
        if (genuine.ok)
          making ??= (async () => {
            const identity = await createIdentityKeys(genuine.bundle.peer, genuine.bundle.epoch)
            rewrite.bundle = encodeBundle(bundleOf(identity, await createPrekey(identity, genuine.bundle.prekey.id, Date.now())))
          })()
        return null
      }
      rewrite.substituted++
      return reenvelope(got.from, { ...hello, keys: rewrite.bundle }, got.stored)
    },
    { bundle: undefined as Uint8Array | undefined, substituted: 0 },
  )
  return rewrite
}

describe('a hostile relay: substituted keys', () => {
  /**
   * Alice and bob pin each other; the relay then serves bob an attacker's
   * bundle for alice. Returns once bob accepted the attacker's key, then (the
   * attack over) alice's genuine key, presented again as a change.
   */
  async function substitutedThenAccepted(): Promise<{ alice: E2EPeer; bob: E2EPeer; sent: string[] }> {
    const { proxy, peers } = await setup()
    const alice = peers.alice!
    const bob = peers.bob!
    await greet(peers)
    // A short body opened before the attack: bob derived its key under alice's genuine pin (a cache of that key must
    // not outlive the pin).
    await alice.ilm.send('bob', 'before the attack')
    await waitFor(() => bob.got.length === 2, 'bob got the message before the attack')
    const genuineNumber = await bob.ilm.safetyNumber('alice')
    expect(genuineNumber).toBe(await alice.ilm.safetyNumber('bob'))
    const attack = substituteKeys('alice', 'bob')
    proxy.rewrite = attack
    proxy.drop() // both reconnect: new sessions, new hellos
    await waitFor(() => bob.keyChanged.length === 1, 'peer-key-changed at bob')
    expect(bob.keyChanged).toEqual(['alice'])
    expect(attack.substituted).toBeGreaterThan(0)
    // Bob is shown the number of the key he is asked to accept: it is not the one alice shows.
    const presentedNumber = await bob.ilm.safetyNumber('alice')
    expect(presentedNumber).not.toBe(genuineNumber)
    expect(presentedNumber).not.toBe(await alice.ilm.safetyNumber('bob'))

    const sent = messages('held', 3)
    for (const text of sent) await alice.ilm.send('bob', text)
    await bob.ilm.send('alice', 'reply')
    await waitFor(() => (bob.ilm.refused().KEY_HELD ?? 0) > 0, 'KEY_HELD at bob')
    // The attack stops; genuine hellos come again, but a changed key stays held until the application decides.
    proxy.rewrite = undefined
    proxy.drop()
    await sleep(1500)
    expect(texts(bob)).toEqual(['greeting from alice', 'before the attack'])
    expect(alice.got).toEqual([])
    expect(bob.keyChanged).toEqual(['alice'])

    // Accepting pins the key last presented: the attacker's (a user who did not compare numbers). Alice's genuine
    // frames are then forged in bob's eyes, and her next hello presents her genuine key as a change.
    await bob.ilm.acceptPeerKey('alice')
    proxy.drop()
    await waitFor(() => bob.keyChanged.length === 2, 'a second peer-key-changed (the genuine key)')
    // Not even under the key bob derived from alice's header before: it was derived under her genuine pin.
    expect(texts(bob)).toEqual(['greeting from alice', 'before the attack'])
    expect(await bob.ilm.safetyNumber('alice')).toBe(genuineNumber)
    await bob.ilm.acceptPeerKey('alice')
    return { alice, bob, sent }
  }

  it("for a peer already pinned: peer-key-changed, messages held (KEY_HELD) until acceptPeerKey; accepting the genuine key again delivers alice's messages once, in order", async () => {
    const { alice, bob, sent } = await substitutedThenAccepted()
    await waitFor(() => bob.got.length === 5, "bob got alice's held messages")
    await sleep(500)
    expect(texts(bob)).toEqual(['greeting from alice', 'before the attack', ...sent])
    expect(await bob.ilm.safetyNumber('alice')).toBe(await alice.ilm.safetyNumber('bob'))
  })

  // Found here: a sender key made for the attacker's prekey outlived the re-pin (the attacker copied the prekey id
  // and epoch), so bob's replies failed DECRYPT at alice for good; pinning another identity key now drops it.
  it("for a peer already pinned: after the genuine key is accepted again, bob's held reply reaches alice", async () => {
    const { alice } = await substitutedThenAccepted()
    await waitFor(() => alice.got.length === 1, "alice got bob's reply")
    expect(texts(alice)).toEqual(['reply'])
  })

  it("for a peer already pinned: rejectPeerKey keeps alice's genuine pin; the attacker's key shown again is a change again; nothing accepted, everything delivered once, in order", async () => {
    const { proxy, peers } = await setup()
    const alice = peers.alice!
    const bob = peers.bob!
    await greet(peers)
    const genuineNumber = await bob.ilm.safetyNumber('alice')
    proxy.rewrite = substituteKeys('alice', 'bob')
    proxy.drop()
    await waitFor(() => bob.keyChanged.length === 1, 'peer-key-changed at bob')
    const sent = messages('held', 3)
    for (const text of sent) await alice.ilm.send('bob', text)
    await bob.ilm.send('alice', 'reply')
    await waitFor(() => (bob.ilm.refused().KEY_HELD ?? 0) > 0, 'KEY_HELD at bob')
    // Bob's user compares the numbers, they differ: he refuses the key, and the genuine one stays pinned.
    await bob.ilm.rejectPeerKey('alice')
    expect(await bob.ilm.safetyNumber('alice')).toBe(genuineNumber)
    // The relay goes on: the attacker's key comes with the next session's hello, and is a change again.
    proxy.drop()
    await waitFor(() => bob.keyChanged.length === 2, 'a second peer-key-changed (the attacker again)')
    // The attack stops (what it had in flight lands first); bob refuses the attacker's key once more.
    proxy.rewrite = undefined
    await sleep(300)
    await bob.ilm.rejectPeerKey('alice')
    proxy.drop()
    await waitFor(() => bob.got.length === 4 && alice.got.length === 1, `both ways delivered (refused at bob ${JSON.stringify(bob.ilm.refused())})`)
    await sleep(500)
    expect(texts(bob)).toEqual(['greeting from alice', ...sent])
    expect(texts(alice)).toEqual(['reply'])
    expect(bob.keyChanged).toEqual(['alice', 'alice'])
    expect(await bob.ilm.safetyNumber('alice')).toBe(genuineNumber)
    expect(genuineNumber).toBe(await alice.ilm.safetyNumber('bob'))
  })

  it('at first contact (trust on first use): no event, nothing delivered, and the safety numbers of the two ends differ', async () => {
    const { proxy } = await setup([])
    proxy.rewrite = substituteKeys('alice', 'bob')
    const bob = await openE2EPeer(proxy.url, 'bob')
    cleanups.push(() => bob.ilm.close().catch(() => {}))
    const alice = await openE2EPeer(proxy.url, 'alice')
    cleanups.push(() => alice.ilm.close().catch(() => {}))
    await alice.ilm.send('bob', 'to the wrong key')
    await waitFor(async () => (await bob.ilm.safetyNumber('alice')) !== undefined && (await alice.ilm.safetyNumber('bob')) !== undefined, 'both pinned')
    await waitFor(() => Object.keys(bob.ilm.refused()).length > 0, 'a refusal at bob')
    await sleep(1000)
    expect(bob.keyChanged).toEqual([])
    expect(bob.got).toEqual([])
    const atBob = await bob.ilm.safetyNumber('alice')
    const atAlice = await alice.ilm.safetyNumber('bob')
    expect(atBob).toMatch(/^(\d{5} ){11}\d{5}$/)
    expect(atAlice).toMatch(/^(\d{5} ){11}\d{5}$/)
    expect(atBob).not.toBe(atAlice)
    expect(bob.ilm.refused().KEY_FORGED).toBeGreaterThan(0)
  })
})
