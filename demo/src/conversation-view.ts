/** The right pane: one conversation, its encryption (badge, safety number, key warning), its messages with their status marks, and the composer. */
import { h } from './dom.js'
import { isLater, type LogEntry } from './history.js'
import type { SecurityView } from './security-view.js'
import { statusGlyph } from './status-glyph.js'

const time = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' })
const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' })

export class ConversationView {
  readonly element: HTMLElement
  readonly #title = h('h2', { 'data-testid': 'conversation-title' })
  readonly #presence = h('span', { class: 'peer-presence' })
  readonly #list = h('ol', { class: 'messages', 'data-testid': 'messages' })
  readonly #input: HTMLInputElement
  readonly #composer: HTMLFormElement
  readonly #empty: HTMLElement
  readonly #entries = new Map<string, LogEntry>()
  readonly #security: SecurityView
  #peer: string | undefined

  constructor(security: SecurityView, onSend: (peer: string, text: string) => void) {
    this.#security = security
    this.#input = h('input', { placeholder: 'Write a message', 'aria-label': 'Message', 'data-testid': 'composer-input', autocomplete: 'off', maxlength: 4000 })
    this.#composer = h(
      'form',
      {
        class: 'composer',
        onsubmit: (event: Event) => {
          event.preventDefault()
          const text = this.#input.value.trim()
          if (text === '' || this.#peer === undefined) return
          this.#input.value = ''
          onSend(this.#peer, text)
        },
      },
      this.#input,
      h('button', { type: 'submit', 'data-testid': 'send' }, 'Send'),
    )
    this.#empty = h(
      'div',
      { class: 'conversation-empty' },
      h('p', {}, 'Pick someone on the left to chat with.'),
      h(
        'p',
        { class: 'muted' },
        'Switch this tab offline (top right) and keep writing: messages wait here, marked with a clock, and go out when you are back.',
      ),
    )
    this.element = h(
      'section',
      { class: 'conversation' },
      this.#empty,
      h('header', { class: 'conversation-header' }, this.#title, this.#presence, security.badge),
      security.banner,
      security.panel,
      this.#list,
      this.#composer,
    )
    this.show(undefined)
  }

  get peer(): string | undefined {
    return this.#peer
  }

  /** Switches to the conversation with `peer` (none: the empty state), empty until its messages are upserted. */
  show(peer: string | undefined): void {
    this.#peer = peer
    this.element.classList.toggle('is-empty', peer === undefined)
    this.#title.textContent = peer ?? ''
    this.#security.show(peer)
    this.#entries.clear()
    this.#list.replaceChildren()
    if (peer !== undefined) this.#input.focus()
  }

  setPeerOnline(online: boolean): void {
    this.#presence.textContent = online ? 'online' : 'offline: the relay keeps your messages until they are back'
    this.#presence.dataset.online = String(online)
  }

  /** Adds a message of this conversation, or updates its status (never backwards). */
  upsert(entry: LogEntry): void {
    if (entry.peer !== this.#peer) return
    const known = this.#entries.get(entry.id)
    if (known !== undefined && !isLater(entry.status, known.status)) return
    this.#entries.set(entry.id, entry)
    const item = this.#render(entry)
    const existing = this.#list.querySelector(`[data-id="${CSS.escape(entry.id)}"]`)
    if (existing !== null) {
      existing.replaceWith(item)
      return
    }
    const stick = this.#list.scrollHeight - this.#list.scrollTop - this.#list.clientHeight < 40
    // Keep the list in time order (a message may arrive from another tab late).
    const after = Array.from(this.#list.children).find((li) => Number((li as HTMLElement).dataset.at) > entry.at)
    this.#list.insertBefore(item, after ?? null)
    if (stick || entry.direction === 'out') this.#list.scrollTop = this.#list.scrollHeight
  }

  #render(entry: LogEntry): HTMLElement {
    const failed = entry.status === 'failed' || entry.status === 'expired'
    return h(
      'li',
      {
        class: `message ${entry.direction}${failed ? ' problem' : ''}`,
        'data-id': entry.id,
        'data-at': entry.at,
        'data-direction': entry.direction,
        'data-status': entry.status,
        'data-testid': 'message',
      },
      h('div', { class: 'bubble' }, h('span', { class: 'text', 'data-testid': 'message-text' }, entry.text)),
      h(
        'div',
        { class: 'meta' },
        h('time', { datetime: new Date(entry.at).toISOString(), title: `written ${dateTime.format(entry.writtenAt)}` }, time.format(entry.at)),
        entry.direction === 'out' && statusGlyph(entry),
      ),
      failed && h('div', { class: 'reason', 'data-testid': 'reason' }, entry.reason ?? entry.status),
    )
  }
}
