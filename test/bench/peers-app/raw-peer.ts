import type { Peer, PeerOptions } from './peer.js'

const UP_WITHIN_MS = 10_000
const encoder = new TextEncoder()
const decoder = new TextDecoder()

/**
 * The floor's network half: a plain WebSocket through the same relay as
 * intersession (dev token, the relay's binary envelopes), no persistence, no
 * acks. `send` resolves as soon as the bytes are handed to the socket; the
 * receiver's handler gets each envelope's frame as text.
 */
export function rawPeer({ url, id, other, role, onMessage }: PeerOptions): Promise<Peer> {
  const ws = new WebSocket(url)
  ws.binaryType = 'arraybuffer'
  const address = encoder.encode(other)
  return new Promise<Peer>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`raw ${id}: no welcome within ${UP_WITHIN_MS} ms`)), UP_WITHIN_MS)
    ws.onopen = () => ws.send(JSON.stringify({ t: 'auth', token: `dev:${id}` }))
    ws.onclose = (event) => reject(new Error(`raw ${id}: closed ${event.code} ${event.reason}`))
    ws.onmessage = (event: MessageEvent<string | ArrayBuffer>) => {
      if (typeof event.data === 'string') {
        if ((JSON.parse(event.data) as { t?: string }).t !== 'welcome') return
        clearTimeout(timer)
        resolve({
          send(text) {
            // client -> relay: [u16 BE length][to, UTF-8][frame]
            const body = encoder.encode(text)
            const out = new Uint8Array(2 + address.byteLength + body.byteLength)
            out[0] = address.byteLength >> 8
            out[1] = address.byteLength & 0xff
            out.set(address, 2)
            out.set(body, 2 + address.byteLength)
            ws.send(out)
            return Promise.resolve()
          },
          async close() {
            ws.onclose = null
            ws.close(1000)
          },
        })
        return
      }
      if (role !== 'receiver') return
      // relay -> client: [u16 BE length][from, UTF-8][frame]
      const data = new Uint8Array(event.data)
      onMessage(decoder.decode(data.subarray(2 + ((data[0]! << 8) | data[1]!))))
    }
  })
}
