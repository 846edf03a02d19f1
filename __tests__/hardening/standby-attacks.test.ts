/**
 * Adversarial review of the standby GET loop (reconnectionOptions + standbyGate), the error-body cap of the
 * response watch, `deadline` on timeouts and the 16 KiB cut of redaction, against real SDK servers on loopback.
 * `// FINDING n` marks a case an adversarial review found failing (numbered as in its report); each was fixed, and
 * the test stays as its regression test.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { inspect } from 'node:util';
import { gzipSync } from 'node:zlib';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { z } from 'zod';
import { SwitchboardError } from '../../src/errors.js';
import { MCPConnectionFactory, type MCPConnectionFactoryOptions, type ConnectionAuth } from '../../src/MCPConnectionFactory.js';
import type { MCPConnection } from '../../src/MCPConnection.js';
import { MCPManager } from '../../src/MCPManager.js';
import { parseServersConfig } from '../../src/config/parse.js';
import { createDefaultTransport } from '../../src/transport/createTransport.js';
import type { TransportContext } from '../../src/transport/types.js';
import { redactSecrets } from '../../src/redact.js';
import type { Logger } from '../../src/types.js';
import { listenOnLoopback, type Listening } from '../support/http.js';
import { rejection } from '../support/errors.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

/** Flushes every pending microtask and one macrotask turn (no time passes on purpose). */
const turn = () => new Promise<void>((r) => setImmediate(r));

// ---------------------------------------------------------------------------------------------------------------
// Peer: an SDK McpServer behind StreamableHTTPServerTransport, with hooks to misbehave.
// ---------------------------------------------------------------------------------------------------------------

interface Hooks {
  /** Answers a GET itself (n: 1-based count of GETs). */
  onGet?: (req: IncomingMessage, res: ServerResponse, n: number) => void;
  /** Answers a POST itself when it returns true (body parsed). */
  onPost?: (body: Rpc, req: IncomingMessage, res: ServerResponse, peer: Peer) => boolean;
}
interface Rpc {
  jsonrpc?: string;
  id?: number | string;
  method?: string;
  params?: { name?: string; arguments?: Record<string, unknown>; _meta?: { progressToken?: string | number } };
}
interface Peer extends Listening {
  url: string;
  gets: number;
  getTimes: number[];
  runs: Record<string, number>;
  transports: Map<string, StreamableHTTPServerTransport>;
  /** Resolves when the server has received `n` GETs. */
  getsReach(n: number): Promise<void>;
  /** Forgets every session (the server "restarted"). */
  forget(): void;
}

function mcpServer(runs: Record<string, number>): McpServer {
  const server = new McpServer({ name: 'standby-attacks', version: '1.0.0' });
  const count = (n: string) => (runs[n] = (runs[n] ?? 0) + 1);
  server.registerTool('echo', { inputSchema: { text: z.string() } }, async ({ text }) => {
    count('echo');
    return { content: [{ type: 'text', text }] };
  });
  server.registerTool('hang', {}, async () => {
    count('hang');
    return new Promise<never>(() => {});
  });
  // Sends progress every 20 ms for ever (the server's own pace; the test waits on no timer).
  server.registerTool('progress', {}, async (extra) => {
    count('progress');
    const token = extra._meta?.progressToken;
    let i = 0;
    await new Promise<never>(() => {
      const t = setInterval(() => {
        if (extra.signal.aborted) return clearInterval(t);
        if (token !== undefined) void extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: ++i } }).catch(() => clearInterval(t));
      }, 20);
      t.unref();
    });
    return { content: [] };
  });
  return server;
}

async function readBody(req: IncomingMessage): Promise<Rpc | undefined> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const t = Buffer.concat(chunks).toString('utf8');
  return t ? (JSON.parse(t) as Rpc) : undefined;
}

async function peer(hooks: Hooks = {}): Promise<Peer> {
  const runs: Record<string, number> = {};
  const transports = new Map<string, StreamableHTTPServerTransport>();
  const waits: { n: number; resolve: () => void }[] = [];
  const p = { gets: 0, getTimes: [], runs, transports } as unknown as Peer;
  const http = createServer((req, res) => {
    void (async () => {
      if (req.method === 'GET') {
        p.gets++;
        p.getTimes.push(Date.now());
        for (const w of waits.filter((x) => x.n <= p.gets)) {
          waits.splice(waits.indexOf(w), 1);
          w.resolve();
        }
        if (hooks.onGet) return hooks.onGet(req, res, p.gets);
      }
      const body = req.method === 'POST' ? await readBody(req) : undefined;
      if (body && hooks.onPost?.(body, req, res, p)) return;
      const sid = req.headers['mcp-session-id'];
      let transport = typeof sid === 'string' ? transports.get(sid) : undefined;
      if (typeof sid === 'string' && !transport) {
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null }));
        return;
      }
      if (!transport) {
        const t: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (id) => void transports.set(id, t),
        });
        await mcpServer(runs).connect(t);
        transport = t;
      }
      await transport.handleRequest(req, res, body);
    })().catch(() => res.destroy());
  });
  const listening = await listenOnLoopback(http);
  Object.assign(p, listening, {
    url: `${listening.origin}/mcp`,
    getsReach: (n: number) => (p.gets >= n ? Promise.resolve() : new Promise<void>((resolve) => waits.push({ n, resolve }))),
    forget: () => {
      for (const t of transports.values()) void t.close().catch(() => {});
      transports.clear();
    },
    close: async () => {
      for (const t of transports.values()) await t.close().catch(() => {});
      await listening.close();
    },
  });
  cleanups.push(() => p.close());
  return p;
}

