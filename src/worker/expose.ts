import { expose, type Endpoint } from 'comlink'
import { installErrorTransfer } from '../bridge/comlink-errors.js'
import type { HostFactories } from './config.js'
import { defaultFactories } from './default-factories.js'
import { Host } from './host.js'

/**
 * Serves a {@link Host} on `endpoint` (the worker's global scope by default).
 * Call it from your own worker module to use another bundler, or to plug in
 * your own store or transport through `factories`.
 */
export function exposeHost(endpoint: Endpoint = globalThis as unknown as Endpoint, factories: HostFactories = defaultFactories): Host {
  installErrorTransfer()
  const host = new Host(factories)
  expose(host, endpoint)
  return host
}
