/**
 * MCPConnection against the reference server `@modelcontextprotocol/server-everything`, as a real child
 * process: over stdio, SSE and streamable HTTP.
 *
 * The HTTP modes of server-everything listen on `process.env.PORT` on every interface and print the port
 * they were asked for. A preload module (`--import`) makes the child bind 127.0.0.1 on an ephemeral port
 * (PORT=0) and print the port it actually got, so nothing listens beyond loopback and nothing races for a
 * port chosen in advance.
 */
import type { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { MCPConnectionFactory } from '../../src/MCPConnectionFactory.js';
import type { MCPConnection } from '../../src/MCPConnection.js';
import { parseServerConfig } from '../../src/config/index.js';
import { createDefaultTransport } from '../../src/transport/createTransport.js';
import type { Transport } from '../../src/transport/types.js';
import { firstText, nextState } from '../support/mcp.js';
import { EVERYTHING, startEverythingHttp } from '../support/everything.js';


const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('server-everything over stdio', () => {
  it('lists and calls tools, reconnects with a new child after the child dies, and ends every child on close', async () => {
    const transports: Transport[] = [];
    const factory = new MCPConnectionFactory({
      reconnect: { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 20 },
      createTransport: (ctx) => {
        const t = createDefaultTransport(ctx);
        transports.push(t);
        return t;
      },
    });
    cleanups.push(() => factory.close());
    const config = parseServerConfig('everything', { type: 'stdio', command: process.execPath, args: [EVERYTHING, 'stdio'], stderr: 'ignore' });
    const conn = await factory.create({ serverName: 'everything', config });
    cleanups.push(() => conn.close());

    const names = (await conn.listTools()).map((t) => t.name);
    expect(names).toEqual(expect.arrayContaining(['echo', 'get-sum']));
    expect(firstText(await conn.callTool('echo', { message: 'hi' }))).toBe('Echo: hi');

    const firstPid = (transports[0] as StdioClientTransport).pid!;
    expect(isAlive(firstPid)).toBe(true);
    const lost = nextState(conn, 'reconnecting');
    const back = nextState(conn, 'connected');
    process.kill(firstPid, 'SIGKILL');
    await lost;
    await back;
    expect(transports).toHaveLength(2);
    const secondPid = (transports[1] as StdioClientTransport).pid!;
    expect(secondPid).not.toBe(firstPid);
    expect(firstText(await conn.callTool('echo', { message: 'again' }))).toBe('Echo: again');

    await conn.close();
    expect(isAlive(firstPid)).toBe(false);
    expect(isAlive(secondPid)).toBe(false);
  });
});

describe.each([
  ['streamable-http', 'streamableHttp', '/mcp'],
  ['sse', 'sse', '/sse'],
] as const)('server-everything over %s', (type, mode, path) => {
  it('connects on loopback, lists and calls tools, and closes cleanly', async () => {
    const server = await startEverythingHttp(mode);
    cleanups.push(() => server.stop());
    const factory = new MCPConnectionFactory();
    cleanups.push(() => factory.close());
    const config = parseServerConfig('everything', { type, url: `http://127.0.0.1:${server.port}${path}` });
    const conn = await factory.create({ serverName: 'everything', config });
    cleanups.push(() => conn.close());

    expect((await conn.listTools()).map((t) => t.name)).toEqual(expect.arrayContaining(['echo', 'get-sum']));
    expect(firstText(await conn.callTool('echo', { message: 'over http' }))).toBe('Echo: over http');
    const sum = await conn.callTool('get-sum', { a: 2, b: 3 });
    expect(firstText(sum)).toContain('5');
    if (type === 'streamable-http') expect(conn.sessionId).toEqual(expect.any(String));

    await conn.close();
    expect(conn.state).toBe('closed');
  });
});
