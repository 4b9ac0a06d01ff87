#!/usr/bin/env node
// @ts-check
/**
 * `npm test`'s first step: finds the programs the tests run (a Chromium,
 * redis-server and redis-cli, strace, a Firefox); installs missing ones with apt-get the
 * way `playwright install --with-deps` does on Debian and Ubuntu (as root, or
 * through `sudo -n` when that needs no password), or else stops with one line
 * that names what is missing, its package and the command to run. Then it
 * runs the command given after it with what it found in `CHROMIUM_PATH`,
 * `REDIS_SERVER`, `REDIS_CLI` and `FIREFOX_PATH`.
 *
 * Usage: `node scripts/preflight.mjs [command [args...]]`. Exit code 1 when
 * something is missing; otherwise the command's exit code.
 *
 * Plain JavaScript (type-checked through JSDoc), not TypeScript: it runs before
 * every `npm test` and Node starts it ~0.3 s faster without tsx.
 */
import { spawn, spawnSync } from 'node:child_process'
import { accessSync, constants, readdirSync, statSync } from 'node:fs'
import { homedir, constants as osConstants } from 'node:os'
import { delimiter, join } from 'node:path'

/**
 * @typedef {object} Requirement
 * @property {string} name what the tests run, as the one-line message names it
 * @property {string} usedBy which tests need it
 * @property {string} [env] the variable that overrides the search and carries the path to the tests
 * @property {readonly string[]} commands names looked up on PATH, in order
 * @property {() => string[]} [elsewhere] further candidates after PATH
 * @property {string} pkg the Debian and Ubuntu package that installs it
 * @property {string} [comesWith] a package that installs it too, so `pkg` is not named when that one is
 * @property {string} [alternative] what else the user may do, for the one-line message
 */

/** @type {readonly Requirement[]} */
const REQUIREMENTS = [
  {
    name: 'Chromium',
    usedBy: 'the browser tests',
    env: 'CHROMIUM_PATH',
    commands: ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'],
    elsewhere: playwrightChromiums,
    pkg: 'chromium',
    alternative: 'or set CHROMIUM_PATH to a Chrome or Chromium',
  },
  { name: 'redis-server', usedBy: 'the Redis tests', env: 'REDIS_SERVER', commands: ['redis-server'], pkg: 'redis-server' },
  // Debian's redis-server depends on redis-tools, which has redis-cli.
  { name: 'redis-cli', usedBy: 'the Redis tests', env: 'REDIS_CLI', commands: ['redis-cli'], pkg: 'redis-tools', comesWith: 'redis-server' },
  { name: 'strace', usedBy: 'the test that traces the relay', commands: ['strace'], pkg: 'strace' },
  { name: 'Firefox', usedBy: 'the cross-engine tests', env: 'FIREFOX_PATH', commands: ['firefox-esr', 'firefox'], pkg: 'firefox-esr' },
]

/** @param {string} path */
function isExecutable(path) {
  try {
    accessSync(path, constants.X_OK)
    return statSync(path).isFile()
  } catch {
    return false
  }
}

/** @param {string} command */
function onPath(command) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue
    const path = join(dir, command)
    if (isExecutable(path)) return path
  }
  return undefined
}

/** Playwright's own Chromiums (`chromium-<revision>/chrome-linux*\/chrome` in its cache), newest revision first; never downloads one. */
function playwrightChromiums() {
  const given = process.env.PLAYWRIGHT_BROWSERS_PATH
  const cache = given !== undefined && given !== '' && given !== '0' ? given : join(homedir(), '.cache', 'ms-playwright')
  /** @type {{ revision: number, path: string }[]} */
  const found = []
  let entries
  try {
    entries = readdirSync(cache)
  } catch {
    return []
  }
  for (const entry of entries) {
    const match = /^chromium-(\d+)$/.exec(entry)
    if (match === null) continue
    let platforms
    try {
      platforms = readdirSync(join(cache, entry)).filter((name) => name.startsWith('chrome-linux'))
    } catch {
      continue
    }
    for (const platform of platforms) found.push({ revision: Number(match[1]), path: join(cache, entry, platform, 'chrome') })
  }
  return found.sort((a, b) => b.revision - a.revision).map((candidate) => candidate.path)
}

