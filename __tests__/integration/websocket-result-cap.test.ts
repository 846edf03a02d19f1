/**
 * The WebSocket transport's `maxMessageBytes` cap: an answer over it fails the request it answers with
 * `too_large`, and nothing else. The connection stays open (no reconnect), the request is not sent again (the
 * tool runs once, counted on the server), and the next call on the same socket succeeds.
 *
 * Why the socket can stay open: the cap is applied to a message undici has already received whole (undici's
 * only earlier limit, the dispatcher's `webSocket.maxPayloadSize`, fails the whole connection without saying
 * which request the message answered), so dropping the message loses nothing else on the connection.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { CreateMessageRequestSchema, ErrorCode, McpError, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket as WsSocket } from 'ws';
import { z } from 'zod';
import { MCPConnection, type ConnectionState } from '../../src/MCPConnection.js';
import { parseServerConfig } from '../../src/config/index.js';
import { SwitchboardError } from '../../src/errors.js';
import { startWebSocketMcpServer, type WebSocketMcpServer } from '../../src/testing/websocketServer.js';
import { localErrorOf } from '../../src/transport/localAnswer.js';
import { WebSocketClientTransport } from '../../src/transport/websocketClientTransport.js';

const CAP = 4_096;
const text = (r: { content: unknown[] }) => (r.content[0] as { text: string }).text;

/** Server-side tool runs, counted across every connection of the server. */
let runs: Record<string, number>;

function makeServer(): McpServer {
  const server = new McpServer({ name: 'ws-cap', version: '1.0.0' });
  server.registerTool('echo', { inputSchema: { text: z.string() } }, async ({ text: t }) => {
    runs.echo = (runs.echo ?? 0) + 1;
    return { content: [{ type: 'text', text: t }] };
  });
  server.registerTool('big', { inputSchema: { bytes: z.number() } }, async ({ bytes }) => {
    runs.big = (runs.big ?? 0) + 1;
    return { content: [{ type: 'text', text: 'x'.repeat(bytes) }] };
  });
  // Asks the client to sample with a prompt over the client's cap: the client must answer with an error.
  server.registerTool('ask', {}, async () => {
    runs.ask = (runs.ask ?? 0) + 1;
    try {
      await server.server.createMessage({ messages: [{ role: 'user', content: { type: 'text', text: 'q'.repeat(CAP * 2) } }], maxTokens: 1 });
      return { content: [{ type: 'text', text: 'sampled' }] };
    } catch (err) {
      return { content: [{ type: 'text', text: `refused ${err instanceof McpError ? err.code : String(err)}` }] };
    }
  });
  return server;
}

let server: WebSocketMcpServer;
const cleanups: (() => Promise<unknown>)[] = [];
beforeEach(async () => {
  runs = {};
  server = await startWebSocketMcpServer({ createServer: makeServer });
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await server.close();
});

