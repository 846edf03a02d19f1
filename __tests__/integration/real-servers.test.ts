/**
 * Cases from public bug reports, against real SDK MCP servers on 127.0.0.1 (`__tests__/support/misbehaving.ts`)
 * driven the way the README tells users to (an `MCPManager` from config, `manager.callTool(...)`). What
 * happened is judged on the server side: requests, sessions, GETs and tool executions it counted.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { getEventListeners, getMaxListeners, once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { SwitchboardError } from '../../src/errors.js';
import type { StateChangeEvent } from '../../src/MCPConnection.js';
import { MCPConnectionFactory, type MCPConnectionFactoryOptions } from '../../src/MCPConnectionFactory.js';
import { MCPManager, type CallToolArgs, type MCPManagerOptions } from '../../src/MCPManager.js';
import { rejection } from '../support/errors.js';
import { firstText } from '../support/mcp.js';
import { spyLogger, startMisbehavingServer, type MisbehavingServer, type MisbehavingServerOptions } from '../support/misbehaving.js';

/** pending: onProgress, resetTimeoutOnProgress, maxTotalTimeoutMs (MCPManager.callTool args, being added). */
type ProgressCallArgs = CallToolArgs & {
  onProgress?: (p: { progress: number; total?: number; message?: string }) => void;
  resetTimeoutOnProgress?: boolean;
  maxTotalTimeoutMs?: number;
};
/** pending: standbyStream, reconnect.minDelayMs, reconnect.healthyAfterMs (MCPConnectionFactory options, being added). */
type PendingFactoryOptions = MCPConnectionFactoryOptions & {
  standbyStream?: boolean;
  reconnect?: { minDelayMs?: number; healthyAfterMs?: number };
};

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

async function misbehaving(opts: MisbehavingServerOptions = {}): Promise<MisbehavingServer> {
  const s = await startMisbehavingServer(opts);
  cleanups.push(() => s.close());
  return s;
}

function managerOf(opts: MCPManagerOptions): MCPManager {
  const m = new MCPManager(opts);
  cleanups.push(() => m.close());
  return m;
}

function factoryOf(opts: PendingFactoryOptions): MCPConnectionFactory {
  const f = new MCPConnectionFactory(opts);
  cleanups.push(() => f.close());
  return f;
}

const echo = (m: MCPManager, text: string, extra: Partial<CallToolArgs> = {}) =>
  m.callTool({ serverName: 'svc', toolName: 'echo', arguments: { text }, ...extra });