/** What the client side saw: every GET the SDK asked for, with the status it got (405s of the gate included). */
interface ClientSide {
  gets: { resuming: boolean; status?: number; error?: unknown }[];
  /** Resolves at the first standby GET the gate answered 405 locally (the loop's end by the policy). */
  refused: Promise<void>;
  /** Resolves at the first resuming GET (Last-Event-ID) answered 405. */
  resumeRefused: Promise<void>;
  /** Resolves when the SDK gives up its own loop ("Maximum reconnection attempts"). */
  sdkGaveUp: Promise<void>;
  /** Resolves at the settling of the client GET number n (1-based). */
  getSettled(n: number): Promise<void>;
  transports: Transport[];
}

function observing(): { createTransport: MCPConnectionFactoryOptions['createTransport']; side: ClientSide } {
  let onRefused!: () => void;
  let onResumeRefused!: () => void;
  let onGaveUp!: () => void;
  const settledWaits: { n: number; resolve: () => void }[] = [];
  let settled = 0;
  const side: ClientSide = {
    gets: [],
    refused: new Promise<void>((r) => (onRefused = r)),
    resumeRefused: new Promise<void>((r) => (onResumeRefused = r)),
    sdkGaveUp: new Promise<void>((r) => (onGaveUp = r)),
    getSettled: (n) => (settled >= n ? Promise.resolve() : new Promise<void>((resolve) => settledWaits.push({ n, resolve }))),
    transports: [],
  };
  const bump = () => {
    settled++;
    for (const w of settledWaits.filter((x) => x.n <= settled)) {
      settledWaits.splice(settledWaits.indexOf(w), 1);
      w.resolve();
    }
  };
  const createTransport = (ctx: TransportContext) => {
    const t = createDefaultTransport({
      ...ctx,
      fetch: (url, init) => {
        const res = ctx.fetch(url, init);
        if ((init?.method ?? 'GET') === 'GET') {
          const h = new Headers(init?.headers as ConstructorParameters<typeof Headers>[0]);
          const rec: ClientSide['gets'][number] = { resuming: h.has('last-event-id') };
          side.gets.push(rec);
          res.then(
            (r) => {
              rec.status = r.status;
              if (r.status === 405) (rec.resuming ? onResumeRefused : onRefused)();
              bump();
            },
            (e: unknown) => {
              rec.error = e;
              bump();
            },
          );
        }
        return res;
      },
    });
    // The SDK reports the end of its own loop only through onerror: listen in without changing it.
    let handler: Transport['onerror'];
    Object.defineProperty(t, 'onerror', {
      configurable: true,
      get: () => {
        const h = handler;
        return (err: Error) => {
          if (String(err?.message).includes('Maximum reconnection attempts')) onGaveUp();
          h?.(err);
        };
      },
      set: (h: Transport['onerror']) => void (handler = h),
    });
    side.transports.push(t);
    return t;
  };
  return { createTransport, side };
}

const quiet: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

async function connect(p: { url: string }, opts: MCPConnectionFactoryOptions = {}, auth?: ConnectionAuth, configExtra: Record<string, unknown> = {}): Promise<MCPConnection> {
  const factory = new MCPConnectionFactory({ logger: quiet, ...opts });
  cleanups.push(() => factory.close());
  const config = parseServersConfig({ svc: { type: 'streamable-http', url: p.url, ...configExtra } }).svc!;
  const conn = await factory.create({ serverName: 'svc', config, ...(auth ? { auth } : {}) });
  cleanups.push(() => conn.close());
  return conn;
}

const text = (r: { content: unknown[] }) => (r.content[0] as { text: string }).text;

/** The average gap between server-side GETs must never be under the floor (1 ms of slack per gap for clocks). */
function expectFloorOnAverage(times: number[], floorMs: number): void {
  if (times.length < 2) return;
  const span = times[times.length - 1]! - times[0]!;
  expect(span).toBeGreaterThanOrEqual((times.length - 1) * (floorMs - 1));
}

