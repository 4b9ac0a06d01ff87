import { encodeFrame } from '../core/codec.js'
import type { Epoch, MessageId, PeerId } from '../core/ids.js'
import type { FailureReason, RelayControl } from '../protocol/relay.js'
import type { MailboxEntry, MailboxRecord } from './mailbox/mailbox.js'

/** The `failed` receipt a `notice` entry (or an expired message, `from` its receiver) stands for. */
export function notice(entry: Pick<MailboxEntry, 'from' | 'epoch' | 'seq' | 'reason'>): RelayControl {
  return { t: 'failed', peer: entry.from, epoch: entry.epoch, seq: entry.seq, reason: (entry.reason ?? 'retention') as FailureReason, held: true }
}

/** The skip frame the mailbox keeps in place of a message it gave up on: the receiver moves past the seq. */
export function skipOf(to: string, record: Pick<MailboxRecord, 'from' | 'epoch' | 'seq' | 'id'>): Uint8Array {
  return encodeFrame({
    kind: 'msg',
    from: record.from as PeerId,
    to: to as PeerId,
    epoch: record.epoch as Epoch,
    seq: record.seq,
    floor: 0,
    id: record.id as MessageId,
    contentKind: 'b',
    contents: new Uint8Array(0),
    skip: true,
  })
}
