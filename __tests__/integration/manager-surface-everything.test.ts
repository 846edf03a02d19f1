/**
 * The progress-based deadline through `MCPManager.callTool`, letting real time pass, against
 * `@modelcontextprotocol/server-everything` (a child process, streamable HTTP on 127.0.0.1, user-scoped by a
 * `{{user.id}}` header): its `trigger-long-running-operation` tool sleeps `duration / steps` seconds per step and
 * reports progress after each one, then answers. Here: 5 steps of 300 ms (1.5 s in all) against a 1 s `timeoutMs`.
 * No sleeps in the test and no wall-clock assertions: what decides each case is the server's own pace.
 */
import { SwitchboardError } from '../../src/errors.js';
import { MCPManager, type CallToolArgs } from '../../src/MCPManager.js';
import type { UserContext } from '../../src/types.js';
import { rejectionOf } from '../support/errors.js';
import { startEverythingHttp } from '../support/everything.js';
import { firstText } from '../support/mcp.js';

const STEPS = 5;
const DURATION_S = 1.5; // a step every 300 ms
/** Shorter than the whole operation (1.5 s), much longer than a step (300 ms). */
const TIMEOUT_MS = 1000;

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const alice: UserContext = { id: 'alice', tenantId: 'contoso' };
let manager: MCPManager;

beforeAll(async () => {
  const server = await startEverythingHttp();
  cleanups.push(() => server.stop());
  manager = new MCPManager({
    servers: { everything: { type: 'streamable-http', url: `http://127.0.0.1:${server.port}/mcp`, headers: { 'X-User': '{{user.id}}' } } },
    circuitBreaker: false,
  });
  cleanups.push(() => manager.close());
  // Connected before the timed calls, so that no connect time counts against their deadlines.
  await manager.listTools({ user: alice, serverName: 'everything' });
});

function longRunning(progress: { progress: number; total?: number }[], extra: Partial<CallToolArgs>) {
  return manager.callTool({
    user: alice,
    serverName: 'everything',
    toolName: 'trigger-long-running-operation',
    arguments: { duration: DURATION_S, steps: STEPS },
    timeoutMs: TIMEOUT_MS,
    onProgress: (p) => progress.push({ progress: p.progress, total: p.total }),
    ...extra,
  });
}

describe('MCPManager.callTool: the progress-based deadline, against server-everything', () => {
  it('resetTimeoutOnProgress: a call longer than timeoutMs completes while progress keeps coming; onProgress sees every step', async () => {
    const progress: { progress: number; total?: number }[] = [];
    const result = await longRunning(progress, { resetTimeoutOnProgress: true, maxTotalTimeoutMs: 20_000 });
    expect(firstText(result)).toBe(`Long running operation completed. Duration: ${DURATION_S} seconds, Steps: ${STEPS}.`);
    // Steps 1-4 arrive 300 ms apart from the result. The last step's notification and the result leave the server
    // back to back; when both arrive in one read the SDK handles the result first and drops that last progress
    // (see client-surface.test.ts), so step 5 is there or not, but never anything else.
    expect(progress.slice(0, STEPS - 1)).toEqual([1, 2, 3, 4].map((n) => ({ progress: n, total: STEPS })));
    expect(progress.slice(STEPS - 1)).toEqual(progress.length === STEPS ? [{ progress: STEPS, total: STEPS }] : []);
  });

  it('without resetTimeoutOnProgress the same call times out (call_timeout), progress or not', async () => {
    const progress: { progress: number; total?: number }[] = [];
    const err = await rejectionOf(longRunning(progress, {}), SwitchboardError);
    expect(err).toMatchObject({ code: 'call_timeout', retryable: true, serverName: 'everything' });
    expect(err.message).toMatch(/timed out after \d+ ms \(timeoutMs\)$/);
    expect(err.deadline).toEqual({ option: 'timeoutMs', ms: expect.any(Number) });
    // Progress did arrive (the first step comes 700 ms before the deadline), and did not move the deadline.
    expect(progress.length).toBeGreaterThanOrEqual(1);
    expect(progress.length).toBeLessThan(STEPS);
  });

  it('maxTotalTimeoutMs below the duration bounds the call although progress keeps resetting its deadline', async () => {
    const progress: { progress: number; total?: number }[] = [];
    const err = await rejectionOf(longRunning(progress, { resetTimeoutOnProgress: true, maxTotalTimeoutMs: 800 }), SwitchboardError);
    expect(err).toMatchObject({ code: 'call_timeout', retryable: true, serverName: 'everything' });
    // The message says which deadline ran out.
    expect(err.message).toBe('Request to MCP server "everything" timed out after 800 ms (maxTotalTimeoutMs)');
    // …and so does a field a host can switch on, also in the log-safe JSON form.
    expect(err.deadline).toEqual({ option: 'maxTotalTimeoutMs', ms: 800 });
    expect(err.toJSON()).toMatchObject({ deadline: { option: 'maxTotalTimeoutMs', ms: 800 } });
    expect(progress.length).toBeGreaterThanOrEqual(1);
    expect(progress.length).toBeLessThan(STEPS);
  });

  it('a timed-out call leaves the connection usable: the next call succeeds on it, no reconnect', async () => {
    const echo = await manager.callTool({ user: alice, serverName: 'everything', toolName: 'echo', arguments: { message: 'still here' } });
    expect(firstText(echo)).toBe('Echo: still here');
    expect(manager.stats().userPool.connects).toBe(1);
  });
});
