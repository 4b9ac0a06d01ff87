import { randomId } from '../runtime/random-id.js'
import type { Message } from '../core/api.js'
import { IlmError } from '../core/errors.js'
import type { Call, Outcome } from '../bridge/pending-calls.js'
import { deserializeError, serializeError } from '../protocol/errors.js'
import { isTabMessage, REMOTE_METHODS, TAB_LEVEL, type HandledOutcome, type RemoteMethod, type SinkEvent, type TabMessage } from '../protocol/tabs.js'

/** What the bus needs to know of its tab, and where it reports what other tabs say. */
export interface TabBusHost {
  /** Whether this tab leads its identity (its heartbeat says so). */
  leading(): boolean
  /** Whether this tab's page has message handlers. */
  subscribed(): boolean
  /** The identity's work-offline switch as this tab knows it. */
  networkEnabled(): boolean
  /** A leader heartbeat, with the leader's tab bus level. */
  leaderSeen(tab: string, online: boolean, level: number): void
  /** A follower joined, left, or changed its subscription (leader side). */
  followersChanged(joined: boolean): void
  /** A call from another tab for this tab's engine (leader side). */
  serve(call: Call<RemoteMethod>, reply: (outcome: Outcome) => void): void
  /** The leader's answer to one of this tab's calls. */
  result(leader: string, call: string, outcome: Outcome): void
  /** A batch the leader hands to this tab's page: true once its handlers returned on all of it, false if it has none; rejects if one threw. */
  handle(messages: readonly Message[]): Promise<boolean>
  /** Engine events relayed by the leader (follower side). */
  events(events: readonly SinkEvent[]): void
  /** Another tab flipped the identity's work-offline switch. */
  switched(online: boolean): void
}

interface Follower {
  subscribed: boolean
  lastSeen: number
}

interface Delivery {
  /** Subscribed followers that have not answered yet. */
  readonly waiting: Set<string>
  /** Followers whose handlers returned. */
  handled: number
  done(error?: IlmError): void
}

/**
 * The BroadcastChannel `intersession-tabs:<peer id>` between the workers of the
 * tabs sharing one identity: heartbeats both ways, the registry of followers
 * (leader side), calls to the leader's engine and their answers, the fan-out
 * of incoming messages to every subscribed tab, and the leader's events.
 * Every message is validated on receipt; anything else on the channel is
 * ignored.
 */
export class TabBus {
  /** This tab's id on the bus. */
  readonly tab = randomId()
  readonly #host: TabBusHost
  readonly #staleAfterMs: number
  readonly #channel: BroadcastChannel
  readonly #followers = new Map<string, Follower>()
  readonly #deliveries = new Map<string, Delivery>()
  readonly #heartbeat: ReturnType<typeof setInterval>
  #closed = false

