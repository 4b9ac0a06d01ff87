import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cruise, type ICruiseResult, type IForbiddenRuleType } from 'dependency-cruiser'
import { afterAll, describe, expect, it } from 'vitest'

const root = join(dirname(fileURLToPath(import.meta.url)), '../..')
const require = createRequire(import.meta.url)
const { layers } = require('../../scripts/layers.cjs') as { layers: readonly { layer: string; imports: readonly string[]; packages: readonly string[] }[] }
const config = require('../../.dependency-cruiser.cjs') as { forbidden: IForbiddenRuleType[] }

/** Runs the project's rules over `dir` (a repository-shaped tree) and returns the rule names that fired, one per violation. */
async function violations(dir: string, paths = ['src']): Promise<string[]> {
  const { output } = await cruise(
    paths,
    { baseDir: dir, ruleSet: { forbidden: config.forbidden }, tsPreCompilationDeps: true, doNotFollow: { path: 'node_modules' }, validate: true },
    { extensions: ['.ts', '.js'], extensionAlias: { '.js': ['.ts', '.js'] }, conditionNames: ['import', 'node', 'default', 'types'] },
  )
  // A planted tree links the project's node_modules, which resolve to their real path.
  return (output as ICruiseResult).summary.violations.map((v) => `${v.rule.name} ${v.from} -> ${v.to.replace(/^.*\/node_modules\//, 'node_modules/')}`)
}

const trees: string[] = []
afterAll(() => {
  for (const dir of trees) rmSync(dir, { recursive: true, force: true })
})

/** A temporary repository-shaped tree with the given files under it (and the project's node_modules). */
function tree(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'layers-'))
  trees.push(dir)
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir')
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true })
    writeFileSync(join(dir, path), text)
  }
  return dir
}

describe('layer rules (.dependency-cruiser.cjs)', () => {
  it('src/ keeps them', { timeout: 60_000 }, async () => {
    expect(await violations(root)).toEqual([])
  })

  it("docs/ARCHITECTURE.md's layer table says exactly what scripts/layers.cjs allows", () => {
    const doc = readFileSync(join(root, 'docs/ARCHITECTURE.md'), 'utf8')
    const section = doc.slice(doc.indexOf('## Layers'), doc.indexOf('\n## ', doc.indexOf('## Layers') + 1))
    const rows = [...section.matchAll(/^\|\s*`src\/([^`]+)`\s*\|[^\n]*\|\s*([^|\n]*?)\s*\|$/gm)].map(([, layer, allowed]) => ({
      layer,
      allowed: [...(allowed ?? '').matchAll(/`([^`]+)`/g)].map((m) => m[1]).sort(),
    }))
    expect(rows).toEqual(layers.map(({ layer, imports, packages }) => ({ layer, allowed: [...imports, ...packages].sort() })))
  })

  // Each planted tree is clean but for one import; the test names the rules it must fire, and no others.
  const planted: [string, Record<string, string>, string[]][] = [
    ['an allowed import fires nothing', { 'src/storage/s.ts': "import '../core/c'\n", 'src/core/c.ts': 'export {}\n' }, []],
    [
      'core imports an adapter',
      { 'src/core/c.ts': "import '../storage/s'\n", 'src/storage/s.ts': 'export {}\n' },
      ['core-is-pure src/core/c.ts -> src/storage/s.ts', 'layer:core/ src/core/c.ts -> src/storage/s.ts'],
    ],
    [
      'core imports a package',
      { 'src/core/c.ts': "import 'nanoid'\n" },
      ['core-is-pure src/core/c.ts -> node_modules/nanoid/index.js', 'layer:core/ src/core/c.ts -> node_modules/nanoid/index.js'],
    ],
    [
      'a transport imports the relay',
      { 'src/transport/t.ts': "import '../relay/wire'\n", 'src/relay/wire.ts': 'export {}\n' },
      ['relay-is-server-only src/transport/t.ts -> src/relay/wire.ts', 'layer:transport/ src/transport/t.ts -> src/relay/wire.ts'],
    ],
    [
      'the worker imports a Node builtin',
      { 'src/worker/w.ts': "import 'node:fs'\n" },
      ['browser-no-node-builtins src/worker/w.ts -> fs', 'layer:worker/ src/worker/w.ts -> fs'],
    ],
    [
      'the worker imports page code',
      { 'src/worker/w.ts': "import '../client/page-rtc'\n", 'src/client/page-rtc.ts': 'export {}\n' },
      ['layer:worker/ src/worker/w.ts -> src/client/page-rtc.ts', 'worker-not-page src/worker/w.ts -> src/client/page-rtc.ts'],
    ],
    [
      'two client files import each other',
      { 'src/client/a.ts': "import './b'\n", 'src/client/b.ts': "import './a'\n" },
      ['no-cycles src/client/a.ts -> src/client/b.ts'],
    ],
    [
      'storage imports a layer its row does not list',
      { 'src/storage/s.ts': "import '../protocol/p'\n", 'src/protocol/p.ts': 'export {}\n' },
      ['layer:storage/ src/storage/s.ts -> src/protocol/p.ts'],
    ],
    ['a file in no layer', { 'src/extra.ts': "import './core/c'\n", 'src/core/c.ts': 'export {}\n' }, ['layer:unmapped src/extra.ts -> src/core/c.ts']],
  ]
  for (const [name, files, expected] of planted) {
    it(`planted: ${name}`, { timeout: 30_000 }, async () => {
      expect((await violations(tree(files))).sort()).toEqual([...expected].sort())
    })
  }
})
