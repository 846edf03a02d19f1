/**
 * Secrets: the demo scenario (test IdP, an OBO MCP server verifying every bearer, a shared MCP server, many
 * users with refreshable upstream sessions) plus every failure path, run with a capturing logger, a listener
 * on every manager event and a subscriber on every diagnostics channel. No access token, refresh token,
 * client secret, assertion or configured API key may appear in any log line, event payload, error message,
 * error cause, JSON.stringify or util.inspect of an error.
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import { inspect } from 'node:util';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { createBearerVerifier } from '../../src/auth/bearerVerifier.js';
import { MemoryUpstreamSessionStore, type UpstreamSession } from '../../src/auth/tokenStore.js';
import { createUpstreamTokenProvider } from '../../src/auth/upstreamToken.js';
import { SwitchboardError } from '../../src/errors.js';
import { DIAGNOSTICS_CHANNELS, type MCPManagerEventName } from '../../src/events.js';
import { MCPManager } from '../../src/MCPManager.js';
import { startTestIdp, type TestIdp } from '../../src/testing/testIdp.js';
import { startTestMcpServer, type TestMcpServer } from '../../src/testing/testMcpServer.js';
import type { Logger, UserContext } from '../../src/types.js';
import { testIdpClient, testIdpResolver } from '../support/idp.js';
import { report } from '../support/report.js';

const text = (r: CallToolResult) => (r.content[0] as { text: string }).text;

/** Every secret that existed during the run. */
const secrets = new Map<string, string>();
function secret(kind: string, value: string | undefined): void {
  if (value && value.length >= 8) secrets.set(value, kind);
}

/** Everything observable: log lines, event payloads, errors. */
const observed: { where: string; value: unknown }[] = [];

let idp: TestIdp;
let oboServer: TestMcpServer;
let sharedServer: TestMcpServer;

beforeAll(async () => {
  idp = await startTestIdp({ exchangedTokenTtlSec: 300 });
  const verifier = createBearerVerifier({ issuer: idp.issuer, audience: idp.downstreamAudience, allowInsecureRequests: true });
  oboServer = await startTestMcpServer({
    transport: 'streamable-http',
    verifyBearer: async (authorization) => {
      const token = authorization?.replace(/^Bearer /, '');
      secret('exchanged access token', token);
      const b = await verifier.verify(authorization);
      if (b.subject === 'mallory') throw new Error(`rejected ${token}`); // this server refuses one user's tokens
      return { subject: b.subject };
    },
  });
  sharedServer = await startTestMcpServer({ transport: 'sse' });
});

afterAll(async () => {
  await oboServer.close();
  await sharedServer.close();
  await idp.close();
});

