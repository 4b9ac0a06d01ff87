// @ts-check
const { layers, layerPath, packagePath } = require('./scripts/layers.cjs')

/**
 * The layer rules of docs/ARCHITECTURE.md ("Layers"), built from scripts/layers.cjs.
 * The named rules say the promises of the architecture in one line each; the
 * per-layer allow-lists (`layer:*`) pin the rest of the table.
 *
 * @type {import('dependency-cruiser').IConfiguration}
 */
module.exports = {
  forbidden: [
    {
      name: 'core-is-pure',
      comment: 'src/core imports nothing outside src/core: no adapter, no package, no builtin',
      severity: 'error',
      from: { path: '^src/core/' },
      to: { pathNot: '^src/core/' },
    },
    {
      name: 'relay-is-server-only',
      comment: 'only the relay imports the relay',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/relay/' },
      to: { path: '^src/relay/' },
    },
    {
      name: 'browser-no-node-builtins',
      comment: 'browser code (all of src/ but src/relay and src/playwright, which run in Node) imports no Node builtin',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/(relay|playwright)/' },
      to: { dependencyTypes: ['core'] },
    },
    {
      name: 'worker-not-page',
      comment: 'the worker never imports page code (src/client)',
      severity: 'error',
      from: { path: '^src/worker/' },
      to: { path: '^src/client/' },
    },
    {
      name: 'no-cycles',
      comment: 'no import cycles in src/',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    ...layers.map(({ layer, imports, packages }) => ({
      name: `layer:${layer}`,
      comment: `src/${layer} may import only ${[...imports, ...packages].join(', ') || 'itself'} (docs/ARCHITECTURE.md, "Layers")`,
      severity: /** @type {const} */ ('error'),
      from: { path: layerPath(layer) },
      to: { pathNot: [layerPath(layer), ...imports.map(layerPath), ...packages.map(packagePath)] },
    })),
    {
      name: 'layer:unmapped',
      comment: 'every file of src/ belongs to a layer of scripts/layers.cjs',
      severity: 'error',
      from: { path: '^src/', pathNot: layers.map(({ layer }) => layerPath(layer)) },
      to: {},
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(dist|\\.dist)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'] },
    skipAnalysisNotInRules: true,
  },
}
