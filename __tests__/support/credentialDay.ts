/**
 * A time-compressed day of the identity path, on the real test IdP and servers that check every request: users
 * whose inbound tokens live 3 s and are replaced every 2 s, and users whose `vars` rotate every 2 s, all calling
 * concurrently through one MCPManager. What a request carried is judged by the server that received it.
 */
import { decodeJwt } from 'jose';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { createBearerVerifier } from '../../src/auth/bearerVerifier.js';
import { MCPManager } from '../../src/MCPManager.js';
import { startTestIdp } from '../../src/testing/testIdp.js';
import { startTestMcpServer } from '../../src/testing/testMcpServer.js';
import type { UserContext } from '../../src/types.js';
import { testIdpResolver } from './idp.js';

/** What the servers counted. */
export interface CredentialDayResult {
  calls: number;
  failedCalls: number;
  failures: string[];
  /** Requests a server refused (an expired, forged or wrong-audience bearer). */
  rejectedRequests: number;
  /** Requests carrying a credential older than one the same user already presented (superseded). */
  supersededRequests: number;
  /** Requests whose verified subject or variable owner was not the caller. */
  mismatches: number;
  exchanges: number;
  /** Distinct (user, assertion) pairs the OBO users called with. */
  assertionsUsed: number;
  varRotations: number;
}

const text = (r: CallToolResult) => (r.content[0] as { text: string }).text;

/**
 * Runs the day for `durationMs` of wall time.
 *
 * @example
 * ```ts
 * const r = await runCredentialDay({ oboUsers: 50, varUsers: 10, durationMs: 60_000 });
 * expect(r.failedCalls).toBe(0);
 * ```
 */
