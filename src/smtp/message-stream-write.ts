/**
 * A write to the stream a message being received goes to, as both ways of receiving one (DATA's
 * data-feed.ts, BDAT's bdat-receiver.ts) make it: the parser reads on once the stream takes more.
 */
import type { Writable } from 'node:stream';

/** Writes `octets` unless the stream was ended or destroyed, and calls `then` once it takes more (or has closed). */
export function writeWithBackpressure(stream: Writable, octets: Buffer, then: () => void): void {
  if (octets.length === 0 || !stream.writable || stream.write(octets) || stream.destroyed) {
    then();
    return;
  }
  // A stream the application destroys never drains, it only closes.
  const go = (): void => {
    stream.off('drain', go);
    stream.off('close', go);
    then();
  };
  stream.on('drain', go);
  stream.on('close', go);
}
