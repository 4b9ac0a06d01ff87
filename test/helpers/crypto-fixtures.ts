/**
 * What the src/crypto unit tests share: the peers, epochs and clock reading
 * they use, a seal context of the stream alice -> bob, and that stream's keys
 * made with src/crypto.
 */
import type { Epoch, MessageId, PeerId } from '../../src/core/ids.js'
import {
  bundleOf,
  createIdentityKeys,
  createPrekey,
  createSenderKey,
  type IdentityKeys,
  type KeyBundle,
  type OpenSenderKeyRequest,
  type Prekey,
  type SealContext,
  type SenderKey,
} from '../../src/crypto/index.js'

export const alice = 'alice' as PeerId
export const bob = 'bob' as PeerId
export const carol = 'carol' as PeerId
export const mallory = 'mallory' as PeerId
export const aliceEpoch = '00m5x3k1a.abcDEF123_-' as Epoch
export const bobEpoch = '00m5x3k1b.xyz789' as Epoch
/** An epoch neither alice nor bob is in. */
export const otherEpoch = '00m5x3k1c.other1' as Epoch
/** The tests' clock reading (ms since the Unix epoch). */
export const NOW = 1_765_000_000_000
export const MESSAGE_ID = 'V1StGXR8_Z5jdHi6B-myT' as MessageId

export const text = (s: string): Uint8Array => new TextEncoder().encode(s)

/** A seal context of the stream alice -> bob (seq 1, a string, key id 5), with `over` in place. */
export const sealContext = (over: Partial<SealContext> = {}): SealContext => ({
  from: alice,
  to: bob,
  fromEpoch: aliceEpoch,
  toEpoch: bobEpoch,
  seq: 1,
  id: MESSAGE_ID,
  contentKind: 's',
  kid: 5,
  ...over,
})

/** The keys of the stream alice -> bob. */
export interface StreamKeys {
  readonly aliceId: IdentityKeys
  readonly bobId: IdentityKeys
  readonly bobPrekey: Prekey
  readonly bobBundle: KeyBundle
  /** Alice's sender key toward bob's bundle. */
  readonly sent: SenderKey
  /** What bob opens `sent` with. */
  readonly request: OpenSenderKeyRequest
}

/** Makes both identities, bob's prekey `prekeyId` and bundle, and alice's sender key `kid` toward it. */
export async function streamKeys(prekeyId = 1, kid = 5): Promise<StreamKeys> {
  const [aliceId, bobId] = await Promise.all([createIdentityKeys(alice, aliceEpoch), createIdentityKeys(bob, bobEpoch)])
  const bobPrekey = await createPrekey(bobId, prekeyId, NOW)
  const bobBundle = bundleOf(bobId, bobPrekey)
  const sent = await createSenderKey({ identity: aliceId, from: alice, fromEpoch: aliceEpoch, to: bob, receiver: bobBundle, kid, now: NOW })
  const request = { identity: bobId, prekey: bobPrekey, from: alice, fromEpoch: aliceEpoch, senderIdentityKey: aliceId.publicKey, header: sent.header }
  return { aliceId, bobId, bobPrekey, bobBundle, sent, request }
}

/** A copy of `bytes` with bit `bit` (0 = the lowest of the first byte) flipped. */
export function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const out = Uint8Array.from(bytes)
  out[bit >> 3]! ^= 1 << (bit & 7)
  return out
}
