/**
 * Helpers for the leak scenarios of `bench/soak.js` (the long runs of `__tests__/hardening/leaks.test.ts`):
 * a mocked transport, a resource tracker over async_hooks, a bounded-concurrency cycle runner.
 * @module
 */
import { createHook } from 'node:async_hooks';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

/** The hardening suite's deliberately simple stdio MCP server (`exit-on-call` mode: `echo` echoes). */
export const STDIO_SERVER = fileURLToPath(new URL('../../__tests__/fixtures/hardening/stdio-faulty.mjs', import.meta.url));

/** Resource types that a leak would leave behind: timers, sockets, servers, child processes, pipes. */
const TRACKED = new Set(['Timeout', 'Immediate', 'TCPWRAP', 'TCPCONNECTWRAP', 'TCPSERVERWRAP', 'PROCESSWRAP', 'PIPEWRAP', 'PIPECONNECTWRAP', 'TTYWRAP', 'FSEVENTWRAP', 'SIGNALWRAP']);

/**
 * Counts resources created and not yet destroyed while enabled: only those whose creation stack passes through
 * the built library, the SDK, undici or the soak itself; not the in-process test server's (`dist/testing/`,
 * hono) nor the heap settling's. Unref'd timers count too.
 *
 * @returns {{ stop: () => void, live: () => Record<string, number>, stacks: () => string[] }}
 * @example
 * ```js
 * const tracker = trackResources(); await work(); await settledHeapUsed();
 * const left = tracker.stacks(); tracker.stop();
 * ```
 */
export function trackResources() {
  const live = new Map();
  const ours = (stack) =>
    !stack.includes('settledHeap') &&
    !stack.includes(`${REPO}dist/testing/`) &&
    !stack.includes(`${REPO}node_modules/@hono/`) &&
    (stack.includes(`${REPO}dist/`) || stack.includes(`${REPO}bench/`) || stack.includes(`${REPO}node_modules/@modelcontextprotocol/`) || stack.includes(`${REPO}node_modules/undici/`));
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
    live() {
      const out = {};
      for (const { type } of live.values()) out[type] = (out[type] ?? 0) + 1;
      return out;
    },
    stacks: () => [...live.values()].map((r) => `${r.type}\n${r.stack.split('\n').slice(2, 12).join('\n')}`),
  };
}

/**
 * Runs `n` cycles, `concurrency` at a time.
 *
 * @param {number} n
 * @param {number} concurrency
 * @param {(i: number) => Promise<void>} one
 * @returns {Promise<void>}
 */
export async function cycles(n, concurrency, one) {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) await one(next++);
    }),
  );
}

/**
 * How many of the weakly referenced objects are still reachable (call after a full GC).
 *
 * @param {WeakRef<object>[]} refs
 * @returns {number}
 */
export function reachable(refs) {
  return refs.filter((r) => r.deref() !== undefined).length;
}

/**
 * How many of `refs` are still reachable once garbage collection has had its chances: up to `rounds` rounds of a
 * settled GC, each in a later macrotask (objects freed only by a finalizer, a closed socket's last callback or a
 * pending job's keep-alive need another turn). A leak stays reachable in every round; only 0 ends early.
 */
export async function reachableAfterGc(refs, settle, rounds = 6) {
  let left = refs.length;
  for (let i = 0; i < rounds; i++) {
    await settle();
    await new Promise((resolve) => setTimeout(resolve, 20));
    left = reachable(refs);
    if (left === 0) return 0;
  }
  return left;
}

/** Resource counts from `process.getActiveResourcesInfo()`, by type. */
export function activeResources() {
  const out = {};
  for (const t of process.getActiveResourcesInfo()) out[t] = (out[t] ?? 0) + 1;
  return out;
}

/** True while a process with this pid exists. */
export function pidAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code !== 'ESRCH';
  }
}

/**
 * A mocked MCP transport: answers initialize and tools/call itself (no server), so cycles measure the library
 * and the SDK client. Counts creations and closes in `counts`.
 */
export class MockTransport {
  #closed = false;
  /** @param {{ created: number, closed: number }} counts */
  constructor(counts) {
    this.counts = counts;
    counts.created++;
  }
  async start() {}
  async close() {
    if (this.#closed) return;
    this.#closed = true;
    this.counts.closed++;
    this.onclose?.();
  }
  async send(message) {
    if (message.id === undefined || this.#closed) return;
    const result =
      message.method === 'initialize'
        ? { protocolVersion: message.params?.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: 'mock', version: '1.0.0' } }
        : message.method === 'tools/call'
          ? { content: [{ type: 'text', text: String(message.params?.arguments?.text) }] }
          : {};
    const id = message.id;
    queueMicrotask(() => this.onmessage?.({ jsonrpc: '2.0', id, result }));
  }
}
