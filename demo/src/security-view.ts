/**
 * What the conversation shows of end-to-end encryption: a lock badge in its
 * header (whether this app encrypts, as it was configured), the safety number
 * with the contact behind it, and a warning while the contact's security key
 * changed and waits to be accepted or rejected.
 */
import { isIlmError, type PeerKeyReport } from 'intersession/client'
import { h, svg } from './dom.js'

const LOCK = `<svg viewBox="0 0 16 16" width="13" height="13" aria-hidden="true"><rect x="3" y="7" width="10" height="7.5" rx="1.5" fill="currentColor"/><path d="M5.25 7V5a2.75 2.75 0 0 1 5.5 0v2" fill="none" stroke="currentColor" stroke-width="1.5"/></svg>`
const OPEN_LOCK = `<svg viewBox="0 0 16 16" width="13" height="13" aria-hidden="true"><rect x="3" y="7" width="10" height="7.5" rx="1.5" fill="currentColor"/><path d="M5.25 7V5a2.75 2.75 0 0 1 5.3-1" fill="none" stroke="currentColor" stroke-width="1.5"/></svg>`

export class SecurityView {
  /** The badge, for the conversation header; it opens and closes the safety number panel. */
  readonly badge: HTMLButtonElement
  /** The safety number panel (closed at first). */
  readonly panel: HTMLElement
  /** The key change warning (hidden unless the contact's key changed). */
  readonly banner: HTMLElement
  readonly #encrypted: boolean
  readonly #panelNumber = h('p', { class: 'safety-number', 'data-testid': 'safety-number' })
  readonly #panelTitle = h('h3', {})
  readonly #panelHint = h('p', { class: 'muted' })
  readonly #bannerTitle = h('strong', {})
  readonly #bannerNumber = h('p', { class: 'safety-number', 'data-testid': 'new-safety-number' })
  readonly #bannerHint = h('p', {})
  readonly #buttons: HTMLButtonElement[]
  #peer: string | undefined
  #number: string | undefined
  /** The safety number of the contact's new key, as the banner shows it: what the user compares, and decides on. */
  #presented: string | undefined

  /**
   * `encrypted`: whether this app connected with end-to-end encryption; `decide` accepts (or rejects) a contact's new
   * key, the one with the safety number shown.
   */
  constructor(encrypted: boolean, decide: (peer: string, accept: boolean, safetyNumber: string) => Promise<void>) {
    this.#encrypted = encrypted
    this.badge = h(
      'button',
      {
        type: 'button',
        class: 'e2e',
        'data-testid': 'e2e-badge',
        'data-encrypted': String(encrypted),
        'aria-expanded': 'false',
        title: encrypted ? 'Show the safety number' : 'This app has end-to-end encryption turned off',
        onclick: () => this.#togglePanel(),
      },
      svg(encrypted ? LOCK : OPEN_LOCK),
      encrypted ? 'End-to-end encrypted' : 'Not end-to-end encrypted',
    )
    this.panel = h('section', { class: 'safety', 'data-testid': 'safety-panel', hidden: true }, this.#panelTitle, this.#panelNumber, this.#panelHint)
    const button = (accept: boolean): HTMLButtonElement =>
      h(
        'button',
        {
          type: 'button',
          'data-testid': accept ? 'accept-key' : 'reject-key',
          class: accept ? '' : 'secondary',
          onclick: () => {
            const peer = this.#peer
            const number = this.#presented
            if (peer === undefined || number === undefined) return
            for (const b of this.#buttons) b.disabled = true
            decide(peer, accept, number)
              .catch((error: unknown) => {
                if (isIlmError(error, 'KEY_MISMATCH') && peer === this.#peer) {
                  this.#bannerHint.textContent = `${peer}'s key changed again while you compared: nothing was decided. Compare the number above now.`
                } else console.error(`intersession demo: the new key of ${peer} could not be ${accept ? 'accepted' : 'rejected'}`, error)
              })
              .finally(() => {
                for (const b of this.#buttons) b.disabled = false
              })
          },
        },
        accept ? 'Accept new key' : 'Reject',
      )
    this.#buttons = [button(true), button(false)]
    this.banner = h(
      'div',
      { class: 'key-changed', role: 'alert', 'data-testid': 'key-changed', hidden: true },
      h('p', {}, this.#bannerTitle),
      this.#bannerNumber,
      this.#bannerHint,
      h('div', { class: 'key-actions' }, ...this.#buttons),
    )
    if (!encrypted) {
      this.#panelTitle.textContent = 'Not end-to-end encrypted'
      this.#panelNumber.hidden = true
      this.#panelHint.textContent = 'This app connects with encryption turned off: the relay, and whoever runs it, can read these messages.'
    }
  }

  /** Switches to the conversation with `peer`: its keys are not known until {@link setStatus}. */
  show(peer: string | undefined): void {
    this.#peer = peer
    this.#number = undefined
    this.#presented = undefined
    this.banner.hidden = true
    this.#renderNumber()
  }

  /**
   * Where this device stands with `peer`'s key (ignored if another conversation is open meanwhile; `undefined` while
   * not known): the safety number in the panel, and the warning with the new key's number while it waits.
   */
  setStatus(peer: string, status: PeerKeyReport | undefined): void {
    if (peer !== this.#peer || !this.#encrypted) return
    const presented = status?.status === 'changed' ? status.presentedSafetyNumber : undefined
    // While a new key waits, the panel shows its number too: the one to compare.
    this.#number = presented ?? (status?.status === 'ready' ? status.pinnedSafetyNumber : undefined)
    if (presented !== this.#presented)
      this.#bannerHint.textContent = `Compare this new safety number with ${peer} out of band first. A wiped browser or a new device changes it; so would someone in the middle. Reject it if the numbers differ.`
    this.#presented = presented
    this.banner.hidden = presented === undefined
    this.#bannerTitle.textContent = `${peer}'s security key changed: messages from and to them are held until you accept it.`
    this.#renderNumber()
  }

  #togglePanel(): void {
    this.panel.hidden = !this.panel.hidden
    this.badge.setAttribute('aria-expanded', String(!this.panel.hidden))
  }

  #renderNumber(): void {
    if (!this.#encrypted) return
    const peer = this.#peer ?? ''
    this.#panelTitle.textContent = `Safety number with ${peer}`
    for (const target of [this.#panelNumber, this.#bannerNumber]) {
      target.dataset.known = String(this.#number !== undefined)
      target.replaceChildren(...digits(this.#number))
    }
    this.#panelHint.textContent =
      this.#number === undefined
        ? `Not yet known: it appears once ${peer}'s keys have reached this device (with the first message either way).`
        : `Compare it with the number ${peer} sees, in person or on a call: if they match, nobody in between (not even the relay) can read your messages.`
  }
}

/** The safety number in groups of 5 digits, as Signal shows it (spaces kept between them, for copying). */
function digits(number: string | undefined): (Node | string)[] {
  if (number === undefined) return ['not yet known']
  return number.split(' ').flatMap((group, i) => [...(i > 0 ? [' '] : []), h('span', { class: 'digits' }, group)])
}
