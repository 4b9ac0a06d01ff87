// The bench's worker with the store in memory: what sends cost on the page<->worker path without IndexedDB.
import { MemoryStore } from 'intersession'
import { defaultFactories, exposeHost } from 'intersession/worker'

exposeHost(undefined, { ...defaultFactories, createStore: () => new MemoryStore() })
