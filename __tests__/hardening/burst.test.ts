/**
 * Bursts are admitted, not timed out: 200 users (1,000 in `npm run soak`) call one cold server at once while the event loop is also busy
 * (a CPU hog runs between calls). Handshakes queue for admission per origin; the wait does not count against
 * `initTimeoutMs`. Counted on the server: every session opened is closed again by `close()`.
 */
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { MCPManager } from '../../src/MCPManager.js';
import { startTestMcpServer } from '../../src/testing/testMcpServer.js';
import { report } from '../support/report.js';

const text = (r: CallToolResult) => (r.content[0] as { text: string }).text;

/** Keeps the event loop busy: 5 ms of CPU every 20 ms, until stopped. */
function busyLoop(): () => void {
  const timer = setInterval(() => {
    const until = performance.now() + 5;
    while (performance.now() < until) {
      // burn CPU, as a host's other work would
    }
  }, 20);
  timer.unref();
  return () => clearInterval(timer);
}

it('200 users calling one cold server at once on a busy event loop: 0 failed calls, each answered as its own user', async () => {
  const server = await startTestMcpServer({ transport: 'streamable-http' });
  const manager = new MCPManager({
    servers: { files: { url: server.url, headers: { 'X-User': '{{user.id}}' }, initTimeoutMs: 10_000, timeoutMs: 120_000 } },
    circuitBreaker: false,
  });
  const dropped: string[] = [];
  manager.on('disconnect', (e) => dropped.push(e.error?.code ?? e.reason ?? '?'));
  const stop = busyLoop();
  try {
    const users = Array.from({ length: 200 }, (_, i) => ({ id: `burst-${i}` }));
    const started = performance.now();
    const results = await Promise.allSettled(users.map((user, i) => manager.callTool({ user, serverName: 'files', toolName: 'echo', arguments: { text: `${i}` } })));
    const failed = results.filter((r) => r.status === 'rejected');
    const wrong = results.filter((r, i) => r.status === 'fulfilled' && text(r.value) !== `${i}`);
    report('burst', `200 cold users on a busy loop: ${failed.length} failed, ${wrong.length} wrong, ${(performance.now() - started).toFixed(0)} ms; first failure: ${failed[0] ? JSON.stringify((failed[0] as PromiseRejectedResult).reason?.code) : '-'}`);
    expect(failed).toEqual([]);
    expect(wrong).toEqual([]);
    report('burst', `connections open after the burst: ${manager.stats().userConnections}; dropped: ${JSON.stringify(dropped.slice(0, 5))} (${dropped.length})`);
    expect(dropped).toEqual([]);
    expect(manager.stats().userConnections).toBe(200);
  } finally {
    stop();
    await manager.close();
    const s = server.stats();
    await server.close();
    expect(s.liveSessions).toBe(0);
    expect(s.sessionsClosed).toBe(s.sessionsOpened);
  }
}, 120_000);
