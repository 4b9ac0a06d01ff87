import type { Clock } from '../core/clock.js'
import type { RelayLogEntry } from './options.js'

/** Writes one structured log entry: `{ time, level, event, ...fields }`. */
export type RelayLog = (level: RelayLogEntry['level'], event: string, fields?: Record<string, unknown>) => void

/** A {@link RelayLog} onto `logger`, stamped by `clock`; a logger that throws is ignored. */
export function createRelayLog(logger: (entry: RelayLogEntry) => void, clock: Clock): RelayLog {
  return (level, event, fields = {}) => {
    try {
      logger({ time: new Date(clock.now()).toISOString(), level, event, ...fields })
    } catch {
      // A broken logger must not break the relay.
    }
  }
}

/** The message of an error (or anything thrown), for a log field. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
