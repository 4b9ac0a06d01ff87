/**
 * The intersession demo chat: pick a name, see who is online, chat one to
 * one. Everything goes through the package's public API (`intersession/client`).
 */
import './styles.css'
import { openChat, type ChatScreen } from './chat.js'
import { loadConfig, type DemoConfig } from './config.js'
import { h } from './dom.js'
import { forgetName, saveName, savedName } from './identity.js'
import { namePicker } from './name-picker.js'
import { registerServiceWorker } from './service-worker.js'
import { showSyncNote } from './sync-note.js'

const root = document.getElementById('app')!
let chat: ChatScreen | undefined

async function start(): Promise<void> {
  registerServiceWorker()
  const config = await loadConfig()
  const name = savedName()
  if (name !== undefined) return showChat(name, config)
  document.title = 'intersession chat'
  root.replaceChildren(
    namePicker((picked) => {
      saveName(picked)
      void showChat(picked, config)
    }),
  )
}

async function showChat(name: string, config: DemoConfig): Promise<void> {
  document.title = `${name} · intersession chat`
  try {
    chat = await openChat(name, config, { changeName })
    root.replaceChildren(chat.element)
    void showSyncNote(name, chat.element)
  } catch (error) {
    console.error(error)
    root.replaceChildren(
      h(
        'main',
        { class: 'fatal' },
        h('h1', {}, 'The chat could not start'),
        h('p', {}, error instanceof Error ? error.message : String(error)),
        h('button', { type: 'button', onclick: changeName }, 'Pick another name'),
      ),
    )
  }
}

function changeName(): void {
  forgetName()
  void (chat?.close() ?? Promise.resolve()).finally(() => location.reload())
}

void start()
