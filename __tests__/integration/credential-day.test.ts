/**
 * A short, time-compressed day of the identity path (the 60 s version is `npm run soak`): inbound tokens that
 * live 3 s and are replaced every 2 s, variables that rotate, all users calling concurrently. Counted by the
 * servers: no failed call, no request with an expired or superseded credential, no identity mismatch, and about
 * one exchange per (user, assertion).
 */
import { runCredentialDay } from '../support/credentialDay.js';
import { report } from '../support/report.js';

it('10 OBO users with rotating 3 s tokens and 4 users with rotating vars, 5 s: 0 failures, 0 stale or superseded credentials', async () => {
  const r = await runCredentialDay({ oboUsers: 10, varUsers: 4, durationMs: 5_000 });
  report('credential-day', JSON.stringify(r));
  expect(r.failures).toEqual([]);
  expect(r).toMatchObject({ failedCalls: 0, rejectedRequests: 0, supersededRequests: 0, mismatches: 0 });
  expect(r.calls).toBeGreaterThan(r.assertionsUsed);
  expect(r.varRotations).toBeGreaterThan(0);
  // One exchange per (user, assertion); a retried exchange after an IdP hiccup may add a few.
  expect(r.exchanges).toBeGreaterThanOrEqual(r.assertionsUsed);
  expect(r.exchanges).toBeLessThanOrEqual(Math.ceil(r.assertionsUsed * 1.1));
}, 60_000);
