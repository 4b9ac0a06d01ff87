import { Engine, prepareEngine } from './core/engine.js'
import type { EngineOptions } from './core/options.js'
import { randomId } from './runtime/random-id.js'
import { systemClock } from './runtime/system-clock.js'
import { webCryptoE2E } from './crypto/web-crypto-cipher.js'

/** Options of {@link ILM.open}: a store and a transport; the rest has defaults. */
export interface IlmOptions extends Omit<EngineOptions, 'clock' | 'newId' | 'encryption'> {
  /**
   * End-to-end encryption, on by default (WebCrypto: X25519, Ed25519,
   * HKDF, AES-GCM; see docs/SECURITY.md). `false` turns it off; peers must
   * agree.
   */
  readonly encryption?: EngineOptions['encryption']
  /** Defaults to the system clock (`setTimeout`, `Date.now`). */
  readonly clock?: EngineOptions['clock']
  /** Defaults to 21 random characters of nanoid's url-safe alphabet (126 bits). */
  readonly newId?: () => string
}

/**
 * The intersession messenger: durable, exactly-once, per-sender ordered
 * delivery across sessions. See {@link Engine} for the methods.
 *
 * @example
 * const a = await ILM.open({ store: new MemoryStore(), transport: net.connect('a') })
 * const { id } = await a.send('b', { text: 'hi' })
 * await a.delivered(id)
 */
export class ILM extends Engine {
  /** Opens the local peer's store and transport and starts resuming every stream. */
  static override async open(options: IlmOptions): Promise<ILM> {
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object')
    const ilm = new ILM(
      await prepareEngine({
        ...options,
        clock: options.clock ?? systemClock,
        newId: options.newId ?? randomId,
        encryption: options.encryption ?? webCryptoE2E(),
      }),
    )
    await ilm.ready()
    return ilm
  }
}
