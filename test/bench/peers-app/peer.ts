/**
 * The systems compared (`intersession-plain`: intersession with end-to-end
 * encryption off, for its cost), `raw`: the floor's plain WebSocket through
 * the relay, and `durable`: the durable pipeline floor (durable-worker.ts).
 */
export type SystemName = 'intersession' | 'intersession-plain' | 'mqtt' | 'socketio' | 'raw' | 'durable'

/** Which end of the stream a page plays. */
export type Role = 'sender' | 'receiver'

/** Where and as whom a {@link Peer} connects. */
export interface PeerOptions {
  /** The server's (or, for the receiver, its proxy's) WebSocket URL. */
  readonly url: string
  /** This end's identity for the run: peer id / MQTT client id / Socket.IO auth. */
  readonly id: string
  /** The other end's identity (the sender's destination). */
  readonly other: string
  readonly role: Role
  /** Called with each message's contents as the receiver's handler gets them. */
  readonly onMessage: (contents: unknown) => void
}

/** One end of one system, connected. */
export interface Peer {
  /** Sends one message; settles as the system's own send settles (see each implementation). */
  send(text: string): Promise<unknown>
  close(): Promise<void>
}
