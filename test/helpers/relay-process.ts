/// <reference types="node" />
/**
 * Runs the real relay CLI (`src/relay/cli.ts` through tsx, no build needed)
 * in a child process on an ephemeral loopback port, for tests that need a
 * real, killable relay process. The launcher is the Playwright kit's
 * ({@link spawnRelay}); this adds the repository's command line.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { spawnRelay, type RelayRun } from '../../src/playwright/relay.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** A running relay process (see {@link RelayRun}); with `wrap`, `pid` is the wrapped relay's and `stop` resolves once the wrapper exited. */
export type RelayProcess = RelayRun

/** Options of {@link startRelayProcess}. */
export interface RelayProcessOptions {
  /**
   * A command that runs the relay, e.g. `['strace', '-f', '-o', file]`: the
   * relay's command line is appended to it. The wrapper must exit once the
   * relay does; signals go to the relay itself (its child).
   */
  readonly wrap?: readonly string[]
}

/**
 * Starts `intersession-relay --port 0 ...args` and resolves once it printed its
 * `listening` line. Without `--mailbox-dir` in `args` the relay runs with
 * `--no-mailbox`. `env` is added to this process's environment; when it has
 * neither INTERSESSION_JWT_SECRET nor INTERSESSION_DEV and `args` has no
 * `--dev`, pass one yourself (the CLI refuses to start without auth).
 */
export function startRelayProcess(
  args: readonly string[] = [],
  env: Record<string, string> = {},
  timeoutMs = 15_000,
  options: RelayProcessOptions = {},
): Promise<RelayProcess> {
  // Processes share the working directory: each mailbox test names its own directory.
  const mailbox = args.includes('--mailbox-dir') || args.includes('--redis') || args.includes('--redis-cluster') ? [] : ['--no-mailbox']
  const command = [...(options.wrap ?? []), process.execPath, '--import', 'tsx', 'src/relay/cli.ts', '--port', '0', ...mailbox, ...args]
  return spawnRelay(command, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    timeoutMs,
    ...(options.wrap !== undefined && { pidOf: wrappedPid }),
    hint: "npm test's preflight (node scripts/preflight.mjs) finds or installs what the tests run",
  })
}

/** The one child of the wrapper `pid` (Linux: /proc), which by then printed `listening`. */
function wrappedPid(pid: number): number {
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
    .trim()
    .split(/\s+/)
    .filter((c) => c !== '')
  if (children.length !== 1) throw new Error(`relay wrapper ${pid} has ${children.length} child processes, expected 1`)
  return Number(children[0])
}
