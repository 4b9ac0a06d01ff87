import type { BatchOutcome, Message, MessageBatchHandler, MessageHandler } from './api.js'

/** A subscribed message handler: per message or per batch. */
export type Subscriber = { readonly batch: false; readonly handler: MessageHandler } | { readonly batch: true; readonly handler: MessageBatchHandler }

/**
 * Gives `messages` (in order) to every subscriber; resolves with how many of
 * them, from the first, every subscriber processed, and the first failure.
 * With only per-message handlers each message goes to every handler before
 * the next one, exactly as one at a time; a batch handler gets what every
 * subscriber before it processed. `progress` hears each count reached
 * before the end where it is known (per-message handlers only), so that a
 * clean close can mark exactly what was processed. Never rejects.
 */
export async function handOverBatch(
  subscribers: readonly Subscriber[],
  messages: readonly Message[],
  progress?: (handled: number) => void,
): Promise<BatchOutcome> {
  if (subscribers.every((s) => !s.batch)) {
    for (let i = 0; i < messages.length; i++) {
      for (const { handler } of subscribers) {
        try {
          // Only a returned promise is awaited: an await per message would cost a microtask each when handlers return nothing.
          const pending = handler(messages[i]!)
          if (pending !== undefined) await pending
        } catch (error) {
          return { handled: i, error }
        }
      }
      progress?.(i + 1)
    }
    return { handled: messages.length }
  }
  let handled = messages.length
  let error: unknown
  for (const subscriber of subscribers) {
    if (handled === 0) break
    const outcome = await runSubscriber(subscriber, messages.slice(0, handled))
    if (outcome.handled < handled) ({ handled, error } = { handled: outcome.handled, error: outcome.error })
  }
  return error === undefined ? { handled } : { handled, error }
}

async function runSubscriber(subscriber: Subscriber, messages: readonly Message[]): Promise<BatchOutcome> {
  if (!subscriber.batch) return handOverBatch([subscriber], messages)
  try {
    const outcome = await subscriber.handler(messages)
    if (outcome === undefined) return { handled: messages.length }
    const handled = Number.isSafeInteger(outcome.handled) ? Math.max(0, Math.min(outcome.handled, messages.length)) : 0
    const error = outcome.error ?? (handled < messages.length ? new Error('the batch handler processed only part of its batch') : undefined)
    return error === undefined ? { handled } : { handled, error }
  } catch (error) {
    return { handled: 0, error }
  }
}
