import { transfer } from 'comlink'
import { parseSignal, type RtcCommand } from '../protocol/rtc.js'
import { canTransferChannels, pipeChannel } from './channel-pipe.js'

/** The worker's side of the page's WebRTC work. */
export interface RtcPort {
  rtcSignal(peer: string, data: unknown): void
  rtcChannel(peer: string, channel: RTCDataChannel | MessagePort): void
  rtcFailed(peer: string): void
}

/**
 * A {@link PageRtc} that reports to whatever port `current()` returns at the
 * time (the page's current worker; nothing while there is none). Here rather
 * than in the messenger, so that the page loads this wiring only with WebRTC on.
 */
export function pageRtcFor(current: () => RtcPort | undefined, config: RTCConfiguration): PageRtc {
  return new PageRtc(
    {
      rtcSignal: (peer, data) => current()?.rtcSignal(peer, data),
      rtcChannel: (peer, channel) => current()?.rtcChannel(peer, channel),
      rtcFailed: (peer) => current()?.rtcFailed(peer),
    },
    config,
  )
}

/**
 * Makes RTCPeerConnections for the leader's worker. Each data channel is
 * transferred to the worker in the task that created it (a channel can only
 * be transferred before it is used), so frames never pass through the page;
 * where the engine cannot transfer channels (Firefox), the page keeps the
 * channel and pipes it to the worker over a MessagePort.
 * Signalling data comes from other peers through the relay: it is checked
 * before use and a bad one just fails that connection.
 */
export class PageRtc {
  readonly #port: RtcPort
  readonly #config: RTCConfiguration
  readonly #connections = new Map<string, RTCPeerConnection>()

  constructor(port: RtcPort, config: RTCConfiguration) {
    this.#port = port
    this.#config = config
  }

  command(command: RtcCommand): void {
    switch (command.t) {
      case 'connect': {
        this.#connect(command.peer, command.initiator)
        return
      }
      case 'signal':
        return void this.#signal(command.peer, command.data)
      case 'disconnect': {
        this.#disconnect(command.peer)
        return
      }
    }
  }

  /** Closes every connection. */
  close(): void {
    for (const peer of [...this.#connections.keys()]) this.#disconnect(peer)
  }

  #connect(peer: string, initiator: boolean): void {
    this.#disconnect(peer)
    const pc = new RTCPeerConnection(this.#config)
    this.#connections.set(peer, pc)
    pc.onicecandidate = (event) => {
      if (event.candidate !== null) this.#port.rtcSignal(peer, { candidate: event.candidate.toJSON() })
    }
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === 'failed') this.#fail(peer, pc)
    }
    if (initiator) {
      this.#hand(peer, pc.createDataChannel('intersession', { ordered: true }))
      void this.#offer(peer, pc)
    } else {
      pc.ondatachannel = (event) => this.#hand(peer, event.channel)
    }
  }

  #hand(peer: string, channel: RTCDataChannel): void {
    if (canTransferChannels()) this.#port.rtcChannel(peer, transfer(channel, [channel as unknown as Transferable]))
    else {
      const port = pipeChannel(channel)
      this.#port.rtcChannel(peer, transfer(port, [port]))
    }
  }

  async #offer(peer: string, pc: RTCPeerConnection): Promise<void> {
    try {
      await pc.setLocalDescription(await pc.createOffer())
      this.#port.rtcSignal(peer, { description: pc.localDescription!.toJSON() })
    } catch {
      this.#fail(peer, pc)
    }
  }

  async #signal(peer: string, data: unknown): Promise<void> {
    const pc = this.#connections.get(peer)
    const signal = parseSignal(data)
    if (pc === undefined || signal === undefined) return
    try {
      if ('candidate' in signal) {
        await pc.addIceCandidate(signal.candidate)
        return
      }
      await pc.setRemoteDescription(signal.description)
      if (signal.description.type !== 'offer') return
      await pc.setLocalDescription(await pc.createAnswer())
      this.#port.rtcSignal(peer, { description: pc.localDescription!.toJSON() })
    } catch {
      this.#fail(peer, pc)
    }
  }

  #fail(peer: string, pc: RTCPeerConnection): void {
    if (this.#connections.get(peer) !== pc) return
    this.#disconnect(peer)
    this.#port.rtcFailed(peer)
  }

  #disconnect(peer: string): void {
    const pc = this.#connections.get(peer)
    this.#connections.delete(peer)
    pc?.close()
  }
}
