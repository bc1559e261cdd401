/** GreetedSessions (src/smtp/greeted-sessions.ts): each greeted session reported opened and closed once, no other. */
import { expect, it } from 'vitest';
import { GreetedSessions } from '../../src/smtp/index.js';

it('reports the close of a greeted session once, and none of a connection never greeted', () => {
  const events: string[] = [];
  const sessions = new GreetedSessions((event) => events.push(event));
  sessions.closed('refused');
  sessions.opened('a');
  sessions.closed('a');
  sessions.closed('a');
  expect(events).toEqual(['open', 'close']);
});