describe('1. a restarted server answers a stale session with 400 or 404', () => {
  it.each([400, 404] as const)('HTTP %i: the next call re-initializes once, is resent once and succeeds', async (status) => {
    const s = await misbehaving({ staleSessionStatus: status, keepAlive: false });
    const m = managerOf({ servers: { svc: { url: s.url } }, circuitBreaker: false });
    expect(firstText(await echo(m, 'before'))).toBe('before');
    await s.restart(); // every session forgotten, same port
    const before = s.snapshot();
    const after = await echo(m, 'after', { timeoutMs: 10_000 });
    expect(firstText(after)).toBe('after');
    const now = s.snapshot();
    expect(now.staleAnswers - before.staleAnswers).toBeGreaterThanOrEqual(1); // the old session was really sent
    expect(now.initializes - before.initializes).toBe(1);
    expect((now.runs.echo ?? 0) - (before.runs.echo ?? 0)).toBe(1);
  });

  it.each([400, 404] as const)('HTTP %i: a restart while the connection is idle re-initializes it through its standby stream, before any call', async (status) => {
    const s = await misbehaving({ staleSessionStatus: status, keepAlive: false });
    const m = managerOf({
      servers: { svc: { url: s.url } },
      connectionFactory: factoryOf({ reconnect: { maxAttempts: 5, minDelayMs: 1, baseDelayMs: 1, maxDelayMs: 5 } }),
      circuitBreaker: false,
    });
    expect(firstText(await echo(m, 'before'))).toBe('before');
    await s.waitFor((c) => c.gets >= 1);
    const before = s.snapshot();
    await s.restart();
    // No call: the standby stream's reopening meets the forgotten session, a ping confirms it, and the
    // connection opens a new session and its standby stream (server messages outside a call reach it again).
    const now = await s.waitFor((c) => c.initializes > before.initializes && Object.keys(c.getsBySession).length > Object.keys(before.getsBySession).length);
    expect(now.initializes - before.initializes).toBe(1);
    expect(now.toolsCall).toBe(before.toolsCall);
    expect(firstText(await echo(m, 'after'))).toBe('after');
    expect(s.counts.initializes - before.initializes).toBe(1);
  });

  it.each([400, 404] as const)('HTTP %i: 20 calls in flight when the restart is seen are all resent once on one new session', async (status) => {
    const s = await misbehaving({ staleSessionStatus: status, keepAlive: false });
    const m = managerOf({ servers: { svc: { url: s.url } }, circuitBreaker: false });
    expect(firstText(await echo(m, 'before'))).toBe('before');
    await s.restart();
    const before = s.snapshot();
    const texts = Array.from({ length: 20 }, (_, i) => `after ${i}`);
    const results = await Promise.all(texts.map((t) => echo(m, t, { timeoutMs: 10_000 })));
    expect(results.map(firstText)).toEqual(texts);
    const now = s.snapshot();
    expect(now.initializes - before.initializes).toBe(1);
    expect((now.runs.echo ?? 0) - (before.runs.echo ?? 0)).toBe(20);
  });

  it('a 429 answer does not count as the connection failing, and a replaced session lets its call in flight finish, then is DELETEd', async () => {
    const s = await misbehaving({ keepAlive: false });
    const m = managerOf({ servers: { svc: { url: s.url } }, circuitBreaker: false });
    expect(firstText(await echo(m, 'warm'))).toBe('warm');
    const conn = await m.getConnection({ serverName: 'svc' });
    const states: string[] = [];
    conn.on('state', ({ to }: StateChangeEvent) => states.push(to));
    s.failPosts(429);
    for (let i = 0; i < 4; i++) expect(await rejection(echo(m, 'busy'))).toMatchObject({ code: 'transport_error', retryable: true });
    expect(states).toEqual([]);
    s.failPosts(undefined);
    // A long call in flight on the session that three 502s in a row will have replaced.
    const started = s.toolStarted('sleep');
    const long = m.callTool({ serverName: 'svc', toolName: 'sleep', arguments: { ms: 300 }, timeoutMs: 10_000 });
    await started;
    s.failPosts(502);
    for (let i = 0; i < 3; i++) await rejection(echo(m, 'down'));
    expect(states[0]).toBe('reconnecting');
    s.failPosts(undefined);
    expect((await long).isError).not.toBe(true);
    await s.waitFor((c) => c.deletes >= 1);
  });

  it('a connection whose every POST fails (HTTP 502) leaves `connected` after 3 failed calls; the same manager recovers', async () => {
    const s = await misbehaving();
    const m = managerOf({ servers: { svc: { url: s.url } }, circuitBreaker: false });
    expect(firstText(await echo(m, 'warm'))).toBe('warm');
    const conn = await m.getConnection({ serverName: 'svc' });
    const transitions: StateChangeEvent[] = [];
    conn.on('state', (e) => transitions.push(e));
    s.failPosts(502);
    for (let i = 0; i < 3; i++) {
      const err = await rejection(echo(m, `fail-${i}`, { timeoutMs: 5_000 }));
      expect(err).toBeInstanceOf(SwitchboardError);
      expect((err as SwitchboardError).retryable).toBe(true);
    }
    expect(s.counts.failedPosts).toBeGreaterThanOrEqual(3);
    // Not "connected" any more while every request fails.
    expect(transitions.filter((t) => t.from === 'connected').length).toBeGreaterThanOrEqual(1);
    expect(conn.state).not.toBe('connected');
    s.failPosts(undefined);
    expect(firstText(await echo(m, 'back', { timeoutMs: 15_000 }))).toBe('back');
    expect(s.counts.runs.echo).toBe(2); // warm and back: the refused calls never ran
  });
});

