import type { Message } from '../core/api.js'
import type { SerializedError } from './errors.js'

/**
 * The Web Lock whose holder runs the engine of `peerId`: the leader tab's
 * worker, or a service worker during a background sync. One at a time.
 */
export function identityLock(peerId: string): string {
  return `intersession:${peerId}`
}

/** Engine methods a follower tab may call on the leader's engine. */
export const REMOTE_METHODS = [
  'send',
  'delivered',
  'status',
  'connectedPeers',
  'pending',
  'acceptPeerKey',
  'rejectPeerKey',
  'safetyNumber',
  'peerKeyStatus',
] as const

/** One of {@link REMOTE_METHODS}. */
export type RemoteMethod = (typeof REMOTE_METHODS)[number]

/**
 * The tab bus level of this version, in its leader heartbeats (none: 1).
 * Level 2 serves `peerKeyStatus` and key decisions tied to a safety number,
 * and answers a method it does not know with `UNSUPPORTED`. A level 1 leader
 * drops a call of a method it does not know, and would run a tied decision
 * unchecked: such calls are not sent to it.
 */
export const TAB_LEVEL = 2

/** The level a call needs of the leader tab. */
export function callLevel(method: RemoteMethod, args: readonly unknown[]): number {
  return method === 'peerKeyStatus' || ((method === 'acceptPeerKey' || method === 'rejectPeerKey') && args[1] !== undefined) ? 2 : 1
}

/**
 * What the workers of the tabs sharing one identity say to each other on the
 * BroadcastChannel `intersession-tabs:<peer id>`. Every message is validated on
 * receipt; anything else on the channel is ignored.
 */
export type TabMessage =
  /** Leader heartbeat, with the identity's work-offline switch as the leader applies it, and its {@link TAB_LEVEL}. */
  | { readonly t: 'leader'; readonly tab: string; readonly online: boolean; readonly level?: number }
  /** Follower heartbeat: whether its page has message handlers. `gone` when it leaves. */
  | { readonly t: 'follower'; readonly tab: string; readonly subscribed: boolean; readonly gone: boolean }
  /** A tab's call for the leader's engine (a method of a later version's tab, too: the leader answers `UNSUPPORTED`). */
  | { readonly t: 'call'; readonly tab: string; readonly call: string; readonly method: string; readonly args: readonly unknown[] }
  /** The leader's answer to `tab`'s call. */
  | { readonly t: 'result'; readonly tab: string; readonly leader: string; readonly call: string; readonly ok: true; readonly value: unknown }
  | { readonly t: 'result'; readonly tab: string; readonly leader: string; readonly call: string; readonly ok: false; readonly error: SerializedError }
  /** The leader hands a batch of messages (in order) to every subscribed tab. */
  | { readonly t: 'deliver'; readonly delivery: string; readonly messages: readonly Message[] }
  /** A follower's answer to every `deliver`. */
  | { readonly t: 'handled'; readonly tab: string; readonly delivery: string; readonly outcome: HandledOutcome }
  /** Engine events, relayed by the leader to every tab, batched per turn. */
  | { readonly t: 'events'; readonly events: readonly SinkEvent[] }
  /** A tab flipped the identity's work-offline switch (`Messenger.setOnline`). */
  | { readonly t: 'online'; readonly online: boolean }

/** How a follower's page took a delivered batch: its handlers returned on all of it, one threw, or it has none (any more). */
export type HandledOutcome = 'handled' | 'failed' | 'unsubscribed'

const OUTCOMES: readonly unknown[] = ['handled', 'failed', 'unsubscribed'] satisfies HandledOutcome[]

/** One event for a page: `[name, payload]`. */
export type SinkEvent = readonly [name: string, payload: unknown]

const string = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 256

/** Validates a channel message. */
export function isTabMessage(value: unknown): value is TabMessage {
  if (typeof value !== 'object' || value === null) return false
  const m = value as Record<string, unknown>
  switch (m.t) {
    case 'leader':
      return string(m.tab) && typeof m.online === 'boolean' && (m.level === undefined || typeof m.level === 'number')
    case 'follower':
      return string(m.tab) && typeof m.subscribed === 'boolean' && typeof m.gone === 'boolean'
    case 'call':
      return string(m.tab) && string(m.call) && string(m.method) && Array.isArray(m.args)
    case 'result':
      return string(m.tab) && string(m.leader) && string(m.call) && (m.ok === true || (m.ok === false && typeof m.error === 'object' && m.error !== null))
    case 'deliver':
      return string(m.delivery) && Array.isArray(m.messages) && m.messages.every((message) => typeof message === 'object' && message !== null)
    case 'handled':
      return string(m.tab) && string(m.delivery) && OUTCOMES.includes(m.outcome)
    case 'events':
      return Array.isArray(m.events) && m.events.every((e) => Array.isArray(e) && e.length === 2 && string(e[0]))
    case 'online':
      return typeof m.online === 'boolean'
    default:
      return false
  }
}
