/**
 * The page side: `connect()` starts the engine in a worker and returns a {@link Messenger}.
 * @module
 */
export { connect, type ClientTransportConfig, type ConnectOptions } from './connect.js'
export type { Endpoint } from 'comlink'
export { Messenger, type MessengerEvents, type MessengerOptions } from './messenger.js'
export { PageRtc, type RtcPort } from './page-rtc.js'
export type { RtcCommand } from '../protocol/rtc.js'
export type { Role } from '../worker/host.js'
export type { ConnectionState, HostConfig, TransportConfig, WebRtcConfig } from '../worker/config.js'
export { IlmError, isIlmError, type IlmErrorCode } from '../core/errors.js'
export type { KeyDecisionOptions, PeerKeyReport, PeerKeyStatus } from '../core/e2e.js'
export type {
  BatchOutcome,
  Message,
  MessageBatchHandler,
  MessageHandler,
  MessageStatus,
  PendingCounts,
  SendOptions,
  SendReceipt,
  StatusEvent,
} from '../core/api.js'
