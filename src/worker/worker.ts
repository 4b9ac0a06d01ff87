/**
 * The default worker entry: `new Worker(new URL('intersession/worker.js', import.meta.url), { type: 'module' })`
 * or just `connect()`, which starts it. Engine, IndexedDB and transport all run here.
 * @module
 */
import { exposeHost } from './expose.js'

exposeHost()
