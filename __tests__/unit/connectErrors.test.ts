/**
 * Issue 16, items 1–3: a failed connect says what happened (root cause in the message and in `toJSON()`,
 * never a token, query or user info); a missing stdio command is not retryable; a refused WebSocket is a
 * `connect_failed` naming the URL's origin and path, like the other transports.
 */
import { createServer } from 'node:net';
import { MCPManager } from '../../src/MCPManager.js';
import { SwitchboardError } from '../../src/errors.js';
import { classifyError } from '../../src/connection/classifyError.js';
import { rejectionOf } from '../support/errors.js';

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', () => resolve()));
  const { port } = srv.address() as { port: number };
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

function refused(): Error {
  const root = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED', syscall: 'connect' });
  return new TypeError('fetch failed', { cause: root });
}

describe('connect errors say what happened', () => {
  let manager: MCPManager | undefined;
  afterEach(async () => {
    await manager?.close();
    manager = undefined;
  });

  it('a missing stdio command: spawn … ENOENT in the message and in toJSON(), not retryable', async () => {
    manager = new MCPManager({ servers: { svc: { command: '/nonexistent/no-such-mcp', args: ['--token', 'sekrit-arg'], stderr: 'ignore' } } });
    const err = await rejectionOf(manager.listTools({ serverName: 'svc' }), SwitchboardError);
    expect(err.code).toBe('connect_failed');
    expect(err.message).toBe('Could not connect to MCP server "svc": spawn /nonexistent/no-such-mcp ENOENT (command not found)');
    expect(err.retryable).toBe(false);
    const json = err.toJSON();
    expect(json.rootCause).toEqual({ code: 'ENOENT', syscall: 'spawn /nonexistent/no-such-mcp' });
    expect(JSON.stringify(json)).not.toContain('sekrit-arg');
  });

  it('a refused HTTP server: ECONNREFUSED in the message and in toJSON(), still retryable', async () => {
    const port = await closedPort();
    manager = new MCPManager({ servers: { web: { type: 'streamable-http', url: `http://127.0.0.1:${port}/mcp?token=sekrit` } } });
    const err = await rejectionOf(manager.listTools({ serverName: 'web', user: { id: 'u1' } }), SwitchboardError);
    expect(err.code).toBe('connect_failed');
    expect(err.message).toMatch(/^Could not connect to MCP server "web": ECONNREFUSED/);
    expect(err.retryable).toBe(true);
    expect(err.toJSON().rootCause).toMatchObject({ code: 'ECONNREFUSED' });
    expect(JSON.stringify(err.toJSON()) + err.message).not.toContain('sekrit');
  });

  it('a refused SSE server: ECONNREFUSED in the message too (the EventSource keeps no cause; the request path does)', async () => {
    const port = await closedPort();
    manager = new MCPManager({ servers: { events: { type: 'sse', url: `http://127.0.0.1:${port}/sse?token=sekrit` } } });
    const err = await rejectionOf(manager.listTools({ serverName: 'events' }), SwitchboardError);
    expect(err.code).toBe('connect_failed');
    expect(err.message).toMatch(/^Could not connect to MCP server "events": ECONNREFUSED at http:\/\/127\.0\.0\.1:\d+\/sse$/);
    expect(err.retryable).toBe(true);
    expect(err.toJSON().rootCause).toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('classifyError adds the target URL as origin and path only, never user info or query', () => {
    const err = classifyError(refused(), 'connect', 'web', { url: 'https://user:pw@mcp.example.com/v1/mcp?access_token=sekrit#x' });
    expect(err.message).toBe('Could not connect to MCP server "web": ECONNREFUSED at https://mcp.example.com/v1/mcp');
    expect(err.retryable).toBe(true);
    expect(err.toJSON().rootCause).toEqual({ code: 'ECONNREFUSED', syscall: 'connect' });
    expect(JSON.stringify(err.toJSON())).not.toMatch(/sekrit|pw@/);
  });

  it('a refused WebSocket is connect_failed with origin and path (not the query) in the message', async () => {
    const port = await closedPort();
    manager = new MCPManager({ servers: { ws: { type: 'websocket', url: `ws://127.0.0.1:${port}/mcp/ws?token=sekrit` } } });
    const err = await rejectionOf(manager.listTools({ serverName: 'ws', user: { id: 'u1' } }), SwitchboardError);
    expect(err.code).toBe('connect_failed');
    expect(err.serverName).toBe('ws');
    expect(err.retryable).toBe(true);
    expect(err.message).toContain(`ws://127.0.0.1:${port}/mcp/ws`);
    expect(err.toJSON().rootCause).toMatchObject({ url: `ws://127.0.0.1:${port}/mcp/ws` });
    expect(JSON.stringify(err.toJSON()) + err.message).not.toContain('sekrit');
  });
});