/**
 * Where `requirement` is: its variable when set (which then must name an
 * executable), else the first candidate found.
 * @param {Requirement} requirement
 * @returns {{ path: string } | { missing: true } | { badEnv: string }}
 */
function locate(requirement) {
  const given = requirement.env === undefined ? undefined : process.env[requirement.env]
  if (given !== undefined && given !== '') {
    return isExecutable(given) ? { path: given } : { badEnv: `${requirement.env}=${given} is not an executable file` }
  }
  for (const command of requirement.commands) {
    const path = onPath(command)
    if (path !== undefined) return { path }
  }
  for (const path of requirement.elsewhere?.() ?? []) if (isExecutable(path)) return { path }
  return { missing: true }
}

/** @returns {{ found: Map<Requirement, string>, missing: Requirement[], badEnv: string[] }} */
function survey() {
  /** @type {Map<Requirement, string>} */
  const found = new Map()
  /** @type {Requirement[]} */
  const missing = []
  /** @type {string[]} */
  const badEnv = []
  for (const requirement of REQUIREMENTS) {
    const where = locate(requirement)
    if ('path' in where) found.set(requirement, where.path)
    else if ('badEnv' in where) badEnv.push(where.badEnv)
    else missing.push(requirement)
  }
  return { found, missing, badEnv }
}

/**
 * The package that installs `requirement` when `missing` are all installed at once.
 * @param {Requirement} requirement
 * @param {readonly Requirement[]} missing
 */
function packageOf(requirement, missing) {
  const { comesWith } = requirement
  return comesWith !== undefined && missing.some((other) => other.pkg === comesWith) ? comesWith : requirement.pkg
}

/** @param {readonly Requirement[]} missing */
function packagesFor(missing) {
  return [...new Set(missing.map((requirement) => packageOf(requirement, missing)))]
}

const isRoot = process.getuid?.() === 0

/**
 * How apt-get can run here with root's rights: as we are, or through `sudo -n`.
 * @returns {{ prefix: string[] } | { reason: string }}
 */
function aptAccess() {
  if (onPath('apt-get') === undefined) return { reason: 'no apt-get on PATH (not Debian or Ubuntu?)' }
  if (isRoot) return { prefix: [] }
  if (onPath('sudo') === undefined) return { reason: 'not root and no sudo' }
  const probe = spawnSync('sudo', ['-n', 'true'], { stdio: 'ignore', timeout: 5000 })
  return probe.status === 0 ? { prefix: ['sudo', '-n'] } : { reason: 'not root, and sudo asks for a password' }
}

/**
 * Runs `apt-get args` (its output to our stderr) and returns its exit code.
 * @param {readonly string[]} prefix
 * @param {readonly string[]} args
 * @returns {number}
 */
function aptGet(prefix, args) {
  const command = [...prefix, 'env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', ...args]
  const run = spawnSync(command[0] ?? 'env', command.slice(1), { stdio: ['ignore', 2, 2] })
  return run.status ?? 1
}

/**
 * Whether apt knows an installable version of every package (`apt-cache
 * policy` needs no root); on a fresh image the package lists are empty.
 * @param {readonly string[]} packages
 */
function aptHasCandidates(packages) {
  const policy = spawnSync('apt-cache', ['policy', ...packages], { encoding: 'utf8', timeout: 10_000 })
  if (policy.status !== 0) return false
  const known = new Set()
  let current = ''
  for (const line of policy.stdout.split('\n')) {
    const header = /^(\S+):$/.exec(line)
    if (header !== null) current = header[1] ?? ''
    else if (/^\s+Candidate: (?!\(none\))/.test(line)) known.add(current)
  }
  return packages.every((name) => known.has(name))
}

