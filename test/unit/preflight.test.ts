/**
 * scripts/preflight.mjs, run for real in a sandbox: PATH is a temporary
 * directory of shell stubs (the programs found, a fake apt-get, apt-cache and
 * sudo that log their calls and "install" by writing stubs), HOME another, so
 * the real apt never runs. Paths through sudo run the script as `nobody` when
 * this test runs as root.
 */
import { spawnSync } from 'node:child_process'
import { accessSync, chmodSync, constants, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const SCRIPT = join(ROOT, 'scripts', 'preflight.mjs')
const isRoot = process.getuid?.() === 0
const NOBODY = 65534
const ALL = ['chromium', 'redis-server', 'redis-cli', 'strace', 'firefox-esr']

const sandboxes: string[] = []
afterEach(() => {
  for (const dir of sandboxes.splice(0)) rmSync(dir, { recursive: true, force: true })
})

interface Sandbox {
  readonly bin: string
  readonly home: string
  readonly log: string
  readonly state: string
}

/** The real program `name` from this process's PATH (for the few the stubs need). */
function real(name: string): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const path = join(dir, name)
    try {
      accessSync(path, constants.X_OK)
      return path
    } catch {
      // Not in this directory.
    }
  }
  throw new Error(`${name} is not on PATH`)
}

function sandbox(): Sandbox {
  const dir = mkdtempSync(join(tmpdir(), 'intersession-preflight-'))
  sandboxes.push(dir)
  const sb = { bin: join(dir, 'bin'), home: join(dir, 'home'), log: join(dir, 'calls.log'), state: join(dir, 'state') }
  for (const sub of [sb.bin, sb.home, sb.state, join(dir, 'tools')]) mkdirSync(sub)
  // The stubs' own tools, on PATH after bin: none of them is a program the preflight looks for.
  for (const tool of ['env', 'chmod', 'true']) symlinkSync(real(tool), join(dir, 'tools', tool))
  writeFileSync(sb.log, '')
  // `nobody` runs the script in the sudo cases: it must read and write here.
  for (const path of [dir, sb.bin, sb.home, sb.state, sb.log]) chmodSync(path, 0o777)
  return sb
}

function stub(sb: Sandbox, name: string, body: string): void {
  const path = join(sb.bin, name)
  writeFileSync(path, `#!/bin/sh\n${body}\n`)
  chmodSync(path, 0o777)
}

function present(sb: Sandbox, ...names: string[]): void {
  for (const name of names) stub(sb, name, 'exit 0')
}

interface AptOptions {
  /** `yes`: install succeeds; `after-update`: fails (100) until `apt-get update` ran; `fail`: always 100; `nothing`: exits 0 and installs nothing. */
  readonly install: 'yes' | 'after-update' | 'fail' | 'nothing'
  /** Whether `apt-cache policy` shows candidates before an update (a fresh image's lists are empty). */
  readonly listsFilled: boolean
}

/** A fake apt-get and apt-cache that log their calls and install packages as stubs in bin. */
function fakeApt(sb: Sandbox, options: AptOptions): void {
  const makes = (name: string): string => `printf '#!/bin/sh\\nexit 0\\n' > "${sb.bin}/${name}"; chmod 777 "${sb.bin}/${name}"`
  stub(
    sb,
    'apt-get',
    `echo "apt-get $* DEBIAN_FRONTEND=\${DEBIAN_FRONTEND:-}" >> "${sb.log}"
case "$1" in
  update) : > "${sb.state}/updated"; exit 0 ;;
  install) shift ;;
  *) exit 64 ;;
esac
case "${options.install}" in
  fail) echo "E: Unable to locate package $*" >&2; exit 100 ;;
  nothing) exit 0 ;;
  after-update) [ -e "${sb.state}/updated" ] || { echo "E: Failed to fetch" >&2; exit 100; } ;;
esac
for p in "$@"; do
  case "$p" in
    chromium) ${makes('chromium')} ;;
    redis-server) ${makes('redis-server')}; ${makes('redis-cli')} ;;
    redis-tools) ${makes('redis-cli')} ;;
    strace) ${makes('strace')} ;;
    firefox-esr) ${makes('firefox-esr')} ;;
  esac
done`,
  )
  stub(
    sb,
    'apt-cache',
    `echo "apt-cache $*" >> "${sb.log}"
[ "$1" = policy ] || exit 64
shift
if ${options.listsFilled ? 'true' : 'false'} || [ -e "${sb.state}/updated" ]; then
  for p in "$@"; do printf '%s:\\n  Installed: (none)\\n  Candidate: 1.0-1\\n' "$p"; done
fi`,
  )
}

