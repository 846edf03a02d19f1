/**
 * Bursts are admitted, not timed out: 200 users call one cold server at once while the event loop is also busy.
 * Handshakes queue for admission per origin; the wait does not count against `initTimeoutMs`. Counted on the
 * server: every session opened is closed again by `close()`. (1,000 users in `npm run soak`.)
 */
import { runBurst } from '../support/burst.js';

it('200 users calling one cold server at once on a busy event loop: 0 failed calls, each answered as its own user, no session left', async () => {
  const r = await runBurst(200);
  expect(r.failed).toEqual([]);
  expect(r.wrong).toBe(0);
  expect(r.dropped).toEqual([]);
  expect(r.connections).toBe(200);
  expect(r.sessions.liveSessions).toBe(0);
  expect(r.sessions.sessionsClosed).toBe(r.sessions.sessionsOpened);
}, 120000);
