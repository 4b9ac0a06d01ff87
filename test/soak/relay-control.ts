/// <reference types="node" />
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRelayProcess, type RelayProcess } from '../helpers/relay-process.js'
import type { FaultProxy } from './fault-proxy.js'

// A relay starts through tsx: on a loaded 2-core machine that can take 15 s.
const START_TIMEOUT_MS = 30_000
const START_ATTEMPTS = 3

/**
 * The real relay process behind the proxy, which can crash (SIGKILL) and come
 * back on another port, with its mailbox (store and forward) in a directory of
 * this run that outlives the crashes.
 */
export class RelayControl {
  readonly #mailboxDir: string
  #relay: RelayProcess | undefined
  #proxy: FaultProxy | undefined
  restarts = 0

  private constructor(mailboxDir: string, relay: RelayProcess) {
    this.#mailboxDir = mailboxDir
    this.#relay = relay
  }

  static async start(): Promise<RelayControl> {
    const dir = mkdtempSync(join(tmpdir(), 'intersession-soak-mailbox-'))
    return new RelayControl(dir, await startRelayProcess(relayArgs(dir), {}, START_TIMEOUT_MS))
  }

  /** The port of the relay now running. */
  get port(): number | undefined {
    return this.#relay?.port
  }

  /** The proxy to point at the relay after each restart. */
  attach(proxy: FaultProxy): void {
    this.#proxy = proxy
  }

  /** SIGKILL, `downMs` with no relay at all, then a new process; the proxy hides the port change. */
  async crash(downMs: number): Promise<void> {
    const relay = this.#relay
    this.#relay = undefined
    this.#proxy?.setUpstream(undefined)
    await relay?.kill()
    await new Promise((resolve) => setTimeout(resolve, downMs))
    await this.ensureUp()
    this.restarts++
  }

  /** Starts a relay if none runs (a restart that failed); throws if it cannot. */
  async ensureUp(): Promise<void> {
    for (let attempt = 1; this.#relay === undefined; attempt++) {
      try {
        this.#relay = await startRelayProcess(relayArgs(this.#mailboxDir), {}, START_TIMEOUT_MS)
      } catch (error) {
        if (attempt >= START_ATTEMPTS) throw error
      }
    }
    this.#proxy?.setUpstream(this.#relay.port)
  }

  /** Kills the relay and removes its mailbox. */
  async stop(): Promise<void> {
    await this.#relay?.kill()
    rmSync(this.#mailboxDir, { recursive: true, force: true })
  }
}

function relayArgs(mailboxDir: string): string[] {
  return ['--dev', '--mailbox-dir', mailboxDir]
}