/** A fake sudo: `sudo -n cmd...` runs cmd (as the caller) when `works`, else refuses as a password-protected sudo does. */
function fakeSudo(sb: Sandbox, works: boolean): void {
  stub(
    sb,
    'sudo',
    `echo "sudo $*" >> "${sb.log}"
[ "$1" = -n ] && shift
${works ? 'exec "$@"' : 'echo "sudo: a password is required" >&2; exit 1'}`,
  )
}

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  /** The last line of stderr: the preflight's own verdict. */
  readonly verdict: string
  readonly calls: string[]
  readonly ms: number
}

/** Runs the preflight with PATH = the sandbox only, as root (`asRoot`) or as an unprivileged user. */
function preflight(sb: Sandbox, options: { asRoot: boolean; env?: Record<string, string>; command?: string[] }): Run {
  if (options.asRoot && !isRoot) throw new Error('cannot run as root')
  const started = performance.now()
  const run = spawnSync(process.execPath, [SCRIPT, ...(options.command ?? [])], {
    cwd: ROOT,
    env: { PATH: [sb.bin, join(sb.bin, '..', 'tools')].join(delimiter), HOME: sb.home, ...options.env },
    encoding: 'utf8',
    timeout: 30_000,
    ...(isRoot && !options.asRoot && { uid: NOBODY, gid: NOBODY }),
  })
  const ms = performance.now() - started
  const lines = run.stderr.trimEnd().split('\n')
  return {
    code: run.status,
    stdout: run.stdout,
    stderr: run.stderr,
    verdict: lines[lines.length - 1] ?? '',
    calls: readFileSync(sb.log, 'utf8')
      .split('\n')
      .filter((line) => line !== ''),
    ms,
  }
}

describe('preflight: everything present', () => {
  it('finds each program on PATH, runs the command with their paths exported, and passes on its exit code', () => {
    const sb = sandbox()
    present(sb, ...ALL)
    stub(sb, 'show-env', `echo "CHROMIUM_PATH=$CHROMIUM_PATH REDIS_SERVER=$REDIS_SERVER REDIS_CLI=$REDIS_CLI args=$*" >> "${sb.log}"; exit 3`)
    const run = preflight(sb, { asRoot: false, command: ['show-env', 'a', 'b'] })
    expect(run.stderr).toBe('')
    expect(run.code).toBe(3)
    expect(run.calls).toEqual([`CHROMIUM_PATH=${sb.bin}/chromium REDIS_SERVER=${sb.bin}/redis-server REDIS_CLI=${sb.bin}/redis-cli args=a b`])
    expect(run.ms).toBeLessThan(10_000)
  })

  it("takes Chromium from Google Chrome, or else from the newest in Playwright's cache", () => {
    const sb = sandbox()
    present(sb, 'redis-server', 'redis-cli', 'strace', 'firefox-esr')
    for (const dir of ['chromium-1100/chrome-linux', 'chromium-1200/chrome-linux64', 'chromium_headless_shell-1300/chrome-linux']) {
      mkdirSync(join(sb.home, '.cache/ms-playwright', dir), { recursive: true })
      writeFileSync(join(sb.home, '.cache/ms-playwright', dir, 'chrome'), '#!/bin/sh\n', { mode: 0o755 })
    }
    expect(preflight(sb, { asRoot: false }).stdout).toContain(`Chromium ${sb.home}/.cache/ms-playwright/chromium-1200/chrome-linux64/chrome,`)
    present(sb, 'google-chrome-stable', 'firefox-esr')
    expect(preflight(sb, { asRoot: false }).stdout).toContain(`Chromium ${sb.bin}/google-chrome-stable,`)
  })

  it('uses CHROMIUM_PATH, REDIS_SERVER and REDIS_CLI as given, and stops on one that names no program, without installing', () => {
    const sb = sandbox()
    present(sb, 'strace', 'my-chrome', 'my-redis', 'my-cli', 'firefox-esr')
    fakeApt(sb, { install: 'yes', listsFilled: true })
    const env = { CHROMIUM_PATH: join(sb.bin, 'my-chrome'), REDIS_SERVER: join(sb.bin, 'my-redis'), REDIS_CLI: join(sb.bin, 'my-cli') }
    const ok = preflight(sb, { asRoot: false, env })
    expect(ok.code).toBe(0)
    expect(ok.stdout).toBe(
      `preflight: Chromium ${env.CHROMIUM_PATH}, redis-server ${env.REDIS_SERVER}, redis-cli ${env.REDIS_CLI}, strace ${sb.bin}/strace, Firefox ${sb.bin}/firefox-esr\n`,
    )

    const bad = preflight(sb, { asRoot: false, env: { ...env, CHROMIUM_PATH: '/nonexistent/chrome' } })
    expect(bad.code).toBe(1)
    expect(bad.stderr).toBe(
      'preflight: CHROMIUM_PATH=/nonexistent/chrome is not an executable file; point it at the program or unset it to let the preflight search\n',
    )
    expect(bad.calls).toEqual([])
  })
})