describe('2. standby GET stream storm', () => {
  const RECONNECT = { maxAttempts: 3, minDelayMs: 5, baseDelayMs: 5, maxDelayMs: 20, healthyAfterMs: 60_000 };
  const users = Array.from({ length: 10 }, (_, i) => ({ id: `idle-${i}` }));
  const servers = (url: string) => ({ storm: { url, headers: { 'X-User': '{{user.id}}' } } }); // user-scoped

  it.each(['end', 'end-with-retry'] as const)(
    'GET answered and ended at once (%s): at most 1 + 3 GETs per idle connection, a "standby stream" warning each, no GET after a call',
    async (mode) => {
      const s = await misbehaving({ standby: mode });
      const spy = spyLogger();
      const f = factoryOf({ reconnect: RECONNECT, logger: spy.logger });
      const m = managerOf({ servers: servers(s.url), connectionFactory: f, logger: spy.logger, circuitBreaker: false });
      await Promise.all(users.map((user) => m.callTool({ user, serverName: 'storm', toolName: 'echo', arguments: { text: user.id } })));
      expect(s.counts.sessionsOpened).toBe(10);

      // Whichever comes first: every connection gives up its standby stream, or one of them passes the bound.
      const storm = s.waitFor((c) => Object.values(c.getsBySession).some((n) => n > 1 + RECONNECT.maxAttempts)).then((c) => c.getsBySession);
      const settled = spy.waitFor('warn', 'standby stream', 10).then(() => undefined);
      expect({ getsPerSessionWhenOneWentOverTheBound: await Promise.race([storm, settled]) }).toEqual({ getsPerSessionWhenOneWentOverTheBound: undefined });

      const gets = s.snapshot();
      expect(Object.keys(gets.getsBySession)).toHaveLength(10);
      for (const n of Object.values(gets.getsBySession)) {
        expect(n).toBeGreaterThanOrEqual(1);
        expect(n).toBeLessThanOrEqual(1 + RECONNECT.maxAttempts);
      }
      // Calls still work and do not start the standby stream again (two rounds: a GET the first round started
      // would have reached the server by the end of the second).
      for (let round = 0; round < 2; round++) {
        const results = await Promise.all(users.map((user) => m.callTool({ user, serverName: 'storm', toolName: 'echo', arguments: { text: user.id } })));
        expect(results.map(firstText)).toEqual(users.map((u) => u.id));
      }
      expect(s.counts.gets).toBe(gets.gets);
      expect(s.counts.initializes).toBe(10);
    },
  );

  it('standbyStream: false → a connection sends no GET at all', async () => {
    const s = await misbehaving({ standby: 'sdk' });
    const f = factoryOf({ standbyStream: false, reconnect: RECONNECT });
    const m = managerOf({ servers: servers(s.url), connectionFactory: f, circuitBreaker: false });
    for (const user of users.slice(0, 3)) {
      for (let i = 0; i < 2; i++) expect(firstText(await m.callTool({ user, serverName: 'storm', toolName: 'echo', arguments: { text: user.id } }))).toBe(user.id);
    }
    await m.close();
    expect(s.counts.sessionsOpened).toBe(3);
    expect(s.counts.runs.echo).toBe(6);
    expect(s.counts.gets).toBe(0);
  });
});

describe('3. the server process dies mid-call', () => {
  let dir: string | undefined;
  let child: ChildProcess | undefined;
  afterEach(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    child = undefined;
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  /** A streamable HTTP MCP server script (SDK CJS build, resolved here), printing its port and each tool start. */
  async function writeServerScript(): Promise<string> {
    const require = createRequire(import.meta.url);
    const mcp = require.resolve('@modelcontextprotocol/sdk/server/mcp.js');
    const http = require.resolve('@modelcontextprotocol/sdk/server/streamableHttp.js');
    dir = await mkdtemp(join(tmpdir(), 'switchboard-dying-'));
    const file = join(dir, 'server.cjs');
    await writeFile(
      file,
      `const { McpServer } = require(${JSON.stringify(mcp)});
const { StreamableHTTPServerTransport } = require(${JSON.stringify(http)});
const { createServer } = require('node:http');
const { randomUUID } = require('node:crypto');
const transports = new Map();
const stale = { jsonrpc: '2.0', error: { code: -32000, message: 'Bad Request: No valid session ID provided' }, id: null };
createServer(async (req, res) => {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined;
  const sid = req.headers['mcp-session-id'];
  let transport = sid ? transports.get(sid) : undefined;
  if (!transport) {
    if (sid || req.method !== 'POST' || !body || body.method !== 'initialize') {
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify(stale));
      return;
    }
    const server = new McpServer({ name: 'dying', version: '1.0.0' }, { capabilities: { logging: {} } });
    server.registerTool('hang', { description: 'never returns' }, async () => {
      process.stdout.write('TOOL_STARTED hang\\n');
      return new Promise(() => {});
    });
    // The answer stream has started (headers and one event sent) when the process dies.
    server.registerTool('hang_streaming', { description: 'sends a log event, then never returns' }, async (extra) => {
      await extra.sendNotification({ method: 'notifications/message', params: { level: 'info', data: 'working' } });
      process.stdout.write('TOOL_STARTED hang_streaming\\n');
      return new Promise(() => {});
    });
    transport = new StreamableHTTPServerTransport({ sessionIdGenerator: () => randomUUID(), onsessioninitialized: (id) => transports.set(id, transport) });
    await server.connect(transport);
  }
  await transport.handleRequest(req, res, body);
}).listen(0, '127.0.0.1', function () {
  process.stdout.write('LISTENING ' + this.address().port + '\\n');
});
`,
    );
    return file;
  }

  it.each([
    ['hang', 'before any byte of its answer'],
    ['hang_streaming', 'after its answer stream started'],
  ])(
    'SIGKILL while a tool runs (%s: %s): the call rejects with a retryable transport_error, not at its 10-minute timeout',
    async (tool) => {
      const script = await writeServerScript();
      const proc = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'pipe'] });
      child = proc;
      let stderr = '';
      proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const lines = createInterface({ input: proc.stdout! });
      const nextLine = (prefix: string) =>
        new Promise<string>((resolve, reject) => {
          const onLine = (l: string) => {
            if (!l.startsWith(prefix)) return;
            lines.off('line', onLine);
            proc.off('exit', onExit);
            resolve(l);
          };
          const onExit = () => reject(new Error(`server exited before "${prefix}": ${stderr}`));
          lines.on('line', onLine);
          proc.once('exit', onExit);
        });
      const port = Number((await nextLine('LISTENING ')).split(' ')[1]);
      const m = managerOf({ servers: { dying: { url: `http://127.0.0.1:${port}/mcp` } }, circuitBreaker: false });
      const started = nextLine(`TOOL_STARTED ${tool}`);
      // Ten minutes: far past this test's 20 s, so only noticing the dead server can end the call in time.
      const call = rejection(m.callTool({ serverName: 'dying', toolName: tool, timeoutMs: 600_000 }));
      await started;
      const exited = once(proc, 'exit');
      proc.kill('SIGKILL');
      await exited;
      const err = await call;
      expect(err).toBeInstanceOf(SwitchboardError);
      expect(err).toMatchObject({ code: 'transport_error', retryable: true });
    },
    20_000,
  );
});

