/**
 * Faults against real loopback peers: MCP servers killed mid-call and restarted, servers that hang or never
 * answer initialize, an IdP that is down or slow, aborts at every stage, stdio children that exit or write
 * garbage. Each fault must end in a typed error, promptly, with nothing left behind.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { createBearerVerifier } from '../../src/auth/bearerVerifier.js';
import { OboError, SwitchboardError } from '../../src/errors.js';
import { MCPManager, type MCPManagerOptions } from '../../src/MCPManager.js';
import type { MCPConnectionFactoryOptions } from '../../src/MCPConnectionFactory.js';
import { startTestIdp, type TestIdp } from '../../src/testing/testIdp.js';
import { startTestMcpServer, type TestMcpServer, type TestMcpServerOptions } from '../../src/testing/testMcpServer.js';
import type { UserContext } from '../../src/types.js';
import { FAULTY_STDIO, gate, instrumentedFactory, pidAlive, timed, type InstrumentedFactory } from '../fixtures/hardening/kit.js';
import { rejection } from '../support/errors.js';
import { testIdpResolver } from '../support/idp.js';
import { report } from '../support/report.js';

const text = (r: CallToolResult) => (r.content[0] as { text: string }).text;
const cleanups: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function server(opts: TestMcpServerOptions): Promise<TestMcpServer> {
  const s = await startTestMcpServer(opts);
  cleanups.push(() => s.close());
  return s;
}

/** A manager over an instrumented factory; both are closed after the test. */
function managerWith(servers: Record<string, unknown>, factoryOpts: MCPConnectionFactoryOptions = {}, opts: Partial<MCPManagerOptions> = {}) {
  const inst = instrumentedFactory(factoryOpts);
  const m = new MCPManager({ servers, connectionFactory: inst.factory, circuitBreaker: false, ...opts });
  cleanups.push(() => inst.factory.close());
  cleanups.push(() => m.close());
  return { m, inst };
}

/** Keep retrying quickly while a server is down, so a restart is picked up by the running reconnect loop. */
const PATIENT_RECONNECT = { maxAttempts: 10_000, baseDelayMs: 5, maxDelayMs: 40 };