describe('preflight: something missing, no way to install', () => {
  it('without apt-get: one line naming each missing program, its package and the command, exit 1, within 10 s', () => {
    const sb = sandbox()
    present(sb, 'chromium', 'firefox-esr')
    const run = preflight(sb, { asRoot: isRoot })
    expect(run.code).toBe(1)
    const sudo = isRoot ? '' : 'sudo '
    expect(run.stderr).toBe(
      'preflight: missing redis-server (for the Redis tests; package redis-server), redis-cli (for the Redis tests; package redis-server), ' +
        'strace (for the test that traces the relay; package strace); not installed: no apt-get on PATH (not Debian or Ubuntu?). ' +
        `To fix, install redis-server strace with your package manager (Debian/Ubuntu: ${sudo}apt-get update && ${sudo}apt-get install -y redis-server strace)\n`,
    )
    expect(run.stdout).toBe('')
    expect(run.ms).toBeLessThan(10_000)
  })

  it('not root and sudo asks for a password: one line with the sudo command, and apt-get never runs', () => {
    const sb = sandbox()
    present(sb, 'redis-server', 'redis-cli', 'strace', 'firefox-esr')
    fakeApt(sb, { install: 'yes', listsFilled: true })
    fakeSudo(sb, false)
    const run = preflight(sb, { asRoot: false })
    expect(run.code).toBe(1)
    expect(run.stderr).toBe(
      'preflight: missing Chromium (for the browser tests; package chromium); not installed: not root, and sudo asks for a password. ' +
        'To fix, run: sudo apt-get update && sudo apt-get install -y chromium, or set CHROMIUM_PATH to a Chrome or Chromium\n',
    )
    expect(run.calls).toEqual(['sudo -n true'])
    expect(run.ms).toBeLessThan(10_000)
  })

  it('not root and no sudo: one line', () => {
    const sb = sandbox()
    present(sb, 'chromium', 'redis-server', 'redis-cli', 'firefox-esr')
    fakeApt(sb, { install: 'yes', listsFilled: true })
    const run = preflight(sb, { asRoot: false })
    expect(run.code).toBe(1)
    expect(run.stderr).toMatch(
      /^preflight: missing strace \(.*package strace\); not installed: not root and no sudo\. To fix, run: sudo apt-get update && sudo apt-get install -y strace\n$/,
    )
    expect(run.calls).toEqual([])
  })
})

