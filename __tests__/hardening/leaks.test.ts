/**
 * Leaks: connect → call → evict cycles, then the heap after GC, the handles still alive (timers, sockets,
 * child processes, tracked with async_hooks so unref'd timers count too), the transports still reachable after
 * GC and, over HTTP, the server's sessions. Short runs (a few seconds in all), so that `npm test` stays fast; the
 * long runs of the same scenarios (10,000 mocked and 5,000 HTTP cycles, 20 stdio children) are `npm run soak`
 * (bench/soak.js). Figures go to reports/test-figures.txt, not the console.
 */
import { createHook } from 'node:async_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { CallToolResult, JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { MCPManager } from '../../src/MCPManager.js';
import { MCPConnectionFactory } from '../../src/MCPConnectionFactory.js';
import { startTestMcpServer } from '../../src/testing/testMcpServer.js';
import { createDefaultTransport } from '../../src/transport/createTransport.js';
import { FAULTY_STDIO, instrumentedFactory, pidAlive } from '../fixtures/hardening/kit.js';
import { report } from '../support/report.js';

const MB = 1024 * 1024;
const text = (r: CallToolResult) => (r.content[0] as { text: string }).text;

/** `global.gc`, or one obtained by turning --expose-gc on at run time (jest workers are started without it). */
function getGc(): () => void {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (existing) return existing;
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}
const gc = getGc();

/** Heap used after full collections (a few rounds: finalizers and weak callbacks free more on the next one). */
async function settledHeap(): Promise<number> {
  for (let i = 0; i < 4; i++) {
    gc();
    await new Promise<void>((r) => setImmediate(r));
  }
  return process.memoryUsage().heapUsed;
}

/** Resource types that a leak would leave behind: timers, sockets, servers, child processes, pipes. */
const TRACKED = new Set(['Timeout', 'Immediate', 'TCPWRAP', 'TCPCONNECTWRAP', 'TCPSERVERWRAP', 'PROCESSWRAP', 'PIPEWRAP', 'PIPECONNECTWRAP', 'TTYWRAP', 'FSEVENTWRAP', 'SIGNALWRAP']);

const REPO = new URL('../../', import.meta.url).pathname;

/**
 * Counts resources created and not yet destroyed, by type, while enabled: only those created by the library,
 * its dependencies or this test (the stack says who), not jest's own. Unref'd timers count too.
 */
function trackResources() {
  const live = new Map<number, { type: string; stack: string }>();
  const ours = (stack: string) =>
    !stack.includes('settledHeap') &&
    !stack.includes(`${REPO}node_modules/@jest/`) &&
    // The test MCP server lives in this process too; its resources are not the client's.
    !stack.includes(`${REPO}src/testing/`) &&
    !stack.includes(`${REPO}node_modules/@hono/`) &&
    (stack.includes(`${REPO}src/`) || stack.includes(`${REPO}__tests__/`) || stack.includes(`${REPO}node_modules/@modelcontextprotocol/`) || stack.includes(`${REPO}node_modules/undici/`));
  const hook = createHook({
    init(id, type) {
      if (!TRACKED.has(type)) return;
      const limit = Error.stackTraceLimit;
      Error.stackTraceLimit = 40;
      const stack = new Error().stack ?? '';
      Error.stackTraceLimit = limit;
      if (ours(stack)) live.set(id, { type, stack });
    },
    destroy(id) {
      live.delete(id);
    },
  });
  hook.enable();
  return {
    stop: () => hook.disable(),
    live(): Record<string, number> {
      const out: Record<string, number> = {};
      for (const { type } of live.values()) out[type] = (out[type] ?? 0) + 1;
      return out;
    },
    /** Creation stacks of what is still alive, for a failure message. */
    stacks: () => [...live.values()].map((r) => `${r.type}\n${r.stack.split('\n').slice(2, 12).join('\n')}`),
  };
}

/** Runs `n` cycles, `concurrency` at a time. */
async function cycles(n: number, concurrency: number, one: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) await one(next++);
    }),
  );
}

/** Weak references to every transport made, to count those still reachable after eviction and GC. */
function reachable(refs: WeakRef<object>[]): number {
  return refs.filter((r) => r.deref() !== undefined).length;
}

/**
 * A mocked transport: answers initialize and tools/call itself (no server object), so the cycles measure the
 * library and the SDK client, not a server.
 */
class MockTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  #closed = false;
  constructor(private readonly counts: { created: number; closed: number }) {
    counts.created++;
  }
  async start(): Promise<void> {}
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.counts.closed++;
    this.onclose?.();
  }
  async send(message: JSONRPCMessage): Promise<void> {
    const msg = message as { id?: string | number; method?: string; params?: { protocolVersion?: string; arguments?: { text?: string } } };
    if (msg.id === undefined || this.#closed) return;
    const result =
      msg.method === 'initialize'
        ? { protocolVersion: msg.params?.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: 'mock', version: '1.0.0' } }
        : msg.method === 'tools/call'
          ? { content: [{ type: 'text', text: String(msg.params?.arguments?.text) }] }
          : {};
    const id = msg.id;
    queueMicrotask(() => this.onmessage?.({ jsonrpc: '2.0', id, result } as JSONRPCMessage));
  }
}

function activeResources(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of process.getActiveResourcesInfo()) out[t] = (out[t] ?? 0) + 1;
  return out;
}

it('500 connect → call → evict cycles over mocked transports: heap within 5 MB, no resource or transport left', async () => {
  const N = 500;
  const WARMUP = 100;
  const TRACKED_N = 100;
  const counts = { created: 0, closed: 0 };
  const refs: WeakRef<object>[] = [];
  const factory = new MCPConnectionFactory({
    createTransport: () => {
      const t = new MockTransport(counts);
      refs.push(new WeakRef(t));
      return t;
    },
  });
  const m = new MCPManager({ servers: { mem: { command: 'mem', args: ['{{user.id}}'] } }, connectionFactory: factory });
  let evictions = 0;
  m.on('evict', () => evictions++);
  const cycle = async (i: number) => {
    const user = { id: `u${i}` };
    const r = await m.callTool({ user, serverName: 'mem', toolName: 'echo', arguments: { text: user.id } });
    if (text(r) !== user.id) throw new Error(`cross-talk: ${text(r)} for ${user.id}`);
    await m.disconnectUser(user.id);
  };
  await cycles(WARMUP, 25, (i) => cycle(10 * N + i)); // warm-up: JIT, module caches, pools at steady size
  const activeBefore = activeResources();
  const heapBefore = await settledHeap();
  await cycles(N, 25, cycle);
  const heapAfter = await settledHeap();
  const activeAfter = activeResources();
  // A further 100 cycles under async_hooks (they slow every promise down).
  const tracker = trackResources();
  await cycles(TRACKED_N, 25, (i) => cycle(2 * N + i));
  await settledHeap();
  const live = tracker.live();
  const leftovers = tracker.stacks();
  tracker.stop();
  const stats = m.stats();
  await m.close();
  await factory.close();
  await settledHeap();
  const stillReachable = reachable(refs);

  const delta = (heapAfter - heapBefore) / MB;
  report(
    'leaks',
    `mocked transports: ${N} cycles; heap after GC ${(heapBefore / MB).toFixed(2)} MB → ${(heapAfter / MB).toFixed(2)} MB ` +
      `(Δ ${delta.toFixed(2)} MB); active resources before ${JSON.stringify(activeBefore)} after ${JSON.stringify(activeAfter)}; ` +
      `resources left after ${TRACKED_N} tracked cycles ${JSON.stringify(live)}; connections left ${stats.userConnections}, pending ${stats.pendingConnects}; ` +
      `transports created ${counts.created}, closed ${counts.closed}, reachable after GC ${stillReachable}`,
  );
  expect(Math.abs(delta)).toBeLessThan(5);
  for (const [type, n] of Object.entries(activeAfter)) expect([type, n]).toEqual([type, Math.min(n, activeBefore[type] ?? 0)]);
  expect(leftovers).toEqual([]);
  expect(stats).toMatchObject({ users: 0, userConnections: 0, pendingConnects: 0 });
  expect(evictions).toBe(N + WARMUP + TRACKED_N);
  expect(counts.created).toBe(N + WARMUP + TRACKED_N);
  expect(counts.closed).toBe(counts.created);
  expect(stillReachable).toBe(0);
}, 60_000);