describe('4. a nextCursor that never advances', () => {
  it('listTools rejects at once with a server_error naming the server and the repeated cursor, after 2 tools/list requests, each time', async () => {
    const s = await misbehaving({ repeatCursor: true });
    const m = managerOf({ servers: { pager: { url: s.url } }, circuitBreaker: false });
    const err = await rejection(m.listTools({ serverName: 'pager' }));
    expect(err).toBeInstanceOf(SwitchboardError);
    expect(err).toMatchObject({ code: 'server_error', retryable: false });
    const message = (err as Error).message;
    expect(message).toContain('pager');
    expect(message).toMatch(/cursor/i);
    expect(message).toMatch(/repeat/i);
    expect(s.counts.toolsList).toBe(2);
    // Not cached: a second listing asks again, and stops as early.
    const again = await rejection(m.listTools({ serverName: 'pager' }));
    expect(again).toMatchObject({ code: 'server_error', retryable: false });
    expect(s.counts.toolsList).toBe(4);
    // The connection itself is fine.
    expect(firstText(await m.callTool({ serverName: 'pager', toolName: 'echo', arguments: { text: 'ok' } }))).toBe('ok');
  });
});

describe('5. progress-based deadline', () => {
  // A progress notification every 20 ms for 400 ms, then the result.
  const progressArgs = { everyMs: 20, steps: 20 };
  const call = (m: MCPManager, extra: Partial<ProgressCallArgs>) => {
    const args: ProgressCallArgs = { serverName: 'svc', toolName: 'progress', arguments: progressArgs, ...extra };
    return m.callTool(args);
  };

  it('timeoutMs 100 without progress options → call_timeout', async () => {
    const s = await misbehaving();
    const m = managerOf({ servers: { svc: { url: s.url } }, circuitBreaker: false });
    const err = await rejection(call(m, { timeoutMs: 100 }));
    expect(err).toMatchObject({ code: 'call_timeout', retryable: true });
    expect(s.counts.runs.progress).toBe(1);
  });

  it('timeoutMs 100 + resetTimeoutOnProgress + onProgress → succeeds; onProgress sees ≥ 10 increasing values', async () => {
    const s = await misbehaving();
    const m = managerOf({ servers: { svc: { url: s.url } }, circuitBreaker: false });
    const seen: number[] = [];
    const result = await call(m, { timeoutMs: 100, resetTimeoutOnProgress: true, onProgress: (p) => seen.push(p.progress) });
    expect(firstText(result)).toBe('done');
    expect(seen.length).toBeGreaterThanOrEqual(10);
    for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeGreaterThan(seen[i - 1]!);
    expect(s.counts.runs.progress).toBe(1);
  });

  it('… and maxTotalTimeoutMs 200 → call_timeout although progress keeps coming', async () => {
    const s = await misbehaving();
    const m = managerOf({ servers: { svc: { url: s.url } }, circuitBreaker: false });
    const seen: number[] = [];
    const err = await rejection(call(m, { timeoutMs: 100, resetTimeoutOnProgress: true, maxTotalTimeoutMs: 200, onProgress: (p) => seen.push(p.progress) }));
    expect(err).toMatchObject({ code: 'call_timeout', retryable: true });
    expect(s.counts.runs.progress).toBe(1);
  });
});

