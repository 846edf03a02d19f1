/**
 * Bursts are admitted, not timed out: 1,000 users call one cold server at once while the event loop is also busy.
 * Handshakes queue for admission per origin; the wait does not count against `initTimeoutMs`. Counted on the
 * server: every session opened is closed again by `close()`. Run by `npm run soak` (and CI).
 */
import { runBurst } from '../support/burst.js';

it('1,000 users calling one cold server at once on a busy event loop: 0 failed calls, each answered as its own user, no session left', async () => {
  const r = await runBurst(1_000);
  expect(r.failed).toEqual([]);
  expect(r.wrong).toBe(0);
  expect(r.dropped).toEqual([]);
  expect(r.connections).toBe(1_000);
  expect(r.sessions.liveSessions).toBe(0);
  expect(r.sessions.sessionsClosed).toBe(r.sessions.sessionsOpened);
}, 180000);