const FLOOR = 15;
const POLICY = { maxAttempts: 4, minDelayMs: FLOOR, baseDelayMs: FLOOR, maxDelayMs: 40, healthyAfterMs: 60_000 };
/** Most GETs a server may see from one standby loop under POLICY: the first + the budget. */
const STANDBY_BOUND = 1 + POLICY.maxAttempts;
/** Most resuming GETs of one cut stream that fail: the SDK's maxRetries as the factory sets it. */
const RESUME_BOUND = POLICY.maxAttempts + 2;
/** Most resuming GETs in a row, whatever they are answered: the gate's resumption budget (4 × maxAttempts + 2). */
const RESUMES_IN_ROW = 4 * POLICY.maxAttempts + 2;

/** A `hang` call's POST answered with an event stream that sends a priming event (an id) and drops: the SDK resumes it. */
function cutCallStream(body: { method?: string; params?: { name?: string } }, _req: IncomingMessage, res: ServerResponse): boolean {
  if (body.method !== 'tools/call' || body.params?.name !== 'hang') return false;
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  res.write('id: p1\ndata: \n\n', () => res.socket?.destroy());
  return true;
}

/**
 * 'bounded' when the client's loop ends (by the gate's 405 on a standby GET, or for resumptions by a 405 or the SDK
 * giving up), 'unbounded' when the server has received more than `bound` GETs.
 */
function loopOutcome(p: Peer, side: ClientSide, bound: number, kind: 'standby' | 'resume' = 'standby'): Promise<'bounded' | 'unbounded'> {
  const ends = kind === 'standby' ? [side.refused] : [side.resumeRefused, side.sdkGaveUp];
  return Promise.race([
    ...ends.map((e) => e.then(() => 'bounded' as const)),
    p.getsReach(bound + 1).then(() => 'unbounded' as const),
  ]);
}

// ---------------------------------------------------------------------------------------------------------------

