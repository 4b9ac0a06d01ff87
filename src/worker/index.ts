/**
 * Building blocks for the worker side: serve the engine from a worker of your own.
 * @module
 */
export { exposeHost } from './expose.js'
export { Host, type HostApi, type PageSink, type Role, type SendCall, type SendResult } from './host.js'
export { defaultFactories } from './default-factories.js'
export type { Endpoint } from 'comlink'
export type { ConnectionState, HostConfig, HostFactories, TransportConfig, TransportContext, WebRtcConfig } from './config.js'
