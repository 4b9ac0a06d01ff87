/// <reference types="node" />
import { tracingChannel } from 'node:diagnostics_channel'
import { performance } from 'node:perf_hooks'
import { Counter, Histogram, type Registry } from 'prom-client'

/** The tracing channel on which node-redis (6.3+) reports every command it sends, from any client of this process. */
const COMMAND_CHANNEL = 'node-redis:command'

/** What node-redis puts in a command's trace context (the fields read here). */
interface CommandContext {
  readonly command?: unknown
}

/** Seconds: from a loopback round trip to a slow `WAIT`. */
const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

/**
 * Times every Redis command of this process into `registry` (the relay's
 * cluster and mailbox clients, single node or cluster, without touching
 * their call sites): `intersession_relay_redis_command_duration_seconds`
 * (histogram, from the call to its reply or failure) and
 * `intersession_relay_redis_command_errors_total`, both by `command`
 * (its name, e.g. `EVALSHA`, `SPUBLISH`: a small fixed set). Returns the
 * function that stops observing.
 */
export function observeRedisCommands(registry: Registry): () => void {
  const duration = new Histogram({
    name: 'intersession_relay_redis_command_duration_seconds',
    help: 'Redis commands sent by this relay process, from the call to the reply (or failure), by command.',
    labelNames: ['command'],
    buckets: BUCKETS,
    registers: [registry],
  })
  const errors = new Counter({
    name: 'intersession_relay_redis_command_errors_total',
    help: 'Redis commands that failed (an error reply, a lost or closed connection), by command.',
    labelNames: ['command'],
    registers: [registry],
  })
  const started = new WeakMap<object, number>()
  const name = (context: CommandContext): string => (typeof context.command === 'string' ? context.command : 'unknown')
  const channel = tracingChannel<unknown, CommandContext & object>(COMMAND_CHANNEL)
  const handlers = {
    start: (context: CommandContext & object) => void started.set(context, performance.now()),
    end: () => {},
    asyncStart: () => {},
    asyncEnd: (context: CommandContext & object) => {
      const at = started.get(context)
      if (at !== undefined) duration.observe({ command: name(context) }, (performance.now() - at) / 1000)
    },
    error: (context: CommandContext & object) => errors.inc({ command: name(context) }),
  }
  channel.subscribe(handlers)
  return () => channel.unsubscribe(handlers)
}