it('100 connect → call → evict cycles over streamable HTTP: heap within 5 MB, no socket, timer or transport left, sessions closed = opened', async () => {
  const N = 100;
  const WARMUP = 30;
  const TRACKED_N = 10;
  const server = await startTestMcpServer({ transport: 'streamable-http' });
  try {
    const refs: WeakRef<object>[] = [];
    const factory = new MCPConnectionFactory({
      createTransport: (ctx) => {
        const t = createDefaultTransport(ctx);
        refs.push(new WeakRef(t));
        return t;
      },
    });
    const m = new MCPManager({ servers: { web: { url: server.url, headers: { 'X-User': '{{user.id}}' } } }, connectionFactory: factory });
    const cycle = async (i: number) => {
      const user = { id: `h${i}` };
      const r = await m.callTool({ user, serverName: 'web', toolName: 'echo', arguments: { text: user.id } });
      if (text(r) !== user.id) throw new Error(`cross-talk: ${text(r)} for ${user.id}`);
      await m.disconnectUser(user.id);
    };
    await cycles(WARMUP, 10, (i) => cycle(10 * N + i)); // warm-up: the JIT's code alone is a few MB
    server.requests.length = 0; // the test kit's request log is not the library's memory
    const heapBefore = await settledHeap();
    const opened0 = server.stats().sessionsOpened;
    await cycles(N, 10, cycle);
    // Every evicted session was DELETEd: the server saw as many closes as opens.
    const st = await server.waitForStats((s) => s.liveSessions === 0);
    server.requests.length = 0;
    const heapAfter = await settledHeap();
    // A few more cycles under async_hooks, then close: no client socket, timer or stream may outlive it.
    const tracker = trackResources();
    await cycles(TRACKED_N, 10, (i) => cycle(2 * N + i));
    await m.close();
    await factory.close(); // pooled keep-alive sockets go with the dispatcher
    const final = await server.waitForStats((s) => s.liveSessions === 0);
    await settledHeap();
    const all = tracker.stacks();
    tracker.stop();
    const stillReachable = reachable(refs);
    // undici keeps ONE process-wide timer for its timer wheel (FastTimer), whatever the number of requests.
    const undiciWheel = all.filter((st) => st.includes('undici/lib/util/timers.js'));
    const leftovers = all.filter((st) => !undiciWheel.includes(st));
    const live = { left: leftovers.length, undiciTimerWheel: undiciWheel.length };

    const delta = (heapAfter - heapBefore) / MB;
    report(
      'leaks',
      `streamable HTTP: ${N} cycles; heap after GC ${(heapBefore / MB).toFixed(2)} MB → ${(heapAfter / MB).toFixed(2)} MB ` +
        `(Δ ${delta.toFixed(2)} MB); client resources left after ${TRACKED_N} tracked cycles + close ${JSON.stringify(live)}; ` +
        `sessions opened ${st.sessionsOpened - opened0}, closed ${st.sessionsClosed - opened0 + (st.sessionsOpened - st.sessionsClosed)} ` +
        `(all-time ${final.sessionsOpened} opened / ${final.sessionsClosed} closed, live ${final.liveSessions}, expired ${final.sessionsExpired}); ` +
        `transports created ${refs.length}, reachable after GC ${stillReachable}`,
    );
    expect(Math.abs(delta)).toBeLessThan(5);
    expect(st.sessionsOpened - opened0).toBe(N);
    expect(st.sessionsClosed).toBe(st.sessionsOpened);
    expect(final.sessionsOpened).toBe(N + WARMUP + TRACKED_N);
    expect(final.sessionsClosed).toBe(final.sessionsOpened);
    expect(final.liveSessions).toBe(0);
    expect(leftovers).toEqual([]);
    expect(undiciWheel.length).toBeLessThanOrEqual(1);
    expect(refs).toHaveLength(N + WARMUP + TRACKED_N);
    expect(stillReachable).toBe(0);
  } finally {
    await server.close();
  }
}, 60_000);

it('stdio: 5 spawn → call → evict cycles leave no child process and no pipe', async () => {
  const N = 5;
  const inst = instrumentedFactory();
  const m = new MCPManager({
    servers: { kid: { command: process.execPath, args: [FAULTY_STDIO, 'exit-on-call', '{{user.id}}'], stderr: 'ignore' } },
    connectionFactory: inst.factory,
  });
  const tracker = trackResources();
  await cycles(N, 5, async (i) => {
    const user = { id: `s${i}` };
    expect(text(await m.callTool({ user, serverName: 'kid', toolName: 'echo', arguments: { text: user.id } }))).toBe(user.id);
    await m.disconnectUser(user.id);
  });
  await m.close();
  await inst.factory.close();
  await settledHeap(); // lets pending destroy hooks run
  const all = tracker.stacks();
  tracker.stop();
  // The SDK's StdioClientTransport.close() races the child's exit against an unref'd 2 s timer it never
  // clears: bounded, it expires on its own. Counted apart; anything else is a leak.
  const sdkCloseTimers = all.filter((st) => st.startsWith('Timeout') && st.includes('StdioClientTransport.close'));
  const leftovers = all.filter((st) => !sdkCloseTimers.includes(st));
  const alive = inst.pids.filter(pidAlive);
  report(
    'leaks',
    `stdio: ${inst.pids.length} children spawned, ${alive.length} alive after eviction; resources left ${leftovers.length} ` +
      `(plus ${sdkCloseTimers.length} bounded 2 s SDK close timers)`,
  );
  expect(inst.pids).toHaveLength(N);
  expect(alive).toEqual([]);
  expect(leftovers).toEqual([]);
});
