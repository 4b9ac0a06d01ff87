/**
 * Packs `intersession` and `intersession-relay` (from the built `dist/` and
 * `relay/dist/`: run `npm run build` first, as `npm run test:pack` does),
 * installs each tarball into a fresh app directory, and checks what a user
 * gets: the browser package brings only browser dependencies, fits its size
 * budget and runs no install script; a Vite build of a small app importing it
 * stays within the bundle budgets; the relay's bin starts from its tarball;
 * and an app with both tarballs and `@playwright/test` runs a spec written
 * with `intersession/playwright` against its own Vite build in Chromium
 * (`CHROMIUM_PATH`, default /usr/bin/chromium).
 */
import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import { build } from 'vite'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { serveStatic, type StaticServer } from '../helpers/static-server.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** Everything `npm i intersession` may install (pure-rand: `MemoryNetwork`'s seeded faults). */
const BROWSER_PACKAGES = ['comlink', 'idb', 'intersession', 'nanoid', 'pure-rand']
/** Bytes of files: measured 3,034,436 B with the Playwright kit's crash waiting for every process of the browser (src/playwright, TESTING.md) and the relay index's costs in RELAY.md, 3,029,429 B with the login's drain stopped at the receiver's window (the transport, the wire format, the engine and their docs), 3,020,573 B with the stored receipt's early slide in docs/ (PROTOCOL.md), 3,016,411 B with bench:backlog and the redrain's older-epoch rule in docs/, 3,014,694 B with the mailbox sent again on a receiver's ask (redrain: the engine, the transport, the wire format and their docs), 2,986,754 B with the WebSocket transport keeping to the relay's rate (src/transport/send-pace.ts, RELAY.md), 2,975,527 B with a full inbox resuming as soon as it has room (docs/PROTOCOL.md, GUARANTEES.md and the engine), 2,971,353 B with every relay command to Redis bounded in docs/ (RELAY.md, GUARANTEES.md), 2,970,278 B with the relay cluster's timeout in docs/ (RELAY.md, SCALING.md, GUARANTEES.md: the package ships its docs), 2.97 MB with the codec's fast path for message and ack headers and a receiver's run of frames taken at once (2.942 MB with IndexedDB chunks stored by column, 2.919 MB with one id generator on pooled random bytes for every id, 2.911 MB with frames written into shared chunks, 2.902 MB with a receiver's frames of one batch taken by one intent, 2.896 MB with the memory store's rows kept in arrays, 2.894 MB with the memory store's bisected key checks, 2.893 MB with the cipher loaded on demand in the worker and a code for a failed lead, 2.88 MB with short sealed bodies, 2.86 MB with envelope heads kept per peer and acks reading only their records, 2.84 MB with stream counters implied by their rows, 2.83 MB with the AAD buffer kept per sender key and the relay's order across a failed put (its docs), 2.82 MB with inbox floors, 2.81 MB with chunked outbox records, 2.76 MB with chunked inbox records, 2.72 MB with `available` after a cluster outage, 2.67 MB with peerKeyStatus, the tab bus levels, the packed bridge and the service worker's Firefox fallback (2.58 MB with intersession/service-worker, verifyPeerKey and rejectPeerKey; 2.47 MB with end-to-end encryption: src/crypto and its dist, the cipher in the engine; 2.02 MB before; 1.76 MB before the kit, Firefox's WebRTC pipe and the dead-worker watch; the package with its `src/` for the source maps, Comlink 0.3 MB); before the split, 25 packages). */
const BROWSER_INSTALL_BUDGET_BYTES = 3_036_000
/** Page JS of the app below (entry chunk and what it imports statically), gzip: measured 8.23 kB with the event emitter's `has` (8.18 kB with sends packed across the bridge, issue 19; 8.15 kB with peerKeyStatus, tied key decisions and connect({ verifyTimeoutMs }), 8.08 kB with the Background Sync registration, 7.96 kB with connect()'s verifyPeerKey and rejectPeerKey, 7.85 kB with PendingCalls.callMany, one promise per sendMany batch in the worker). */
const PAGE_BUDGET_BYTES = 8_260
/** Worker, its WebSocket chunk and its cipher's with `worker: { format: 'es' }` (.size-limit.json's "worker with the WebSocket relay transport"), gzip: measured 45.28 kB with the login's drain stopped at the receiver's window (45.17 kB with a stored receipt sliding the window as it comes, 45.10 kB with the mailbox sent again on a receiver's ask, 44.55 kB with the WebSocket transport keeping to the relay's rate, 44.36 kB with a full inbox resuming as soon as it has room, 44.30 kB with the codec's fast path for message and ack headers and a receiver's run of frames taken at once (43.33 kB with IndexedDB chunks stored by column, 42.99 kB with status events built only when something hears them, per-message handlers called without an await each, the sender's scan of sent times stopping at the ack and the receiver's stream state written once per batch, 42.88 kB with the stores' checks of message rows written in code, 42.82 kB with one id generator on pooled random bytes for every id, 42.74 kB with frames written into shared chunks, 42.63 kB with a receiver's frames of one batch taken by one intent, 42.56 kB with a sender's fresh rows held only while its cache holds every row from the cursor up, 42.49 kB with the cipher in a chunk of its own, loaded while encryption is on, and a code for a failed lead (three gzip streams compress 0.69 kB worse than two; 41.77 kB with short sealed bodies, 41.05 kB with envelope heads kept per peer, acks reading only their records and less garbage per row, 40.73 kB with relay receipts committed off the send path, 40.66 kB with stream counters implied by their rows, 40.54 kB with the AAD buffer kept per sender key, 40.26 kB with inbox floors, 40.08 kB with chunked outbox records, 39.23 kB with chunked inbox records, 38.60 kB with the key bundle in `auth`, 38.55 kB with `available` after a cluster outage, 38.49 kB with a gap on the receiver acked again and the sender going back at once, 38.40 kB with packs, the frames of one turn in one WebSocket message; 37.91 kB with the receiver's delayed ack, 37.80 kB with sealed messages resent from their sender at the receiver's hello and at a change of its keys; 37.68 kB with sends packed across the bridge and settled by callbacks in the worker, issue 19; 37.47 kB with peerKeyStatus, tied key decisions and tab bus levels, 37.05 kB with the cheaper seal and open, issue 16's cost; 36.78 kB with ILM.flushed() and the service worker merge, 36.73 kB with the page's verifyPeerKey and rejectPeerKey (36.50 kB with frames kept while a changed key waits; 36.37 kB with end-to-end encryption; 29.34 kB before it, with the key directory; 28.62 kB before that).)) */
const WORKER_WS_BUDGET_BYTES = 45_310
/** The same without the cipher's chunk, which the worker loads only while encryption is on (.size-limit.json's "worker with the WebSocket relay transport, encryption off"), gzip: measured 38.64 kB with the login's drain stopped at the receiver's window (38.53 kB with a stored receipt sliding the window as it comes, 38.46 kB with the mailbox sent again on a receiver's ask, 37.92 kB with the WebSocket transport keeping to the relay's rate, 37.73 kB with a full inbox resuming as soon as it has room, 37.66 kB with the codec's fast path for message and ack headers and a receiver's run of frames taken at once (36.69 kB with IndexedDB chunks stored by column, 36.35 kB with status events built only when something hears them, per-message handlers called without an await each, the sender's scan of sent times stopping at the ack and the receiver's stream state written once per batch, 36.24 kB with the stores' checks of message rows written in code, 36.19 kB with one id generator on pooled random bytes for every id, 36.10 kB with frames written into shared chunks, 35.99 kB with a receiver's frames of one batch taken by one intent, 35.92 kB with a sender's fresh rows held only while its cache holds every row from the cursor up, 35.85 kB when the cipher was split off).) */
const WORKER_WS_PLAIN_BUDGET_BYTES = 38_670
/** Vite's default worker format inlines every lazily loaded transport and the cipher: measured 47.11 kB with the login's drain stopped at the receiver's window (47.01 kB with a stored receipt sliding the window as it comes, 46.95 kB with the mailbox sent again on a receiver's ask, 46.43 kB with the WebSocket transport keeping to the relay's rate, 46.21 kB with a full inbox resuming as soon as it has room, 46.15 kB with the codec's fast path for message and ack headers and a receiver's run of frames taken at once (45.13 kB with IndexedDB chunks stored by column, 44.76 kB with status events built only when something hears them, per-message handlers called without an await each, the sender's scan of sent times stopping at the ack and the receiver's stream state written once per batch, 44.66 kB with the stores' checks of message rows written in code, 44.58 kB with one id generator on pooled random bytes for every id, 44.47 kB with frames written into shared chunks, 44.36 kB with a receiver's frames of one batch taken by one intent, 44.31 kB with a sender's fresh rows held only while its cache holds every row from the cursor up, 44.23 kB with the cipher loaded on demand and a code for a failed lead, 44.00 kB with short sealed bodies, 43.30 kB with envelope heads kept per peer, acks reading only their records and less garbage per row, 42.99 kB with relay receipts committed off the send path, 42.92 kB with stream counters implied by their rows, 42.80 kB with the AAD buffer kept per sender key, 42.52 kB with inbox floors, 42.36 kB with chunked outbox records, 41.49 kB with chunked inbox records, 40.84 kB with the key bundle in `auth`, 40.80 kB with `available` after a cluster outage, 40.75 kB with a gap acked again and the sender going back at once (40.66 kB with packs, 40.20 kB with the receiver's delayed ack, 40.09 kB with sealed messages resent from their sender at the receiver's hello and at a change of its keys, 39.96 kB with sends packed across the bridge, 39.73 kB with peerKeyStatus, tied key decisions and tab bus levels, 39.31 kB with the cheaper seal and open, 39.04 kB with ILM.flushed(), 38.94 kB with the page's verifyPeerKey and rejectPeerKey (38.73 kB with frames kept while a changed key waits, 38.61 kB with end-to-end encryption, 31.58 kB before it)).) */
const WORKER_IIFE_BUDGET_BYTES = 47_140

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

