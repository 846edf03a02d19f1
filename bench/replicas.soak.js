/**
 * The `replicas` soak scenario (run by `bench/soak.js`): three replicas of a host, each its own process
 * (`lib/replica.js`: MCPManager + OBO resolver + upstream token provider on one Redis coordinator), sharing a
 * private `redis-server` (ephemeral port, unique key prefix) and, in this process, the test IdP (rotating
 * refresh tokens, user access tokens that live 5 s) and an OBO-protected MCP server that verifies every bearer.
 *
 * 1. steady: USERS users call random replicas concurrently for `seconds` (LOOPS_PER_USER calls in flight per user,
 *    THINK_MS between a loop's calls), after a warm-up call per user and replica. Each call's upstream token comes from
 *    the provider (refreshed with the user's refresh token when within `skewMs` of expiry) and is the OBO
 *    assertion. Checked: 0 `invalid_grant`; refresh grants = one per token lifetime per user (not per replica);
 *    OBO exchanges ≤ 1.1 × distinct assertions used (not × replicas); 0 identity mismatches; 0 failed calls.
 * 2. outage: the same load for `outageSeconds`; Redis is killed (SIGKILL) after a third of it and restarted on
 *    the same port and data 3 s later. Checked: failures only between the kill and RECOVERY_GRACE_MS after the
 *    restart, all `SwitchboardError`s with `retryable: true`; every replica answers again afterwards (no restart);
 *    still 0 `invalid_grant` (no rotated refresh token lost or presented twice).
 * 3. disconnect: `disconnectUser` on replica A closes the user's connections on B and C (their `evict` events).
 *
 * Not here (covered with the in-process memory coordinator by `__tests__/integration/coordinator-wiring.test.ts`):
 * an OAuth flow started on one replica and completed on another.
 * @module
 */
import { fork } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { createBearerVerifier } from '../dist/index.js';
import { startTestIdp, startTestMcpServer } from '../dist/testing/index.js';
import { startRedisServer } from './lib/redisServer.js';

const REPLICA = fileURLToPath(new URL('./lib/replica.js', import.meta.url));
const TOKEN_TTL_SEC = 5;
/**
 * The provider refreshes a token SKEW_MS before the expiry it computed from `expires_in`; the token's own `exp`
 * has whole seconds, so it may end up to 1 s sooner. 2 s leaves a call about a second to get its exchange done
 * on a loaded machine.
 */
const SKEW_MS = 2_000;
/** A user's pause between two calls (users of a chat do not call back to back). */
const THINK_MS = 200;
/**
 * Calls each user has in flight at once (each on a random replica), so that replicas really do meet on one
 * user's session and OBO key at the same moment: the fleet-wide single flight is exercised, not just sequential
 * hand-overs.
 */
const LOOPS_PER_USER = 2;
const OUTAGE_MS = 3_000;
/**
 * After the restart: node-redis reconnects with a back-off of at most `maxReconnectDelayMs` (2 s) and a call
 * already waiting fails after `commandTimeoutMs` (2 s), so a call may still fail up to ~4 s after Redis is back.
 */
const RECOVERY_GRACE_MS = 5_000;

/** A call refused because its upstream token expired between the provider handing it out and the exchange. */
const isExpiredInFlight = (o) => o.error.code === 'obo_exchange_failed' && /expired/.test(o.error.message);

/** Forks one replica and returns an RPC handle. */
async function startReplica(name, cfg) {
  const child = fork(REPLICA, [JSON.stringify(cfg)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: ['--no-warnings'] });
  const pending = new Map();
  let ready;
  const readyP = new Promise((r) => (ready = r));
  child.on('message', (m) => {
    if (m.ready) return ready();
    const p = pending.get(m.id);
    pending.delete(m.id);
    if (m.ok) p.resolve(m.value);
    else p.reject(Object.assign(new Error(`${name}: ${m.error.message}`), m.error));
  });
  child.on('exit', () => {
    for (const p of pending.values()) p.reject(new Error(`${name} exited`));
    pending.clear();
  });
  await readyP;
  let n = 0;
  const rpc = (op, args = {}) =>
    new Promise((resolve, reject) => {
      const id = ++n;
      pending.set(id, { resolve, reject });
      child.send({ id, op, ...args });
    });
  return { name, rpc, child };
}

/**
 * Runs the scenario; failed checks go to `check(false, what)`.
 *
 * @param {{ users: number, seconds: number, outageSeconds: number, check: (ok: boolean, what: string) => void, log?: (line: string) => void }} o
 * @returns {Promise<Record<string, unknown>>} the figures
 * @example
 * ```js
 * await replicasSoak({ users: 200, seconds: 30, outageSeconds: 20, check: (ok, what) => ok || console.log(what) });
 * ```
 */
