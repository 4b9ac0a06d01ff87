/**
 * Harness functions for test/engines/crypto-records.test.ts: src/crypto's records (identity keys, a prekey, a
 * sender key) written to IndexedDB as they are, by structured clone, then read back (after a browser restart on the
 * same profile) and used: they must still sign, derive, seal and open, and stay non-extractable.
 */
import { openDB } from 'idb'
import type { Epoch, MessageId, PeerId } from '../../../src/core/ids.js'
import {
  bundleOf,
  createIdentityKeys,
  createPrekey,
  createSenderKey,
  decodeBundle,
  encodeBundle,
  open,
  openSenderKey,
  seal,
  verifyBundle,
  type IdentityKeys,
  type Prekey,
  type SealContext,
  type SenderKey,
} from '../../../src/crypto/index.js'

const STORE = 'records'
const KEY = 'e2e'
const alice = 'alice' as PeerId
const bob = 'bob' as PeerId
const ctx: SealContext = {
  from: alice,
  to: bob,
  fromEpoch: '00m5x3k1a.abcDEF123_-' as Epoch,
  toEpoch: '00m5x3k1b.xyz789' as Epoch,
  seq: 2 ** 33 + 1,
  id: 'V1StGXR8_Z5jdHi6B-myT' as MessageId,
  contentKind: 's',
  kid: 1,
}
const contents = new TextEncoder().encode('sealed in one browser session, opened in the next')

/** What one browser session keeps for the next. */
interface Records {
  readonly aliceId: IdentityKeys
  readonly bobId: IdentityKeys
  readonly bobPrekey: Prekey
  readonly senderKey: SenderKey
  readonly sealed: Uint8Array
  readonly bundle: Uint8Array
}

/** One check of {@link readCryptoRecords}, as plain data. */
export interface CryptoCheck {
  readonly name: string
  readonly ok: boolean
  readonly detail?: string
}

const database = (name: string) => openDB(name, 1, { upgrade: (db) => db.createObjectStore(STORE) })

/** Makes the records, seals `contents` under the sender key, and stores it all in the database `name`. */
export async function writeCryptoRecords(name: string): Promise<void> {
  const aliceId = await createIdentityKeys(alice, ctx.fromEpoch)
  const bobId = await createIdentityKeys(bob, ctx.toEpoch)
  const bobPrekey = await createPrekey(bobId, 1, Date.now())
  const bundle = bundleOf(bobId, bobPrekey)
  const senderKey = await createSenderKey({ identity: aliceId, from: alice, fromEpoch: ctx.fromEpoch, to: bob, receiver: bundle, kid: 1, now: Date.now() })
  const records: Records = { aliceId, bobId, bobPrekey, senderKey, sealed: await seal(senderKey.key, ctx, contents), bundle: encodeBundle(bundle) }
  const db = await database(name)
  await db.put(STORE, records, KEY)
  db.close()
}

/** Reads the records of {@link writeCryptoRecords} back from the database `name` and checks that they still work. */
export async function readCryptoRecords(name: string): Promise<CryptoCheck[]> {
  const db = await database(name)
  const records = (await db.get(STORE, KEY)) as Records | undefined
  db.close()
  if (records === undefined) return [{ name: 'records are stored', ok: false }]
  const { aliceId, bobId, bobPrekey, senderKey, sealed, bundle } = records
  const results: CryptoCheck[] = []
  const check = async (name: string, run: () => Promise<boolean>): Promise<void> => {
    try {
      results.push({ name, ok: await run() })
    } catch (error) {
      results.push({ name, ok: false, detail: String(error) })
    }
  }
  const refuses = (promise: Promise<unknown>): Promise<boolean> =>
    promise.then(
      () => false,
      () => true,
    )
  await check(
    'the keys come back as CryptoKeys of their algorithms',
    async () =>
      [aliceId.signing.privateKey, bobPrekey.agreement.privateKey, senderKey.key].every((key) => key instanceof CryptoKey) &&
      aliceId.signing.privateKey.algorithm.name === 'Ed25519' &&
      bobPrekey.agreement.privateKey.algorithm.name === 'X25519' &&
      senderKey.key.algorithm.name === 'AES-GCM',
  )
  await check(
    'private halves and the AES key are still not extractable',
    async () =>
      [aliceId.signing.privateKey, bobId.signing.privateKey, bobPrekey.agreement.privateKey, senderKey.key].every((key) => !key.extractable) &&
      (await refuses(crypto.subtle.exportKey('pkcs8', aliceId.signing.privateKey))) &&
      (await refuses(crypto.subtle.exportKey('pkcs8', bobPrekey.agreement.privateKey))) &&
      (await refuses(crypto.subtle.exportKey('raw', senderKey.key))),
  )
  await check('the stored sender key re-seals to the identical ciphertext', async () => same(await seal(senderKey.key, ctx, contents), sealed))
  await check('the stored prekey derives the sender key and opens the stored ciphertext', async () => {
    const opened = await openSenderKey({
      identity: bobId,
      prekey: bobPrekey,
      from: alice,
      fromEpoch: ctx.fromEpoch,
      senderIdentityKey: aliceId.publicKey,
      header: senderKey.header,
    })
    const plain = opened.ok ? await open(opened.key, ctx, sealed) : undefined
    return plain !== undefined && same(plain, contents)
  })
  await check('the stored identity still signs: a new prekey verifies, and so does the stored bundle', async () => {
    const decoded = decodeBundle(bundle)
    return decoded.ok && (await verifyBundle(decoded.bundle)) && (await verifyBundle(bundleOf(bobId, await createPrekey(bobId, 2, Date.now()))))
  })
  await check('a new sender key from the stored identity opens with the stored prekey', async () => {
    const decoded = decodeBundle(bundle)
    if (!decoded.ok) return false
    const next = await createSenderKey({ identity: aliceId, from: alice, fromEpoch: ctx.fromEpoch, to: bob, receiver: decoded.bundle, kid: 2, now: Date.now() })
    const opened = await openSenderKey({
      identity: bobId,
      prekey: bobPrekey,
      from: alice,
      fromEpoch: ctx.fromEpoch,
      senderIdentityKey: aliceId.publicKey,
      header: next.header,
    })
    const c = { ...ctx, kid: 2 }
    const plain = opened.ok ? await open(opened.key, c, await seal(next.key, c, contents)) : undefined
    return plain !== undefined && same(plain, contents)
  })
  return results
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && a.every((byte, i) => byte === b[i])
}
