/** The first screen: pick the name to chat as. */
import { h } from './dom.js'
import { MAX_NAME_LENGTH, nameProblem, recentNames } from './identity.js'

export function namePicker(onPick: (name: string) => void): HTMLElement {
  const input = h('input', {
    id: 'name',
    name: 'name',
    'data-testid': 'name-input',
    autocomplete: 'off',
    autocapitalize: 'off',
    spellcheck: 'false',
    maxlength: MAX_NAME_LENGTH,
    placeholder: 'e.g. alice',
    required: true,
    autofocus: true,
  })
  const problem = h('p', { class: 'form-problem', role: 'alert' })
  const recent = recentNames()
  const form = h(
    'form',
    {
      class: 'picker',
      onsubmit: (event: Event) => {
        event.preventDefault()
        const name = input.value.trim()
        const issue = nameProblem(name)
        problem.textContent = issue ?? ''
        if (issue === undefined) onPick(name)
      },
    },
    h('img', { class: 'picker-logo', src: './icon.svg', alt: '', width: 56, height: 56 }),
    h('h1', {}, 'intersession chat'),
    h(
      'p',
      { class: 'picker-lead' },
      'Messages are stored on this device until the other side has them: go offline, reload, close the tab. Nothing is lost or doubled.',
    ),
    h('label', { for: 'name' }, 'Your name'),
    h('div', { class: 'picker-row' }, input, h('button', { type: 'submit', 'data-testid': 'name-submit' }, 'Start chatting')),
    problem,
    recent.length > 0 &&
      h(
        'div',
        { class: 'picker-recent' },
        h('span', {}, 'Used here before:'),
        ...recent.map((name) => h('button', { type: 'button', class: 'chip', onclick: () => onPick(name) }, name)),
      ),
    h('p', { class: 'picker-hint' }, 'To try it alone, open this page in a second window (or a private one) with another name.'),
  )
  return h('main', { class: 'picker-screen' }, form)
}
