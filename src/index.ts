export { ILM, type IlmOptions } from './ilm.js'
export { Engine, type EngineParts } from './core/engine.js'
export { IlmError, isIlmError, type IlmErrorCode } from './core/errors.js'
export type {
  EngineEvents,
  Message,
  BatchOutcome,
  MessageBatchHandler,
  MessageHandler,
  MessageStatus,
  PendingCounts,
  RefusalCounts,
  SendOptions,
  SendReceipt,
  StatusEvent,
} from './core/api.js'
export type { Contents, ContentKind, JsonValue } from './core/contents.js'
export type { Clock, TimerHandle } from './core/clock.js'
export { DEFAULT_LIMITS, type EngineOptions, type Limits } from './core/options.js'
export type { Epoch, MessageId, PeerId } from './core/ids.js'
export { isPeerId } from './core/ids.js'
export type {
  InboxRow,
  InStreamState,
  MessageLookup,
  OutboxRow,
  OutStreamState,
  PeerStore,
  Receipt,
  Store,
  StoreMeta,
  StoreOp,
  StoreSnapshot,
} from './core/store.js'
export type { RelayReceipt, Transport, TransportEvents, TransportOpenOptions } from './core/transport.js'
export type {
  Cipher,
  CipherContext,
  E2EFactory,
  KeyDecisionOptions,
  LearnResult,
  OpenFailure,
  PeerKeyReport,
  PeerKeyStatus,
  SealContext,
  SendContext,
} from './core/e2e.js'
export { webCryptoE2E, type WebCryptoE2EOptions } from './crypto/web-crypto-cipher.js'
export type { AckFrame, Frame, FrameKind, HelloFrame, MsgFrame, ResetFrame } from './core/frame.js'
export { PROTOCOL_VERSION } from './core/frame.js'
export { decodeFrame, encodeFrame, type DecodeFailure, type DecodeResult } from './core/codec.js'
export { MemoryStore, type MemoryStoreOptions, type StoreFaults } from './storage/memory.js'
export { MemoryNetwork, type FaultOptions, type MemoryNetworkOptions, type MemoryTransport, type NetworkStats } from './transport/memory.js'
export { systemClock } from './runtime/system-clock.js'
export { IndexedDBStore } from './storage/indexeddb.js'
export { BroadcastChannelTransport, type BroadcastChannelTransportOptions } from './transport/broadcast-channel.js'
export { WebSocketTransport, type WebSocketTransportOptions, type WebSocketTransportState, type WebSocketStatus } from './transport/websocket.js'
export { environmentNetworkStatus, type NetworkStatusSource } from './transport/network-status.js'
export { WebRtcTransport, type RtcConnector, type SignallingTransport, type WebRtcTransportOptions } from './transport/webrtc.js'