describe('MCP server killed mid-call, then restarted', () => {
  it('streamable-http with watchResponseStreams: false: the call still rejects typed, at its timeout', async () => {
    const first = await server({ transport: 'streamable-http', keepAlive: false });
    const { m, inst } = managerWith({ svc: { type: 'streamable-http', url: first.url } }, { reconnect: PATIENT_RECONNECT, watchResponseStreams: false });
    await m.callTool({ serverName: 'svc', toolName: 'echo', arguments: { text: 'before' } });
    const reached = inst.nextCallReached();
    const timeoutMs = 500;
    const inFlight = timed(m.callTool({ serverName: 'svc', toolName: 'slow', arguments: { ms: 60_000 }, timeoutMs }));
    await reached;
    await first.close();
    const died = await inFlight;
    expect(died.error).toBeInstanceOf(SwitchboardError);
    // call_timeout is produced only by the call's own timer: the call ended at its timeout, not the tool's 60 s
    // (nor the 60 s default timeout, which is past jest's 30 s budget), and not with a transport error.
    expect(died.error).toMatchObject({ code: 'call_timeout', retryable: true });
    report('faults', `streamable-http with watchResponseStreams off: call in flight when the server died rejected with call_timeout after ${died.ms.toFixed(0)} ms (timeout ${timeoutMs} ms)`);
  });

  it.each(['sse', 'streamable-http'] as const)('%s: the call rejects typed within its timeout; the same manager uses the restarted server', async (kind) => {
    const first = await server({ transport: kind, keepAlive: false });
    // Streamable HTTP sees the broken response stream through watchResponseStreams, on by default.
    const { m, inst } = managerWith({ svc: { type: kind, url: first.url } }, { reconnect: PATIENT_RECONNECT });
    expect(text(await m.callTool({ serverName: 'svc', toolName: 'echo', arguments: { text: 'before' } }))).toBe('before');
    const conn = await m.getConnection({ serverName: 'svc' });
    const reconnects: number[] = [];
    conn.on('reconnect', (e) => reconnects.push(e.delayMs));

    const reached = inst.nextCallReached();
    // Ten minutes: far past jest's 30 s budget, so the call can only settle if the broken stream ends it.
    const timeoutMs = 600_000;
    const inFlight = timed(m.callTool({ serverName: 'svc', toolName: 'slow', arguments: { ms: 60_000 }, timeoutMs }));
    await reached;
    await first.close(); // the server dies with the call in flight
    const died = await inFlight;
    expect(died.ok).toBe(false);
    expect(died.error).toBeInstanceOf(SwitchboardError);
    // Both transports see the response stream break at once: no waiting for the call's timeout (a call that
    // waited would reject with call_timeout, ten minutes later).
    expect((died.error as SwitchboardError).code).toBe('transport_error');
    expect((died.error as SwitchboardError).retryable).toBe(true);
    report('faults', `${kind}: call in flight when the server died rejected with ${(died.error as SwitchboardError).code} after ${died.ms.toFixed(0)} ms (timeout ${timeoutMs} ms)`);

    // Restart on the same port: the same manager (and, for SSE, the same reconnecting connection) uses it.
    const second = await server({ transport: kind, port: first.port, keepAlive: false });
    const after = await timed(m.callTool({ serverName: 'svc', toolName: 'echo', arguments: { text: 'after' }, timeoutMs: 10_000 }));
    expect(after.error).toBeUndefined();
    expect(text(after.value!)).toBe('after');
    expect(second.stats().initializeCount).toBe(1);
    if (kind === 'sse') {
      // SSE sees the broken event stream at once and reconnects with backoff until the server is back.
      expect(reconnects.length).toBeGreaterThan(0);
      expect(reconnects.every((d) => d >= 0 && d <= PATIENT_RECONNECT.maxDelayMs)).toBe(true);
    }
    report('faults', `${kind}: restarted server used by the same manager after ${reconnects.length} reconnect attempt(s); next call took ${after.ms.toFixed(0)} ms`);
    await m.close();
    await second.waitForStats((s) => s.liveSessions === 0);
  });

  it('sse: with the server still down, calls fail typed after reconnects are exhausted, and a new connection is made once it is back', async () => {
    const first = await server({ transport: 'sse', keepAlive: false });
    const { m } = managerWith({ svc: { type: 'sse', url: first.url } }, { reconnect: { maxAttempts: 3, baseDelayMs: 5, maxDelayMs: 20 } });
    await m.callTool({ serverName: 'svc', toolName: 'echo', arguments: { text: 'x' } });
    const conn = await m.getConnection({ serverName: 'svc' });
    const gaveUp = new Promise<SwitchboardError | undefined>((resolve) => conn.once('close', (e) => resolve(e.error)));
    await first.close();
    const err = await gaveUp;
    expect(err).toMatchObject({ code: 'connection_closed', retryable: true });
    // Down: a fresh connect is refused, typed.
    const refused = await rejection(m.callTool({ serverName: 'svc', toolName: 'echo', arguments: { text: 'x' } }));
    expect(refused).toBeInstanceOf(SwitchboardError);
    expect((refused as SwitchboardError).code).toBe('connect_failed');
    const second = await server({ transport: 'sse', port: first.port, keepAlive: false });
    expect(text(await m.callTool({ serverName: 'svc', toolName: 'echo', arguments: { text: 'back' } }))).toBe('back');
    expect(second.stats().sessionsOpened).toBe(1);
  });
});

