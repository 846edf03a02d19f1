/**
 * A tool call that takes longer than undici's hidden defaults (300 s `bodyTimeout` and `headersTimeout`) must
 * still return: over legacy SSE (the answer comes on an event stream silent for 310 s), streamable HTTP with
 * an event-stream answer and no keep-alives (body silent for 310 s) and streamable HTTP with
 * `enableJsonResponse` (no headers for 310 s). Runs only in `npm run soak` (about 5 minutes).
 */
import { MCPManager } from '../../src/MCPManager.js';
import { firstText } from '../support/mcp.js';
import { startMisbehavingServer, type MisbehavingServer } from '../support/misbehaving.js';

const SLEEP_MS = 310_000;

let servers: MisbehavingServer[] = [];
let manager: MCPManager | undefined;
afterAll(async () => {
  await manager?.close();
  await Promise.all(servers.map((s) => s.close()));
});

it(
  'a 310 s tool call returns "done" over SSE, streamable HTTP (event stream) and streamable HTTP (JSON), each run once',
  async () => {
    const sse = await startMisbehavingServer({ transport: 'sse' });
    const stream = await startMisbehavingServer({ transport: 'streamable-http' });
    const json = await startMisbehavingServer({ transport: 'streamable-http', enableJsonResponse: true });
    servers = [sse, stream, json];
    manager = new MCPManager({
      servers: {
        sse: { type: 'sse', url: sse.url },
        stream: { url: stream.url },
        json: { url: json.url },
      },
      circuitBreaker: false,
    });
    const m = manager;
    const names = ['sse', 'stream', 'json'] as const;
    const results = await Promise.allSettled(
      names.map((serverName) => m.callTool({ serverName, toolName: 'sleep', arguments: { ms: SLEEP_MS }, timeoutMs: 400_000 })),
    );
    const outcome = Object.fromEntries(
      results.map((r, i) => [names[i], r.status === 'fulfilled' ? firstText(r.value) : `${(r.reason as { code?: string }).code}: ${(r.reason as Error).message}`]),
    );
    expect(outcome).toEqual({ sse: 'done', stream: 'done', json: 'done' });
    expect(servers.map((s) => s.counts.runs.sleep)).toEqual([1, 1, 1]);
  },
  360_000,
);