export async function runCredentialDay(o: { oboUsers: number; varUsers: number; durationMs: number }): Promise<CredentialDayResult> {
  const idp = await startTestIdp({ exchangedTokenTtlSec: 300 });
  const verifier = createBearerVerifier({ issuer: idp.issuer, audience: idp.downstreamAudience, allowInsecureRequests: true });
  // Server side: per user, the generation of the newest credential presented so far.
  const generationOfJti = new Map<string, { user: string; gen: number }>();
  const newestObo = new Map<string, number>();
  const newestVar = new Map<string, number>();
  let rejectedRequests = 0;
  let supersededRequests = 0;
  let mismatches = 0;

  const oboServer = await startTestMcpServer({
    transport: 'streamable-http',
    verifyBearer: async (authorization) => {
      let b;
      try {
        b = await verifier.verify(authorization);
      } catch (err) {
        rejectedRequests++;
        throw err;
      }
      const origin = generationOfJti.get(String(b.claims.assertion_jti));
      if (!origin || origin.user !== b.subject) mismatches++;
      else {
        const newest = newestObo.get(b.subject) ?? -1;
        if (origin.gen < newest) supersededRequests++;
        else newestObo.set(b.subject, origin.gen);
      }
      return { subject: b.subject };
    },
  });
  const varServer = await startTestMcpServer({
    transport: 'streamable-http',
    verifyBearer: async (authorization) => {
      const m = /^Bearer (.+):(\d+)$/.exec(authorization ?? '');
      if (!m) {
        rejectedRequests++;
        throw new Error('no key');
      }
      const [, user, gen] = m as unknown as [string, string, string];
      const newest = newestVar.get(user) ?? -1;
      if (Number(gen) < newest) supersededRequests++;
      else newestVar.set(user, Number(gen));
      return { subject: user };
    },
  });
  const manager = new MCPManager({
    servers: {
      graph: { url: oboServer.url, obo: { scopes: `${idp.downstreamAudience}/.default` } },
      keyed: { url: varServer.url, headers: { Authorization: 'Bearer {{var.KEY}}' }, customUserVars: { KEY: { title: 'API key' } } },
    },
    oboTokenResolver: testIdpResolver(idp, { timeoutMs: 60_000 }),
    circuitBreaker: false,
  });

  // The day starts with everyone signed in: each user's connection is opened with a sign-in token that lives a
  // minute. (Opening 60 connections and making 50 exchanges at once on 2 cores takes longer than a 3 s token
  // lives; a call whose own assertion expires while it waits fails closed, as it must.)
  const warmFailures: string[] = [];
  const signInTokens = new Map<string, string>();
  await Promise.all([
    ...Array.from({ length: o.oboUsers }, async (_, i) => {
      const sub = `obo-${i}`;
      const token = await idp.mintAccessToken({ sub, expiresInSec: 60 });
      signInTokens.set(sub, token);
      generationOfJti.set(String(decodeJwt(token).jti), { user: sub, gen: -1 });
      await manager.callTool({ user: { id: sub, upstreamToken: token }, serverName: 'graph', toolName: 'whoami' }).catch((e: { code?: string }) => warmFailures.push(`${sub}: ${e.code}`));
    }),
    ...Array.from({ length: o.varUsers }, (_, i) =>
      manager.callTool({ user: { id: `var-${i}`, vars: { KEY: `var-${i}:0` } }, serverName: 'keyed', toolName: 'whoami' }).catch((e: { code?: string }) => warmFailures.push(`var-${i}: ${e.code}`)),
    ),
  ]);
  const warmExchanges = idp.stats().exchanges;
  const deadline = Date.now() + o.durationMs;
  let calls = 0;
  const failures: string[] = [];
  let varRotations = 0;
  const assertions = new Set<string>();

  const oboUser = async (i: number) => {
    const sub = `obo-${i}`;
    let gen = 0;
    const mint = async () => {
      const token = await idp.mintAccessToken({ sub, expiresInSec: 3 });
      const claims = decodeJwt(token);
      generationOfJti.set(String(claims.jti), { user: sub, gen: gen++ });
      // Replaced every 2 s, and always 2 s before it expires (`exp` has whole-second precision, so a "3 s" token
      // may live only 2 s), as a client refreshing ahead of expiry does: a call has 2 s to get its exchange done.
      return { token, replaceAt: Math.min(Date.now() + 2_000, (claims.exp ?? 0) * 1000 - 2_000) };
    };
    // Users keep their sign-in token until their first rotation, spread over the first 2 s: real users do not
    // all rotate in the same instant, and 50 exchanges at once would outlast a 3 s token on 2 shared cores.
    let current = { token: signInTokens.get(sub)!, replaceAt: Date.now() + Math.floor((2_000 * i) / o.oboUsers) };
    while (Date.now() < deadline) {
      if (Date.now() >= current.replaceAt) current = await mint();
      // As the README does: the caller's context is built per inbound request, the assertion a string.
      const user: UserContext = { id: sub, upstreamToken: current.token };
      if (current.token !== signInTokens.get(sub)) assertions.add(current.token); // the sign-in token was exchanged before the day
      calls++;
      try {
        const r = await manager.callTool({ user, serverName: 'graph', toolName: 'whoami' });
        if (text(r) !== sub) mismatches++;
      } catch (err) {
        const e = err as { code?: string; cause?: unknown };
        failures.push(`${sub}: ${e.code ?? String(err)} ${JSON.stringify(e.cause ?? null)} at +${(Date.now() - (deadline - o.durationMs)).toFixed(0)} ms, token exp in ${(((decodeJwt(current.token).exp ?? 0) * 1000 - Date.now()) / 1000).toFixed(2)} s`);
      }
    }
  };
  const varUser = async (i: number) => {
    const id = `var-${i}`;
    let gen = 0;
    let rotateAt = Date.now() + 2_000;
    while (Date.now() < deadline) {
      if (Date.now() >= rotateAt) {
        gen++;
        varRotations++;
        rotateAt = Date.now() + 2_000;
      }
      calls++;
      try {
        const r = await manager.callTool({ user: { id, vars: { KEY: `${id}:${gen}` } }, serverName: 'keyed', toolName: 'whoami' });
        if (text(r) !== id) mismatches++;
      } catch (err) {
        failures.push(`${id}: ${(err as { code?: string }).code ?? String(err)}`);
      }
    }
  };

  try {
    await Promise.all([...Array.from({ length: o.oboUsers }, (_, i) => oboUser(i)), ...Array.from({ length: o.varUsers }, (_, i) => varUser(i))]);
    return {
      calls,
      failedCalls: warmFailures.length + failures.length,
      failures: [...warmFailures, ...failures].slice(0, 10),
      rejectedRequests,
      supersededRequests,
      mismatches,
      exchanges: idp.stats().exchanges - warmExchanges,
      assertionsUsed: assertions.size,
      varRotations,
    };
  } finally {
    await manager.close();
    await Promise.all([oboServer.close(), varServer.close()]);
    await idp.close();
  }
}
