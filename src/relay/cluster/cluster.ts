import type { PeerId } from '../../core/ids.js'

/**
 * How long a cluster's claim of a login, release at a logout, subscription for a watch or any other command may wait on
 * its backend by default (ms); the Redis mailbox that goes with a Redis cluster has the same bound.
 */
export const DEFAULT_CLUSTER_TIMEOUT_MS = 5_000

/**
 * What a relay node is told by the other nodes of its cluster. Every callback
 * concerns a peer connected to this node (or watched from it).
 */
export interface ClusterHandlers {
  /** An envelope (already stamped with its sender) for `to`, connected here. */
  frame(to: PeerId, envelope: Uint8Array): void
  /** A text control message (a WebRTC signal) for `to`, connected here. */
  text(to: PeerId, text: string): void
  /** Another node claimed `peer`: close its connection here. */
  replaced(peer: PeerId): void
  /** Something was put in `to`'s mailbox by another node: drain it if `to` is here. */
  mail(to: PeerId): void
  /** A peer watched from this node came online or went offline on another node. */
  presence(peer: PeerId, online: boolean): void
}

/**
 * How relay nodes cooperate: which node holds which peer, and getting frames
 * there. A relay without a cluster holds every peer itself.
 *
 * Every method may reject when the shared backend is unreachable; the relay
 * then treats the destination as unreachable for now (the sender's engine
 * retransmits), never as delivered.
 */
export interface RelayCluster {
  /** This node's id (unique while it runs). */
  readonly nodeId: string
  /** Starts receiving for these handlers; called once by the relay. */
  start(handlers: ClusterHandlers): Promise<void>
  /**
   * `peer` logged in here: the node that held it before drops its connection,
   * and from when this resolves frames for `peer` reach this node.
   */
  claim(peer: PeerId): Promise<void>
  /** `peer`'s connection here closed. */
  release(peer: PeerId): Promise<void>
  /** Sends an envelope to the node holding `to`; resolves false when no node holds it. */
  sendFrame(to: PeerId, envelope: Uint8Array): Promise<boolean>
  /** Sends a text control message to the node holding `to`; false when none does. */
  sendText(to: PeerId, text: string): Promise<boolean>
  /** Tells the node holding `to` (if any) that its mailbox has something new. */
  mail(to: PeerId): Promise<void>
  /** Whether some node holds `peer`. */
  isOnline(peer: PeerId): Promise<boolean>
  /** Starts reporting `peer`'s presence changes (the relay calls it for its first local watcher). */
  watch(peer: PeerId): Promise<void>
  /** Stops reporting them (after the last local watcher left). */
  unwatch(peer: PeerId): Promise<void>
  /** Leaves the cluster and closes its connections. */
  close(): Promise<void>
}