describe('standby GET loop: bounded by the reconnect policy, never under its floor', () => {
  it.each([
    ['retry: 0 then end', (res: ServerResponse) => void res.writeHead(200, { 'content-type': 'text/event-stream' }).end('retry: 0\n\n')],
    ['retry: 1 then end', (res: ServerResponse) => void res.writeHead(200, { 'content-type': 'text/event-stream' }).end('retry: 1\n\n')],
    [
      '200 event stream that errors at once',
      (res: ServerResponse) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(': x\n\n', () => res.socket?.destroy());
      },
    ],
    ['every GET 503', (res: ServerResponse, n: number) => (n === 1 ? void res.writeHead(200, { 'content-type': 'text/event-stream' }).end(': bye\n\n') : void res.writeHead(503).end('down'))],
  ] as const)('%s: 1 + maxAttempts GETs reach the server, then the gate refuses; floor held on average', async (_name, answer) => {
    const p = await peer({ onGet: (_req, res, n) => answer(res, n) });
    const { createTransport, side } = observing();
    const conn = await connect(p, { reconnect: POLICY, createTransport });
    expect(await loopOutcome(p, side, STANDBY_BOUND)).toBe('bounded');
    expect(p.gets).toBe(STANDBY_BOUND);
    expectFloorOnAverage(p.getTimes.slice(1), FLOOR);
    expect(text(await conn.callTool('echo', { text: 'ok' }))).toBe('ok');
  });

  it('maxAttempts: 0 → one GET only, then the gate refuses', async () => {
    const p = await peer({ onGet: (_req, res) => void res.writeHead(200, { 'content-type': 'text/event-stream' }).end('retry: 0\n\n') });
    const { createTransport, side } = observing();
    await connect(p, { reconnect: { ...POLICY, maxAttempts: 0 }, createTransport });
    expect(await loopOutcome(p, side, 1)).toBe('bounded');
    expect(p.gets).toBe(1);
  });

  // FINDING 1: a standby stream whose events carry an `id` turns every reopening GET into a "resumption"
  // (Last-Event-ID), which the gate did not count against any budget; each 200 resets the SDK's counter too.
  it('a server that ends each standby stream at once after an event with an id: still bounded (the resumption budget)', async () => {
    let n = 0;
    const p = await peer({ onGet: (_req, res) => void res.writeHead(200, { 'content-type': 'text/event-stream' }).end(`id: e${++n}\nretry: 0\ndata: \n\n`) });
    const { createTransport, side } = observing();
    await connect(p, { reconnect: POLICY, createTransport });
    // It was asked again and again, 1 per floor, for as long as the connection lived. Now: the first GET, then at
    // most the resumptions in a row the gate allows, then a local 405.
    expect(await loopOutcome(p, side, 1 + RESUMES_IN_ROW, 'resume')).toBe('bounded');
  });

  it('resuming GETs that fail for ever (503) stop at maxAttempts + 2, each after the policy backoff (above the floor)', async () => {
    // The call's POST stream sends a priming event with an id, then drops: the SDK resumes it with Last-Event-ID.
    const p = await peer({
      onGet: (_req, res) => void res.writeHead(503).end('gone'),
      onPost: cutCallStream,
    });
    const { createTransport, side } = observing();
    const conn = await connect(p, { reconnect: POLICY, createTransport, standbyStream: false });
    const call = rejection(conn.callTool('hang', {}, { timeoutMs: 600_000 }));
    expect(await loopOutcome(p, side, RESUME_BOUND, 'resume')).toBe('bounded');
    expect(p.gets).toBe(RESUME_BOUND);
    expect(side.gets.filter((g) => g.resuming)).toHaveLength(RESUME_BOUND);
    expect(side.gets.filter((g) => !g.resuming).every((g) => g.status === 405)).toBe(true);
    expectFloorOnAverage(p.getTimes, FLOOR);
    await conn.close();
    expect(await call).toMatchObject({ code: 'connection_closed' });
  });

  // FINDING 2: resumptions answered 200 that end at once (no response) were never counted: the SDK restarts its
  // counter at each 200 and the gate reset its count on res.ok. The loop outlived the call's timeout.
  it('a cut call stream whose resumptions are answered 200 and end at once: bounded by the resumption budget', async () => {
    let n = 0;
    const p = await peer({
      onGet: (_req, res) => void res.writeHead(200, { 'content-type': 'text/event-stream' }).end(`id: r${++n}\ndata: \n\n`),
      onPost: cutCallStream,
    });
    const { createTransport, side } = observing();
    const conn = await connect(p, { reconnect: POLICY, createTransport, standbyStream: false });
    const err = await rejection(conn.callTool('hang', {}, { timeoutMs: 150 }));
    expect(err).toMatchObject({ code: 'call_timeout' });
    expect(await loopOutcome(p, side, RESUMES_IN_ROW, 'resume')).toBe('bounded');
  });

  it('the floor holds on average for resumptions answered 200 that end at once (however long the loop runs)', async () => {
    let n = 0;
    const p = await peer({
      onGet: (_req, res) => void res.writeHead(200, { 'content-type': 'text/event-stream' }).end(`id: r${++n}\nretry: 0\ndata: \n\n`),
      onPost: (body, _req, res) => {
        if (body.method !== 'tools/call' || body.params?.name !== 'hang') return false;
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('id: p1\nretry: 0\ndata: \n\n', () => res.socket?.destroy());
        return true;
      },
    });
    const { createTransport } = observing();
    const conn = await connect(p, { reconnect: POLICY, createTransport, standbyStream: false });
    void conn.callTool('hang', {}, { timeoutMs: 600_000 }).catch(() => {});
    await p.getsReach(12);
    expectFloorOnAverage(p.getTimes.slice(0, 12), FLOOR);
  });

  it('standbyStream: false → no GET, also after the session is re-initialized (404)', async () => {
    const p = await peer();
    const { createTransport, side } = observing();
    const conn = await connect(p, { reconnect: POLICY, createTransport, standbyStream: false });
    expect(text(await conn.callTool('echo', { text: 'a' }))).toBe('a');
    p.forget();
    expect(text(await conn.callTool('echo', { text: 'b' }))).toBe('b');
    expect(side.transports.length).toBeGreaterThanOrEqual(1);
    expect(side.gets.length).toBeGreaterThan(0);
    expect(side.gets.every((g) => g.status === 405)).toBe(true);
    expect(p.gets).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------------------------

/** Records setTimeout calls made from the SDK transport or the standby gate, and whether they are still pending. */
function timerSpy() {
  const realSet = globalThis.setTimeout;
  const realClear = globalThis.clearTimeout;
  const timers: { ms: number; from: string; state: 'pending' | 'fired' | 'cleared'; handle: NodeJS.Timeout }[] = [];
  globalThis.setTimeout = ((fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const stack = new Error().stack ?? '';
    const from = stack.includes('streamableHttp') ? 'sdk' : stack.includes('standbyGate') ? 'gate' : '';
    if (!from) return realSet(fn, ms, ...args);
    const rec = { ms: ms ?? 0, from, state: 'pending' as 'pending' | 'fired' | 'cleared', handle: undefined as unknown as NodeJS.Timeout };
    rec.handle = realSet(
      (...a: unknown[]) => {
        rec.state = 'fired';
        fn(...a);
      },
      ms,
      ...args,
    );
    timers.push(rec);
    return rec.handle;
  }) as typeof setTimeout;
  globalThis.clearTimeout = ((h: NodeJS.Timeout | undefined) => {
    const rec = timers.find((t) => t.handle === h);
    if (rec && rec.state === 'pending') rec.state = 'cleared';
    return realClear(h);
  }) as typeof clearTimeout;
  const restore = () => {
    globalThis.setTimeout = realSet;
    globalThis.clearTimeout = realClear;
    for (const t of timers) if (t.state === 'pending') realClear(t.handle);
  };
  cleanups.push(async () => restore());
  return { timers, pendingRef: () => timers.filter((t) => t.state === 'pending' && t.handle.hasRef()) };
}

describe('close stops every loop', () => {
  it('closing a connection in a resuming loop: no GET reaches the server afterwards, no ref’d timer left', async () => {
    const spy = timerSpy();
    let n = 0;
    const p = await peer({
      onGet: (_req, res) => void res.writeHead(200, { 'content-type': 'text/event-stream' }).end(`id: e${++n}\ndata: \n\n`),
    });
    const { createTransport } = observing();
    const conn = await connect(p, { reconnect: POLICY, createTransport });
    await p.getsReach(3);
    await conn.close();
    const at = p.gets;
    await turn();
    expect(spy.pendingRef()).toEqual([]);
    expect(p.gets).toBeLessThanOrEqual(at);
  });

  // FINDING 3: a reopening GET in flight when the transport closes rejects (abort); the SDK's catch schedules
  // yet another attempt after close(), on the server's `retry` delay (any length), with a ref'd timer: it keeps
  // the process alive (jest open handle) until it fires and meets the gate's "aborted" 405.
  it('closing while a reopening GET waits for the server leaves no timer behind (the server said retry: 600000)', async () => {
    const spy = timerSpy();
    let held: ServerResponse | undefined;
    let onHeld!: () => void;
    const heldNow = new Promise<void>((r) => (onHeld = r));
    const p = await peer({
      onGet: (_req, res, n) => {
        if (n === 1) return void res.writeHead(200, { 'content-type': 'text/event-stream' }).end(': bye\n\n');
        held = res; // no headers: the GET waits
        onHeld();
      },
      onPost: (body, _req, res) => {
        if (body.method !== 'tools/call' || body.params?.name !== 'slowretry') return false;
        // A call's answer stream that sets the SDK transport's retry (transport-wide) to 10 minutes.
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end(`retry: 600000\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: body.id, result: { content: [{ type: 'text', text: 'r' }] } })}\n\n`);
        return true;
      },
    });
    const { createTransport, side } = observing();
    const conn = await connect(p, { reconnect: POLICY, createTransport });
    await heldNow;
    expect(text(await conn.callTool('slowretry', {}))).toBe('r');
    const inFlight = side.gets.length;
    await conn.close();
    await side.getSettled(inFlight);
    await turn();
    expect(held).toBeDefined();
    expect(spy.pendingRef().map((t) => `${t.from}:${t.ms}`)).toEqual([]);
  });

  it('closing the manager stops the standby loop of every user connection', async () => {
    const spy = timerSpy();
    const p = await peer({ onGet: (_req, res) => void res.writeHead(200, { 'content-type': 'text/event-stream' }).end('retry: 0\n\n') });
    const factory = new MCPConnectionFactory({ logger: quiet, reconnect: { ...POLICY, maxAttempts: 1000 } });
    cleanups.push(() => factory.close());
    const manager = new MCPManager({ servers: { svc: { type: 'streamable-http', url: p.url } }, connectionFactory: factory, logger: quiet });
    cleanups.push(() => manager.close());
    await manager.callTool({ user: { id: 'u1' }, serverName: 'svc', toolName: 'echo', arguments: { text: 'x' } });
    await manager.callTool({ user: { id: 'u2' }, serverName: 'svc', toolName: 'echo', arguments: { text: 'x' } });
    await p.getsReach(4);
    await manager.close();
    const at = p.gets;
    await turn();
    expect(spy.pendingRef()).toEqual([]);
    expect(p.gets).toBe(at);
  });
});

/** A server that answers `tools/call` of a tool named `echo-back …` with a JSON-RPC error echoing the name. */
function echoBack(body: Rpc, res: ServerResponse): boolean {
  const name = body.params?.name;
  if (body.method !== 'tools/call' || !name?.startsWith('echo-back')) return false;
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: body.id, error: { code: -32602, message: `Tool ${name} not found` } }));
  return true;
}

