/**
 * The header: who you are, the connection ("online", "reconnecting in 4s",
 * "offline"), how many messages wait in this device's store, and the switch
 * that takes this tab offline.
 */
import type { PendingCounts } from 'intersession'
import type { ConnectionState, Role } from 'intersession/client'
import { connectionLabel } from './connection-label.js'
import { h } from './dom.js'
import { sendsInBackground } from './service-worker.js'

export interface StatusBarActions {
  /** The switch moved: `true` to connect, `false` to work offline. */
  setOnline(online: boolean): void
  changeName(): void
}

export class StatusBar {
  readonly element: HTMLElement
  readonly #connection = h('span', { class: 'connection', 'data-testid': 'connection' })
  readonly #pending = h('span', { class: 'pending', 'data-testid': 'pending' })
  readonly #role = h('span', { class: 'role', 'data-testid': 'role' })
  readonly #switch: HTMLInputElement
  #state: ConnectionState = { status: 'connecting' }
  #counts: PendingCounts | undefined
  readonly #ticker: ReturnType<typeof setInterval>

  constructor(name: string, actions: StatusBarActions) {
    this.#switch = h('input', {
      type: 'checkbox',
      role: 'switch',
      checked: true,
      onchange: () => {
        actions.setOnline(this.#switch.checked)
        this.#renderSwitch()
      },
    })
    this.element = h(
      'header',
      { class: 'status-bar' },
      h('div', { class: 'brand' }, h('img', { src: './icon.svg', alt: '', width: 24, height: 24 }), h('span', {}, 'intersession chat')),
      h(
        'div',
        { class: 'me' },
        h('span', { class: 'me-label' }, 'you are'),
        h('strong', { 'data-testid': 'me' }, name),
        h('button', { type: 'button', class: 'link', onclick: () => actions.changeName() }, 'change'),
      ),
      h('div', { class: 'spacer' }),
      this.#role,
      this.#pending,
      this.#connection,
      h('label', { class: 'switch', 'data-testid': 'online-switch' }, this.#switch, h('span', { class: 'switch-track' }), h('span', { class: 'switch-text' })),
    )
    this.#renderSwitch()
    this.setConnection(this.#state)
    this.setPending(undefined)
    this.setRole('starting')
    this.#ticker = setInterval(() => this.#renderConnection(), 1000)
  }

  setConnection(state: ConnectionState): void {
    this.#state = state
    this.#renderConnection()
    this.#renderPending()
  }

  setPending(pending: PendingCounts | undefined): void {
    this.#counts = pending
    this.#renderPending()
  }

  setRole(role: Role): void {
    // With several tabs of one name, one runs the engine and holds the
    // connection; the others use it, so only that tab's switch acts.
    const follower = role === 'follower'
    this.#role.textContent = follower ? 'shared with another tab' : ''
    this.#role.dataset.role = role
    this.#switch.disabled = follower
    const label = this.#switch.parentElement!
    label.title = follower
      ? 'Another tab with this name holds the connection: use the switch there'
      : 'Take this tab offline: messages queue here until you switch back'
  }

  close(): void {
    clearInterval(this.#ticker)
  }

  #renderConnection(): void {
    const label = connectionLabel(this.#state, Date.now())
    this.#connection.textContent = label.text
    this.#connection.title = label.title
    this.#connection.dataset.state = label.kind
  }

  /** The count, and while offline with messages waiting, when they will leave: `data-sends` is `background` or `next-open`. */
  #renderPending(): void {
    const pending = this.#counts
    const outbound = pending?.outbound ?? 0
    this.#pending.textContent = pending === undefined ? '' : `${outbound} pending`
    this.#pending.dataset.count = String(outbound)
    this.#pending.classList.toggle('has-pending', outbound > 0)
    const waiting = outbound > 0 && this.#state.status !== 'online'
    const background = sendsInBackground()
    if (waiting) this.#pending.dataset.sends = background ? 'background' : 'next-open'
    else delete this.#pending.dataset.sends
    if (pending === undefined) {
      this.#pending.title = ''
      return
    }
    const counts = `${pending.outbound} sent message(s) not yet stored by their receivers, ${pending.inbound} received message(s) not yet processed`
    const when = background
      ? 'They are sent once you are back online, even if you close this tab by then.'
      : 'This browser has no Background Sync: they are sent the next time this app is open and online.'
    this.#pending.title = waiting ? `${counts}. ${when}` : counts
  }

  #renderSwitch(): void {
    const text = this.#switch.parentElement?.querySelector('.switch-text')
    if (text) text.textContent = this.#switch.checked ? 'Online' : 'Offline'
  }
}