describe.runIf(isRoot)('preflight as root: installs with apt-get', () => {
  it('installs the missing packages (redis-cli with redis-server) non-interactively, then runs the command with the new paths', () => {
    const sb = sandbox()
    present(sb, 'chromium', 'firefox-esr')
    fakeApt(sb, { install: 'yes', listsFilled: true })
    stub(sb, 'show-env', `echo "REDIS_SERVER=$REDIS_SERVER REDIS_CLI=$REDIS_CLI" >> "${sb.log}"`)
    const run = preflight(sb, { asRoot: true, command: ['show-env'] })
    expect(run.code).toBe(0)
    expect(run.calls).toEqual([
      'apt-cache policy redis-server strace',
      'apt-get install -y redis-server strace DEBIAN_FRONTEND=noninteractive',
      `REDIS_SERVER=${sb.bin}/redis-server REDIS_CLI=${sb.bin}/redis-cli`,
    ])
    expect(run.stderr).toBe('preflight: installing redis-server strace (redis-server, redis-cli, strace missing) with apt-get\n')
  })

  it('installs redis-tools when only redis-cli is missing', () => {
    const sb = sandbox()
    present(sb, 'chromium', 'redis-server', 'strace', 'firefox-esr')
    fakeApt(sb, { install: 'yes', listsFilled: true })
    const run = preflight(sb, { asRoot: true })
    expect(run.code).toBe(0)
    expect(run.calls).toEqual(['apt-cache policy redis-tools', 'apt-get install -y redis-tools DEBIAN_FRONTEND=noninteractive'])
  })

  it('runs apt-get update first when the package lists are empty', () => {
    const sb = sandbox()
    present(sb, 'redis-server', 'redis-cli', 'strace', 'firefox-esr')
    fakeApt(sb, { install: 'yes', listsFilled: false })
    const run = preflight(sb, { asRoot: true })
    expect(run.code).toBe(0)
    expect(run.calls).toEqual([
      'apt-cache policy chromium',
      'apt-get update DEBIAN_FRONTEND=noninteractive',
      'apt-get install -y chromium DEBIAN_FRONTEND=noninteractive',
    ])
    expect(run.stdout).toContain(`Chromium ${sb.bin}/chromium,`)
  })

  it('updates and tries once more when an install on stale lists fails', () => {
    const sb = sandbox()
    present(sb, 'chromium', 'redis-server', 'redis-cli', 'firefox-esr')
    fakeApt(sb, { install: 'after-update', listsFilled: true })
    const run = preflight(sb, { asRoot: true })
    expect(run.code).toBe(0)
    expect(run.calls).toEqual([
      'apt-cache policy strace',
      'apt-get install -y strace DEBIAN_FRONTEND=noninteractive',
      'apt-get update DEBIAN_FRONTEND=noninteractive',
      'apt-get install -y strace DEBIAN_FRONTEND=noninteractive',
    ])
  })

  it("an install that fails ends in one line with apt-get's exit code and the command, exit 1, within 10 s", () => {
    const sb = sandbox()
    present(sb, 'redis-server', 'redis-cli', 'strace', 'firefox-esr')
    fakeApt(sb, { install: 'fail', listsFilled: true })
    const run = preflight(sb, { asRoot: true })
    expect(run.code).toBe(1)
    expect(run.verdict).toBe(
      'preflight: missing Chromium (for the browser tests; package chromium); not installed: apt-get install -y chromium failed (exit 100). ' +
        'To fix, run: apt-get update && apt-get install -y chromium, or set CHROMIUM_PATH to a Chrome or Chromium',
    )
    expect(run.ms).toBeLessThan(10_000)
  })

  it('a package that installs but leaves the program off PATH ends in one line', () => {
    const sb = sandbox()
    present(sb, 'chromium', 'redis-server', 'redis-cli', 'firefox-esr')
    fakeApt(sb, { install: 'nothing', listsFilled: true })
    const run = preflight(sb, { asRoot: true })
    expect(run.code).toBe(1)
    expect(run.verdict).toMatch(
      /^preflight: missing strace .*; not installed: apt-get installed strace, but strace still cannot be found\. To fix, run: apt-get update && apt-get install -y strace$/,
    )
  })
})

describe('preflight without root: installs through sudo -n', () => {
  it('checks that sudo needs no password, then runs apt-get through it', () => {
    const sb = sandbox()
    present(sb, 'chromium', 'redis-cli', 'firefox-esr')
    fakeApt(sb, { install: 'yes', listsFilled: true })
    fakeSudo(sb, true)
    const run = preflight(sb, { asRoot: false })
    expect(run.code).toBe(0)
    expect(run.calls).toEqual([
      'sudo -n true',
      'apt-cache policy redis-server strace',
      'sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server strace',
      'apt-get install -y redis-server strace DEBIAN_FRONTEND=noninteractive',
    ])
    expect(run.stdout).toContain(`redis-server ${sb.bin}/redis-server, redis-cli ${sb.bin}/redis-cli, strace ${sb.bin}/strace`)
  })
})