describe('WebSocket maxMessageBytes through MCPConnection', () => {
  it('a result over the cap → too_large; the tool ran once; the next call succeeds on the same socket, no reconnect', async () => {
    const transports: WebSocketClientTransport[] = [];
    const conn = new MCPConnection({
      serverName: 'ws',
      config: parseServerConfig('ws', { type: 'websocket', url: server.url }),
      createTransport: async () => {
        const t = new WebSocketClientTransport(new URL(server.url), { maxMessageBytes: CAP });
        transports.push(t);
        return t;
      },
    });
    cleanups.push(() => conn.close());
    const states: ConnectionState[] = [];
    conn.on('state', ({ to }: { to: ConnectionState }) => states.push(to));
    await conn.connect();

    const err = await conn.callTool('big', { bytes: CAP * 4 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SwitchboardError);
    expect(err).toMatchObject({ code: 'too_large' });
    expect(runs.big).toBe(1);

    const ok = await conn.callTool('echo', { text: 'still here' });
    expect(text(ok)).toBe('still here');
    expect(runs).toEqual({ big: 1, echo: 1 });
    expect(transports).toHaveLength(1);
    expect(states).not.toContain('reconnecting');
    expect(conn.state).toBe('connected');
    expect(server.connections()).toBe(1);
  });
});

describe('WebSocket maxMessageBytes through the SDK Client', () => {
  async function connect(opts: { sampling?: () => void } = {}) {
    const transport = new WebSocketClientTransport(new URL(server.url), { maxMessageBytes: CAP });
    const client = new Client({ name: 'test', version: '1.0.0' }, opts.sampling ? { capabilities: { sampling: {} } } : {});
    if (opts.sampling) {
      const onSample = opts.sampling;
      client.setRequestHandler(CreateMessageRequestSchema, async () => {
        onSample();
        return { role: 'assistant', content: { type: 'text', text: 'a' }, model: 'm' };
      });
    }
    let closes = 0;
    const errors: unknown[] = [];
    client.onclose = () => closes++;
    client.onerror = (e) => errors.push(e);
    await client.connect(transport);
    cleanups.push(() => client.close());
    return { client, errors, closes: () => closes };
  }

  it('the request answered over the cap rejects with the transport-given too_large; the connection stays open', async () => {
    const { client, closes } = await connect();
    const err = await client.callTool({ name: 'big', arguments: { bytes: CAP * 4 } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(McpError);
    const own = localErrorOf(err);
    expect(own).toBeInstanceOf(SwitchboardError);
    expect(own?.code).toBe('too_large');
    expect(own?.message).toContain(`maxMessageBytes (${CAP})`);
    expect(text((await client.callTool({ name: 'echo', arguments: { text: 'next' } })) as { content: unknown[] })).toBe('next');
    expect(closes()).toBe(0);
    expect(runs).toEqual({ big: 1, echo: 1 });
  });

  it('concurrent calls: only the over-size answers fail, each with too_large; the others get their results', async () => {
    const { client } = await connect();
    const settled = await Promise.allSettled([
      client.callTool({ name: 'big', arguments: { bytes: CAP * 2 } }),
      client.callTool({ name: 'echo', arguments: { text: 'a' } }),
      client.callTool({ name: 'big', arguments: { bytes: 10 } }),
      client.callTool({ name: 'big', arguments: { bytes: CAP * 3 } }),
    ]);
    expect(settled.map((s) => (s.status === 'rejected' ? localErrorOf(s.reason)?.code : 'ok'))).toEqual(['too_large', 'ok', 'ok', 'too_large']);
    expect(runs).toEqual({ big: 3, echo: 1 });
  });

  it('a server request over the cap is answered with an error, never handled, and the call that caused it completes', async () => {
    let sampled = 0;
    const { client, closes, errors } = await connect({ sampling: () => sampled++ });
    const result = await client.callTool({ name: 'ask', arguments: {} });
    expect(text(result as { content: unknown[] })).toBe(`refused ${ErrorCode.InvalidRequest}`);
    expect(sampled).toBe(0);
    expect(runs.ask).toBe(1);
    expect(closes()).toBe(0);
    expect(errors.some((e) => e instanceof SwitchboardError && e.code === 'too_large')).toBe(true);
  });
});

/**
 * A hand-written MCP peer on `ws`, answering `tools/call` with the raw text `answer(id)` returns, to place the
 * id where other MCP SDKs put it (first, last, in a binary frame, nowhere cheap to find).
 */
async function rawPeer(answer: (id: string | number) => string | Buffer): Promise<{ url: string; close(): Promise<void> }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: (p) => (p.has('mcp') ? 'mcp' : false) });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  wss.on('connection', (socket: WsSocket) => {
    socket.on('message', (data) => {
      const msg = JSON.parse(String(data)) as JSONRPCMessage & { id?: string | number; method?: string };
      if (msg.method === 'initialize' && msg.id !== undefined) {
        const result = { protocolVersion: '2025-06-18', capabilities: { tools: {} }, serverInfo: { name: 'raw', version: '1' } };
        socket.send(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result }));
      } else if (msg.method === 'tools/call' && msg.id !== undefined) {
        socket.send(answer(msg.id));
      }
    });
  });
  const { port } = wss.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}/mcp`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => resolve());
      }),
  };
}

describe('where the id of an over-size answer is found', () => {
  const big = 'z'.repeat(CAP * 2);
  const result = (t: string) => ({ content: [{ type: 'text', text: t }] });

  async function callThrough(answer: (id: string | number) => string | Buffer) {
    const peer = await rawPeer(answer);
    cleanups.push(() => peer.close());
    const client = new Client({ name: 'test', version: '1.0.0' });
    let reported!: (e: SwitchboardError) => void;
    const tooLarge = new Promise<SwitchboardError>((resolve) => (reported = resolve));
    await client.connect(new WebSocketClientTransport(new URL(peer.url), { maxMessageBytes: CAP }));
    client.onerror = (e) => {
      if (e instanceof SwitchboardError && e.code === 'too_large') reported(e);
    };
    cleanups.push(() => client.close());
    return { client, tooLarge };
  }

  it.each([
    ['id first, after jsonrpc (Python and Go SDKs)', (id: string | number) => JSON.stringify({ jsonrpc: '2.0', id, result: result(big) })],
    ['id first of all', (id: string | number) => JSON.stringify({ id, jsonrpc: '2.0', result: result(big) })],
    ['id last, before jsonrpc', (id: string | number) => JSON.stringify({ result: result(big), id, jsonrpc: '2.0' })],
    ['in a binary frame', (id: string | number) => Buffer.from(JSON.stringify({ result: result(`é${big}`), jsonrpc: '2.0', id }))],
  ])('%s → too_large for that request', async (_name, answer) => {
    const { client } = await callThrough(answer);
    const err = await client.callTool({ name: 'any', arguments: {} }).catch((e: unknown) => e);
    expect(localErrorOf(err)?.code).toBe('too_large');
  });

  it('an id nested in the result is not taken for the envelope id; with none to be seen the message is reported and dropped', async () => {
    // Only the nested id is at either end; the envelope id sits in the middle.
    const answer = (id: string | number) => `{"result":${JSON.stringify(result(big)).slice(0, -1)},"x":{"id":${JSON.stringify(id)}}},"id":${JSON.stringify(id)},"pad":{"id":${JSON.stringify(id)}}}`;
    const { client, tooLarge } = await callThrough(answer);
    const controller = new AbortController();
    const call = client.callTool({ name: 'any', arguments: {} }, undefined, { signal: controller.signal }).catch((e: unknown) => e);
    // The dropped message is reported through onerror; the request itself is left to its own deadline or signal.
    expect((await tooLarge).message).toContain('dropped');
    controller.abort();
    const err = await call;
    expect(localErrorOf(err)).toBeUndefined();
  });
});
