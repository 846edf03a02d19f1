/**
 * One replica of a host, in its own process, for the `replicas` soak (`bench/replicas.soak.js`): an MCPManager,
 * an OBO resolver and an upstream token provider, all three on one Redis coordinator (`mcp-switchboard/redis`).
 * The parent drives it over IPC:
 *
 * - `{ id, op: 'setSession', user, session }` stores a user's upstream session (shared through Redis);
 * - `{ id, op: 'call', user }` calls `whoami` on the OBO-protected server as `user` (whose upstream token is
 *   `upstream.forUser(user)`, refreshed through the provider) and answers `{ ok, subject }` or
 *   `{ ok: false, error: { name, code, retryable, switchboard } }`;
 * - `{ id, op: 'disconnectUser', userId }`, `{ id, op: 'evictions', userId }` (evict events seen for that user),
 *   `{ id, op: 'stats' }` (manager stats and this process's counters), `{ id, op: 'close' }`.
 *
 * Started with `{ redisUrl, keyPrefix, encryptionKey, idp: { issuer, clientId, clientSecret, audience },
 * serverUrl, skewMs }` as JSON in argv[2]. Counts, by looking at each refresh response through a wrapping
 * `fetch`, the refresh grants this process sent and the `invalid_grant` answers it got (the OBO resolver takes no
 * `fetch`; a refused exchange shows as a failed call).
 * @module
 */
import { createOboTokenResolver, createUpstreamTokenProvider, MCPManager, SwitchboardError } from '../../dist/index.js';
import { createRedisCoordinator } from '../../dist/redis/index.js';

const cfg = JSON.parse(process.argv[2]);
const counters = { refreshGrants: 0, exchangeGrants: 0, invalidGrant: 0, otherGrantErrors: 0 };

/** A fetch that counts token-endpoint grants and their `invalid_grant` answers, then hands the response on. */
const countingFetch = async (input, init) => {
  const res = await fetch(input, init);
  const body = typeof init?.body === 'string' ? init.body : init?.body instanceof URLSearchParams ? init.body.toString() : '';
  const grant = /grant_type=([^&]+)/.exec(body)?.[1];
  if (!grant) return res;
  if (grant === 'refresh_token') counters.refreshGrants++;
  else counters.exchangeGrants++;
  if (!res.ok) {
    const text = await res.clone().text();
    if (text.includes('invalid_grant')) counters.invalidGrant++;
    else counters.otherGrantErrors++;
  }
  return res;
};

const coordinator = createRedisCoordinator({ url: cfg.redisUrl, keyPrefix: cfg.keyPrefix, encryptionKey: cfg.encryptionKey });
const upstream = createUpstreamTokenProvider({
  issuer: cfg.idp.issuer,
  clientId: cfg.idp.clientId,
  clientSecret: cfg.idp.clientSecret,
  allowInsecureRequests: true,
  skewMs: cfg.skewMs,
  coordinator,
  fetch: countingFetch,
});
const oboTokenResolver = createOboTokenResolver({
  issuer: cfg.idp.issuer,
  clientId: cfg.idp.clientId,
  clientSecret: cfg.idp.clientSecret,
  allowInsecureRequests: true,
  retryDelayMs: 1,
  timeoutMs: 30_000,
  coordinator,
});
const manager = new MCPManager({
  servers: { graph: { url: cfg.serverUrl, obo: { scopes: `${cfg.idp.audience}/.default` } } },
  oboTokenResolver,
  coordinator,
  circuitBreaker: false,
});
const evictions = new Map();
manager.on('evict', (e) => {
  if (e.userId) evictions.set(e.userId, (evictions.get(e.userId) ?? 0) + 1);
});
manager.on('error', () => {}); // publication failures during a Redis outage are expected; the calls report them

/** A user context per user id, built once (the provider's `forUser` is a function of the user). */
const contexts = new Map();
const contextOf = (id) => {
  let c = contexts.get(id);
  if (!c) {
    c = { id, upstreamToken: upstream.forUser({ id }) };
    contexts.set(id, c);
  }
  return c;
};

const describe = (err) => ({
  name: err?.name,
  code: err?.code,
  retryable: err?.retryable === true,
  switchboard: err instanceof SwitchboardError,
  message: String(err?.message ?? err).slice(0, 200),
});

const ops = {
  async setSession({ user, session }) {
    await upstream.setSession({ id: user }, session);
    return {};
  },
  async call({ user }) {
    try {
      const r = await manager.callTool({ user: contextOf(user), serverName: 'graph', toolName: 'whoami' });
      return { ok: true, subject: r.content[0].text };
    } catch (err) {
      return { ok: false, error: describe(err) };
    }
  },
  async disconnectUser({ userId }) {
    await manager.disconnectUser(userId);
    return {};
  },
  async evictions({ userId }) {
    return { evictions: evictions.get(userId) ?? 0 };
  },
  async stats() {
    return { counters, manager: manager.stats() };
  },
  async close() {
    await manager.close();
    await coordinator.close();
    return {};
  },
};

process.on('message', async (m) => {
  let reply;
  try {
    reply = { id: m.id, ok: true, value: await ops[m.op](m) };
  } catch (err) {
    reply = { id: m.id, ok: false, error: describe(err) };
  }
  if (process.connected) process.send(reply);
  if (m.op === 'close') process.disconnect();
});
process.send({ ready: true });
