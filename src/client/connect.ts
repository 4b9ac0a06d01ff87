import { wrap, type Endpoint } from 'comlink'
import { installErrorTransfer } from '../bridge/comlink-errors.js'
import { isPeerId, type PeerId } from '../core/ids.js'
import type { HostApi } from '../worker/host.js'
import type { HostConfig, TransportConfig } from '../worker/config.js'
import { Messenger, type WorkerLink } from './messenger.js'

/** A {@link TransportConfig} whose relay token may also be a function (called before every login). */
export type ClientTransportConfig =
  | Exclude<TransportConfig, { kind: 'websocket' }>
  | (Omit<Extract<TransportConfig, { kind: 'websocket' }>, 'token'> & { readonly token?: string | (() => string | Promise<string>) })

/** Options of {@link connect}. */
export interface ConnectOptions extends Omit<HostConfig, 'transport'> {
  readonly transport: ClientTransportConfig
  /**
   * A worker (or any Comlink endpoint, e.g. a MessagePort) that runs
   * `exposeHost()` from `intersession/worker`. Default: the bundled worker
   * (`new Worker(new URL('../worker/worker.js', import.meta.url), { type: 'module' })`,
   * which Vite, webpack 5 and Parcel bundle on their own).
   */
  readonly worker?: Worker | Endpoint
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
  const { worker, transport, ...rest } = options
  const token = transport.kind === 'websocket' && typeof transport.token === 'function' ? transport.token : undefined
  const config = { ...rest, transport: token === undefined ? transport : { ...transport, token: undefined } } as HostConfig
  const webrtc = transport.kind === 'websocket' ? transport.webrtc : undefined
  const rtc: RTCConfiguration | undefined =
    webrtc === undefined || webrtc === false
      ? undefined
      : {
          iceServers: [...((webrtc === true ? undefined : webrtc.iceServers) ?? [])],
          ...(webrtc !== true && webrtc.iceTransportPolicy !== undefined && { iceTransportPolicy: webrtc.iceTransportPolicy }),
        }
  const spawn = (): WorkerLink => {
    if (worker !== undefined) return { remote: wrap<HostApi>(worker) }
    const own = new Worker(new URL('../worker/worker.js', import.meta.url), { type: 'module', name: `intersession:${options.peerId}` })
    return { remote: wrap<HostApi>(own), terminate: () => own.terminate() }
  }
  const messenger = new Messenger(options.peerId as PeerId, config, spawn, {
    ...(token !== undefined && { token }),
    ...(rtc !== undefined && { rtc }),
  })
  await messenger.start()
  return messenger
}
