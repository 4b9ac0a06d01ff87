/**
 * The chat screen: connects as `name` through the relay and wires
 * intersession, the conversation log, presence, key changes and the views together.
 */
import { connect, type ConnectOptions, type Messenger } from 'intersession/client'
import type { DemoConfig } from './config.js'
import { ContactsView, type ContactRow } from './contacts-view.js'
import { ConversationView } from './conversation-view.js'
import { h } from './dom.js'
import { ConversationLog, type LogEntry } from './history.js'
import { lastConversation, rememberConversation } from './identity.js'
import { receiveInto } from './inbox.js'
import { KeyChanges } from './key-changes.js'
import { Outbox } from './outbox.js'
import { Presence } from './presence.js'
import { SecurityView } from './security-view.js'
import { StatusBar } from './status-bar.js'

const PENDING_REFRESH_MS = 2000

export interface ChatScreen {
  readonly element: HTMLElement
  readonly messenger: Messenger
  close(): Promise<void>
}

export async function openChat(name: string, config: DemoConfig, actions: { changeName(): void }): Promise<ChatScreen> {
  const log = await ConversationLog.open(name)
  const options: ConnectOptions = {
    peerId: name,
    // The dev relay lets anyone in as "dev:<name>"; a real app fetches a token from its server.
    transport: { kind: 'websocket', url: config.relayUrl, token: () => `dev:${name}` },
  }
  const messenger = await connect(options)
  const keyChanges = new KeyChanges(messenger)
  // End-to-end encryption is on unless turned off in connect()'s options: the badge says what this app asked for.
  const encrypted = options.encryption !== false
  const presence = new Presence(name, config.directoryUrl, messenger)
  const outbox = new Outbox(messenger, log)
  const unread = new Map<string, number>()
  const known = new Map<string, number>() // peer -> time of the last message
  for (const contact of await log.contacts()) known.set(contact.peer, contact.lastAt)

  const statusBar = new StatusBar(name, { setOnline: (online) => messenger.setOnline(online), changeName: actions.changeName })
  const security = new SecurityView(encrypted, (peer, accept, safetyNumber) => keyChanges.decide(peer, accept, safetyNumber))
  const conversation = new ConversationView(security, (peer, text) => {
    outbox.send(peer, text).catch((error: unknown) => console.error('intersession demo: the message could not be stored', error))
  })
  const contacts = new ContactsView(name, (peer) => void select(peer))

  const renderContacts = (): void => {
    const peers = new Set([...known.keys(), ...presence.online()])
    if (conversation.peer !== undefined) peers.add(conversation.peer)
    peers.delete(name)
    if (encrypted) keyChanges.watch(peers)
    const rows: ContactRow[] = [...peers].map((peer) => ({
      peer,
      online: presence.isOnline(peer),
      unread: unread.get(peer) ?? 0,
      lastAt: known.get(peer) ?? 0,
      keyChanged: keyChanges.status(peer)?.status === 'changed',
    }))
    contacts.render(rows, conversation.peer)
    if (conversation.peer !== undefined) conversation.setPeerOnline(presence.isOnline(conversation.peer))
  }

  /** The open conversation's safety number and key warning, as intersession last said. */
  const refreshSecurity = (): void => {
    const peer = conversation.peer
    if (peer !== undefined) security.setStatus(peer, keyChanges.status(peer))
  }

  async function select(peer: string): Promise<void> {
    rememberConversation(name, peer)
    unread.delete(peer)
    conversation.show(peer)
    renderContacts()
    refreshSecurity()
    // Messages arriving meanwhile are upserted too; each shows once.
    for (const entry of await log.conversation(peer)) conversation.upsert(entry)
  }

  let pendingTimer: ReturnType<typeof setTimeout> | undefined
  const refreshPending = (): void => {
    clearTimeout(pendingTimer)
    pendingTimer = setTimeout(() => {
      messenger.pending().then(
        (pending) => statusBar.setPending(pending),
        () => {},
      )
    }, 50)
  }

  const stops = [
    log.onChange((entry: LogEntry) => {
      conversation.upsert(entry)
      if (!known.has(entry.peer) || entry.at > (known.get(entry.peer) ?? 0)) known.set(entry.peer, entry.at)
      if (entry.direction === 'in' && entry.peer !== conversation.peer && entry.status === 'received') unread.set(entry.peer, (unread.get(entry.peer) ?? 0) + 1)
      renderContacts()
    }),
    keyChanges.onChange(() => {
      renderContacts()
      refreshSecurity()
    }),
    presence.onChange(renderContacts),
    messenger.on('connection', (state) => {
      statusBar.setConnection(state)
      refreshPending()
    }),
    messenger.on('status', refreshPending),
    messenger.on('role', (role) => statusBar.setRole(role)),
    messenger.on('error', (error) => console.warn(`intersession: ${error.code}: ${error.message}`)),
    receiveInto(messenger, log),
  ]
  statusBar.setConnection(messenger.connection)
  statusBar.setRole(messenger.role)
  const pendingInterval = setInterval(refreshPending, PENDING_REFRESH_MS)
  refreshPending()

  const element = h('div', { class: 'chat' }, statusBar.element, h('div', { class: 'panes' }, contacts.element, conversation.element))
  renderContacts()
  const last = lastConversation(name)
  if (last !== undefined && last !== name) await select(last)
  await outbox.resume()

  return {
    element,
    messenger,
    async close() {
      clearInterval(pendingInterval)
      clearTimeout(pendingTimer)
      for (const stop of stops) stop()
      presence.close()
      keyChanges.close()
      outbox.close()
      statusBar.close()
      await messenger.close()
      log.close()
    },
  }
}