it('no secret in any log line, event, error message, cause or serialization across success and failure paths', async () => {
  secret('client secret', idp.client.clientSecret);
  const API_KEY = 'sk-live-static-api-key-0123456789';
  secret('configured API key', API_KEY);

  const logger: Logger = {
    debug: (obj, msg) => observed.push({ where: 'log.debug', value: [obj, msg] }),
    info: (obj, msg) => observed.push({ where: 'log.info', value: [obj, msg] }),
    warn: (obj, msg) => observed.push({ where: 'log.warn', value: [obj, msg] }),
    error: (obj, msg) => observed.push({ where: 'log.error', value: [obj, msg] }),
  };
  const subs = Object.entries(DIAGNOSTICS_CHANNELS).map(([event, name]) => {
    const fn = (msg: unknown) => observed.push({ where: `channel.${event}`, value: msg });
    diagnosticsChannel.subscribe(name, fn);
    return () => diagnosticsChannel.unsubscribe(name, fn);
  });

  // Upstream sessions whose every stored token (refreshed ones included) is a secret.
  const store = new MemoryUpstreamSessionStore();
  const record = (s: UpstreamSession | undefined) => {
    secret('upstream access token', s?.accessToken);
    secret('refresh token', s?.refreshToken);
  };
  const watchedStore = {
    get: (k: string) => store.get(k),
    delete: (k: string) => store.delete(k),
    set: async (k: string, s: UpstreamSession) => (record(s), store.set(k, s)),
    compareAndSet: async (k: string, e: UpstreamSession, n: UpstreamSession | undefined) => (record(n), store.compareAndSet(k, e, n)),
  };
  const upstream = createUpstreamTokenProvider({ ...testIdpClient(idp), store: watchedStore });
  const resolver = testIdpResolver(idp, {
    timeoutMs: 20_000,
    onExchange: (e) => observed.push({ where: 'resolver.onExchange', value: e }),
  });
  const obo = { obo: { scopes: `${idp.downstreamAudience}/.default` } };
  const m = new MCPManager({
    servers: {
      graph: { url: oboServer.url, ...obo, headers: { 'X-Api-Key': API_KEY } },
      shared: { type: 'sse', url: sharedServer.url, headers: { 'X-Api-Key': API_KEY } },
      userAdded: { url: oboServer.url, ...obo, source: 'user' },
      keyed: { url: oboServer.url.replace('/mcp', '/nowhere'), headers: { Authorization: 'Bearer {{var.KEY}}' }, customUserVars: { KEY: {} } },
    },
    oboTokenResolver: resolver,
    logger,
    idleTimeoutMs: 60_000,
  });
  const events: MCPManagerEventName[] = ['connect', 'disconnect', 'evict', 'oboExchange', 'error'];
  for (const e of events) m.on(e, (payload) => observed.push({ where: `event.${e}`, value: payload }));
  const errors: unknown[] = [];
  const attempt = (p: Promise<unknown>) => p.catch((err: unknown) => void errors.push(err));

  try {
    // Users with refreshable sessions; half of them with access tokens that expire at once (refreshed on use).
    const users: UserContext[] = [];
    for (let i = 0; i < 12; i++) {
      const id = i === 11 ? 'mallory' : `user-${i}`;
      // Half of them are stored as already expired, so the first use refreshes (the refreshed token then lives 30 s:
      // an IdP token of 1 s could expire between its refresh and its exchange, a flake, not a finding).
      const session = await idp.startSession({ sub: id, expiresInSec: i % 2 ? 3600 : 30 });
      const u = { id, tenantId: 'contoso' };
      await upstream.setSession(u, { ...session, expiresAt: i % 2 ? session.expiresAt : Date.now() - 1 });
      users.push({ ...u, upstreamToken: upstream.forUser(u) });
    }
    const plainAssertion = await idp.mintAccessToken({ sub: 'plain' });
    secret('assertion', plainAssertion);
    users.push({ id: 'plain', upstreamToken: plainAssertion, vars: { KEY: 'user-var-secret-key-987654' } });
    secret('user variable secret', 'user-var-secret-key-987654');

    // Success paths.
    for (const u of users.slice(0, 11)) expect(text(await m.callTool({ user: u, serverName: 'graph', toolName: 'whoami' }))).toBe(u.id);
    for (const u of users) expect(text(await m.callTool({ user: u, serverName: 'shared', toolName: 'echo', arguments: { text: 'hi' } }))).toBe('hi');
    await m.listTools({ user: users[0]!, serverName: 'graph' });

    // Failure paths.
    idp.failNext(1, { status: 400, error: 'invalid_grant', error_description: `AADSTS50013: assertion ${plainAssertion} is invalid`, grant: 'exchange' });
    await attempt(m.callTool({ user: users.at(-1)!, serverName: 'graph', toolName: 'whoami' })); // invalid_grant echoing the assertion
    idp.failNext(2, { status: 503, error: 'temporarily_unavailable', retryAfterSec: 0, grant: 'exchange' });
    await attempt(m.callTool({ user: { id: 'x1', upstreamToken: plainAssertion }, serverName: 'graph', toolName: 'whoami' }));
    await attempt(m.callTool({ user: users[10]!, serverName: 'graph', toolName: 'whoami' }).then(() => m.disconnectUser(users[10]!.id)));
    await attempt(m.callTool({ user: users[11]!, serverName: 'graph', toolName: 'whoami' })); // server 401 twice → rejected_by_server
    await attempt(m.callTool({ user: users[0]!, serverName: 'userAdded', toolName: 'whoami' })); // untrusted
    await attempt(m.callTool({ user: { id: 'nobody' }, serverName: 'graph', toolName: 'whoami' })); // no upstream token
    await attempt(m.callTool({ user: users.at(-1)!, serverName: 'keyed', toolName: 'echo' })); // 404 from the server
    await attempt(m.callTool({ user: users[0]!, serverName: 'graph', toolName: 'fail', arguments: { mode: 'throw' } }).then((r) => observed.push({ where: 'result', value: r })));
    await attempt(m.callTool({ user: users[0]!, serverName: 'graph', toolName: 'no-such-tool' }));
    await attempt(m.callTool({ user: users[0]!, serverName: 'graph', toolName: 'slow', arguments: { ms: 10_000 }, timeoutMs: 50 }));
    idp.revokeSessions('user-2');
    await m.disconnectUser('user-2');
    await attempt(m.callTool({ user: users[2]!, serverName: 'graph', toolName: 'whoami' })); // refresh refused: reauth_required
    await idp.down();
    await m.disconnectUser('user-4');
    await attempt(m.callTool({ user: users[4]!, serverName: 'graph', toolName: 'whoami' })); // IdP down (refresh and exchange)
    await attempt(m.callTool({ user: { id: 'x2', upstreamToken: plainAssertion }, serverName: 'graph', toolName: 'whoami' }));
    await idp.up();
    await attempt(upstream.getToken({ id: 'user-2', tenantId: 'contoso' }));
    await attempt(m.callTool({ user: users[0]!, serverName: 'missing', toolName: 'x' }));
    await attempt(Promise.resolve().then(() => m.upsertServer('bad', { url: `https://h/${API_KEY}`, obo: { scopes: 'x' }, type: 'stdio' })));
  } finally {
    await m.close();
    subs.forEach((u) => u());
  }
  await attempt(m.callTool({ user: { id: 'late' }, serverName: 'graph', toolName: 'x' })); // manager closed

  // The run exercised what it claims to.
  const codes = errors.map((e) => (e as SwitchboardError).code);
  expect(errors.every((e) => e instanceof SwitchboardError)).toBe(true);
  for (const code of ['obo_exchange_failed', 'obo_rejected_by_server', 'obo_untrusted', 'obo_missing_upstream_token', 'call_timeout', 'unknown_server', 'config_invalid', 'manager_closed']) {
    expect(codes).toContain(code);
  }
  expect(observed.filter((o) => o.where.startsWith('log.')).length).toBeGreaterThan(0);
  for (const e of events.filter((e) => e !== 'error')) expect(observed.some((o) => o.where === `event.${e}`)).toBe(true);
  expect(observed.some((o) => o.where.startsWith('channel.'))).toBe(true);
  expect([...secrets.values()]).toEqual(expect.arrayContaining(['exchanged access token', 'refresh token', 'upstream access token', 'client secret', 'assertion']));

  // Every rendering of everything observed, and of every error with its whole cause chain.
  const renderings: { where: string; text: string }[] = [];
  for (const o of observed) {
    renderings.push({ where: o.where, text: safeStringify(o.value) }, { where: o.where, text: inspect(o.value, { depth: 12 }) });
  }
  for (const [i, err] of errors.entries()) {
    let e: unknown = err;
    for (let depth = 0; e !== undefined && depth < 10; depth++) {
      const where = `error[${i}]${'.cause'.repeat(depth)}`;
      renderings.push({ where: `${where}.message`, text: String((e as Error)?.message) });
      renderings.push({ where: `${where} JSON`, text: safeStringify(e) });
      renderings.push({ where: `${where} inspect`, text: inspect(e, { depth: 12 }) });
      e = (e as { cause?: unknown })?.cause;
    }
  }
  const scan = (list: { where: string; text: string }[]) => {
    const found: string[] = [];
    for (const r of list) for (const [value, kind] of secrets) if (r.text.includes(value)) found.push(`${kind} in ${r.where}`);
    return found;
  };
  // Positive control: the scan does see a secret where there is one.
  const exchanged = [...secrets].find(([, kind]) => kind === 'exchanged access token')![0];
  expect(scan([{ where: 'control', text: inspect({ headers: { authorization: `Bearer ${exchanged}` } }) }])).toHaveLength(1);
  const leaks = scan(renderings);
  const byKind = new Map<string, number>();
  for (const kind of secrets.values()) byKind.set(kind, (byKind.get(kind) ?? 0) + 1);
  report(
    'secrets',
    `${secrets.size} secrets checked (${[...byKind].map(([k, n]) => `${n} ${k}`).join(', ')}) against ${renderings.length} renderings ` +
      `of ${observed.filter((o) => o.where.startsWith('log.')).length} log lines, ${observed.filter((o) => !o.where.startsWith('log.')).length} event payloads ` +
      `and ${errors.length} errors (codes: ${[...new Set(codes)].join(', ')}); leaks: ${leaks.length}`,
  );
  expect(leaks).toEqual([]);
});

function safeStringify(v: unknown): string {
  const seen = new WeakSet<object>();
  return JSON.stringify(v, (_k, value: unknown) => {
    if (value && typeof value === 'object') {
      if (seen.has(value)) return '[circular]';
      seen.add(value);
    }
    return typeof value === 'bigint' ? String(value) : value;
  }) ?? String(v);
}
