/**
 * Benchmark 4: many users, each with a per-user bearer that rotates every few calls, calling `whoami` on one
 * streamable HTTP server that verifies every request's bearer (`createBearerVerifier` against a test IdP).
 *
 * - ours: `MCPManager` with On-Behalf-Of: the user's upstream token rotates; `createOboTokenResolver`
 *   exchanges it at the real test IdP (`startTestIdp`) and the connection puts a fresh bearer on every request.
 * - langchain: `@langchain/mcp-adapters` `MultiServerMCPClient` with its per-call header hook: `beforeToolCall`
 *   returns `{ headers: { Authorization } }` from the call's `configurable` (what its README suggests).
 *   In this version a header change makes it `fork()` the client: a new SDK client, transport and session per
 *   call, kept until `close()`.
 * - raw SDK: one `Client` + `StreamableHTTPClientTransport` per user, with a custom `fetch` that sets the
 *   user's current bearer on each request. The bearer is got as ours gets it: the user's upstream token rotates,
 *   and each new one is exchanged once at the same IdP with openid-client (jwt-bearer OBO), cached by assertion.
 *   So both make the same exchanges (one per user and rotation), and the ratio is our own overhead.
 *
 * The server (and IdP) run in a child process, a fresh but identical one per variant. Users run concurrently,
 * each making its calls in sequence; a cold phase (first calls: connects, exchanges) is followed by warm phases
 * (more calls, more rotations) whose median calls/s is the headline. Every answer is checked: the subject the server
 * verified must be the caller's. Connections opened are the server's sessions; heap is `heapUsed` after GC,
 * after the cold phase with everything still open, minus the same before the variant was set up. The warm
 * phases of the three variants are interleaved.
 * @module
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { MultiServerMCPClient } from '@langchain/mcp-adapters';
import * as oidc from 'openid-client';
import { MCPManager, createOboTokenResolver } from '../dist/index.js';
import { fmt, median, nowNs, settledHeapUsed } from './lib/measure.js';
import { row, runIfMain } from './lib/harness.js';
import { startServerProcess } from './lib/serverProcess.js';

const USERS = 100;
/** Calls per user in each phase (one cold, SETTLE uncounted warm ones, then WARM_PHASES measured ones). */
const CALLS = 4;
/** Warm phases: 5, not 3, since on a busy 2-core machine one phase of 400 calls moves by ±30 %. */
const WARM_PHASES = 6;
/**
 * Warm phases run by every variant before the measured ones and not counted: client CPU per call still fell by
 * 30–40 % from the first to the fifth warm phase (the JIT is still at work after 400 calls), more so for the
 * variant with more code, so early phases measured warm-up more than the steady state.
 */
const SETTLE = 2;
/** The user's bearer changes every this many calls. */
const ROTATE_EVERY = 4;
const TOKENS_PER_USER = ((1 + SETTLE + WARM_PHASES) * CALLS) / ROTATE_EVERY;

const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

const userId = (i) => `user-${String(i).padStart(3, '0')}`;

/** Text of a tool result, from an SDK result or a LangChain tool output. */
function textOf(result) {
  if (typeof result === 'string') return result;
  const content = Array.isArray(result) ? result : result?.content;
  const first = Array.isArray(content) ? content[0] : undefined;
  return typeof first === 'string' ? first : first?.text;
}

/** Tokens for every user and rotation, minted by the child's IdP before anything is timed. */
async function mintAll(srv, audience, users) {
  const specs = [];
  for (let u = 0; u < users; u++) for (let k = 0; k < TOKENS_PER_USER; k++) specs.push({ sub: userId(u), audience });
  const flat = await srv.mint(specs);
  return Array.from({ length: users }, (_, u) => flat.slice(u * TOKENS_PER_USER, (u + 1) * TOKENS_PER_USER));
}

/**
 * One phase: every user concurrently makes CALLS calls in sequence; `setToken(u, k)` rotates the bearer.
 * Returns calls/s and the failures.
 */
