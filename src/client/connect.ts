import { wrap, type Endpoint } from 'comlink'
import { installErrorTransfer } from '../bridge/comlink-errors.js'
import { IlmError } from '../core/errors.js'
import { isPeerId } from '../core/ids.js'
import type { BridgeApi } from '../worker/host.js'
import type { HostConfig, TransportConfig } from '../worker/config.js'
import { Messenger, type WorkerLink } from './messenger.js'

/** A {@link TransportConfig} whose relay token may also be a function (called before every login). */
export type ClientTransportConfig =
  | Exclude<TransportConfig, { kind: 'websocket' }>
  | (Omit<Extract<TransportConfig, { kind: 'websocket' }>, 'token'> & { readonly token?: string | (() => string | Promise<string>) })

/** Options of {@link connect}. */
export interface ConnectOptions extends Omit<HostConfig, 'transport' | 'verifiesPeerKeys'> {
  readonly transport: ClientTransportConfig
  /**
   * Your own check of a peer's changed identity key (a PKI): `true` pins it
   * at once, without `peer-key-changed`; `false` holds the peer's messages
   * until `acceptPeerKey(peer)`, as without it. So does a function that
   * throws or does not answer within `verifyTimeoutMs` (an `error` event,
   * `KEY_VERIFY_FAILED`). The leader tab's is asked: give every tab of the
   * identity the same one (a tab without it leads without it).
   */
  readonly verifyPeerKey?: (peer: string, identityKey: Uint8Array) => boolean | Promise<boolean>
  /**
   * A worker (or any Comlink endpoint, e.g. a MessagePort) that runs
   * `exposeHost()` from `intersession/worker`. Default: the bundled worker
   * (`new Worker(new URL('../worker/worker.js', import.meta.url), { type: 'module' })`,
   * which Vite, webpack 5 and Parcel bundle on their own).
   */
  readonly worker?: Worker | Endpoint
  /**
   * How long the worker may take to load and answer, after which `connect()`
   * rejects with `WORKER_FAILED`. Default 15,000 ms.
   */
  readonly workerTimeoutMs?: number
}

/**
 * Starts intersession for this tab: the engine runs in a worker, persists in
 * IndexedDB, and is shared by every tab of this origin with the same peer id
 * (one leads, the others forward to it).
 *
 * @example
 * const m = await connect({ peerId: 'alice', transport: { kind: 'broadcast-channel' } })
 * m.onMessage((msg) => console.log(msg.from, msg.contents))
 * await m.send('bob', { text: 'hi' })
 */
export async function connect(options: ConnectOptions): Promise<Messenger> {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object')
  if (!isPeerId(options.peerId)) throw new TypeError('peerId must be 1..128 printable characters without whitespace')
  if (typeof options.transport !== 'object' || options.transport === null) throw new TypeError('transport is required')
  installErrorTransfer()
  const { worker, transport, workerTimeoutMs, verifyPeerKey, ...rest } = options
  for (const [name, ms] of Object.entries({ workerTimeoutMs, verifyTimeoutMs: rest.verifyTimeoutMs })) {
    if (ms === undefined) continue
    if (typeof ms !== 'number') throw new TypeError(`${name} must be a number`)
    if (!(Number.isSafeInteger(ms) && ms > 0)) throw new RangeError(`${name} must be a positive integer`)
  }
  if (verifyPeerKey !== undefined && typeof verifyPeerKey !== 'function') throw new TypeError('verifyPeerKey must be a function')
  const token = transport.kind === 'websocket' && typeof transport.token === 'function' ? transport.token : undefined
  const config = {
    ...rest,
    transport: token === undefined ? transport : { ...transport, token: undefined },
    ...(verifyPeerKey !== undefined && { verifiesPeerKeys: true }),
  } as HostConfig
  const webrtc = transport.kind === 'websocket' ? transport.webrtc : undefined
  const rtc: RTCConfiguration | undefined =
    webrtc === undefined || webrtc === false
      ? undefined
      : {
          iceServers: [...((webrtc === true ? undefined : webrtc.iceServers) ?? [])],
          ...(webrtc !== true && webrtc.iceTransportPolicy !== undefined && { iceTransportPolicy: webrtc.iceTransportPolicy }),
        }
  const spawn = (): WorkerLink => {
    if (worker !== undefined) return { remote: wrap<BridgeApi>(worker), ...(isWorker(worker) && { failed: failure(worker, 'the worker you passed') }) }
    // This exact form is what bundlers recognise as a worker entry to build and serve.
    const own = new Worker(new URL('../worker/worker.js', import.meta.url), { type: 'module', name: `intersession:${options.peerId}` })
    return {
      remote: wrap<BridgeApi>(own),
      terminate: () => own.terminate(),
      failed: failure(own, "intersession's worker (intersession/worker.js as your bundler serves it)"),
    }
  }
  const messenger = new Messenger(options.peerId, config, spawn, {
    ...(token !== undefined && { token }),
    ...(verifyPeerKey !== undefined && { verifyPeerKey }),
    ...(rtc !== undefined && { rtc }),
    ...(workerTimeoutMs !== undefined && { workerTimeoutMs }),
  })
  await messenger.start()
  // Test kits (intersession/playwright) install this hook before the app loads, to watch the page's messengers; apps never set it.
  ;(globalThis as { __intersessionTestHook__?: (messenger: Messenger) => void }).__intersessionTestHook__?.(messenger)
  return messenger
}

function isWorker(endpoint: Worker | Endpoint): endpoint is Worker {
  return typeof Worker !== 'undefined' && endpoint instanceof Worker
}

/**
 * Rejects with `WORKER_FAILED` on the worker's first `error` event: its
 * script did not load (a 404 URL: a bundle served from another path), or
 * threw at the top level.
 */
function failure(worker: Worker, what: string): Promise<never> {
  const failed = new Promise<never>((_, reject) => {
    worker.addEventListener(
      'error',
      (event) => {
        const detail =
          event instanceof ErrorEvent && event.message !== '' ? `: ${event.message}` : ' (it could not be loaded: check the URL your bundler serves it at)'
        reject(new IlmError('WORKER_FAILED', `${what} failed${detail}`, { cause: event instanceof ErrorEvent ? event.error : undefined }))
      },
      { once: true },
    )
  })
  failed.catch(() => {})
  return failed
}
