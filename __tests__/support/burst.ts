/**
 * A burst of cold users on one server while the event loop is busy, as `burst.test.ts` (npm test) and
 * `burst.soak.test.ts` (npm run soak) run it at two sizes.
 */
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { MCPManager } from '../../src/MCPManager.js';
import { startTestMcpServer } from '../../src/testing/testMcpServer.js';
import { report } from './report.js';

const text = (r: CallToolResult) => (r.content[0] as { text: string }).text;

/** Keeps the event loop busy: 5 ms of CPU every 20 ms, as a host's other work would, until stopped. */
function busyLoop(): () => void {
  const timer = setInterval(() => {
    const until = performance.now() + 5;
    while (performance.now() < until) {
      // burn CPU
    }
  }, 20);
  timer.unref();
  return () => clearInterval(timer);
}

/** What the burst left: failed and wrong calls, dropped connections, and the server's sessions after `close()`. */
export async function runBurst(users: number) {
  const server = await startTestMcpServer({ transport: 'streamable-http' });
  const manager = new MCPManager({
    servers: { files: { url: server.url, headers: { 'X-User': '{{user.id}}' }, initTimeoutMs: 10_000, timeoutMs: 120_000 } },
    circuitBreaker: false,
  });
  const dropped: string[] = [];
  // Connections that died on their own (the pool's own closes carry a reason, not an error).
  manager.on('disconnect', (e) => {
    if (e.error) dropped.push(e.error.code);
  });
  const stop = busyLoop();
  try {
    const started = performance.now();
    const results = await Promise.allSettled(
      Array.from({ length: users }, (_, i) => manager.callTool({ user: { id: `burst-${i}` }, serverName: 'files', toolName: 'echo', arguments: { text: `${i}` } })),
    );
    stop();
    const failed = results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason?.code));
    const wrong = results.filter((r, i) => r.status === 'fulfilled' && text(r.value) !== `${i}`).length;
    const connections = manager.stats().userConnections;
    await manager.close();
    const sessions = server.stats();
    report('burst', `${users} cold users on a busy loop: ${failed.length} failed, ${wrong} wrong, ${dropped.length} dropped, ${(performance.now() - started).toFixed(0)} ms; after close() sessions opened ${sessions.sessionsOpened}, closed ${sessions.sessionsClosed}, live ${sessions.liveSessions}`);
    return { failed, wrong, dropped, connections, sessions };
  } finally {
    stop();
    await manager.close();
    await server.close();
  }
}