async function phase(variant, phaseIndex, users) {
  let errors = 0;
  let mismatches = 0;
  let sample;
  const t0 = nowNs();
  const cpu0 = process.cpuUsage();
  await Promise.all(
    Array.from({ length: users }, async (_, u) => {
      for (let c = 0; c < CALLS; c++) {
        const n = phaseIndex * CALLS + c;
        if (n % ROTATE_EVERY === 0) variant.setToken(u, n / ROTATE_EVERY);
        try {
          const who = textOf(await variant.call(u));
          if (who !== userId(u)) mismatches++;
        } catch (err) {
          errors++;
          sample ??= String(err?.message ?? err).slice(0, 300);
        }
      }
    }),
  );
  const seconds = (nowNs() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  return { callsPerSec: (users * CALLS) / seconds, cpuMicrosPerCall: (cpu.user + cpu.system) / (users * CALLS), seconds, errors, mismatches, sample };
}

/** The three ways of making the calls. Each returns { setToken, call, close }. */
const VARIANTS = {
  async ours(srv, n) {
    const assertions = await mintAll(srv, 'runtime', n);
    const current = assertions.map((a) => a[0]);
    const users = Array.from({ length: n }, (_, u) => ({ id: userId(u), upstreamToken: async () => current[u] }));
    const { issuer, client, downstreamAudience } = srv.info;
    const manager = new MCPManager({
      servers: { svc: { url: srv.url, obo: { scopes: `${downstreamAudience}/.default` } } },
      oboTokenResolver: createOboTokenResolver({ issuer, clientId: client.clientId, clientSecret: client.clientSecret, allowInsecureRequests: true }),
    });
    return {
      setToken: (u, k) => void (current[u] = assertions[u][k]),
      call: (u) => manager.callTool({ user: users[u], serverName: 'svc', toolName: 'whoami' }),
      close: () => manager.close(),
    };
  },

  async langchain(srv, n) {
    const bearers = await mintAll(srv, 'downstream', n);
    // The client's own (base) connection, used to list the tools, needs a valid bearer too.
    const [baseToken] = await srv.mint([{ sub: 'langchain-tool-loader', audience: 'downstream' }]);
    const current = bearers.map((b) => b[0]);
    const client = new MultiServerMCPClient({
      mcpServers: { svc: { transport: 'http', url: srv.url, headers: { Authorization: `Bearer ${baseToken}` }, automaticSSEFallback: false } },
      useStandardContentBlocks: true,
      // The per-call header hook: the bearer of the user this call is for.
      beforeToolCall: (_call, _state, config) => ({ headers: { Authorization: `Bearer ${config?.configurable?.bearer}` } }),
    });
    const tools = await client.getTools();
    const whoami = tools.find((t) => t.name === 'whoami');
    if (!whoami) throw new Error('langchain client did not load whoami');
    return {
      setToken: (u, k) => void (current[u] = bearers[u][k]),
      call: (u) => whoami.invoke({}, { configurable: { bearer: current[u] } }),
      close: () => client.close(),
    };
  },

  async rawSdk(srv, n) {
    // The same work as ours: each user's upstream token (the OBO assertion) rotates, and each new assertion is
    // exchanged once at the IdP with openid-client (jwt-bearer On-Behalf-Of, the grant and client
    // authentication ours uses), the downstream token cached by assertion; the custom fetch puts it on every
    // request.
    const assertions = await mintAll(srv, 'runtime', n);
    const current = assertions.map((a) => a[0]);
    const exchange = createRawExchanger(srv.info);
    const clients = new Map();
    const connect = async (u) => {
      const transport = new StreamableHTTPClientTransport(new URL(srv.url), {
        fetch: async (url, init) => {
          const headers = new Headers(init?.headers);
          headers.set('Authorization', `Bearer ${await exchange(current[u])}`);
          return fetch(url, { ...init, headers });
        },
      });
      const client = new Client({ name: 'raw-sdk-baseline', version: '1.0.0' });
      await client.connect(transport);
      return { client, transport };
    };
    return {
      setToken: (u, k) => void (current[u] = assertions[u][k]),
      async call(u) {
        // One client per user, opened on the user's first call like the others.
        let entry = clients.get(u);
        if (!entry) clients.set(u, (entry = connect(u)));
        return (await entry).client.callTool({ name: 'whoami' });
      },
      close: () =>
        Promise.all(
          [...clients.values()].map(async (p) => {
            const { client, transport } = await p;
            await transport.terminateSession().catch(() => {});
            await client.close();
          }),
        ),
    };
  },
};

/**
 * The raw baseline's On-Behalf-Of, written as a user of openid-client would: discovery once, then one jwt-bearer
 * exchange per assertion (client_secret_post, the downstream `/.default` scope), its token cached by assertion
 * (a failed exchange is forgotten, so the next request retries).
 */
function createRawExchanger({ issuer, client, downstreamAudience }) {
  let config;
  const byAssertion = new Map();
  const params = (assertion) => ({ assertion, requested_token_use: 'on_behalf_of', scope: `${downstreamAudience}/.default` });
  return (assertion) => {
    let token = byAssertion.get(assertion);
    if (!token) {
      config ??= oidc.discovery(new URL(issuer), client.clientId, client.clientSecret, oidc.ClientSecretPost(client.clientSecret), {
        execute: [oidc.allowInsecureRequests],
      });
      token = config.then((c) => oidc.genericGrantRequest(c, JWT_BEARER, params(assertion))).then((res) => res.access_token);
      byAssertion.set(assertion, token);
      token.catch(() => byAssertion.delete(assertion));
    }
    return token;
  };
}

const NAMES = ['ours', 'langchain', 'rawSdk'];
/** The orders of the measured rounds: all 6 permutations of the 3 variants. */
const ORDERS = [
  [0, 1, 2],
  [1, 2, 0],
  [2, 0, 1],
  [0, 2, 1],
  [2, 1, 0],
  [1, 0, 2],
];

/**
 * Sets one variant up on its own server child: a warm-up with a few users (so code compiled on first use is not
 * counted as state), then the measured users' cold phase; heap is read around setup + cold phase.
 */
async function setUp(name, srv) {
  const warmup = await VARIANTS[name](srv, 3);
  await phase(warmup, 0, 3);
  await warmup.close();
  const s0 = await srv.stats();
  const heap0 = await settledHeapUsed();
  const variant = await VARIANTS[name](srv, USERS);
  const cold = await phase(variant, 0, USERS);
  const heapBytes = (await settledHeapUsed()) - heap0;
  return { name, srv, variant, s0, cold, heapBytes, warms: [] };
}

async function summarize(v, log) {
  const { cold, warms, s0 } = v;
  const s = await v.srv.stats();
  const warm = {
    callsPerSec: median(warms.map((p) => p.callsPerSec)),
    errors: warms.reduce((n, p) => n + p.errors, 0),
    mismatches: warms.reduce((n, p) => n + p.mismatches, 0),
    sample: warms.find((p) => p.sample)?.sample,
  };
  const result = {
    phases: warms,
    cold,
    warm,
    heapBytes: v.heapBytes,
    sessionsAfterCold: v.sessionsAfterCold,
    sessions: s.sessionsOpened - s0.sessionsOpened,
    liveSessions: s.liveSessions - s0.liveSessions,
    idpExchanges: s.idpExchanges - s0.idpExchanges,
    rejected401: s.rejected401 - s0.rejected401,
    posts: s.posts - s0.posts,
    gets: s.gets - s0.gets,
    errors: cold.errors + warm.errors,
    mismatches: cold.mismatches + warm.mismatches,
  };
  log(
    `${v.name.padEnd(9)} warm ${fmt(warm.callsPerSec)} calls/s (median of ${WARM_PHASES} phases after ${SETTLE} uncounted), cold ${fmt(cold.callsPerSec)} calls/s; ` +
      `${result.sessions} sessions opened (${result.liveSessions} open at the end), ${result.idpExchanges} IdP exchanges, ` +
      `${result.rejected401} 401s, ${result.posts} POSTs, ${result.gets} GETs, heap +${fmt(v.heapBytes / 2 ** 20)} MB after the cold phase; errors ${result.errors}, wrong subject ${result.mismatches}`,
  );
  log(
    `  measured phases: ${warms.map((p) => fmt(p.callsPerSec)).join(', ')} calls/s; client CPU per call ${warms.map((p) => fmt(p.cpuMicrosPerCall)).join(', ')} µs ` +
      `(median ${fmt(median(warms.map((p) => p.cpuMicrosPerCall)))} µs)`,
  );
  if (cold.sample || warm.sample) log(`  first error: ${cold.sample ?? warm.sample}`);
  return result;
}

/**
 * Every variant on its own identical server child, set up one after the other (cold phase, heap), then the warm
 * phases interleaved across variants, in a rotating order, so that a busy machine does not favour one of them.
 */
async function runAll(log) {
  const servers = await Promise.all(NAMES.map(() => startServerProcess({ idp: true })));
  const set = [];
  try {
    for (let i = 0; i < NAMES.length; i++) {
      const v = await setUp(NAMES[i], servers[i]);
      v.sessionsAfterCold = (await v.srv.stats()).sessionsOpened - v.s0.sessionsOpened;
      set.push(v);
    }
    for (let w = 1; w <= SETTLE; w++) for (const v of set) await phase(v.variant, w, USERS);
    // Each of the 6 orders of the 3 variants once: every variant runs first, second and third equally often, and
    // after each other variant equally often. (A rotation kept one fixed sequence, so one variant always ran right
    // after the LangChain phase and another always after the raw SDK's, whatever each left behind.)
    for (let w = 1; w <= WARM_PHASES; w++) {
      const order = ORDERS[(w - 1) % ORDERS.length].map((i) => set[i]);
      for (const v of order) v.warms.push(await phase(v.variant, SETTLE + w, USERS));
    }
    const results = {};
    for (const v of set) results[v.name] = await summarize(v, log);
    return results;
  } finally {
    for (const v of set) await v.variant.close().catch((err) => log(`${v.name}: close failed: ${err?.message ?? err}`));
    await Promise.all(servers.map((srv) => srv.close()));
  }
}

/**
 * Runs benchmark 4 and returns its rows.
 *
 * @param {(line: string) => void} log
 * @returns {Promise<import('./lib/harness.js').ResultRow[]>}
 * @example
 * ```js
 * const rows = await run(console.log);
 * ```
 */
async function run(log) {
  log(
    `${USERS} users × ${CALLS} calls cold + ${SETTLE} uncounted + ${WARM_PHASES} measured × ${CALLS} calls warm, bearer rotated every ${ROTATE_EVERY} calls; ` +
      `langchain per-user mechanism: beforeToolCall returning { headers: { Authorization } } (forks a client per call)`,
  );
  const { ours, langchain, rawSdk } = await runAll(log);
  // The same round's phases side by side (the machine's state moves between rounds more than within one).
  const paired = ours.phases.map((p, i) => p.callsPerSec / rawSdk.phases[i].callsPerSec);
  log(`  ours / raw SDK per measured round: ${paired.map((r) => r.toFixed(2)).join(', ')} (median ${median(paired).toFixed(3)})`);
  const incomplete = (r) => (r.errors || r.mismatches ? `; ${r.errors} errors, ${r.mismatches} wrong subjects` : '');
  return [
    row({
      benchmark: 'peers: warm calls/s vs raw SDK',
      ours: ours.warm.callsPerSec,
      baseline: rawSdk.warm.callsPerSec,
      unit: 'calls/s',
      baselineName: 'raw SDK, one client per user, bearer from an openid-client OBO exchange per assertion, set by custom fetch',
      target: { of: 'ratio', op: '>=', value: 0.95 },
      note: `cold: ${fmt(ours.cold.callsPerSec)} vs ${fmt(rawSdk.cold.callsPerSec)} calls/s (IdP exchanges: ours ${ours.idpExchanges}, raw SDK ${rawSdk.idpExchanges})${incomplete(ours)}${incomplete(rawSdk)}`,
    }),
    row({
      benchmark: 'peers: warm calls/s vs langchain',
      ours: ours.warm.callsPerSec,
      baseline: langchain.warm.callsPerSec,
      unit: 'calls/s',
      baselineName: '@langchain/mcp-adapters MultiServerMCPClient + beforeToolCall headers',
      target: { of: 'ratio', op: '>=', value: 1 },
      note: `cold: ${fmt(ours.cold.callsPerSec)} vs ${fmt(langchain.cold.callsPerSec)} calls/s${incomplete(langchain)}`,
    }),
    row({
      benchmark: 'peers: sessions opened vs raw SDK',
      ours: ours.sessions,
      baseline: rawSdk.sessions,
      unit: 'sessions',
      baselineName: 'raw SDK',
      target: { of: 'ratio', op: '<=', value: 1 },
    }),
    row({
      benchmark: 'peers: sessions opened vs langchain',
      ours: ours.sessions,
      baseline: langchain.sessions,
      unit: 'sessions',
      baselineName: 'langchain',
      target: { of: 'ratio', op: '<=', value: 1 },
    }),
    row({
      benchmark: 'peers: client heap after cold phase vs raw SDK',
      ours: ours.heapBytes / 2 ** 20,
      baseline: rawSdk.heapBytes / 2 ** 20,
      unit: 'MB',
      baselineName: 'raw SDK',
      target: { of: 'ratio', op: '<=', value: 1.2 },
    }),
    row({
      benchmark: 'peers: client heap after cold phase vs langchain',
      ours: ours.heapBytes / 2 ** 20,
      baseline: langchain.heapBytes / 2 ** 20,
      unit: 'MB',
      baselineName: 'langchain',
      target: { of: 'ratio', op: '<=', value: 1 },
    }),
  ];
}

/**
 * This benchmark, for `run.js` (which runs it in its own process) or for a direct run.
 *
 * @type {import('./lib/harness.js').Benchmark}
 * @example
 * ```sh
 * node bench/run.js peers                      # through the runner, with the table
 * node --expose-gc bench/peers.bench.js     # alone
 * ```
 */
export const benchmark = {
  name: 'peers',
  title: `${USERS} users with rotating bearers: MCPManager + OBO vs @langchain/mcp-adapters vs raw SDK`,
  run,
};

runIfMain(import.meta.url, benchmark);