export async function replicasSoak({ users: USERS, seconds, outageSeconds, check, log = console.log }) {
  const redis = await startRedisServer();
  const idp = await startTestIdp({ exchangedTokenTtlSec: 300, accessTokenTtlSec: TOKEN_TTL_SEC });
  const verifier = createBearerVerifier({ issuer: idp.issuer, audience: idp.downstreamAudience, allowInsecureRequests: true });
  /** Per user, the distinct upstream tokens (OBO assertions, by jti) whose exchanged tokens reached the server. */
  const assertionsOf = new Map();
  let rejectedRequests = 0;
  const server = await startTestMcpServer({
    transport: 'streamable-http',
    verifyBearer: async (authorization) => {
      let b;
      try {
        b = await verifier.verify(authorization);
      } catch (err) {
        rejectedRequests++;
        throw err;
      }
      let set = assertionsOf.get(b.subject);
      if (!set) assertionsOf.set(b.subject, (set = new Set()));
      set.add(String(b.claims.assertion_jti));
      return { subject: b.subject };
    },
  });
  const cfg = {
    redisUrl: redis.url,
    keyPrefix: `soak-replicas-${randomUUID()}:`,
    encryptionKey: randomBytes(32).toString('base64'),
    idp: { issuer: idp.issuer, clientId: idp.client.clientId, clientSecret: idp.client.clientSecret, audience: idp.downstreamAudience },
    serverUrl: server.url,
    skewMs: SKEW_MS,
  };
  const replicas = await Promise.all(['A', 'B', 'C'].map((n) => startReplica(n, cfg)));
  const userIds = Array.from({ length: USERS }, (_, i) => `user-${i}`);
  const pick = () => replicas[Math.floor(Math.random() * replicas.length)];
  const figures = {};

  /** USERS concurrent loops of calls on random replicas until `ms` have passed; returns every call's outcome. */
  const load = async (ms, onTick) => {
    const t0 = Date.now();
    const deadline = t0 + ms;
    const outcomes = [];
    await Promise.all(
      userIds.flatMap((user) => Array.from({ length: LOOPS_PER_USER }, () => user)).map(async (user) => {
        while (Date.now() < deadline) {
          const r = pick();
          const started = Date.now();
          const res = await r.rpc('call', { user });
          outcomes.push({ started, at: Date.now(), user, replica: r.name, ...res });
          await new Promise((s) => setTimeout(s, THINK_MS));
        }
      }),
      onTick?.(t0),
    );
    outcomes.elapsedMs = Date.now() - t0;
    outcomes.maxLatencyMs = outcomes.reduce((m, o) => Math.max(m, o.at - o.started), 0);
    return outcomes;
  };
  const replicaCounters = async () => {
    const all = await Promise.all(replicas.map((r) => r.rpc('stats')));
    return all.reduce((a, s) => ({ refreshGrants: a.refreshGrants + s.counters.refreshGrants, invalidGrant: a.invalidGrant + s.counters.invalidGrant, other: a.other + s.counters.otherGrantErrors }), { refreshGrants: 0, invalidGrant: 0, other: 0 });
  };
  const distinctAssertions = () => [...assertionsOf.values()].reduce((n, s) => n + s.size, 0);

  try {
    // Everyone signs in: one session per user, stored through a replica (Redis shares it with the others).
    const signedInAt = Date.now();
    await Promise.all(
      userIds.map(async (user, i) => {
        const s = await idp.startSession({ sub: user, expiresInSec: TOKEN_TTL_SEC });
        await replicas[i % 3].rpc('setSession', { user, session: s });
      }),
    );
    idp.resetStats();
    // Warm-up: each user opens its connection on each replica (600 connects at once would otherwise be the
    // steady phase's first seconds). Counted with the steady phase.
    await Promise.all(userIds.map(async (user) => { for (const r of replicas) await r.rpc('call', { user }); }));

    // 1. steady
    const steady = await load(seconds * 1000);
    const lived = (Date.now() - signedInAt) / 1000;
    const st = idp.stats();
    const rc = await replicaCounters();
    const failed = steady.filter((o) => !o.ok);
    const mismatches = steady.filter((o) => o.ok && o.subject !== o.user).length;
    const assertions = distinctAssertions();
    // Token rotations = the refreshed upstream tokens that were used: distinct assertions the server saw minus
    // the users' sign-in tokens. A refresh whose token was never used (the phase ended first) is the only
    // difference: at most one per user, and in practice a few. One refresh per replica would triple the grants
    // (or show as invalid_grant). Also bounded by one per token lifetime per user: a user refreshes at most
    // every TTL − skew seconds.
    const perLifetime = TOKEN_TTL_SEC - SKEW_MS / 1000;
    const rotations = assertions - USERS;
    // Observed: 5–13 % more grants than rotations the server saw (more on a busier machine), and as many more
    // grants than exchanges: some refreshed tokens were never presented for exchange at all. Not explained yet
    // (see the report of issue 13); the bound is 25 %. Refreshes per replica would be up to 3 × the rotations,
    // so the bound still tells the two apart, and the hard bound below (one per lifetime per user) stands.
    const refreshSlack = Math.ceil(rotations * 0.25);
    const maxRefreshes = USERS * Math.ceil(lived / perLifetime);
    // Under a load of 2 CPUs a call can wait long enough between getting its token and the exchange that the
    // token's exp (whole seconds) passes: the resolver then refuses to exchange it (obo_exchange_failed,
    // 'expired'). Counted apart; the next call has a refreshed token.
    const expiredInFlight = failed.filter(isExpiredInFlight);
    const otherFailed = failed.filter((o) => !expiredInFlight.includes(o));
    Object.assign(figures, {
      steadyCalls: steady.length,
      steadyFailed: failed.length,
      refreshes: st.refreshes,
      rotations,
      maxRefreshes,
      expiredInFlight: expiredInFlight.length,
      exchanges: st.exchanges,
      assertionsUsed: assertions,
      invalidGrant: rc.invalidGrant,
      mismatches,
      rejectedRequests,
    });
    log(
      `replicas steady: ${USERS} users (${LOOPS_PER_USER} calls in flight each) × 3 replicas for ${(steady.elapsedMs / 1000).toFixed(1)} s: ${steady.length} calls (longest ${steady.maxLatencyMs} ms) (${(steady.length / (steady.elapsedMs / 1000)).toFixed(0)}/s), ${failed.length} failed, ` +
        `${mismatches} identity mismatches, ${rejectedRequests} bearers refused; ${expiredInFlight.length} of them an assertion that expired while the call waited; IdP refresh grants ${st.refreshes} for ${rotations} rotations used (${(st.refreshes / rotations).toFixed(3)} ×) ` +
        `(${(st.refreshes / USERS).toFixed(2)} per user over ${lived.toFixed(1)} s; at most one per ${perLifetime} s lifetime per user: ${maxRefreshes}), invalid_grant ${rc.invalidGrant}, other refresh errors ${rc.other}; ` +
        `OBO exchanges ${st.exchanges} for ${assertions} distinct assertions used (${(st.exchanges / assertions).toFixed(3)} ×)`,
    );
    if (failed.length) log(`replicas steady: first failures ${JSON.stringify(failed.slice(0, 3))}`);
    check(rc.invalidGrant === 0, `steady: ${rc.invalidGrant} invalid_grant answers to refreshes`);
    check(otherFailed.length === 0, `steady: ${otherFailed.length} failed calls, e.g. ${JSON.stringify(otherFailed[0])}`);
    check(expiredInFlight.length <= steady.length * 0.005, `steady: ${expiredInFlight.length} calls whose assertion expired in flight (bound 0.5 % of calls)`);
    check(mismatches === 0, `steady: ${mismatches} calls answered with another user's identity`);
    check(rejectedRequests === 0, `steady: the server refused ${rejectedRequests} bearers`);
    check(st.refreshes >= rotations && st.refreshes <= rotations + refreshSlack, `steady: ${st.refreshes} refresh grants for ${rotations} token rotations used (bound + 25 %: ${refreshSlack})`);
    check(st.refreshes <= maxRefreshes, `steady: ${st.refreshes} refresh grants, more than one per token lifetime per user (${maxRefreshes})`);
    check(st.refreshes === rc.refreshGrants, `steady: the IdP saw ${st.refreshes} refresh grants, the replicas sent ${rc.refreshGrants}`);
    check(st.exchanges >= assertions && st.exchanges <= 1.1 * assertions, `steady: ${st.exchanges} OBO exchanges for ${assertions} assertions used (bound 1.1 ×)`);

    // 2. outage: Redis killed a third of the way in, back OUTAGE_MS later on the same port and data.
    let killedAt = 0;
    let restartedAt = 0;
    const outage = await load(outageSeconds * 1000, async (t0) => {
      await new Promise((r) => setTimeout(r, (outageSeconds * 1000) / 3));
      killedAt = Date.now();
      await redis.kill();
      await new Promise((r) => setTimeout(r, OUTAGE_MS));
      await redis.restart();
      restartedAt = Date.now();
    });
    const oAll = outage.filter((o) => !o.ok);
    // As in the steady phase: assertions that expired while a call waited on a loaded machine are counted apart.
    const oExpired = oAll.filter(isExpiredInFlight);
    const oFailed = oAll.filter((o) => !isExpiredInFlight(o));
    // A failure belongs to the outage when its call was under way during it (ended after the kill, started before
    // the restart + grace): a call that began in the outage may wait on a lock or reconnect and fail a little later.
    const outside = oFailed.filter((o) => o.at < killedAt || o.started > restartedAt + RECOVERY_GRACE_MS);
    const untyped = oFailed.filter((o) => !o.error.switchboard || !o.error.retryable);
    const after = outage.filter((o) => o.at > restartedAt + RECOVERY_GRACE_MS);
    const answeredAfter = new Set(after.filter((o) => o.ok).map((o) => o.replica));
    const lastFailure = oFailed.length ? Math.max(...oFailed.map((o) => o.at)) - restartedAt : 0;
    const firstFailure = oFailed.length ? Math.min(...oFailed.map((o) => o.at)) - killedAt : 0;
    const codes = {};
    for (const o of oFailed) codes[`${o.error.name}/${o.error.code}/${o.error.retryable ? 'retryable' : 'final'}`] = (codes[`${o.error.name}/${o.error.code}/${o.error.retryable ? 'retryable' : 'final'}`] ?? 0) + 1;
    const rc2 = await replicaCounters();
    const mism2 = outage.filter((o) => o.ok && o.subject !== o.user).length;
    Object.assign(figures, { outageCalls: outage.length, outageFailed: oFailed.length, failuresOutside: outside.length, untyped: untyped.length, lastFailureAfterRestartMs: lastFailure, invalidGrantAfterOutage: rc2.invalidGrant });
    log(
      `replicas outage: ${outage.length} calls in ${(outage.elapsedMs / 1000).toFixed(1)} s (longest call ${outage.maxLatencyMs} ms), Redis down ${((restartedAt - killedAt) / 1000).toFixed(1)} s; ${oFailed.length} failed ` +
        `(first ${firstFailure} ms after the kill, last ${lastFailure} ms after the restart), ${outside.length} outside the outage + ${RECOVERY_GRACE_MS} ms, ` +
        `${untyped.length} not typed+retryable, ${oExpired.length} more whose assertion expired in flight; by error ${JSON.stringify(codes)}; ${after.length} calls after recovery (${after.filter((o) => !o.ok).length} failed), ` +
        `replicas answering after it: ${[...answeredAfter].sort().join(',')}; invalid_grant ${rc2.invalidGrant}, mismatches ${mism2}`,
    );
    if (outside.length) log(`replicas outage: failures outside ${JSON.stringify(outside.slice(0, 3))}`);
    check(oExpired.length <= outage.length * 0.005, `outage: ${oExpired.length} calls whose assertion expired in flight (bound 0.5 % of calls)`);
    check(outside.length === 0, `outage: ${outside.length} failures outside the outage (+${RECOVERY_GRACE_MS} ms), e.g. ${JSON.stringify(outside[0])}`);
    check(untyped.length === 0, `outage: ${untyped.length} failures not a retryable SwitchboardError, e.g. ${JSON.stringify(untyped[0])}`);
    check(answeredAfter.size === 3 && after.length > 0, `outage: after recovery only replicas ${[...answeredAfter].join(',')} answered`);
    check(rc2.invalidGrant === 0, `outage: ${rc2.invalidGrant} invalid_grant answers (a rotated refresh token was lost or reused)`);
    check(mism2 === 0, `outage: ${mism2} identity mismatches`);

    // 3. disconnectUser on A reaches B and C.
    const target = userIds[0];
    for (const r of replicas) {
      const res = await r.rpc('call', { user: target });
      check(res.ok, `disconnect: warm-up call on ${r.name} failed: ${JSON.stringify(res.error)}`);
    }
    const before = await Promise.all(replicas.map((r) => r.rpc('evictions', { userId: target })));
    const t0 = Date.now();
    await replicas[0].rpc('disconnectUser', { userId: target });
    let seen = [];
    while (Date.now() - t0 < 2_000) {
      const now = await Promise.all(replicas.map((r) => r.rpc('evictions', { userId: target })));
      seen = now.map((n, i) => n.evictions - before[i].evictions);
      if (seen.every((n) => n >= 1)) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const ms = Date.now() - t0;
    figures.disconnectMs = ms;
    log(`replicas disconnect: disconnectUser on A → evictions of ${target} on A,B,C = ${seen.join(',')} within ${ms} ms`);
    check(seen.every((n) => n >= 1) && ms <= 1_000, `disconnect: evictions on A,B,C ${seen.join(',')} after ${ms} ms (expected ≥ 1 each within 1 s)`);
  } finally {
    await Promise.all(replicas.map((r) => r.rpc('close').catch(() => {})));
    await Promise.all(replicas.map((r) => (r.child.exitCode === null ? new Promise((res) => r.child.once('exit', res)) : undefined)));
    await server.close();
    await idp.close();
    await redis.stop();
  }
  return figures;
}