function run(command: string, args: readonly string[], cwd: string, timeoutMs = 120_000, env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, npm_config_update_notifier: 'false', ...env } })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

async function npm(args: readonly string[], cwd: string): Promise<Run> {
  const result = await run('npm', args, cwd)
  if (result.code !== 0) throw new Error(`npm ${args.join(' ')} in ${cwd} exited ${result.code}: ${result.stderr.slice(-2000)}`)
  return result
}

/** `npm pack --json` of the package (or workspace) at ROOT; the build is `npm run build`'s, not repeated here. */
async function pack(into: string, workspace?: string): Promise<{ tarball: string; files: string[] }> {
  const args = ['pack', '--ignore-scripts', '--json', '--pack-destination', into, ...(workspace === undefined ? [] : ['-w', workspace])]
  const [report] = JSON.parse((await npm(args, ROOT)).stdout) as [{ filename: string; files: { path: string }[] }]
  return { tarball: join(into, report.filename), files: report.files.map((file) => file.path) }
}

async function install(dir: string, ...packages: string[]): Promise<Run> {
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }))
  return npm(['install', '--prefer-offline', '--no-audit', '--no-fund', ...packages], dir)
}

/** Names of every installed package, nested ones included. */
function installedPackages(nodeModules: string): string[] {
  const names: string[] = []
  for (const entry of readdirSync(nodeModules)) {
    if (entry.startsWith('.')) continue
    const scoped = entry.startsWith('@') ? readdirSync(join(nodeModules, entry)).map((name) => `${entry}/${name}`) : [entry]
    for (const name of scoped) {
      names.push(name)
      const nested = join(nodeModules, name, 'node_modules')
      if (exists(nested)) names.push(...installedPackages(nested))
    }
  }
  return names.sort()
}

