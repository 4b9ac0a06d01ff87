import type { EngineEvents, MessageBatchHandler } from '../core/api.js'
import type { Listener } from '../core/emitter.js'
import { webCryptoE2E, type WebCryptoE2EOptions } from '../crypto/web-crypto-cipher.js'
import { ILM } from '../ilm.js'
import type { HostConfig, HostFactories, HostTransport, TransportContext } from './config.js'

const ENGINE_EVENTS = ['status', 'peer-online', 'peer-offline', 'peer-key-changed', 'peer-key-pinned', 'error'] as const

/** An engine event as the session reports it. */
export type SessionEvent = { [K in keyof EngineEvents]: readonly [name: K, payload: EngineEvents[K]] }[keyof EngineEvents]

/**
 * The engine of a tab that leads its identity: its store, its transport and
 * the engine itself, from the moment the tab won the election until it gives
 * leadership up. At most one exists per identity at a time (the Web Lock);
 * a session that outlives its lock is fenced by the store.
 */
export class LeaderSession {
  readonly engine: ILM
  readonly transport: HostTransport
  #unsubscribe: (() => void) | undefined

  private constructor(engine: ILM, transport: HostTransport) {
    this.engine = engine
    this.transport = transport
  }

  /**
   * Opens the transport (switched off if the app took the identity offline)
   * and the engine on the identity's store; `verifyPeerKey` is this tab's
   * page's, if it has one.
   */
  static async open(
    config: HostConfig,
    factories: HostFactories,
    context: TransportContext,
    networkEnabled: boolean,
    verifyPeerKey?: WebCryptoE2EOptions['verifyPeerKey'],
  ): Promise<LeaderSession> {
    const transport = await factories.createTransport(config, context)
    if (!networkEnabled) transport.setEnabled?.(false)
    const engine = await ILM.open({
      store: factories.createStore(config),
      transport,
      ...(config.limits !== undefined && { limits: config.limits }),
      ...(config.encryption === false
        ? { encryption: false }
        : verifyPeerKey !== undefined && {
            encryption: webCryptoE2E({ verifyPeerKey, ...(config.verifyTimeoutMs !== undefined && { verifyTimeoutMs: config.verifyTimeoutMs }) }),
          }),
    })
    return new LeaderSession(engine, transport)
  }

  /** Reports every engine event to `listener`. */
  onEvent(listener: Listener<SessionEvent>): void {
    for (const name of ENGINE_EVENTS) this.engine.on(name, (payload) => listener([name, payload] as SessionEvent))
  }

  /** Hands incoming messages to `handOut` while some tab has handlers; the engine keeps them stored otherwise. */
  subscribe(wanted: boolean, handOut: MessageBatchHandler): void {
    if (wanted && this.#unsubscribe === undefined) this.#unsubscribe = this.engine.onMessages(handOut)
    else if (!wanted && this.#unsubscribe !== undefined) {
      this.#unsubscribe()
      this.#unsubscribe = undefined
    }
  }
}
