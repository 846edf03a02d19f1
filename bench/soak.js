/**
 * Longer soak than the jest hardening suite can afford, over the built package (`npm run soak` builds first):
 *
 * 1. Isolation: USERS users × 10 concurrent calls each against a loopback MCP server that verifies every
 *    request's bearer; each user's OBO token is minted by a local ES256 signer (a light resolver, so the load
 *    is on the pools, the per-request auth path and the server's verification). Counts calls answered with
 *    another user's identity (must be 0). Users connect in waves; then all of them call again on warm
 *    connections, in waves too (an in-process server cannot accept tens of thousands of sockets at once).
 * 2. Leaks: CYCLES connect → call → evict cycles over streamable HTTP; heap after GC before/after and the
 *    server's sessions opened/closed.
 *
 * Usage: `npm run soak` or `node --expose-gc bench/soak.js [--users 1000] [--cycles 5000] [--wave 50]`.
 * Exit status 1 when a mismatch, an unclosed session or a heap growth over 5 MB is seen.
 * @module
 */
import { parseArgs } from 'node:util';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { createBearerVerifier, HttpClient, MCPConnectionFactory, MCPManager } from '../dist/index.js';
import { startTestMcpServer } from '../dist/testing/index.js';

const { values } = parseArgs({
  options: { users: { type: 'string', default: '1000' }, cycles: { type: 'string', default: '5000' }, wave: { type: 'string', default: '50' } },
});
const USERS = Number(values.users);
const CYCLES = Number(values.cycles);
const WAVE = Number(values.wave);
const MB = 1024 * 1024;
const text = (r) => r.content[0].text;
let failed = false;

async function settledHeap() {
  const gc = globalThis.gc;
  if (!gc) throw new Error('run with node --expose-gc');
  for (let i = 0; i < 4; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
  return process.memoryUsage().heapUsed;
}

async function isolation() {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'local', alg: 'ES256' };
  const ISS = 'https://local-signer.test';
  const verifier = createBearerVerifier({
    issuer: ISS,
    audience: 'api://graph',
    jwksUri: `${ISS}/jwks`,
    fetch: async () => new Response(JSON.stringify({ keys: [jwk] }), { headers: { 'content-type': 'application/json' } }),
  });
  const server = await startTestMcpServer({
    transport: 'streamable-http',
    verifyBearer: async (authorization) => ({ subject: (await verifier.verify(authorization)).subject }),
  });
  let minted = 0;
  const cache = new Map();
  const oboTokenResolver = (req) => {
    let p = cache.get(req.user.id);
    if (!p || req.forceRefresh) {
      minted++;
      const exp = Math.floor(Date.now() / 1000) + 600;
      p = new SignJWT({ sub: req.user.id })
        .setProtectedHeader({ alg: 'ES256', kid: 'local' })
        .setIssuer(ISS)
        .setAudience('api://graph')
        .setExpirationTime(exp)
        .sign(privateKey)
        .then((accessToken) => ({ accessToken, expiresAt: exp * 1000 }));
      cache.set(req.user.id, p);
    }
    return p;
  };
  const m = new MCPManager({ servers: { graph: { url: server.url, obo: { scopes: 'api://graph/.default' } } }, oboTokenResolver, circuitBreaker: false });
  const users = Array.from({ length: USERS }, (_, i) => ({ id: `user-${i}`, upstreamToken: `assertion-of-user-${i}` }));
  const round = async (label) => {
    const started = performance.now();
    let calls = 0;
    let mismatches = 0;
    for (let i = 0; i < users.length; i += WAVE) {
      const results = await Promise.all(
        users.slice(i, i + WAVE).flatMap((user) => Array.from({ length: 10 }, () => m.callTool({ user, serverName: 'graph', toolName: 'whoami' }).then((r) => [user, text(r)]))),
      );
      calls += results.length;
      mismatches += results.filter(([user, got]) => got !== user.id).length;
    }
    console.log(`isolation ${label}: ${USERS} users × 10 concurrent calls = ${calls} calls in ${((performance.now() - started) / 1000).toFixed(1)} s; mismatches ${mismatches}`);
    if (mismatches) failed = true;
  };
  try {
    await round('cold');
    await round('warm');
    console.log(`isolation: tokens minted ${minted}, initializes ${server.stats().initializeCount}, open user connections ${m.stats().userConnections}`);
  } finally {
    await m.close();
    await server.close();
  }
}

async function leaks() {
  const server = await startTestMcpServer({ transport: 'streamable-http' });
  const httpClient = new HttpClient();
  const factory = new MCPConnectionFactory({ httpClient });
  const m = new MCPManager({ servers: { web: { url: server.url, headers: { 'X-User': '{{user.id}}' } } }, connectionFactory: factory });
  const cycle = async (i) => {
    const user = { id: `h${i}` };
    const r = await m.callTool({ user, serverName: 'web', toolName: 'echo', arguments: { text: user.id } });
    if (text(r) !== user.id) throw new Error('cross-talk');
    await m.disconnectUser(user.id);
  };
  const run = async (n, base) => {
    let next = 0;
    await Promise.all(Array.from({ length: 10 }, async () => {
      while (next < n) await cycle(base + next++);
    }));
  };
  try {
    await run(200, 10 * CYCLES);
    server.requests.length = 0;
    const before = await settledHeap();
    const started = performance.now();
    await run(CYCLES, 0);
    const st = await server.waitForStats((s) => s.liveSessions === 0);
    server.requests.length = 0;
    const after = await settledHeap();
    const delta = (after - before) / MB;
    console.log(
      `leaks: ${CYCLES} streamable HTTP cycles in ${((performance.now() - started) / 1000).toFixed(1)} s; heap after GC ${(before / MB).toFixed(2)} → ${(after / MB).toFixed(2)} MB (Δ ${delta.toFixed(2)} MB); ` +
        `sessions opened ${st.sessionsOpened}, closed ${st.sessionsClosed}, live ${st.liveSessions}`,
    );
    if (Math.abs(delta) >= 5 || st.sessionsOpened !== st.sessionsClosed) failed = true;
  } finally {
    await m.close();
    await factory.close();
    await httpClient.close();
    await server.close();
  }
}

await isolation();
await leaks();
process.exitCode = failed ? 1 : 0;
