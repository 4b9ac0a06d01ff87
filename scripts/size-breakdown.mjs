#!/usr/bin/env node
// @ts-check
/**
 * What the bytes of a bundle are: each entry of .size-limit.json bundled the
 * way size-limit does (esbuild, minified, its `import` and `ignore`), then the
 * minified output split by source module through the source map (dist/ maps
 * back to src/). Per module: minified bytes, the gzip of its code alone, and
 * its share of the bundle's gzip (gzip alone, scaled so the shares add up to
 * the bundle's gzip: a module's code compresses better next to the others).
 *
 * Usage: `npm run build && node scripts/size-breakdown.mjs [part of an entry name]`.
 */
import { readFileSync } from 'node:fs'
import { relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import { build } from 'esbuild'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'

/**
 * @typedef {object} Entry
 * @property {string} name
 * @property {string} path
 * @property {string} [import]
 * @property {string[]} [ignore]
 */

/**
 * Decodes one line of source-map mappings into [generated column, source index] pairs.
 * @param {string} line
 * @param {{ source: number }} state the source index carries over from line to line
 * @returns {[number, number | undefined][]}
 */
function decodeLine(line, state) {
  /** @type {[number, number | undefined][]} */
  const segments = []
  let column = 0
  for (const segment of line.split(',')) {
    if (segment === '') continue
    /** @type {number[]} */
    const fields = []
    let value = 0
    let shift = 0
    for (const char of segment) {
      const digit = BASE64.indexOf(char)
      value += (digit & 31) << shift
      if (digit & 32) {
        shift += 5
        continue
      }
      fields.push(value & 1 ? -(value >>> 1) : value >>> 1)
      value = 0
      shift = 0
    }
    column += fields[0] ?? 0
    if (fields.length > 1) state.source += fields[1] ?? 0
    segments.push([column, fields.length > 1 ? state.source : undefined])
  }
  return segments
}

/** @param {string | Uint8Array} text */
const gzip = (text) => gzipSync(text, { level: 9 }).length

/** @param {Entry} entry */
async function breakdown(entry) {
  const common = {
    bundle: true,
    minify: true,
    write: false,
    sourcemap: /** @type {const} */ ('external'),
    outdir: 'out',
    external: entry.ignore ?? [],
    absWorkingDir: ROOT,
    logLevel: /** @type {const} */ ('error'),
  }
  const result = await build(
    entry.import === undefined
      ? { ...common, entryPoints: [entry.path] }
      : { ...common, stdin: { contents: `export ${entry.import} from './${entry.path}'`, resolveDir: ROOT, loader: 'js' } },
  )
  const files = result.outputFiles ?? []
  const js = files.find((f) => f.path.endsWith('.js'))?.text ?? ''
  /** @type {unknown} */
  const parsed = JSON.parse(files.find((f) => f.path.endsWith('.map'))?.text ?? '{"mappings":"","sources":[]}')
  const map = /** @type {{ mappings: string, sources: string[] }} */ (parsed)
  /** @type {Map<string, string>} */
  const code = new Map()
  const state = { source: 0 }
  const lines = js.split('\n')
  map.mappings.split(';').forEach((mapping, i) => {
    const line = lines[i] ?? ''
    const segments = decodeLine(mapping, state)
    segments.forEach(([start, source], k) => {
      const file = source === undefined ? undefined : map.sources[source]
      const name = file === undefined ? '(esbuild runtime)' : relative(ROOT, fileURLToPath(new URL(file, `file://${ROOT}out/`)))
      code.set(name, (code.get(name) ?? '') + line.slice(start, segments[k + 1]?.[0] ?? line.length))
    })
  })
  const total = gzip(js)
  const rows = [...code].map(([name, text]) => ({ name, min: text.length, alone: gzip(text) }))
  const alone = rows.reduce((sum, row) => sum + row.alone, 0)
  rows.sort((a, b) => b.alone - a.alone)
  console.log(`\n${entry.name}: ${js.length} B minified, ${total} B gzip\n`)
  console.log('| module | minified B | gzip alone B | share of gzip B |\n| --- | ---: | ---: | ---: |')
  for (const row of rows)
    console.log(`| ${row.name.replace(/^.*node_modules\//, '')} | ${row.min} | ${row.alone} | ${Math.round((row.alone / alone) * total)} |`)
}

const only = process.argv[2]
/** @type {unknown} */
const config = JSON.parse(readFileSync(new URL('../.size-limit.json', import.meta.url), 'utf8'))
const entries = /** @type {Entry[]} */ (config)
for (const entry of entries) if (only === undefined || entry.name.includes(only)) await breakdown(entry)
