/**
 * The page client across worker restarts (the tab froze, so its worker was
 * terminated, then resumed and started a new one): every call reaches the new
 * worker exactly once. Regression for the soak's duplicate (issue 12): a send
 * made while the new worker was starting went to it twice, once when made and
 * again when the start finished, and each attempt claimed a fresh id, so the
 * engine queued the one `send()` twice, with two seqs.
 */
import { releaseProxy } from 'comlink'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { PackedOutcomes, PackedSends, SendCall } from '../../src/worker/host.js'
import type { HostConfig } from '../../src/worker/config.js'
import { Messenger, type WorkerLink } from '../../src/client/messenger.js'
import type { PeerId } from '../../src/core/ids.js'

/** The sends of a bridge message, one call each. */
const unpack = ({ to, contents, options }: PackedSends): SendCall[] => to.map((peer, i) => [peer, contents[i], options[i]!])

/** A worker as the messenger sees it: records every send it is given; `start` waits for `gate`. */
class FakeWorker {
  readonly sends: SendCall[] = []
  terminated = false
  #open: () => void = () => {}
  readonly gate = new Promise<void>((resolve) => (this.#open = resolve))

  constructor(started: boolean) {
    if (started) this.#open()
  }

  open(): void {
    this.#open()
  }

  link(): WorkerLink {
    const remote = {
      start: async () => {
        await this.gate
        return { localId: 'alice', tab: 't' }
      },
      // Like a worker, it answers a call only after it handled `start`.
      sendPacked: async (sends: PackedSends): Promise<PackedOutcomes> => {
        this.sends.push(...unpack(sends))
        await this.gate
        return sends.to.map((_, seq) => seq)
      },
      subscribe: () => {},
      setOnline: () => {},
      wake: () => {},
      close: async () => {},
      [releaseProxy]: () => {},
    }
    return { remote: remote as unknown as WorkerLink['remote'], terminate: () => void (this.terminated = true) }
  }
}

const globals = globalThis as { window?: unknown; document?: unknown }
let page: EventTarget
let doc: EventTarget & { visibilityState: string }

beforeEach(() => {
  page = new EventTarget()
  doc = Object.assign(new EventTarget(), { visibilityState: 'visible' })
  globals.window = page
  globals.document = doc
})

afterEach(() => {
  delete globals.window
  delete globals.document
})

const config = { peerId: 'alice', transport: { kind: 'broadcast-channel' } } as HostConfig
const turn = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0))
const idsOf = (worker: FakeWorker): string[] => worker.sends.map((call) => (call[2] as { id: string }).id)

describe('the page client across a worker restart', () => {
  it('a send made while the new worker starts reaches it once', async () => {
    const workers = [new FakeWorker(true), new FakeWorker(false)]
    let spawned = 0
    const messenger = new Messenger('alice' as PeerId, config, () => workers[spawned++]!.link())
    await messenger.start()
    doc.dispatchEvent(new Event('freeze'))
    expect(workers[0]!.terminated).toBe(true)
    doc.dispatchEvent(new Event('resume'))
    await turn()
    expect(spawned).toBe(2)
    const sent = messenger.send('bob', 'made while starting')
    await turn()
    workers[1]!.open()
    const receipt = await sent
    await turn()
    expect(idsOf(workers[1]!)).toEqual([receipt.id])
    await messenger.close()
  })

  it('a send in flight when the tab froze goes to the new worker once, with the same id', async () => {
    const workers = [new FakeWorker(true), new FakeWorker(true)]
    workers[0]!.link = function (this: FakeWorker) {
      const link = FakeWorker.prototype.link.call(this)
      // The first worker never answers: it is terminated with the send in hand.
      ;(link.remote as unknown as { sendPacked: (sends: PackedSends) => Promise<never> }).sendPacked = (sends) => {
        this.sends.push(...unpack(sends))
        return new Promise(() => {})
      }
      return link
    }
    let spawned = 0
    const messenger = new Messenger('alice' as PeerId, config, () => workers[spawned++]!.link())
    await messenger.start()
    const sent = messenger.send('bob', 'in flight')
    await turn()
    doc.dispatchEvent(new Event('freeze'))
    doc.dispatchEvent(new Event('resume'))
    const receipt = await sent
    expect(idsOf(workers[0]!)).toEqual([receipt.id])
    expect(idsOf(workers[1]!)).toEqual([receipt.id])
    await messenger.close()
  })

  it('a freeze while the new worker starts leaves the newest worker in charge', async () => {
    const workers = [new FakeWorker(true), new FakeWorker(false), new FakeWorker(true)]
    let spawned = 0
    const messenger = new Messenger('alice' as PeerId, config, () => workers[spawned++]!.link())
    await messenger.start()
    doc.dispatchEvent(new Event('freeze'))
    doc.dispatchEvent(new Event('resume'))
    await turn()
    doc.dispatchEvent(new Event('freeze'))
    doc.dispatchEvent(new Event('resume'))
    await turn()
    expect(spawned).toBe(3)
    workers[1]!.open()
    const receipt = await messenger.send('bob', 'after two restarts')
    expect(idsOf(workers[2]!)).toEqual([receipt.id])
    expect(idsOf(workers[1]!)).toEqual([])
    await messenger.close()
  })
})

describe('the page client counts sends not yet durable', () => {
  it('unsaved counts send() calls until each settles, resolved or refused', async () => {
    const worker = new FakeWorker(false)
    const messenger = new Messenger('alice' as PeerId, config, () => worker.link())
    const started = messenger.start()
    expect(messenger.unsaved).toBe(0)
    const sends = [
      messenger.send('bob', 'one'),
      messenger.send('bob', 'two'),
      messenger.send('bob', 'one again', { id: 'same' }),
      messenger.send('bob', 'x', { id: 'same' }),
    ]
    const refused = messenger.send('bob', 'bad options', 42 as never)
    expect(messenger.unsaved).toBe(4)
    await expect(refused).rejects.toThrow(TypeError)
    expect(messenger.unsaved).toBe(4)
    worker.open()
    await started
    await Promise.all(sends)
    expect(messenger.unsaved).toBe(0)
    await messenger.close()
    await expect(messenger.send('bob', 'after close')).rejects.toMatchObject({ code: 'CLOSED' })
    expect(messenger.unsaved).toBe(0)
  })
})
