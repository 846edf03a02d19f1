/**
 * Leaks: many connect → call → evict cycles, then the heap after GC, the handles still alive (timers, sockets,
 * child processes, tracked with async_hooks so unref'd timers count too) and, over HTTP, the server's sessions.
 * Figures are printed.
 */
import { createHook } from 'node:async_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { CallToolResult, JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { MCPManager } from '../../src/MCPManager.js';
import { MCPConnectionFactory } from '../../src/MCPConnectionFactory.js';
import { startTestMcpServer } from '../../src/testing/testMcpServer.js';
import { FAULTY_STDIO, instrumentedFactory, pidAlive } from '../fixtures/hardening/kit.js';

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

/**
 * A mocked transport: answers initialize and tools/call itself (no server object), so 10,000 cycles measure
 * the library and the SDK client, not a server.
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

it('10,000 connect → call → evict cycles over mocked transports: heap within 5 MB, no resource left', async () => {
  const N = 10_000;
  const TRACKED_N = 1_000;
  const counts = { created: 0, closed: 0 };
  const factory = new MCPConnectionFactory({ createTransport: () => new MockTransport(counts) });
  const m = new MCPManager({ servers: { mem: { command: 'mem', args: ['{{user.id}}'] } }, connectionFactory: factory });
  let evictions = 0;
  m.on('evict', () => evictions++);
  const cycle = async (i: number) => {
    const user = { id: `u${i}` };
    const r = await m.callTool({ user, serverName: 'mem', toolName: 'echo', arguments: { text: user.id } });
    if (text(r) !== user.id) throw new Error(`cross-talk: ${text(r)} for ${user.id}`);
    await m.disconnectUser(user.id);
  };
  await cycles(500, 25, (i) => cycle(10 * N + i)); // warm-up: JIT, module caches, pools at steady size
  const activeBefore = activeResources();
  const heapBefore = await settledHeap();
  const started = performance.now();
  await cycles(N, 25, cycle);
  const elapsed = performance.now() - started;
  const heapAfter = await settledHeap();
  const activeAfter = activeResources();
  // async_hooks slow every promise down, so they watch a further 1,000 cycles rather than all 10,000.
  const tracker = trackResources();
  await cycles(TRACKED_N, 25, (i) => cycle(2 * N + i));
  await settledHeap();
  const live = tracker.live();
  const leftovers = tracker.stacks();
  tracker.stop();
  const stats = m.stats();
  await m.close();
  await factory.close();

  const delta = (heapAfter - heapBefore) / MB;
  console.log(
    `[leaks] mocked transports: ${N} cycles in ${(elapsed / 1000).toFixed(1)} s; heap after GC ${(heapBefore / MB).toFixed(2)} MB → ${(heapAfter / MB).toFixed(2)} MB ` +
      `(Δ ${delta.toFixed(2)} MB); active resources before ${JSON.stringify(activeBefore)} after ${JSON.stringify(activeAfter)}; ` +
      `resources left after ${TRACKED_N} tracked cycles ${JSON.stringify(live)}; connections left ${stats.userConnections}, pending ${stats.pendingConnects}; ` +
      `transports created ${counts.created}, closed ${counts.closed}`,
  );
  expect(Math.abs(delta)).toBeLessThan(5);
  for (const [type, n] of Object.entries(activeAfter)) expect([type, n]).toEqual([type, Math.min(n, activeBefore[type] ?? 0)]);
  expect(leftovers).toEqual([]);
  expect(stats).toMatchObject({ users: 0, userConnections: 0, pendingConnects: 0 });
  expect(evictions).toBe(N + 500 + TRACKED_N);
  expect(counts.closed).toBe(counts.created);
}, 60_000);

it('1,000 connect → call → evict cycles over streamable HTTP: heap within 5 MB, no socket or timer left, sessions closed = opened', async () => {
  const N = 1_000;
  const server = await startTestMcpServer({ transport: 'streamable-http' });
  try {
    const factory = new MCPConnectionFactory();
    const m = new MCPManager({ servers: { web: { url: server.url, headers: { 'X-User': '{{user.id}}' } } }, connectionFactory: factory });
    const cycle = async (i: number) => {
      const user = { id: `h${i}` };
      const r = await m.callTool({ user, serverName: 'web', toolName: 'echo', arguments: { text: user.id } });
      if (text(r) !== user.id) throw new Error(`cross-talk: ${text(r)} for ${user.id}`);
      await m.disconnectUser(user.id);
    };
    await cycles(100, 10, (i) => cycle(10 * N + i)); // warm-up: the JIT's code alone is a few MB
    server.requests.length = 0; // the test kit's request log is not the library's memory
    const heapBefore = await settledHeap();
    const opened0 = server.stats().sessionsOpened;
    const started = performance.now();
    await cycles(N, 10, cycle);
    const elapsed = performance.now() - started;
    // Every evicted session was DELETEd: the server saw as many closes as opens.
    const st = await server.waitForStats((s) => s.liveSessions === 0);
    server.requests.length = 0;
    const heapAfter = await settledHeap();
    // A further 100 cycles under async_hooks, then close: no client socket, timer or stream may outlive it.
    const TRACKED_N = 100;
    const tracker = trackResources();
    await cycles(TRACKED_N, 10, (i) => cycle(2 * N + i));
    await m.close();
    await factory.close(); // pooled keep-alive sockets go with the dispatcher
    const final = await server.waitForStats((s) => s.liveSessions === 0);
    await settledHeap();
    const all = tracker.stacks();
    tracker.stop();
    // undici keeps ONE process-wide timer for its timer wheel (FastTimer), whatever the number of requests.
    const undiciWheel = all.filter((st) => st.includes('undici/lib/util/timers.js'));
    const leftovers = all.filter((st) => !undiciWheel.includes(st));
    const live = { left: leftovers.length, undiciTimerWheel: undiciWheel.length };

    const delta = (heapAfter - heapBefore) / MB;
    console.log(
      `[leaks] streamable HTTP: ${N} cycles in ${(elapsed / 1000).toFixed(1)} s; heap after GC ${(heapBefore / MB).toFixed(2)} MB → ${(heapAfter / MB).toFixed(2)} MB ` +
        `(Δ ${delta.toFixed(2)} MB); client resources left after ${TRACKED_N} tracked cycles + close ${JSON.stringify(live)}; ` +
        `sessions opened ${st.sessionsOpened - opened0}, closed ${st.sessionsClosed - opened0 + (st.sessionsOpened - st.sessionsClosed)} ` +
        `(all-time ${final.sessionsOpened} opened / ${final.sessionsClosed} closed, live ${final.liveSessions}, expired ${final.sessionsExpired})`,
    );
    expect(Math.abs(delta)).toBeLessThan(5);
    expect(st.sessionsOpened - opened0).toBe(N);
    expect(st.sessionsClosed).toBe(st.sessionsOpened);
    expect(final.sessionsClosed).toBe(final.sessionsOpened);
    expect(final.liveSessions).toBe(0);
    expect(leftovers).toEqual([]);
    expect(undiciWheel.length).toBeLessThanOrEqual(1);
  } finally {
    await server.close();
  }
}, 90_000);

it('stdio: 20 spawn → call → evict cycles leave no child process and no pipe', async () => {
  const inst = instrumentedFactory();
  const m = new MCPManager({
    servers: { kid: { command: process.execPath, args: [FAULTY_STDIO, 'exit-on-call', '{{user.id}}'], stderr: 'ignore' } },
    connectionFactory: inst.factory,
  });
  const tracker = trackResources();
  await cycles(20, 4, async (i) => {
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
  console.log(
    `[leaks] stdio: ${inst.pids.length} children spawned, ${alive.length} alive after eviction; resources left ${leftovers.length} ` +
      `(plus ${sdkCloseTimers.length} bounded 2 s SDK close timers)`,
  );
  expect(inst.pids).toHaveLength(20);
  expect(alive).toEqual([]);
  expect(leftovers).toEqual([]);
});
