/**
 * The page hands batches to its handlers one after another, in the order the
 * worker gave them, even when the next batch comes while the last is still
 * with the handlers. That happens in a follower tab that unsubscribed and
 * subscribed again: the leader stops waiting for it, moves on, and the next
 * batch reaches the tab before it finished the last (seen in CI as a handler
 * getting seq 33 before seq 32, tab-fanout.spec.ts).
 */
import { releaseProxy } from 'comlink'
import { afterEach, beforeEach, expect, it } from 'vitest'
import type { PageSink } from '../../src/worker/host.js'
import type { HostConfig } from '../../src/worker/config.js'
import { Messenger, type WorkerLink } from '../../src/client/messenger.js'
import type { Message } from '../../src/core/api.js'
import type { Epoch, PeerId } from '../../src/core/ids.js'

const globals = globalThis as { window?: unknown; document?: unknown }

beforeEach(() => {
  globals.window = new EventTarget()
  globals.document = Object.assign(new EventTarget(), { visibilityState: 'visible' })
})

afterEach(() => {
  delete globals.window
  delete globals.document
})

const config = { peerId: 'alice', transport: { kind: 'broadcast-channel' } } as HostConfig

const message = (seq: number): Message => ({ id: `m${seq}`, from: 'bob' as PeerId, epoch: 'e1' as Epoch, seq, contents: seq, sentAt: 0 }) as unknown as Message

it('a batch that comes while the last is with the handlers waits for it: handlers see every message in order, once', async () => {
  let sink: PageSink | undefined
  const link: WorkerLink = {
    remote: {
      start: async (_config: HostConfig, pageSink: PageSink) => {
        sink = pageSink
        return { localId: 'alice', tab: 't', watched: false }
      },
      subscribe: () => {},
      watchStatus: () => {},
      close: async () => {},
      [releaseProxy]: () => {},
    } as unknown as WorkerLink['remote'],
  }
  const messenger = new Messenger('alice' as PeerId, config, () => link)
  await messenger.start()

  const seen: number[] = []
  let release = (): void => {}
  const held = new Promise<void>((resolve) => (release = resolve))
  messenger.onMessage(async (m) => {
    seen.push(m.seq)
    if (m.seq === 31) await held
  })

  const first = sink!.messages([message(30), message(31), message(32)])
  await new Promise((resolve) => setTimeout(resolve, 0))
  const second = sink!.messages([message(33), message(34)])
  await new Promise((resolve) => setTimeout(resolve, 0))
  expect(seen).toEqual([30, 31])
  release()
  expect(await first).toEqual({ handled: 3 })
  expect(await second).toEqual({ handled: 2 })
  expect(seen).toEqual([30, 31, 32, 33, 34])
  await messenger.close()
})