/** Installed packages (by directory) whose manifest asks npm to run a script at install time, or to build native code. */
function withInstallScripts(nodeModules: string): string[] {
  return installedPackages(nodeModules).filter((name) => {
    const dir = join(nodeModules, name)
    if (!exists(join(dir, 'package.json'))) return false
    const scripts = (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { scripts?: Record<string, string> }).scripts ?? {}
    return ['preinstall', 'install', 'postinstall'].some((hook) => hook in scripts) || exists(join(dir, 'binding.gyp'))
  })
}

function exists(path: string): boolean {
  try {
    statSync(path)
    return true
  } catch {
    return false
  }
}

function bytesUnder(dir: string): number {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .reduce((sum, entry) => sum + statSync(join(entry.parentPath, entry.name)).size, 0)
}

/** The gzip size of `file` and of every chunk it imports statically (dynamic `import()`s are left out). */
function gzipWithStaticImports(assets: string, file: string, seen = new Set<string>()): number {
  if (seen.has(file)) return 0
  seen.add(file)
  const code = readFileSync(join(assets, file), 'utf8')
  let size = gzipSync(code, { level: 9 }).length
  for (const [, imported] of code.matchAll(/(?:from|import)\s*["']\.\/([^"']+\.js)["']/g)) size += gzipWithStaticImports(assets, imported!, seen)
  return size
}