describe('servers that hang', () => {
  it('a tool that never answers: timeoutMs holds, the server is told to cancel, the connection stays usable', async () => {
    const s = await server({ transport: 'streamable-http' });
    // `long` has a ten-minute timeout (past jest's 30 s budget, as is the 60 s default): only a per-call
    // override can time its call out.
    const { m, inst } = managerWith({ svc: { url: s.url, timeoutMs: 300 }, long: { url: s.url, timeoutMs: 600_000 } });
    await m.callTool({ serverName: 'svc', toolName: 'echo', arguments: { text: 'warm' } });
    await m.callTool({ serverName: 'long', toolName: 'echo', arguments: { text: 'warm' } });
    const order: string[] = [];
    void inst.nextCallReached().then(() => order.push('reached'));
    const r = await timed(m.callTool({ serverName: 'svc', toolName: 'slow', arguments: { ms: 600_000 } }));
    order.push('rejected');
    expect(r.error).toMatchObject({ code: 'call_timeout', retryable: true });
    // Not cut short: the server had the call before the timeout ended it, and was told to cancel it.
    expect(order).toEqual(['reached', 'rejected']);
    await s.waitForStats((st) => st.cancelledCalls === 1);
    // Per-call override wins over the config's timeoutMs.
    const r2 = await timed(m.callTool({ serverName: 'long', toolName: 'slow', arguments: { ms: 600_000 }, timeoutMs: 100 }));
    expect(r2.error).toMatchObject({ code: 'call_timeout' });
    await s.waitForStats((st) => st.cancelledCalls === 2);
    expect(text(await m.callTool({ serverName: 'svc', toolName: 'echo', arguments: { text: 'still' } }))).toBe('still');
    expect(text(await m.callTool({ serverName: 'long', toolName: 'echo', arguments: { text: 'still' } }))).toBe('still');
    expect(s.stats().initializeCount).toBe(2); // one per server name: no reconnect after either timeout
    report('faults', `hanging tool: call_timeout after ${r.ms.toFixed(0)} ms (timeoutMs 300), ${r2.ms.toFixed(0)} ms (per-call 100)`);
  });

  it('an HTTP server that accepts and never answers initialize: initTimeoutMs holds, sockets are released', async () => {
    const sockets = new Set<Socket>();
    const held: { end(): void }[] = [];
    const silent: Server = createServer((_req, res) => void held.push(res));
    silent.on('connection', (sock: Socket) => {
      sockets.add(sock);
      sock.on('close', () => sockets.delete(sock));
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    cleanups.push(async () => {
      silent.closeAllConnections();
      await new Promise<void>((r) => silent.close(() => r()));
    });
    const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}/mcp`;
    const { m } = managerWith({ svc: { url, initTimeoutMs: 250 } });
    const r = await timed(m.callTool({ serverName: 'svc', toolName: 'echo', arguments: { text: 'x' } }));
    // connect_timeout comes only from the init timer (the default is 60 s, past jest's 30 s budget), and it was
    // not cut short: the server already held the initialize request when the connect failed.
    expect(r.error).toMatchObject({ code: 'connect_timeout', retryable: true });
    expect(held.length).toBeGreaterThan(0);
    expect(m.stats()).toMatchObject({ appConnections: 0, pendingConnects: 0 });
    report('faults', `silent HTTP server: connect_timeout after ${r.ms.toFixed(0)} ms (initTimeoutMs 250)`);
    await m.close();
  });

  it('a stdio server that never answers initialize: initTimeoutMs holds and the child is reaped', async () => {
    const { m, inst } = managerWith({ svc: { command: process.execPath, args: [FAULTY_STDIO, 'hang-init'], stderr: 'ignore', initTimeoutMs: 250 } });
    const r = await timed(m.callTool({ serverName: 'svc', toolName: 'echo' }));
    expect(r.error).toMatchObject({ code: 'connect_timeout', retryable: true });
    expect(inst.pids).toHaveLength(1);
    expect(pidAlive(inst.pids[0]!)).toBe(false);
    report('faults', `stdio hang-init: connect_timeout after ${r.ms.toFixed(0)} ms (initTimeoutMs 250); child ${inst.pids[0]} reaped`);
  });
});

describe('stdio servers that exit or write garbage', () => {
  it('exits at start → connect_failed, child reaped', async () => {
    const { m, inst } = managerWith({ svc: { command: process.execPath, args: [FAULTY_STDIO, 'exit-at-start'], stderr: 'ignore', initTimeoutMs: 600_000 } });
    const r = await timed(m.callTool({ serverName: 'svc', toolName: 'echo' }));
    expect(r.error).toBeInstanceOf(SwitchboardError);
    // connect_failed, not connect_timeout: the exit ended the connect, without waiting out the ten-minute init timeout.
    expect((r.error as SwitchboardError).code).toBe('connect_failed');
    expect(inst.pids.every((pid) => !pidAlive(pid))).toBe(true);
    report('faults', `stdio exit-at-start: ${(r.error as SwitchboardError).code} after ${r.ms.toFixed(0)} ms`);
  });

  it('a command that does not exist → connect_failed, typed', async () => {
    const { m } = managerWith({ svc: { command: '/nonexistent/definitely-not-a-server', stderr: 'ignore' } });
    const err = await rejection(m.callTool({ serverName: 'svc', toolName: 'echo' }));
    expect(err).toBeInstanceOf(SwitchboardError);
    expect((err as SwitchboardError).code).toBe('connect_failed');
  });

  it('writes garbage instead of JSON-RPC → connect_timeout (typed), child reaped, nothing thrown elsewhere', async () => {
    const { m, inst } = managerWith({ svc: { command: process.execPath, args: [FAULTY_STDIO, 'garbage'], stderr: 'ignore', initTimeoutMs: 300 } });
    const r = await timed(m.callTool({ serverName: 'svc', toolName: 'echo' }));
    expect(r.error).toMatchObject({ code: 'connect_timeout' });
    expect(inst.pids).toHaveLength(1);
    expect(pidAlive(inst.pids[0]!)).toBe(false);
    report('faults', `stdio garbage: ${(r.error as SwitchboardError).code} after ${r.ms.toFixed(0)} ms; child reaped`);
  });

  it('exits mid-call → that call fails with transport_error at once; the next call gets a new child', async () => {
    const { m, inst } = managerWith(
      { svc: { command: process.execPath, args: [FAULTY_STDIO, 'exit-on-call'], stderr: 'ignore', timeoutMs: 600_000 } },
      { reconnect: { maxAttempts: 3, baseDelayMs: 5, maxDelayMs: 20 } },
    );
    expect(text(await m.callTool({ serverName: 'svc', toolName: 'echo', arguments: { text: 'one' } }))).toBe('one');
    const r = await timed(m.callTool({ serverName: 'svc', toolName: 'crash' }));
    // transport_error, not call_timeout: the exit ended the call, without waiting out its ten-minute timeout.
    expect(r.error).toMatchObject({ code: 'transport_error', retryable: true });
    expect(pidAlive(inst.pids[0]!)).toBe(false);
    expect(text(await m.callTool({ serverName: 'svc', toolName: 'echo', arguments: { text: 'two' } }))).toBe('two');
    expect(inst.pids).toHaveLength(2);
    await m.close();
    expect(inst.pids.every((pid) => !pidAlive(pid))).toBe(true);
    report('faults', `stdio exit mid-call: transport_error after ${r.ms.toFixed(0)} ms; ${inst.pids.length} children, all reaped after close`);
  });
});

describe('IdP faults', () => {
  let idp: TestIdp;
  let s: TestMcpServer;
  let verified: number;

  beforeAll(async () => {
    idp = await startTestIdp();
  });
  afterAll(async () => {
    await idp.close();
  });
  beforeEach(async () => {
    verified = 0;
    idp.resetStats();
    idp.clearFaults();
    idp.setLatency(0);
    await idp.up();
    const verifier = createBearerVerifier({ issuer: idp.issuer, audience: idp.downstreamAudience, allowInsecureRequests: true });
    s = await server({
      transport: 'streamable-http',
      verifyBearer: async (authorization) => {
        const b = await verifier.verify(authorization);
        verified++;
        return { subject: b.subject };
      },
    });
  });

  function oboManager(resolverOpts: { timeoutMs?: number; now?: () => number } = {}) {
    const resolver = testIdpResolver(idp, {
      timeoutMs: resolverOpts.timeoutMs ?? 20_000,
      ...(resolverOpts.now ? { now: resolverOpts.now } : {}),
    });
    return managerWith({ graph: { url: s.url, obo: { scopes: `${idp.downstreamAudience}/.default` } } }, {}, { oboTokenResolver: resolver });
  }

  async function user(id: string): Promise<UserContext> {
    return { id, upstreamToken: await idp.mintAccessToken({ sub: id }) };
  }

  it('IdP down → every OBO call fails closed (retryable) and nothing reaches the server; back up → calls succeed', async () => {
    const { m } = oboManager();
    const users = await Promise.all(Array.from({ length: 20 }, (_, i) => user(`down-${i}`)));
    await idp.down();
    const results = await Promise.all(users.flatMap((u) => [1, 2, 3].map(() => timed(m.callTool({ user: u, serverName: 'graph', toolName: 'whoami' })))));
    for (const r of results) {
      expect(r.error).toBeInstanceOf(OboError);
      expect(r.error).toMatchObject({ reason: 'exchange_failed', retryable: true });
    }
    expect(s.requests).toHaveLength(0);
    expect(verified).toBe(0);
    await idp.up();
    const ok = await Promise.all(users.map((u) => m.callTool({ user: u, serverName: 'graph', toolName: 'whoami' })));
    expect(ok.map(text)).toEqual(users.map((u) => u.id));
    report('faults', `IdP down: ${results.length}/${results.length} calls failed closed (OboError exchange_failed, retryable), 0 requests reached the MCP server; all ${users.length} users succeed once it is back`);
  });

  it('IdP slow → the exchange timeout holds (one retry included) and the call fails closed with OboError(timeout)', async () => {
    const timeoutMs = 200;
    const { m } = oboManager({ timeoutMs });
    const u = await user('slow-1');
    // Ten minutes of latency, past jest's 30 s budget: the call can only settle through the exchange timeout.
    idp.setLatency(600_000);
    const r = await timed(m.callTool({ user: u, serverName: 'graph', toolName: 'whoami' }));
    expect(r.error).toBeInstanceOf(OboError);
    expect(r.error).toMatchObject({ reason: 'timeout', retryable: true });
    // The exchange was retried once on timeout, and only once.
    await idp.waitForTokenRequests(2);
    expect(idp.stats().tokenRequests).toBe(2);
    expect(s.requests).toHaveLength(0);
    report('faults', `IdP slow (10 min latency): OboError(timeout) after ${r.ms.toFixed(0)} ms with exchange timeoutMs ${timeoutMs} (one retry)`);
    idp.setLatency(0);
    expect(text(await m.callTool({ user: u, serverName: 'graph', toolName: 'whoami' }))).toBe('slow-1');
  });

  it('abort during an exchange: that caller rejects at once, the caller sharing the exchange gets its token', async () => {
    let clock = Date.now();
    const { m } = oboManager({ now: () => clock });
    // An upstream token that outlives the jump below: one already expired by the resolver's clock is refused
    // without an exchange.
    const u: UserContext = { id: 'abort-x', upstreamToken: await idp.mintAccessToken({ sub: 'abort-x', expiresInSec: 4 * 3600 }) };
    await m.callTool({ user: u, serverName: 'graph', toolName: 'whoami' }); // warm connection
    clock += 3_600_000; // cached token now stale: the next requests need a new exchange
    idp.resetStats();
    idp.setLatency(600);
    const controller = new AbortController();
    const order: string[] = [];
    const a = timed(m.callTool({ user: u, serverName: 'graph', toolName: 'whoami', signal: controller.signal })).then((r) => (order.push('a'), r));
    const b = timed(m.callTool({ user: u, serverName: 'graph', toolName: 'whoami' })).then((r) => (order.push('b'), r));
    await idp.waitForTokenRequests(1);
    const abortedAt = performance.now();
    controller.abort();
    const ra = await a;
    const abortLatency = performance.now() - abortedAt;
    // Rejected while the shared exchange was still held by the IdP's latency: b, waiting on it, has not settled.
    expect(order).toEqual(['a']);
    expect(ra.error).toBeInstanceOf(SwitchboardError);
    expect(['aborted', 'obo_aborted']).toContain((ra.error as SwitchboardError).code);
    const rb = await b;
    expect(text(rb.value!)).toBe('abort-x');
    expect(order).toEqual(['a', 'b']);
    expect(idp.stats().exchanges).toBe(1);
    expect(m.stats()).toMatchObject({ userConnections: 1, pendingConnects: 0 });
    report('faults', `abort during exchange: rejected ${abortLatency.toFixed(1)} ms after abort (exchange held 600 ms); sharer succeeded`);
  });
});

describe('abort at every stage', () => {
  it('waiting on a pending connect: the aborted caller rejects at once; the caller sharing the connect succeeds', async () => {
    const s = await server({ transport: 'streamable-http' });
    const { m, inst } = managerWith({ svc: { url: s.url } });
    const hold = gate();
    inst.holdConnect = hold;
    const controller = new AbortController();
    const a = timed(m.callTool({ serverName: 'svc', toolName: 'echo', arguments: { text: 'a' }, signal: controller.signal }));
    const b = m.callTool({ serverName: 'svc', toolName: 'echo', arguments: { text: 'b' } });
    expect(m.stats().pendingConnects).toBe(1);
    controller.abort();
    const ra = await a; // resolves while the connect is still held: prompt by construction
    expect(ra.error).toMatchObject({ code: 'aborted' });
    hold.open();
    expect(text(await b)).toBe('b');
    expect(inst.transports).toBe(1);
    expect(s.stats().initializeCount).toBe(1);
    expect(m.stats()).toMatchObject({ appConnections: 1, pendingConnects: 0 });
    report('faults', `abort while waiting on a shared connect: rejected in ${ra.ms.toFixed(1)} ms (connect held); sharer unaffected`);
  });

  it('every waiter of a pending connect aborts: the handshake still completes (never cut), the connection is kept, and close() leaves no session behind', async () => {
    const s = await server({ transport: 'streamable-http' });
    const { m, inst } = managerWith({ svc: { url: s.url } });
    const hold = gate();
    inst.holdConnect = hold;
    const c1 = new AbortController();
    const c2 = new AbortController();
    const p1 = rejection(m.callTool({ serverName: 'svc', toolName: 'echo', arguments: { text: '1' }, signal: c1.signal }));
    const p2 = rejection(m.callTool({ serverName: 'svc', toolName: 'echo', arguments: { text: '2' }, signal: c2.signal }));
    c1.abort();
    c2.abort();
    expect(await p1).toMatchObject({ code: 'aborted' });
    expect(await p2).toMatchObject({ code: 'aborted' });
    const connected = new Promise((resolve) => m.once('connect', resolve));
    hold.open();
    await connected;
    expect(m.stats()).toMatchObject({ appConnections: 1, pendingConnects: 0 });
    await m.close();
    // Whatever the cancelled attempt got to do, no session stays open on the server.
    expect(s.stats().liveSessions).toBe(0);
  });

  it('during a call: the aborted call rejects at once, the server is told, a concurrent call on the same connection completes', async () => {
    const s = await server({ transport: 'streamable-http' });
    const { m, inst } = managerWith({ svc: { url: s.url } });
    await m.callTool({ serverName: 'svc', toolName: 'echo', arguments: { text: 'warm' } });
    const controller = new AbortController();
    const reached = inst.nextCallReached();
    const long = timed(m.callTool({ serverName: 'svc', toolName: 'slow', arguments: { ms: 600_000 }, signal: controller.signal }));
    await reached;
    const other = m.callTool({ serverName: 'svc', toolName: 'slow', arguments: { ms: 50 } });
    controller.abort();
    const r = await long;
    expect(r.error).toMatchObject({ code: 'aborted' });
    expect(text(await other)).toBe('slept 50 ms');
    await s.waitForStats((st) => st.cancelledCalls === 1);
    expect(s.stats().initializeCount).toBe(1);
    expect(text(await m.callTool({ serverName: 'svc', toolName: 'echo', arguments: { text: 'after' } }))).toBe('after');
    report('faults', `abort during a call: rejected, server cancelled the tool, concurrent call and the connection unaffected`);
  });

  it('an already-aborted signal rejects before anything is sent', async () => {
    const s = await server({ transport: 'streamable-http' });
    const { m, inst } = managerWith({ svc: { url: s.url } });
    const err = await rejection(m.callTool({ serverName: 'svc', toolName: 'echo', arguments: { text: 'x' }, signal: AbortSignal.abort() }));
    expect(err).toMatchObject({ code: 'aborted' });
    expect(s.requests).toHaveLength(0);
    expect(inst.transports).toBe(0);
  });
});
