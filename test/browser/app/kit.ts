/**
 * The smallest app the Playwright kit (intersession/playwright) drives:
 * `kit.html?peer=ID&relay=URL&token=TOKEN[&webrtc=1]` connects to the relay as ID
 * (with direct WebRTC data channels to other peers when `webrtc=1`),
 * lists what it receives and shows its connection status. Nothing in it
 * knows about tests: the kit watches it through its own hook.
 */
import { connect } from 'intersession/client'

const query = new URLSearchParams(location.search)
const peerId = query.get('peer') ?? ''
const status = document.getElementById('status')!
const inbox = document.getElementById('inbox')!

const messenger = await connect({
  peerId,
  transport: { kind: 'websocket', url: query.get('relay') ?? '', token: query.get('token') ?? '', webrtc: query.get('webrtc') === '1' },
})
status.textContent = messenger.connection.status
messenger.on('connection', (state) => (status.textContent = state.status))
messenger.onMessage((message) => {
  const item = document.createElement('li')
  item.textContent = `${message.from}: ${String(message.contents)}`
  inbox.append(item)
})