function asset(assets: string, prefix: string): string {
  const matches = readdirSync(assets).filter((name) => name.startsWith(prefix) && name.endsWith('.js'))
  expect(matches, `one ${prefix}*.js in ${readdirSync(assets).join(', ')}`).toHaveLength(1)
  return matches[0]!
}

/** The parts of a package.json these checks read. */
interface Manifest {
  exports: Record<string, Record<string, string> | undefined>
  dependencies?: Record<string, string>
  peerDependencies?: Record<string, string>
  peerDependenciesMeta?: Record<string, { optional?: boolean } | undefined>
}

let work: string
let browser: { tarball: string; files: string[] }
let relay: { tarball: string; files: string[] }

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'intersession-pack-'))
  browser = await pack(work)
  relay = await pack(work, 'intersession-relay')
})

afterAll(() => {
  if (work !== undefined) rmSync(work, { recursive: true, force: true })
})

describe('npm i intersession', () => {
  let app: string
  let installed: Run
  beforeAll(async () => {
    app = join(work, 'app')
    mkdirSync(app)
    installed = await install(app, browser.tarball)
  })

  it('ships no relay code and no relay entry point', () => {
    expect(browser.files.filter((path) => /(^|\/)relay\//.test(path))).toEqual([])
    expect(browser.files).toContain('dist/client/index.js')
    const manifest = JSON.parse(readFileSync(join(app, 'node_modules/intersession/package.json'), 'utf8')) as Record<string, unknown>
    expect(manifest.bin).toBeUndefined()
    expect(Object.keys(manifest.exports as object)).not.toContain('./relay')
  })

  it('exports intersession/playwright types first, with @playwright/test an optional peer dependency only', () => {
    const manifest = JSON.parse(readFileSync(join(app, 'node_modules/intersession/package.json'), 'utf8')) as Manifest
    const entry = manifest.exports['./playwright']
    expect(Object.keys(entry ?? {})).toEqual(['types', 'import'])
    for (const path of Object.values(entry ?? {})) expect(browser.files).toContain(path.replace(/^\.\//, ''))
    expect(manifest.peerDependencies?.['@playwright/test']).toBeDefined()
    expect(manifest.peerDependenciesMeta?.['@playwright/test']?.optional).toBe(true)
    expect(Object.keys(manifest.dependencies ?? {})).not.toContain('@playwright/test')
    expect(installedPackages(join(app, 'node_modules'))).not.toContain('@playwright/test')
  })

  it('installs only browser packages, runs no install script, and fits its size budget', () => {
    expect(installedPackages(join(app, 'node_modules'))).toEqual(BROWSER_PACKAGES)
    expect(withInstallScripts(join(app, 'node_modules'))).toEqual([])
    expect(`${installed.stdout}${installed.stderr}`).not.toMatch(/install.?script/i)
    const size = bytesUnder(join(app, 'node_modules'))
    console.log(`npm i intersession: ${BROWSER_PACKAGES.length} packages, ${(size / 1e6).toFixed(2)} MB`)
    expect(size).toBeLessThan(BROWSER_INSTALL_BUDGET_BYTES)
  })

  it('builds with Vite into page and worker chunks within their budgets', async () => {
    writeFileSync(join(app, 'index.html'), '<!doctype html><html><body><script type="module" src="./main.js"></script></body></html>\n')
    writeFileSync(
      join(app, 'main.js'),
      [
        "import { connect } from 'intersession/client'",
        "const m = await connect({ peerId: 'alice', transport: { kind: 'websocket', url: 'ws://127.0.0.1:8787', token: 'dev:alice' } })",
        'm.onMessage((msg) => console.log(msg.contents))',
        "await m.send('bob', 'hi')",
        '',
      ].join('\n'),
    )
    const sizes: Record<string, number> = {}
    for (const format of ['es', 'iife'] as const) {
      const outDir = join(app, `dist-${format}`)
      await build({ root: app, configFile: false, logLevel: 'warn', build: { outDir, target: 'es2022' }, worker: { format } })
      const assets = join(outDir, 'assets')
      sizes[`page (${format})`] = gzipWithStaticImports(assets, asset(assets, 'index-'))
      const seen = new Set<string>()
      const worker =
        gzipWithStaticImports(assets, asset(assets, 'worker-'), seen) + (format === 'es' ? gzipWithStaticImports(assets, asset(assets, 'websocket-'), seen) : 0)
      if (format === 'es') sizes['worker + WebSocket, encryption off (es)'] = worker
      // The app leaves encryption on (the default): the worker loads the cipher's chunk too.
      sizes[`worker + WebSocket (${format})`] = worker + (format === 'es' ? gzipWithStaticImports(assets, asset(assets, 'web-crypto-cipher-'), seen) : 0)
    }
    console.log(`Vite build, gzip bytes: ${JSON.stringify(sizes)}`)
    // The page's entry chunk imports the Comlink chunk it shares with PageRtc: the sum must include it.
    const esAssets = join(app, 'dist-es/assets')
    expect(sizes['page (es)']).toBeGreaterThan(gzipSync(readFileSync(join(esAssets, asset(esAssets, 'index-'))), { level: 9 }).length)
    expect(sizes['page (es)']).toBeLessThanOrEqual(PAGE_BUDGET_BYTES)
    expect(sizes['page (iife)']).toBeLessThanOrEqual(PAGE_BUDGET_BYTES)
    expect(sizes['worker + WebSocket (es)']).toBeLessThanOrEqual(WORKER_WS_BUDGET_BYTES)
    expect(sizes['worker + WebSocket, encryption off (es)']).toBeLessThanOrEqual(WORKER_WS_PLAIN_BUDGET_BYTES)
    expect(sizes['worker + WebSocket (iife)']).toBeLessThanOrEqual(WORKER_IIFE_BUDGET_BYTES)
  })
})

describe('npm i intersession-relay', () => {
  let server: string
  beforeAll(async () => {
    server = join(work, 'server')
    mkdirSync(server)
    await install(server, relay.tarball)
  })

  it('holds the relay and its server dependencies, not the browser ones', () => {
    expect(relay.files.every((path) => path.startsWith('dist/') || path === 'README.md' || path === 'package.json')).toBe(true)
    const packages = installedPackages(join(server, 'node_modules'))
    expect(packages).toEqual(expect.arrayContaining(['intersession-relay', 'ws', 'jose', 'classic-level', 'redis']))
    expect(packages.filter((name) => ['intersession', 'idb', 'comlink'].includes(name))).toEqual([])
    // The browser package's checks, planted: they catch the relay's native addon and its server packages.
    expect(withInstallScripts(join(server, 'node_modules'))).toContain('classic-level')
    expect(packages).not.toEqual(BROWSER_PACKAGES)
  })

  it('starts its bin from the tarball and stops on SIGTERM', async () => {
    const bin = join(server, 'node_modules/.bin/intersession-relay')
    const child = spawn(bin, ['--dev', '--port', '0', '--mailbox-dir', join(server, 'mailbox')], { cwd: server, stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const listening = await new Promise<Record<string, unknown>>((resolve, reject) => {
      let out = ''
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString()
        for (const line of out.split('\n')) {
          if (line.includes('"listening"')) resolve(JSON.parse(line) as Record<string, unknown>)
        }
      })
      child.on('close', (code) => reject(new Error(`intersession-relay exited ${code} before listening: ${stderr}`)))
    })
    expect(listening.port).toBeGreaterThan(0)
    const exit = new Promise<number | null>((resolve) => child.on('close', resolve))
    child.kill('SIGTERM')
    expect(await exit).toBe(0)
  })
})

describe('intersession/playwright in an app', () => {
  let kitApp: string
  let site: StaticServer | undefined
  beforeAll(async () => {
    kitApp = join(work, 'kit-app')
    mkdirSync(kitApp)
    // What docs/TESTING.md tells an app to install, @playwright/test at the version this repository tests with.
    const playwright = (JSON.parse(readFileSync(join(ROOT, 'node_modules/@playwright/test/package.json'), 'utf8')) as { version: string }).version
    await install(kitApp, browser.tarball, relay.tarball, `@playwright/test@${playwright}`, '@types/node@20')
    writeFileSync(join(kitApp, 'index.html'), '<!doctype html><html><body><p id="status"></p><script type="module" src="./main.js"></script></body></html>\n')
    writeFileSync(
      join(kitApp, 'main.js'),
      [
        "import { connect } from 'intersession/client'",
        'const query = new URLSearchParams(location.search)',
        "const m = await connect({ peerId: query.get('peer'), transport: { kind: 'websocket', url: query.get('relay'), token: query.get('token') } })",
        "m.on('connection', (state) => (document.getElementById('status').textContent = state.status))",
        'm.onMessage(() => {})',
        '',
      ].join('\n'),
    )
    await build({ root: kitApp, configFile: false, logLevel: 'warn', build: { outDir: join(kitApp, 'site'), target: 'es2022' }, worker: { format: 'es' } })
    site = await serveStatic(join(kitApp, 'site'))
    writeFileSync(
      join(kitApp, 'playwright.config.ts'),
      [
        "import { defineConfig } from '@playwright/test'",
        'export default defineConfig({',
        "  testMatch: 'kit.spec.ts',",
        '  timeout: 120_000,',
        '  workers: 1,',
        "  reporter: 'line',",
        "  use: { baseURL: process.env.KIT_BASE_URL, launchOptions: { executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu'] } },",
        '})',
        '',
      ].join('\n'),
    )
    writeFileSync(
      join(kitApp, 'kit.spec.ts'),
      [
        "import { expect, expectExactlyOnce, test, type KitRelay, type Peer } from 'intersession/playwright'",
        '',
        'const app = async (relay: KitRelay, peer: string) => ({ url: `/index.html?${new URLSearchParams({ peer, relay: relay.url, token: await relay.token(peer) })}` })',
        'const sendAll = async (from: Peer, to: string, tag: string): Promise<string[]> => Promise.all(Array.from({ length: 20 }, (_, i) => from.send(to, `${tag} ${i}`)))',
        '',
        "test('from the tarballs: alice goes offline and back, bob gets everything exactly once', async ({ relay, peer }) => {",
        "  const alice = await peer('alice', await app(relay, 'alice'))",
        "  const bob = await peer('bob', await app(relay, 'bob'))",
        "  const sent = await sendAll(alice, 'bob', 'before')",
        '  await alice.offline()',
        "  expect(await relay.connectedPeers()).not.toContain('alice')",
        "  sent.push(...(await sendAll(alice, 'bob', 'offline')))",
        '  await alice.online()',
        '  await alice.waitDelivered(sent)',
        '  await bob.waitReceived(sent)',
        '  expectExactlyOnce(sent, bob.received())',
        "  expect(relay.logs().some((line) => line.event === 'listening')).toBe(true)",
        '  console.log(`kit from the tarballs: ${sent.length} sent, ${bob.received().length} received`)',
        '})',
        '',
      ].join('\n'),
    )
    writeFileSync(
      join(kitApp, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { strict: true, module: 'nodenext', target: 'es2022', lib: ['es2022', 'dom'], types: ['node'], noEmit: true, skipLibCheck: true },
        files: ['kit.spec.ts', 'playwright.config.ts'],
      }),
    )
  }, 300_000)

  afterAll(async () => {
    await site?.stop()
  })

  it('type-checks a spec importing intersession/playwright (types resolved through the exports map)', async () => {
    const tsc = await run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', kitApp], kitApp)
    expect(`${tsc.stdout}${tsc.stderr}`).toBe('')
    expect(tsc.code).toBe(0)
  })

  it("runs the spec with the app's own Playwright: relay from intersession-relay's bin, two peers, offline and online, exactly once", async () => {
    const playwright = join(kitApp, 'node_modules/.bin/playwright')
    const result = await run(playwright, ['test'], kitApp, 240_000, { KIT_BASE_URL: site!.url, CI: '1' })
    console.log(
      result.stdout
        .split('\n')
        .filter((line) => /kit from the tarballs|passed|failed/.test(line))
        .join('\n'),
    )
    expect(result.code, `${result.stdout}\n${result.stderr}`.slice(-4000)).toBe(0)
    expect(result.stdout).toMatch(/1 passed/)
    expect(result.stdout).toMatch(/kit from the tarballs: 40 sent, 40 received/)
  }, 300_000)
})
