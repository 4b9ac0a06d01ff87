/**
 * UnreachedPeers: who was refused for which peer while the cluster backend
 * was down hears `available` once it answers again. The cluster here is a
 * scripted stand-in for its `isOnline`; cluster-relay.test.ts runs the whole
 * path with real relay and redis-server processes.
 */
import { describe, expect, it } from 'vitest'
import type { PeerId } from '../../src/core/ids.js'
import type { RelayControl } from '../../src/protocol/relay.js'
import type { RelayCluster } from '../../src/relay/cluster/cluster.js'
import type { Connection } from '../../src/relay/connection.js'
import { UNREACHED_PROBE_MS, UnreachedPeers } from '../../src/relay/unreached-peers.js'
import { ManualClock } from '../../src/testing/index.js'

const p = (id: string): PeerId => id as PeerId

function connection(): Connection & { readonly sent: RelayControl[] } {
  const sent: RelayControl[] = []
  return { state: 'open', sent, sendControl: (m: RelayControl) => void sent.push(m) } as unknown as Connection & { readonly sent: RelayControl[] }
}

function setup() {
  const clock = new ManualClock()
  let up = false
  const online = new Set<string>()
  const asked: string[] = []
  const cluster = {
    isOnline: async (peer: PeerId) => {
      asked.push(peer)
      if (!up) throw new Error('The client is offline')
      return online.has(peer)
    },
  } as unknown as RelayCluster
  const unreached = new UnreachedPeers(cluster, clock)
  const probe = async (): Promise<void> => {
    clock.advance(UNREACHED_PROBE_MS)
    for (let i = 0; i < 5; i++) await Promise.resolve()
  }
  return { clock, unreached, online, asked, probe, up: () => void (up = true) }
}

describe('UnreachedPeers', () => {
  it('tells each refused connection where the peer is once the backend answers, once', async () => {
    const s = setup()
    const a = connection()
    const b = connection()
    s.unreached.refused(a, p('bob'))
    s.unreached.refused(a, p('bob'))
    s.unreached.refused(a, p('carol'))
    s.unreached.refused(b, p('bob'))
    await s.probe()
    await s.probe()
    // Down: asked each probe, nothing told.
    expect(s.asked.sort()).toEqual(['bob', 'bob', 'carol', 'carol'])
    expect([...a.sent, ...b.sent]).toEqual([])
    s.up()
    s.online.add('bob')
    await s.probe()
    expect(a.sent).toEqual([
      { t: 'available', peer: 'bob', online: true },
      { t: 'available', peer: 'carol', online: false },
    ])
    expect(b.sent).toEqual([{ t: 'available', peer: 'bob', online: true }])
    s.asked.length = 0
    await s.probe()
    expect(s.asked).toEqual([])
    expect(s.clock.pending).toBe(0)
  })

  it('tells nothing of a peer a frame reached meanwhile, nor to a closed connection', async () => {
    const s = setup()
    const a = connection()
    const b = connection()
    s.unreached.refused(a, p('bob'))
    s.unreached.refused(b, p('bob'))
    s.unreached.routed(a, p('bob'))
    ;(b as { state: string }).state = 'closed'
    s.up()
    s.online.add('bob')
    await s.probe()
    expect([...a.sent, ...b.sent]).toEqual([])
    expect(s.asked).toEqual([])
  })

  it('remembers at most 64 peers per connection, and nothing after stop()', async () => {
    const s = setup()
    const a = connection()
    for (let i = 0; i < 100; i++) s.unreached.refused(a, p(`peer-${i}`))
    s.up()
    await s.probe()
    expect(a.sent).toHaveLength(64)
    s.unreached.refused(a, p('bob'))
    s.unreached.stop()
    s.unreached.refused(a, p('carol'))
    await s.probe()
    expect(a.sent).toHaveLength(64)
    expect(s.clock.pending).toBe(0)
  })
})
