/**
 * Holds what is written to a stream during one event-loop turn, so that it leaves together: one
 * system call on a socket, one batch of frames on a tunnel (a corked Duplex gets its writes in one
 * _writev). Pipelined SMTP replies, a command and the data before it, a reply and the rekey frame
 * after it: written one by one, each was a write(2) of its own and woke the reading process once
 * more. The stream stays corked until the turn's I/O is done (setImmediate), no longer: a next-tick
 * uncork would run before promise continuations and let their writes leave alone.
 */
import type { Writable } from 'node:stream';

export class TurnCork {
  private held = false;

  constructor(readonly stream: Writable) {}

  /** Corks the stream until the end of this event-loop turn, unless it is already. */
  hold(): void {
    if (this.held) return;
    this.held = true;
    this.stream.cork();
    setImmediate(this.release);
  }

  /** Lets what is held leave now: before the stream is destroyed, which drops what a cork holds. */
  readonly release = (): void => {
    if (!this.held) return;
    this.held = false;
    this.stream.uncork();
  };
}
