/**
 * The left pane: everyone online now and everyone this name has talked to,
 * online first, with unread counts; and a field to start a conversation with
 * a name that is not listed (an offline peer gets its messages later).
 */
import { h } from './dom.js'
import { nameProblem } from './identity.js'

export interface ContactRow {
  readonly peer: string
  readonly online: boolean
  readonly unread: number
  /** Time of the last message, 0 if none. */
  readonly lastAt: number
  /** Their security key changed and is not accepted yet. */
  readonly keyChanged: boolean
}

export class ContactsView {
  readonly element: HTMLElement
  readonly #list = h('ul', { class: 'contacts', 'data-testid': 'contacts' })
  readonly #empty = h('p', { class: 'contacts-empty' }, 'Nobody else is online yet. Open this page in another window with another name.')
  readonly #self: string
  readonly #onSelect: (peer: string) => void

  constructor(self: string, onSelect: (peer: string) => void) {
    this.#self = self
    this.#onSelect = onSelect
    const input = h('input', { placeholder: 'Chat with…', 'aria-label': 'Chat with a name', 'data-testid': 'new-chat-input', autocomplete: 'off' })
    const form = h(
      'form',
      {
        class: 'new-chat',
        onsubmit: (event: Event) => {
          event.preventDefault()
          const peer = input.value.trim()
          if (nameProblem(peer) !== undefined || peer === this.#self) return
          input.value = ''
          onSelect(peer)
        },
      },
      input,
    )
    this.element = h('aside', { class: 'sidebar' }, h('h2', {}, 'People'), this.#list, this.#empty, form)
  }

  render(rows: readonly ContactRow[], selected: string | undefined): void {
    const sorted = [...rows].sort((a, b) => Number(b.online) - Number(a.online) || b.lastAt - a.lastAt || a.peer.localeCompare(b.peer))
    this.#list.replaceChildren(
      ...sorted.map((row) =>
        h(
          'li',
          {},
          h(
            'button',
            {
              type: 'button',
              class: `contact${row.peer === selected ? ' selected' : ''}`,
              'data-testid': `contact-${row.peer}`,
              'data-online': String(row.online),
              'aria-current': row.peer === selected ? 'true' : undefined,
              onclick: () => this.#onSelect(row.peer),
            },
            h('span', { class: `dot ${row.online ? 'on' : 'off'}`, title: row.online ? 'online' : 'offline' }),
            h('span', { class: 'contact-name' }, row.peer),
            row.keyChanged && h('span', { class: 'key-warning', 'data-testid': 'key-warning', title: 'security key changed: open to review' }, '⚠'),
            row.unread > 0 && h('span', { class: 'badge', 'data-testid': 'unread' }, String(row.unread)),
          ),
        ),
      ),
    )
    this.#empty.hidden = sorted.length > 0
  }
}