describe('6. no listener growth on a long-lived AbortSignal', () => {
  /**
   * MaxListenersExceededWarning, seen two ways: the process 'warning' event (jest hands tests a copy of
   * `process` that Node's own warnings never reach, so under jest this alone would prove nothing), and Node's
   * own condition for that warning (more abort listeners at once than `getMaxListeners(signal)`, when that is
   * not 0), checked at every `addEventListener` on the signal.
   */
  function watchWarnings(signal: AbortSignal) {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => {
      if (w.name === 'MaxListenersExceededWarning') warnings.push(w);
    };
    process.on('warning', onWarning);
    cleanups.push(async () => void process.off('warning', onWarning));
    const add = signal.addEventListener.bind(signal);
    signal.addEventListener = ((...args: Parameters<AbortSignal['addEventListener']>) => {
      add(...args);
      const count = getEventListeners(signal, 'abort').length;
      const max = getMaxListeners(signal);
      // Node warns once per signal: so does this check.
      if (max > 0 && count > max && !warnings.some((w) => w.message.includes('abort listeners at once'))) warnings.push(Object.assign(new Error(`${count} abort listeners at once (max ${max})`), { name: 'MaxListenersExceededWarning' }));
    }) as AbortSignal['addEventListener'];
    return warnings;
  }

  it('200 sequential callTool and 20 listTools with one signal leave no abort listener on it', async () => {
    const s = await misbehaving();
    const m = managerOf({ servers: { svc: { url: s.url } }, circuitBreaker: false });
    const { signal } = new AbortController(); // never aborted
    const warnings = watchWarnings(signal);
    for (let i = 0; i < 200; i++) expect(firstText(await echo(m, `${i}`, { signal }))).toBe(`${i}`);
    for (let i = 0; i < 20; i++) await m.listTools({ serverName: 'svc', signal });
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
    expect(warnings.map((w) => w.message)).toEqual([]);
    expect(s.counts.runs.echo).toBe(200);
  });

  it('50 concurrent calls with one signal: no MaxListenersExceededWarning, no listener left', async () => {
    const s = await misbehaving();
    const m = managerOf({ servers: { svc: { url: s.url } }, circuitBreaker: false });
    expect(firstText(await echo(m, 'warm'))).toBe('warm');
    const { signal } = new AbortController();
    const warnings = watchWarnings(signal);
    const texts = Array.from({ length: 50 }, (_, i) => `c${i}`);
    const results = await Promise.all(texts.map((t) => echo(m, t, { signal })));
    expect(results.map(firstText)).toEqual(texts);
    expect(warnings.map((w) => w.message)).toEqual([]);
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
    expect(s.counts.runs.echo).toBe(51);
  });
});

describe('7. retryable means it', () => {
  it('a stdio server whose command does not exist → connect_failed, not retryable', async () => {
    const m = managerOf({ servers: { svc: { command: '/nonexistent/definitely-not-an-mcp-server', stderr: 'ignore' } }, circuitBreaker: false });
    const err = await rejection(m.callTool({ serverName: 'svc', toolName: 'echo' }));
    expect(err).toBeInstanceOf(SwitchboardError);
    expect(err).toMatchObject({ code: 'connect_failed', retryable: false });
  });

  it('an HTTP server on a closed port → connect_failed, retryable', async () => {
    const probe = createNetServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const m = managerOf({ servers: { svc: { url: `http://127.0.0.1:${port}/mcp` } }, circuitBreaker: false });
    const err = await rejection(m.callTool({ serverName: 'svc', toolName: 'echo' }));
    expect(err).toBeInstanceOf(SwitchboardError);
    expect(err).toMatchObject({ code: 'connect_failed', retryable: true });
  });

  it.each([400, 404] as const)('a dead session (HTTP %i) that gets re-initialized → the call succeeds, no error at all', async (status) => {
    const s = await misbehaving({ staleSessionStatus: status, keepAlive: false });
    const m = managerOf({ servers: { svc: { url: s.url } }, circuitBreaker: false });
    const errors: unknown[] = [];
    m.on('error', (e) => errors.push(e));
    expect(firstText(await echo(m, 'one'))).toBe('one');
    await s.restart();
    expect(firstText(await echo(m, 'two', { timeoutMs: 10_000 }))).toBe('two');
    expect(errors).toEqual([]);
    expect(s.counts.runs.echo).toBe(2);
  });
});