// ---------------------------------------------------------------------------------------------------------------

const MIB = 1024 * 1024;
/** A JSON body of about `bytes` bytes (a server error page, a gateway's dump). */
const bigJson = (bytes: number, extra: Record<string, unknown> = {}) => JSON.stringify({ error: 'x', ...extra, pad: 'p'.repeat(bytes) });

function answerOnce(method: string, tool: string | undefined, answer: (res: ServerResponse, peer: Peer, req: IncomingMessage) => void, times = 1): Hooks['onPost'] {
  let left = times;
  return (body, req, res, p) => {
    if (left <= 0 || body.method !== method || (tool !== undefined && body.params?.name !== tool)) return false;
    left--;
    answer(res, p, req);
    return true;
  };
}

describe('error answers still classified and recovered (bodies capped at 1 MiB)', () => {
  it.each([
    ['404 2 MiB JSON', 404, false],
    ['404 gzip bomb (32 MiB decoded)', 404, true],
    ['400 2 MiB JSON', 400, false],
    ['400 gzip bomb', 400, true],
  ] as const)('session gone, %s → re-initialized, the call resent and answered once', async (_n, status, gz) => {
    const bomb = gzipSync(Buffer.alloc(32 * MIB, 0x20));
    const p = await peer({
      onPost: answerOnce('tools/call', 'echo', (res, peer) => {
        peer.forget();
        if (gz) res.writeHead(status, { 'content-type': 'application/json', 'content-encoding': 'gzip' }).end(bomb);
        else res.writeHead(status, { 'content-type': 'application/json' }).end(bigJson(2 * MIB, { message: 'Session not found' }));
      }),
    });
    const conn = await connect(p, { reconnect: POLICY, standbyStream: false });
    expect(text(await conn.callTool('echo', { text: 'again' }))).toBe('again');
    expect(p.runs.echo).toBe(1);
    expect(text(await conn.callTool('echo', { text: 'still' }))).toBe('still');
  });

  it.each([
    ['2 MiB JSON', false],
    ['gzip bomb', true],
  ] as const)('401 with a %s body → one retry with fresh credentials, the call answered', async (_n, gz) => {
    const bomb = gzipSync(Buffer.alloc(32 * MIB, 0x20));
    const asked: boolean[] = [];
    let fresh = false;
    const p = await peer({
      onPost: (body, req, res) => {
        if (body.method !== 'tools/call' || req.headers.authorization === 'Bearer fresh') return false;
        const h = { 'content-type': 'application/json', 'www-authenticate': 'Bearer error="invalid_token"', ...(gz ? { 'content-encoding': 'gzip' } : {}) };
        res.writeHead(401, h).end(gz ? bomb : bigJson(2 * MIB));
        return true;
      },
    });
    const auth: ConnectionAuth = {
      authHeaders: async ({ forceRefresh }) => {
        asked.push(!!forceRefresh);
        if (forceRefresh) fresh = true;
        return { Authorization: `Bearer ${fresh ? 'fresh' : 'stale'}` };
      },
      retryUnauthorized: true,
    };
    const conn = await connect(p, { reconnect: POLICY, standbyStream: false }, auth);
    expect(text(await conn.callTool('echo', { text: 'authorized' }))).toBe('authorized');
    expect(asked).toContain(true);
    expect(p.runs.echo).toBe(1);
  });

  it.each([
    ['403 small JSON', 403, 'small', false],
    ['403 2 MiB JSON', 403, 'big', false],
    ['429 2 MiB JSON', 429, 'big', true],
    ['429 gzip bomb', 429, 'bomb', true],
    ['429 100 kB body over maxMessageBytes (maxResultBytes 1 000)', 429, 'mid', true],
    ['503 2 MiB', 503, 'big', true],
  ] as const)('%s → transport_error with its status, retryable as before; the connection stays usable', async (_n, status, size, retryable) => {
    const bomb = gzipSync(Buffer.alloc(32 * MIB, 0x20));
    const p = await peer({
      onPost: answerOnce('tools/call', 'echo', (res) => {
        const h: Record<string, string> = { 'content-type': 'application/json' };
        if (size === 'bomb') h['content-encoding'] = 'gzip';
        const body = size === 'bomb' ? bomb : size === 'big' ? bigJson(2 * MIB) : size === 'mid' ? bigJson(100_000) : JSON.stringify({ error: 'forbidden' });
        res.writeHead(status, h).end(body);
      }),
    });
    const conn = await connect(p, { reconnect: POLICY, standbyStream: false, limits: { maxResultBytes: 1_000 } });
    const err = await rejection(conn.callTool('echo', { text: 'x' }));
    expect(err).toBeInstanceOf(SwitchboardError);
    expect(err).toMatchObject({ code: 'transport_error', retryable });
    expect((err as Error).message).toContain(`HTTP ${status}`);
    expect((err as SwitchboardError).deadline).toBeUndefined();
    expect(p.runs.echo ?? 0).toBe(0);
    expect(text(await conn.callTool('echo', { text: 'next' }))).toBe('next');
  });

  it('a 500 with a 2 MiB body to notifications/cancelled does not break the connection', async () => {
    const p = await peer({
      onPost: answerOnce('notifications/cancelled', undefined, (res) => void res.writeHead(500).end(bigJson(2 * MIB))),
    });
    const conn = await connect(p, { reconnect: POLICY, standbyStream: false });
    const ac = new AbortController();
    const call = rejection(conn.callTool('hang', {}, { signal: ac.signal }));
    ac.abort();
    expect(await call).toMatchObject({ code: 'aborted' });
    expect(text(await conn.callTool('echo', { text: 'after cancel' }))).toBe('after cancel');
    await conn.close();
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('deadline on every timeout, and only there', () => {
  const hangInit: Hooks = { onPost: (body) => body.method === 'initialize' };

  it('connect timeout (MCPConnection via the factory) → connect_timeout with deadline initTimeoutMs', async () => {
    const p = await peer(hangInit);
    const factory = new MCPConnectionFactory({ logger: quiet });
    cleanups.push(() => factory.close());
    const config = parseServersConfig({ svc: { type: 'streamable-http', url: p.url, initTimeoutMs: 150 } }).svc!;
    const err = (await rejection(factory.create({ serverName: 'svc', config }))) as SwitchboardError;
    expect(err).toMatchObject({ code: 'connect_timeout', deadline: { option: 'initTimeoutMs', ms: 150 } });
    expect(err.toJSON()).toMatchObject({ deadline: { option: 'initTimeoutMs', ms: 150 } });
  });

  it('call timeout, fast path and full path (signal), config timeoutMs → call_timeout with deadline timeoutMs', async () => {
    const p = await peer();
    const conn = await connect(p, { standbyStream: false }, undefined, { timeoutMs: 130 });
    const fast = (await rejection(conn.callTool('hang', {}, { timeoutMs: 120 }))) as SwitchboardError;
    expect(fast).toMatchObject({ code: 'call_timeout', deadline: { option: 'timeoutMs', ms: 120 } });
    const full = (await rejection(conn.callTool('hang', {}, { timeoutMs: 110, signal: new AbortController().signal }))) as SwitchboardError;
    expect(full).toMatchObject({ code: 'call_timeout', deadline: { option: 'timeoutMs', ms: 110 } });
    const fromConfig = (await rejection(conn.callTool('hang', {}))) as SwitchboardError;
    expect(fromConfig).toMatchObject({ code: 'call_timeout', deadline: { option: 'timeoutMs', ms: 130 } });
    expect(JSON.parse(JSON.stringify(fromConfig))).toMatchObject({ deadline: { option: 'timeoutMs', ms: 130 } });
  });

  it('listTools timeout → call_timeout with deadline timeoutMs', async () => {
    const p = await peer({ onPost: (body) => body.method === 'tools/list' });
    const conn = await connect(p, { standbyStream: false });
    const err = (await rejection(conn.listTools({ timeoutMs: 120 }))) as SwitchboardError;
    expect(err).toMatchObject({ code: 'call_timeout', deadline: { option: 'timeoutMs', ms: 120 } });
  });

  it('maxTotalTimeoutMs with progress that keeps coming → call_timeout with deadline maxTotalTimeoutMs', async () => {
    const p = await peer();
    const conn = await connect(p, { standbyStream: false });
    let seen = 0;
    const err = (await rejection(
      conn.callTool('progress', {}, { timeoutMs: 100, resetTimeoutOnProgress: true, maxTotalTimeoutMs: 300, onProgress: () => void seen++ }),
    )) as SwitchboardError;
    expect(seen).toBeGreaterThan(0);
    expect(err).toMatchObject({ code: 'call_timeout', deadline: { option: 'maxTotalTimeoutMs', ms: 300 } });
  });

  it('through MCPManager: connect timeout, call timeout, and a call that times out waiting for a slow connect', async () => {
    const slow = await peer(hangInit);
    const ok = await peer();
    const manager = new MCPManager({
      servers: {
        slow: { type: 'streamable-http', url: slow.url, initTimeoutMs: 150 },
        slower: { type: 'streamable-http', url: slow.url, initTimeoutMs: 400 },
        ok: { type: 'streamable-http', url: ok.url },
      },
      logger: quiet,
    });
    cleanups.push(() => manager.close());
    const user = { id: 'u1' };
    const c = (await rejection(manager.callTool({ user, serverName: 'slow', toolName: 'echo', arguments: { text: 'x' } }))) as SwitchboardError;
    expect(c).toMatchObject({ code: 'connect_timeout', deadline: { option: 'initTimeoutMs', ms: 150 } });
    const t = (await rejection(manager.callTool({ user, serverName: 'ok', toolName: 'hang', timeoutMs: 120 }))) as SwitchboardError;
    expect(t).toMatchObject({ code: 'call_timeout', deadline: { option: 'timeoutMs', ms: 120 } });
    const w = (await rejection(manager.callTool({ user, serverName: 'slower', toolName: 'echo', arguments: { text: 'x' }, timeoutMs: 140 }))) as SwitchboardError;
    // The call's own timeoutMs does not bound its wait for the connect (by design): the connect's deadline is named.
    expect(w).toMatchObject({ code: 'connect_timeout', deadline: { option: 'initTimeoutMs', ms: 400 } });
  });

  it('no deadline on aborted, server_error, too_large or transport_error', async () => {
    const bad = answerOnce('tools/call', 'echo', (res) => void res.writeHead(502).end('bad gateway'));
    const p = await peer({ onPost: (body, req, res, peer) => bad!(body, req, res, peer) || echoBack(body, res) });
    const conn = await connect(p, { standbyStream: false });
    const ac = new AbortController();
    const call = rejection(conn.callTool('hang', {}, { signal: ac.signal, timeoutMs: 600_000 }));
    ac.abort();
    const errs = [
      await call,
      await rejection(conn.callTool('echo', { text: 'x' })),
      await rejection(conn.callTool('echo-back missing', {})),
    ] as SwitchboardError[];
    expect(errs.map((e) => e.code)).toEqual(['aborted', 'transport_error', expect.stringMatching(/server_error|tool_not_found/)]);
    for (const e of errs) {
      expect(e.deadline).toBeUndefined();
      expect('deadline' in e.toJSON()).toBe(false);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('redaction at the 16 KiB edge', () => {
  const EDGE = 16 * 1024;
  const filler = (n: number) => 'lorem ipsum dolor '.repeat(Math.ceil(n / 18) + 1).slice(0, n);
  const secrets = {
    opaque: 'sk9LiveA1b2C3d4E5f6G7h8I9j0KlMnOpQr',
    bearer: 'Bearer abcdEFGH1234ijklMNOP5678',
    param: 'client_secret=hunter2!hunter2!hunter2',
    jwt: 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c',
  };
  /** The parts that must never show: every 8-character piece of the secret value (after its keyword). */
  const pieces = (secret: string) => {
    const value = secret.replace(/^(Bearer |client_secret=)/, '');
    const out: string[] = [];
    for (let i = 0; i + 8 <= value.length; i++) out.push(value.slice(i, i + 8));
    return out;
  };

  it.each(Object.entries(secrets))('%s secret at every offset across the cut: never shown', (_kind, secret) => {
    for (let k = 0; k <= secret.length; k++) {
      // k characters of the secret fall before the edge.
      const t = `${filler(EDGE - k - 1)} ${secret} and then ${filler(5_000)}`;
      const out = redactSecrets(t);
      for (const piece of pieces(secret)) if (out.includes(piece)) throw new Error(`k=${k}: "${piece}" shown`);
      expect(out.length).toBeLessThan(EDGE + 100);
    }
  });

  it('a 4xx body echoing a secret right at the edge: not in the error, its cause or toJSON', async () => {
    const secret = secrets.opaque;
    const prefix = 'Streamable HTTP error: Error POSTing to endpoint: ';
    for (const k of [0, 5, 12, secret.length - 3, secret.length]) {
      const body = `${filler(EDGE - prefix.length - k - 1)} ${secret} tail ${filler(3_000)}`;
      const p = await peer({ onPost: answerOnce('tools/call', 'echo', (res) => void res.writeHead(422, { 'content-type': 'text/plain' }).end(body)) });
      const conn = await connect(p, { standbyStream: false });
      const err = (await rejection(conn.callTool('echo', { text: 'x' }))) as SwitchboardError;
      const shown = `${inspect(err, { depth: 20 })}${JSON.stringify(err)}${String((err.cause as Error | undefined)?.message)}`;
      for (const piece of pieces(secret)) expect(shown).not.toContain(piece);
      await conn.close();
    }
  });

  it('a server JSON-RPC error echoing a tool name whose secret sits at the edge: not in the error or its cause', async () => {
    const secret = secrets.opaque;
    const p = await peer({ onPost: (body, _req, res) => echoBack(body, res) });
    const conn = await connect(p, { standbyStream: false });
    for (const k of [0, 7, 20, secret.length]) {
      const name = `echo-back ${filler(EDGE - 'Tool echo-back '.length - k - 1)} ${secret}${filler(100)}`;
      const err = (await rejection(conn.callTool(name, {}))) as SwitchboardError;
      const shown = `${inspect(err, { depth: 20 })}${JSON.stringify(err)}${String((err.cause as Error | undefined)?.message)}`;
      for (const piece of pieces(secret)) expect(shown).not.toContain(piece);
    }
  });
});