  constructor(peerId: string, timing: { heartbeatMs: number; staleAfterMs: number }, host: TabBusHost) {
    this.#host = host
    this.#staleAfterMs = timing.staleAfterMs
    this.#channel = new BroadcastChannel(`intersession-tabs:${peerId}`)
    this.#channel.onmessage = (event: MessageEvent) => {
      if (isTabMessage(event.data)) this.#receive(event.data)
    }
    this.#heartbeat = setInterval(() => this.beat(), timing.heartbeatMs)
  }

  /** Whether any other tab follows (leader side). */
  get hasFollowers(): boolean {
    return this.#followers.size > 0
  }

  /** Whether any follower's page has handlers (leader side). */
  get followersSubscribed(): boolean {
    return [...this.#followers.values()].some((f) => f.subscribed)
  }

  /** Posts this tab's heartbeat now; the leader also forgets followers that went silent (their tab died). */
  beat(): void {
    if (this.#closed) return
    if (!this.#host.leading()) {
      this.#post({ t: 'follower', tab: this.tab, subscribed: this.#host.subscribed(), gone: false })
      return
    }
    this.#post({ t: 'leader', tab: this.tab, online: this.#host.networkEnabled(), level: TAB_LEVEL })
    const staleBefore = Date.now() - this.#staleAfterMs
    for (const [tab, follower] of this.#followers) if (follower.lastSeen < staleBefore) this.#onFollower(tab, false, true)
  }

  /** Sends one of this tab's calls to whichever tab leads. */
  call(call: Call<RemoteMethod>): void {
    this.#post({ t: 'call', tab: this.tab, call: call.id, method: call.method, args: call.args })
  }

  /** Relays engine events to the other tabs (leader side). */
  share(events: readonly SinkEvent[]): void {
    this.#post({ t: 'events', events })
  }

  /** Tells every tab that this one flipped the identity's work-offline switch. */
  switch(online: boolean): void {
    this.#post({ t: 'online', online })
  }

  /** Hands `messages` to every subscribed follower (leader side); resolves with how many of them handled them all. */
  fanOut(messages: readonly Message[]): Promise<number> {
    const waiting = new Set([...this.#followers].filter(([, f]) => f.subscribed).map(([tab]) => tab))
    if (waiting.size === 0) return Promise.resolve(0)
    return new Promise((resolve, reject) => {
      const id = randomId()
      const delivery: Delivery = {
        waiting,
        handled: 0,
        done: (error) => {
          this.#deliveries.delete(id)
          if (error === undefined) resolve(delivery.handled)
          else reject(error)
        },
      }
      this.#deliveries.set(id, delivery)
      this.#post({ t: 'deliver', delivery: id, messages })
    })
  }

  /** Leaves for good: the others stop counting on this tab. */
  close(): void {
    if (this.#closed) return
    this.#post({ t: 'follower', tab: this.tab, subscribed: false, gone: true })
    this.#closed = true
    clearInterval(this.#heartbeat)
    this.#channel.close()
  }

  #receive(m: TabMessage): void {
    if (this.#closed) return
    switch (m.t) {
      case 'leader': {
        this.#host.leaderSeen(m.tab, m.online, m.level ?? 1)
        return
      }
      case 'follower': {
        this.#onFollower(m.tab, m.subscribed, m.gone)
        return
      }
      case 'call':
        if (!this.#host.leading()) return
        {
          const reply = (outcome: Outcome): void =>
            this.#post(
              outcome.ok
                ? { t: 'result', tab: m.tab, leader: this.tab, call: m.call, ok: true, value: outcome.value }
                : { t: 'result', tab: m.tab, leader: this.tab, call: m.call, ok: false, error: serializeError(outcome.error) },
            )
          // A tab of a later version calls a method this one lacks: it gets an answer, not silence.
          if (REMOTE_METHODS.includes(m.method as RemoteMethod)) this.#host.serve({ id: m.call, method: m.method as RemoteMethod, args: m.args }, reply)
          else reply({ ok: false, error: new IlmError('UNSUPPORTED', 'unknown method') })
          return
        }
      case 'result':
        if (m.tab !== this.tab) return
        {
          this.#host.result(m.leader, m.call, m.ok ? { ok: true, value: m.value } : { ok: false, error: deserializeError(m.error) })
          return
        }
      case 'deliver': {
        this.#onDeliver(m.delivery, m.messages)
        return
      }
      case 'handled': {
        this.#onHandled(m.tab, m.delivery, m.outcome)
        return
      }
      case 'events':
        if (!this.#host.leading()) this.#host.events(m.events)
        return
      case 'online': {
        this.#host.switched(m.online)
        return
      }
    }
  }

  #onFollower(tab: string, subscribed: boolean, gone: boolean): void {
    // A tab that left, or whose page dropped its handlers, is not waited for.
    if (gone || !subscribed) for (const delivery of this.#deliveries.values()) this.#stopWaiting(delivery, tab)
    const joined = !gone && !this.#followers.has(tab)
    if (gone) this.#followers.delete(tab)
    else this.#followers.set(tab, { subscribed, lastSeen: Date.now() })
    if (this.#host.leading()) this.#host.followersChanged(joined)
  }

  /** Every `deliver` gets an answer, also from a tab without handlers, so that no delivery waits for it. */
  #onDeliver(delivery: string, messages: readonly Message[]): void {
    if (this.#host.leading()) return
    const answer = (outcome: HandledOutcome): void => this.#post({ t: 'handled', tab: this.tab, delivery, outcome })
    if (!this.#host.subscribed()) {
      answer('unsubscribed')
      return
    }
    this.#host.handle(messages).then(
      (handled) => answer(handled ? 'handled' : 'unsubscribed'),
      () => answer('failed'),
    )
  }

  #onHandled(tab: string, id: string, outcome: HandledOutcome): void {
    const delivery = this.#deliveries.get(id)
    if (delivery === undefined) return
    if (outcome === 'unsubscribed') {
      this.#stopWaiting(delivery, tab)
      return
    }
    if (!delivery.waiting.delete(tab)) return
    if (outcome === 'failed') {
      delivery.done(new IlmError('HANDLER_FAILED', 'a handler in another tab threw'))
      return
    }
    delivery.handled += 1
    if (delivery.waiting.size === 0) delivery.done()
  }

  /** A tab went away or dropped its handlers before answering; whether anyone handled the message is judged by the caller. */
  #stopWaiting(delivery: Delivery, tab: string): void {
    if (delivery.waiting.delete(tab) && delivery.waiting.size === 0) delivery.done()
  }

  #post(message: TabMessage): void {
    try {
      this.#channel.postMessage(message)
    } catch {
      // Closed channel: this tab is leaving.
    }
  }
}
