// The engine's worker with every IndexedDB transaction recorded (./durability-probe.ts). The probe
// is installed before the host exists, so before the engine opens anything. (A bare side-effect
// import would not do: the package says `sideEffects: false`, and the bundler drops it.)
// Named 'relaxed', the worker opens its store with `durability: 'relaxed'`: the case the check must catch.
import { IndexedDBStore } from 'intersession'
import { defaultFactories, exposeHost } from 'intersession/worker'
import { installDurabilityProbe } from './durability-probe.js'

installDurabilityProbe()
const relaxed = (globalThis as unknown as { name: string }).name === 'relaxed'
exposeHost(
  undefined,
  relaxed
    ? {
        ...defaultFactories,
        createStore: (config) => new IndexedDBStore({ durability: 'relaxed', ...(config.dbName !== undefined && { dbName: () => config.dbName! }) }),
      }
    : defaultFactories,
)
