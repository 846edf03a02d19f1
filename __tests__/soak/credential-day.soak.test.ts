/**
 * The identity path over a time-compressed day, at the size the issue states: 50 users whose inbound tokens live
 * 3 s and are replaced every 2 s, plus 10 users whose vars rotate, calling concurrently for 60 s. Run by
 * `npm run soak` (and CI), not `npm test`.
 */
import { runCredentialDay } from '../support/credentialDay.js';
import { report } from '../support/report.js';

it('50 OBO users with rotating 3 s tokens and 10 users with rotating vars for 60 s: 0 failures, 0 stale or superseded credentials', async () => {
  const r = await runCredentialDay({ oboUsers: 50, varUsers: 10, durationMs: 60_000 });
  report('credential-day-soak', JSON.stringify(r));
  expect(r.failures).toEqual([]);
  expect(r).toMatchObject({ failedCalls: 0, rejectedRequests: 0, supersededRequests: 0, mismatches: 0 });
  expect(r.exchanges).toBeGreaterThanOrEqual(r.assertionsUsed);
  expect(r.exchanges).toBeLessThanOrEqual(Math.ceil(r.assertionsUsed * 1.1));
}, 180_000);
