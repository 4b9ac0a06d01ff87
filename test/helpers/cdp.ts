/// <reference types="node" />
import WebSocket from 'ws'

interface Pending {
  resolve(value: unknown): void
  reject(error: unknown): void
  timer: ReturnType<typeof setTimeout>
}

/** A CDP event listener; `sessionId` names the flattened session the event came from. */
export type CdpListener = (params: Record<string, unknown>, sessionId: string | undefined) => void

/**
 * A minimal Chrome DevTools Protocol client: one websocket to the browser
 * endpoint, commands to the browser or to a flattened session. (Playwright's
 * focus emulation turns `Page.setWebLifecycleState` into a no-op, so the
 * freeze spec and the soak drive Chromium over plain CDP.)
 */
export class Cdp {
  readonly #ws: WebSocket
  readonly #pending = new Map<number, Pending>()
  readonly #listeners = new Map<string, Set<CdpListener>>()
  #nextId = 1
  #closed = false

  private constructor(ws: WebSocket) {
    this.#ws = ws
    ws.on('message', (data) => this.#onMessage(String(data)))
    ws.on('close', () => {
      this.#closed = true
      for (const p of this.#pending.values()) {
        clearTimeout(p.timer)
        p.reject(new Error('CDP connection closed'))
      }
      this.#pending.clear()
    })
  }

  /** Connects to a browser's DevTools websocket. */
  static async connect(url: string, timeoutMs = 10_000): Promise<Cdp> {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 256 * 1024 * 1024 })
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`CDP connect to ${url} timed out`)), timeoutMs)
      ws.once('open', () => (clearTimeout(timer), resolve()))
      ws.once('error', (error) => (clearTimeout(timer), reject(error)))
    })
    return new Cdp(ws)
  }

  /** Sends one command; rejects on a protocol error or after `timeoutMs`. */
  send<T = Record<string, unknown>>(method: string, params: Record<string, unknown> = {}, sessionId?: string, timeoutMs = 15_000): Promise<T> {
    if (this.#closed) return Promise.reject(new Error('CDP connection closed'))
    const id = this.#nextId++
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        reject(new Error(`CDP ${method} timed out after ${timeoutMs} ms`))
      }, timeoutMs)
      this.#pending.set(id, { resolve: resolve, reject, timer })
      this.#ws.send(JSON.stringify({ id, method, params, ...(sessionId !== undefined && { sessionId }) }))
    })
  }

  /** Listens to `event`; returns the remover. */
  on(event: string, listener: CdpListener): () => void {
    let set = this.#listeners.get(event)
    if (set === undefined) this.#listeners.set(event, (set = new Set()))
    set.add(listener)
    return () => void set.delete(listener)
  }

  /** Closes the websocket; pending commands reject. */
  close(): void {
    this.#ws.close()
  }

  #onMessage(text: string): void {
    const m = JSON.parse(text) as {
      id?: number
      method?: string
      params?: Record<string, unknown>
      sessionId?: string
      result?: unknown
      error?: { message: string; data?: string }
    }
    if (m.id !== undefined) {
      const p = this.#pending.get(m.id)
      if (p === undefined) return
      this.#pending.delete(m.id)
      clearTimeout(p.timer)
      if (m.error !== undefined) p.reject(new Error(`CDP error: ${m.error.message}${m.error.data ? ` (${m.error.data})` : ''}`))
      else p.resolve(m.result)
      return
    }
    if (m.method === undefined) return
    for (const listener of this.#listeners.get(m.method) ?? []) listener(m.params ?? {}, m.sessionId)
  }
}
