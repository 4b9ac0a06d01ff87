/**
 * Sends `count` messages in turns of `perTurn`, as an app that queues a burst does: each turn's sends are called back
 * to back and awaited together before the next turn (bench:core and bench:core-ab's engine runs).
 */
export async function sendInTurns(count: number, perTurn: number, send: (index: number) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < count; i += perTurn) {
    const turn: Array<Promise<unknown>> = []
    for (let j = i; j < Math.min(count, i + perTurn); j++) turn.push(send(j))
    await Promise.all(turn)
  }
}
