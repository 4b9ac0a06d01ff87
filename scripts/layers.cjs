// @ts-check
/**
 * The layer map of src/: for each layer, the layers and packages it may import.
 * One source of truth: .dependency-cruiser.cjs builds its rules from it, and
 * test/unit/layers.test.ts checks docs/ARCHITECTURE.md's layer table against it.
 *
 * A layer is a folder (`core/`) or a top-level file (`ilm.ts`) under src/.
 * Browser code is every layer but `relay/` and `playwright/` (both run in Node); it may import no Node builtin.
 *
 * @typedef {{ readonly layer: string, readonly imports: readonly string[], readonly packages: readonly string[] }} Layer
 */

/** @type {readonly Layer[]} */
const layers = [
  { layer: 'core/', imports: [], packages: [] },
  { layer: 'protocol/', imports: ['core/'], packages: [] },
  { layer: 'storage/', imports: ['core/'], packages: ['idb'] },
  { layer: 'runtime/', imports: ['core/'], packages: ['nanoid'] },
  { layer: 'crypto/', imports: ['core/'], packages: [] },
  { layer: 'transport/', imports: ['core/', 'protocol/', 'runtime/'], packages: ['pure-rand'] },
  { layer: 'ilm.ts', imports: ['core/', 'runtime/', 'crypto/'], packages: [] },
  { layer: 'bridge/', imports: ['core/', 'protocol/'], packages: ['comlink'] },
  { layer: 'worker/', imports: ['core/', 'protocol/', 'bridge/', 'storage/', 'transport/', 'crypto/', 'runtime/'], packages: ['comlink'] },
  { layer: 'service-worker/', imports: ['core/', 'protocol/', 'storage/', 'transport/', 'worker/', 'ilm.ts'], packages: [] },
  { layer: 'client/', imports: ['core/', 'protocol/', 'bridge/', 'worker/', 'runtime/'], packages: ['comlink'] },
  { layer: 'testing/', imports: ['core/'], packages: [] },
  { layer: 'index.ts', imports: ['core/', 'runtime/', 'storage/', 'transport/', 'crypto/', 'ilm.ts'], packages: [] },
  { layer: 'playwright/', imports: ['client/'], packages: ['@playwright/test', 'node:'] },
  {
    layer: 'relay/',
    imports: ['core/', 'protocol/', 'runtime/', 'testing/'],
    packages: ['ws', 'jose', 'classic-level', 'redis', 'prom-client', 'tinyqueue', 'node:'],
  },
]

/** @param {string} layer @returns {string} a regex for the layer's paths, relative to the repository root */
function layerPath(layer) {
  const escaped = layer.replace(/\./g, '\\.')
  return layer.endsWith('/') ? `^src/${escaped}` : `^src/${escaped}$`
}

/**
 * @param {string} name
 * @returns {string} a regex for a package's paths: resolved into node_modules, or left bare when its exports map
 *   does not resolve (a Node builtin resolves to its bare name)
 */
function packagePath(name) {
  if (name === 'node:') return '^(node:)?[a-z_/]+$|(^|/)node_modules/@types/node/'
  const escaped = name.replace(/\./g, '\\.')
  return `(^|/)node_modules/${escaped}/|^${escaped}(/|$)`
}

module.exports = { layers, layerPath, packagePath }
