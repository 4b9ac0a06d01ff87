import type { EngineEvents, MessageBatchHandler } from '../core/api.js'
import type { Listener } from '../core/emitter.js'
import { Engine } from '../core/engine.js'
import { IlmError } from '../core/errors.js'
import type { WebCryptoE2EOptions } from '../crypto/web-crypto-cipher.js'
import { randomId } from '../runtime/random-id.js'
import { systemClock } from '../runtime/system-clock.js'
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
  readonly engine: Engine
  readonly transport: HostTransport
  #unsubscribe: (() => void) | undefined

  private constructor(engine: Engine, transport: HostTransport) {
    this.engine = engine
    this.transport = transport
  }

  /**
   * Opens the transport (switched off if the app took the identity offline)
   * and the engine on the identity's store; `verifyPeerKey` is this tab's
   * page's, if it has one.
   *
   * The cipher is loaded on first use (a dynamic import, fetched while the
   * transport is), as the transports are: a worker whose app turned
   * encryption off does not carry it.
   */
  static async open(
    config: HostConfig,
    factories: HostFactories,
    context: TransportContext,
    networkEnabled: boolean,
    verifyPeerKey?: WebCryptoE2EOptions['verifyPeerKey'],
  ): Promise<LeaderSession> {
    const cipher = config.encryption === false ? undefined : import('../crypto/web-crypto-cipher.js')
    // Awaited once the transport is up; a transport that fails first must not leave it unhandled.
    cipher?.catch(() => {})
    const transport = await factories.createTransport(config, context)
    if (!networkEnabled) transport.setEnabled?.(false)
    let webCryptoE2E: typeof import('../crypto/web-crypto-cipher.js').webCryptoE2E | undefined
    try {
      webCryptoE2E = (await cipher)?.webCryptoE2E
    } catch (cause) {
      await transport.close()
      throw new IlmError('CRYPTO_FAILED', 'end-to-end encryption could not be loaded (see cause)', { cause })
    }
    const engine = await Engine.open({
      store: factories.createStore(config),
      transport,
      clock: systemClock,
      newId: randomId,
      ...(config.limits !== undefined && { limits: config.limits }),
      encryption:
        webCryptoE2E === undefined
          ? false
          : webCryptoE2E(
              verifyPeerKey === undefined ? {} : { verifyPeerKey, ...(config.verifyTimeoutMs !== undefined && { verifyTimeoutMs: config.verifyTimeoutMs }) },
            ),
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
