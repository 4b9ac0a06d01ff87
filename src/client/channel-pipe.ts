import { parsePipeDown, type PipeUp } from '../protocol/channel-pipe.js'

/**
 * Whether this engine can transfer an `RTCDataChannel` to a worker (Chromium
 * can; Firefox throws `DataCloneError`). Probed once on a throwaway channel:
 * a transfer detaches the channel it moves.
 */
export function canTransferChannels(): boolean {
  transferable ??= probe()
  return transferable
}

let transferable: boolean | undefined

function probe(): boolean {
  const pc = new RTCPeerConnection()
  try {
    const channel = pc.createDataChannel('probe')
    structuredClone(channel, { transfer: [channel as unknown as Transferable] })
    return true
  } catch {
    return false
  } finally {
    pc.close()
  }
}

/**
 * Keeps `channel` in the page and forwards it over a new `MessagePort`, whose
 * other end goes to the worker (see the worker's `PortChannel`). Reports of
 * bytes handed to the channel are coalesced to one per task, so the worker
 * sees back-pressure without a message per frame.
 */
export function pipeChannel(channel: RTCDataChannel): MessagePort {
  const { port1: port, port2: remote } = new MessageChannel()
  const post = (message: PipeUp, transfer: Transferable[] = []): void => port.postMessage(message, transfer)
  let sent = 0
  let reportQueued = false
  const report = (): void => {
    reportQueued = false
    post({ t: 'sent', sent, buffered: channel.bufferedAmount })
  }
  const queueReport = (): void => {
    if (reportQueued) return
    reportQueued = true
    setTimeout(report, 0)
  }
  channel.binaryType = 'arraybuffer'
  channel.onopen = () => post({ t: 'open' })
  channel.onclose = () => {
    post({ t: 'close' })
    port.close()
  }
  channel.onmessage = (event: MessageEvent) => {
    if (event.data instanceof ArrayBuffer) post({ t: 'message', data: event.data }, [event.data])
  }
  channel.onbufferedamountlow = queueReport
  port.onmessage = (event: MessageEvent) => {
    const message = parsePipeDown(event.data)
    if (message === undefined) return
    if (message.t === 'close') {
      channel.close()
      port.close()
      return
    }
    try {
      channel.send(message.data)
    } catch {
      channel.close()
      return
    }
    sent += message.data.byteLength
    queueReport()
  }
  if (channel.readyState === 'open') post({ t: 'open' })
  return remote
}
