import { wrap, type Endpoint } from 'comlink'
import { installErrorTransfer } from '../bridge/comlink-errors.js'
import { isPeerId, type PeerId } from '../core/ids.js'
import type { HostApi } from '../worker/host.js'
import type { HostConfig } from '../worker/config.js'
import { Messenger } from './messenger.js'

/** Options of {@link connect}. */
export interface ConnectOptions extends HostConfig {
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
  const { worker, ...config } = options
  const endpoint = worker ?? new Worker(new URL('../worker/worker.js', import.meta.url), { type: 'module', name: `intersession:${options.peerId}` })
  const ownsWorker = worker === undefined
  const host = wrap<HostApi>(endpoint)
  const messenger = new Messenger(options.peerId as PeerId, host, () => {
    if (ownsWorker) (endpoint as Worker).terminate()
  })
  try {
    await host.start(config, messenger.sink())
  } catch (error) {
    if (ownsWorker) (endpoint as Worker).terminate()
    throw error
  }
  return messenger
}