/**
 * `apt-get install -y packages`, after `apt-get update` when the lists lack
 * a package, and once more after an update when the install fails on lists
 * that may be stale. Returns an error text, or undefined once installed.
 * @param {readonly string[]} prefix
 * @param {readonly string[]} packages
 */
function aptInstall(prefix, packages) {
  let updated = false
  if (!aptHasCandidates(packages)) {
    const code = aptGet(prefix, ['update'])
    if (code !== 0) return `apt-get update failed (exit ${code})`
    updated = true
  }
  let code = aptGet(prefix, ['install', '-y', ...packages])
  if (code !== 0 && !updated) {
    if (aptGet(prefix, ['update']) === 0) code = aptGet(prefix, ['install', '-y', ...packages])
  }
  return code === 0 ? undefined : `apt-get install -y ${packages.join(' ')} failed (exit ${code})`
}

/**
 * The one line for what is missing, and exit 1.
 * @param {readonly Requirement[]} missing
 * @param {string} reason why it was not installed
 * @returns {never}
 */
function fail(missing, reason) {
  const packages = packagesFor(missing)
  const sudo = isRoot ? '' : 'sudo '
  const install = `${sudo}apt-get update && ${sudo}apt-get install -y ${packages.join(' ')}`
  const what = missing.map((requirement) => `${requirement.name} (for ${requirement.usedBy}; package ${packageOf(requirement, missing)})`).join(', ')
  const alternatives = missing.flatMap((requirement) => (requirement.alternative === undefined ? [] : [requirement.alternative]))
  const run = onPath('apt-get') === undefined ? `install ${packages.join(' ')} with your package manager (Debian/Ubuntu: ${install})` : `run: ${install}`
  console.error(`preflight: missing ${what}; not installed: ${reason}. To fix, ${run}${alternatives.length > 0 ? `, ${alternatives.join(', ')}` : ''}`)
  process.exit(1)
}

/** @param {Map<Requirement, string>} found */
function exported(found) {
  /** @type {Record<string, string>} */
  const env = {}
  for (const [requirement, path] of found) if (requirement.env !== undefined) env[requirement.env] = path
  return env
}

function main() {
  let { found, missing, badEnv } = survey()
  if (badEnv.length > 0) {
    console.error(`preflight: ${badEnv.join('; ')}; point it at the program or unset it to let the preflight search`)
    process.exit(1)
  }
  if (missing.length > 0) {
    const access = aptAccess()
    if ('reason' in access) fail(missing, access.reason)
    const packages = packagesFor(missing)
    console.error(`preflight: installing ${packages.join(' ')} (${missing.map((requirement) => requirement.name).join(', ')} missing) with apt-get`)
    const error = aptInstall(access.prefix, packages)
    if (error !== undefined) fail(missing, error)
    ;({ found, missing } = survey())
    if (missing.length > 0)
      fail(missing, `apt-get installed ${packages.join(' ')}, but ${missing.map((requirement) => requirement.name).join(', ')} still cannot be found`)
  }
  console.log(`preflight: ${[...found].map(([requirement, path]) => `${requirement.name} ${path}`).join(', ')}`)

  const [command, ...args] = process.argv.slice(2)
  if (command === undefined) return
  const child = spawn(command, args, { stdio: 'inherit', env: { ...process.env, ...exported(found) } })
  for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM', 'SIGHUP'])) process.on(signal, () => child.kill(signal))
  child.once('error', (error) => {
    console.error(`preflight: could not run ${command}: ${error.message}`)
    process.exit(1)
  })
  child.once('exit', (code, signal) => process.exit(code ?? (signal === null ? 1 : 128 + (osConstants.signals[signal] ?? 0))))
}

main()
