/**
 * Adversarial tests of the request path's own dispatch (`sendOnDispatcher`) and the content-decoding stage, against
 * loopback servers that misbehave, compared with what undici's `fetch` (`sendWithUndici`) gives for the same bytes.
 * `FINDING n` marks a case an adversarial review found failing (numbered as in its report); each was fixed, and
 * the test stays as its regression test.
 */
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { pipeline } from 'node:stream';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { z } from 'zod';
import type { MCPConnectionFactoryOptions } from '../../src/MCPConnectionFactory.js';
import type { MCPConnection } from '../../src/MCPConnection.js';
import { createDefaultTransport } from '../../src/transport/createTransport.js';
import { rejection } from '../support/errors.js';
import { getEventListeners } from 'node:events';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import * as zlib from 'node:zlib';
import { Readable } from 'node:stream';
import { Agent, fetch as undiciFetch } from 'undici';
import { responseWatch } from '../../src/transport/interceptors/responseWatch.js';
import type { SwitchboardError } from '../../src/errors.js';
import { deferred } from '../support/deferred.js';
import { connectTo, outgoingRequest } from '../support/requestPath.js';
import { perSessionMcpServer } from '../support/sessionServer.js';
import { listenOnLoopback, readJson } from '../support/http.js';
import { sendOnDispatcher } from '../../src/transport/dispatchFetch.js';
import { composeStages, sendWithUndici, type OutgoingRequest, type RequestStage } from '../../src/transport/requestPath.js';
import { contentDecoding } from '../../src/transport/interceptors/contentDecoding.js';
import { requestSignal } from '../../src/transport/interceptors/requestSignal.js';

const send: RequestStage = sendOnDispatcher(requestSignal()(sendWithUndici));
const decodeAndSend: RequestStage = composeStages(send, [contentDecoding()]);

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A raw TCP server: on the first bytes of each connection, `script(socket)` writes whatever it likes. */
async function rawServer(script: (socket: Socket) => void): Promise<{ url: URL }> {
  const sockets = new Set<Socket>();
  const server: NetServer = createNetServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    socket.once('data', () => script(socket));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  cleanups.push(
    () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(r);
      }),
  );
  return { url: new URL(`http://127.0.0.1:${port}/mcp`) };
}

const request = outgoingRequest;

function shape(e: unknown): unknown {
  const err = e as { name?: string; message?: string; cause?: { name?: string; code?: string } };
  return { name: err?.name, message: err?.message, cause: err?.cause ? { name: err.cause.name, code: err.cause.code } : undefined };
}

/** The decoded response drops the coding and length the server declared (fetch keeps them): by design, not compared. */
const IGNORED_HEADERS = new Set(['date', 'content-encoding', 'content-length']);

/** What a caller sees of one request: status, text and headers, or how the request or its body failed. */
async function outcome(stage: RequestStage, url: URL, over: Partial<OutgoingRequest> = {}): Promise<unknown> {
  const agent = new Agent();
  try {
    let res: Response;
    try {
      res = await stage(request(url, agent, over));
    } catch (e) {
      return { rejected: shape(e) };
    }
    const head = { status: res.status, statusText: res.statusText, headers: [...res.headers].filter(([k]) => !IGNORED_HEADERS.has(k)) };
    try {
      return { ...head, text: await res.text() };
    } catch (e) {
      return { ...head, bodyError: shape(e) };
    }
  } finally {
    await agent.destroy();
  }
}

const scripts: [string, string | Buffer, boolean?][] = [
  ['102 Processing, then 200', 'HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'],
  ['103 Early Hints, then 200', 'HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'],
    ['101 with Upgrade', 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n'],
  ['100 Continue unasked', 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'],
  ['HTTP/1.0 close-delimited', 'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{"a":1}'],
  ['HTTP/1.1 close-delimited', 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"a":1}'],
  ['content-length shorter than body', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA'],
  ['content-length longer than body', 'HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nok'],
  ['chunked: bad chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\nZZ\r\n'],
  ['chunked: truncated', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nok'],
  ['chunked with trailers', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-t\r\n\r\n2\r\nok\r\n0\r\nx-t: 1\r\n\r\n'],
  ['two content-lengths', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nokk'],
  ['content-length and chunked', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n'],
  ['header value with DEL', 'HTTP/1.1 200 OK\r\nX-A: a\x7fb\r\nContent-Length: 2\r\n\r\nok'],
  ['header value with obs-text', Buffer.from('HTTP/1.1 200 OK\r\nX-A: \xe9\xff\r\nContent-Length: 2\r\n\r\nok', 'latin1')],
  ['header value with NUL', 'HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok'],
  ['header name with space', 'HTTP/1.1 200 OK\r\nX A: 1\r\nContent-Length: 2\r\n\r\nok'],
  ['header with no colon', 'HTTP/1.1 200 OK\r\nXA\r\nContent-Length: 2\r\n\r\nok'],
  ['no reason phrase', 'HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok'],
  ['latin1 reason phrase (UTF-8 bytes of é)', 'HTTP/1.1 200 Réussi\r\nContent-Length: 2\r\n\r\nok'],
  ['status 199', 'HTTP/1.1 199 Odd\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'],
  ['close right after headers (content-length)', 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n'],
  ['close right after headers (chunked)', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'],
  ['close before a status line', ''],
  ['garbage', 'NOT HTTP AT ALL\r\n\r\n'],
  ['204 with a body', 'HTTP/1.1 204 No Content\r\nContent-Length: 2\r\n\r\nok'],
  ['205 with a body', 'HTTP/1.1 205 Reset Content\r\nContent-Length: 2\r\n\r\nok'],
  ['304 with content-encoding', 'HTTP/1.1 304 Not Modified\r\nContent-Encoding: gzip\r\n\r\n'],
  ['1000 headers', `HTTP/1.1 200 OK\r\n${Array.from({ length: 1000 }, (_, i) => `X-H${i}: ${i}\r\n`).join('')}Content-Length: 2\r\n\r\nok`],
];

function coded(coding: string, body: Buffer, extra = ''): Buffer {
  return Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: ${coding}\r\nContent-Length: ${body.length}\r\n${extra}\r\n`), body]);
}
const JSON_TEXT = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { text: 'é'.repeat(50) } }));
const gz = zlib.gzipSync(JSON_TEXT);
scripts.push(
  ['gzip: corrupt', coded('gzip', Buffer.from('definitely not gzip'))],
  ['gzip: truncated', coded('gzip', gz.subarray(0, gz.length >> 1))],
  ['gzip: empty body', coded('gzip', Buffer.alloc(0))],
  ['br: empty body', coded('br', Buffer.alloc(0))],
  ['deflate: empty body', coded('deflate', Buffer.alloc(0))],
  ['gzip: trailing garbage', coded('gzip', Buffer.concat([gz, Buffer.from('garbage!')]))],
  ['gzip: two members', coded('gzip', Buffer.concat([zlib.gzipSync(Buffer.from('ab')), zlib.gzipSync(Buffer.from('cd'))]))],
  ['deflate: zlib-wrapped', coded('deflate', zlib.deflateSync(JSON_TEXT))],
  ['GZIP upper case', coded('GZIP', gz)],
  ['six codings', coded('gzip, gzip, gzip, gzip, gzip, gzip', gz)],
  ['two Content-Encoding fields', coded('gzip', zlib.brotliCompressSync(gz), 'Content-Encoding: br\r\n')],
  ['gzip on a 204', Buffer.from('HTTP/1.1 204 No Content\r\nContent-Encoding: gzip\r\n\r\n')],
  ['gzip on a 3xx with a plain body', Buffer.from('HTTP/1.1 307 Temporary Redirect\r\nLocation: /x\r\nContent-Encoding: gzip\r\nContent-Length: 5\r\n\r\nMoved')],
);

describe('misbehaving servers: what fetch gives is what the dispatch gives', () => {
  it.each(scripts)('%s', async (_name, bytes) => {
    const { url } = await rawServer((socket) => {
      if (bytes.length === 0) return void socket.destroy();
      socket.end(bytes);
    });
    const viaFetch = await outcome(sendWithUndici, url);
    const viaDecoding = await outcome(decodeAndSend, url);
    // Without the decoding stage a coded body comes raw (by design): compared only when nothing is coded.
    const viaDispatch = /content-encoding/i.test(bytes.toString('latin1')) ? viaFetch : await outcome(send, url);
    expect({ viaDispatch, viaDecoding }).toEqual({ viaDispatch: viaFetch, viaDecoding: viaFetch });
  });
});

/** Found by review (numbered as in its report) and fixed: the dispatch now gives what fetch gives. */
const findingScripts: [string, string | Buffer][] = [
  // FINDING 3: `Content-Encoding: deflate` with a raw deflate body (no zlib header; old IIS, some proxies): fetch
  // decodes it (undici's own inflate picks raw or zlib by the first byte); the stage failed the body (Z_DATA_ERROR).
  ['FINDING 3: deflate: raw deflate (no zlib header), as some servers send', coded('deflate', zlib.deflateRawSync(JSON_TEXT))],
];

describe('misbehaving servers where the dispatch differed from fetch', () => {
  it.each(findingScripts)('%s', async (_name, bytes) => {
    const { url } = await rawServer((socket) => socket.end(bytes));
    const viaFetch = await outcome(sendWithUndici, url);
    const viaDecoding = await outcome(decodeAndSend, url);
    expect(viaDecoding).toEqual(viaFetch);
  });

  // FINDING 4: a reason phrase outside Latin-1 (undici reads it as UTF-8; a Response takes Latin-1 only) failed the
  // whole request. Now the answer is given, without its reason phrase (a Response cannot carry it).
  it('FINDING 4: a non-Latin-1 reason phrase (UTF-8 成功): the answer is given, its reason phrase dropped', async () => {
    const { url } = await rawServer((socket) => socket.end('HTTP/1.1 200 成功\r\nContent-Length: 2\r\n\r\nok'));
    const viaFetch = (await outcome(sendWithUndici, url)) as { statusText: string };
    expect(await outcome(send, url)).toEqual({ ...viaFetch, statusText: '' });
    expect(await outcome(decodeAndSend, url)).toEqual({ ...viaFetch, statusText: '' });
  });

  // FINDING 7 (kept as designed): a status a Response cannot carry (outside 200–599) is a fetch failure, which the
  // connection reports as a transport_error; fetch hands such a response on.
  it('FINDING 7: status 999 is a fetch failure (a Response cannot carry it)', async () => {
    const { url } = await rawServer((socket) => socket.end('HTTP/1.1 999 Odd\r\nContent-Length: 2\r\n\r\nok'));
    expect(await outcome(send, url)).toMatchObject({ rejected: { name: 'TypeError', message: 'fetch failed' } });
  });
});

/** An HTTP server whose every request is answered by `handle` (set per test). */
async function httpServer(handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: URL; closed: Promise<void>[] }> {
  const closed: Promise<void>[] = [];
  const server = createServer((req, res) => {
    const d = deferred<void>();
    res.on('close', () => d.resolve());
    closed.push(d.promise);
    req.resume();
    req.on('end', () => handle(req, res));
  });
  const l = await listenOnLoopback(server);
  cleanups.push(() => l.close());
  return { url: new URL(`${l.origin}/mcp`), closed };
}

type DecoderClass = typeof zlib.Gunzip | typeof zlib.BrotliDecompress;
/**
 * Watches the decoders of one zlib class (the stage's and fetch's alike): how many bytes each pushed out, and a
 * promise per decoder that settles when it closes (ended or destroyed). Restored after the test.
 */
function watchDecoders(cls: DecoderClass): { decoded: () => number; created: Promise<{ closed: Promise<void> }>[]; next: () => Promise<{ closed: Promise<void> }> } {
  const proto = cls.prototype as unknown as Record<string, unknown>;
  const hadTransform = Object.prototype.hasOwnProperty.call(proto, '_transform');
  const hadPush = Object.prototype.hasOwnProperty.call(proto, 'push');
  const origTransform = proto._transform as (...a: unknown[]) => unknown;
  let bytes = 0;
  const seen = new WeakSet<object>();
  const waiting: ((v: { closed: Promise<void> }) => void)[] = [];
  const created: Promise<{ closed: Promise<void> }>[] = [];
  proto._transform = function (this: Readable, ...a: unknown[]) {
    if (!seen.has(this)) {
      seen.add(this);
      const closed = new Promise<void>((r) => this.once('close', () => r()));
      const w = waiting.shift();
      if (w) w({ closed });
      else created.push(Promise.resolve({ closed }));
    }
    return origTransform.apply(this, a);
  };
  proto.push = function (this: Readable, chunk: Buffer | null) {
    if (chunk) bytes += chunk.length;
    return Readable.prototype.push.call(this, chunk);
  };
  cleanups.push(async () => {
    if (hadTransform) proto._transform = origTransform;
    else delete proto._transform;
    if (!hadPush) delete proto.push;
  });
  return {
    decoded: () => bytes,
    created,
    next: () => created.shift() ?? new Promise((r) => waiting.push(r)),
  };
}

/** Whether `p` has settled once everything already queued has run (the next macrotask turn). */
async function settledNow(p: Promise<unknown>): Promise<boolean> {
  let settled = false;
  p.then(
    () => (settled = true),
    () => (settled = true),
  );
  await new Promise((r) => setImmediate(r));
  return settled;
}

describe('decoding: a compressed answer over the cap', () => {
  // FINDING 1
  it('a gzip JSON answer that inflates past maxMessageBytes is answered too_large AND its body ends (is not left pending forever)', async () => {
    const gz = watchDecoders(zlib.Gunzip);
    const big = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: 'x'.repeat(500_000) }] } });
    const { url } = await httpServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
      res.end(zlib.gzipSync(big));
    });
    const answered: SwitchboardError[] = [];
    const stage = composeStages(send, [contentDecoding(), responseWatch({ serverName: 'svc', streams: 'streamable-http', maxMessageBytes: 10_000, answer: (_id, e) => answered.push(e) })]);
    const agent = new Agent();
    cleanups.push(() => agent.destroy());
    const transport = new AbortController();
    const res = await stage({ ...request(url, agent, { signal: transport.signal }), requestId: 1 });
    const text = res.text();
    const { closed } = await gz.next();
    await closed;
    // The decoder is done and the watch has answered: nothing more will ever happen to this body.
    expect(answered.map((e) => e.code)).toEqual(['too_large']);
    expect(await settledNow(text)).toBe(true);
  });
});

describe('decoding: cancel and abort stop the decoder', () => {
  // A bomb small enough to arrive with its headers (one socket read): 64 MB of zeros, brotli'd to a few hundred
  // bytes. undici's fetch stops inflating once its reader is cancelled (its decoder pipeline is paused, then
  // collected); checked by hand, not here: its decoder never closes, so there is no event to wait for.
  const BOMB_BYTES = 64 * 1024 * 1024;
  let bomb: Buffer;
  beforeAll(() => {
    bomb = zlib.brotliCompressSync(Buffer.alloc(BOMB_BYTES), { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 5 } });
  });

  // FINDING 2
  it.each(['body cancelled (the SDK on a 202, a notification, a DELETE)', 'signal aborted (transport closed)'])(
    'a response whose compressed bytes all arrived: %s → the decoder is stopped, not run to the end of a bomb',
    async (how) => {
      expect(bomb.length).toBeLessThan(16 * 1024);
      const br = watchDecoders(zlib.BrotliDecompress);
      const { url } = await httpServer((_req, res) => {
        res.writeHead(202, { 'content-type': 'application/json', 'content-encoding': 'br', 'content-length': bomb.length });
        res.end(bomb);
      });
      const agent = new Agent();
      cleanups.push(() => agent.destroy());
      const transport = new AbortController();
      const res = await decodeAndSend(request(url, agent, { signal: transport.signal }));
      const { closed } = await br.next();
      if (how.startsWith('body')) await res.body?.cancel();
      else transport.abort(new Error('closing'));
      await closed;
      expect(br.decoded()).toBeLessThan(BOMB_BYTES / 4);
    },
  );
});

// ---------------------------------------------------------------------------------------------------------------
// Real SDK servers, behind a compressing proxy, through a real connection.

interface Peer {
  url: string;
  origin: string;
  servers: McpServer[];
  /** Resolves when the next GET's answer headers went out (through the proxy, when there is one). */
  nextGetOpen: () => Promise<void>;
}

function mcpServer(): McpServer {
  const server = new McpServer({ name: 'dispatch-attacks', version: '1.0.0' });
  server.registerTool('echo', { inputSchema: { text: z.string() } }, async ({ text }) => ({ content: [{ type: 'text', text }] }));
  server.registerTool('big', { inputSchema: { bytes: z.number() } }, async ({ bytes }) => ({ content: [{ type: 'text', text: 'x'.repeat(bytes) }] }));
  return server;
}

async function streamablePeer(opts: { json?: boolean } = {}): Promise<Peer> {
  const servers: McpServer[] = [];
  const open = () => {
    const s = mcpServer();
    servers.push(s);
    return s;
  };
  const l = await listenOnLoopback(perSessionMcpServer(open, { enableJsonResponse: opts.json ?? false }));
  cleanups.push(() => l.close());
  return { url: `${l.origin}/mcp`, origin: l.origin, servers, nextGetOpen: () => Promise.reject(new Error('use a proxy')) };
}

async function ssePeer(): Promise<Peer> {
  const transports = new Map<string, SSEServerTransport>();
  const servers: McpServer[] = [];
  const http = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      if (req.method === 'GET' && url.pathname === '/sse') {
        const t = new SSEServerTransport('/messages', res);
        transports.set(t.sessionId, t);
        const s = mcpServer();
        servers.push(s);
        await s.connect(t);
        return;
      }
      const t = transports.get(url.searchParams.get('sessionId') ?? '');
      if (!t) return void res.writeHead(404).end();
      await t.handlePostMessage(req, res, await readJson(req));
    })();
  });
  const l = await listenOnLoopback(http);
  cleanups.push(async () => {
    for (const t of transports.values()) await t.close().catch(() => {});
    await l.close();
  });
  return { url: `${l.origin}/sse`, origin: l.origin, servers, nextGetOpen: () => Promise.reject(new Error('use a proxy')) };
}

/** A proxy that compresses every body with `coding`, flushing after each chunk (as compression middleware does). */
async function compressingProxy(peer: Peer, coding: 'gzip' | 'br' | 'deflate'): Promise<Peer> {
  const target = new URL(peer.url);
  const getWaiters: (() => void)[] = [];
  const http = createServer((req, res) => {
    const upstream = httpRequest({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (up) => {
      const headers = { ...up.headers };
      delete headers['content-length'];
      const body =
        up.statusCode === 202 || up.statusCode === 204
          ? undefined
          : coding === 'gzip'
            ? zlib.createGzip({ flush: zlib.constants.Z_SYNC_FLUSH })
            : coding === 'deflate'
              ? zlib.createDeflate({ flush: zlib.constants.Z_SYNC_FLUSH })
              : zlib.createBrotliCompress({ flush: zlib.constants.BROTLI_OPERATION_FLUSH });
      if (body) headers['content-encoding'] = coding;
      res.writeHead(up.statusCode ?? 502, headers);
      if (req.method === 'GET') {
        res.flushHeaders();
        for (const w of getWaiters.splice(0)) w();
      }
      if (!body) return void up.pipe(res);
      pipeline(up, body, res, () => {});
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  const l = await listenOnLoopback(http);
  cleanups.push(() => l.close());
  return { ...peer, url: `${l.origin}${target.pathname}`, origin: l.origin, nextGetOpen: () => new Promise((r) => getWaiters.push(r)) };
}

function connect(peer: Peer, type: 'sse' | 'streamable-http', opts: MCPConnectionFactoryOptions = {}): Promise<MCPConnection> {
  return connectTo(peer.url, type, cleanups, opts);
}

const textOf = (r: { content: unknown[] }) => (r.content[0] as { text: string }).text;

describe('compressed long-lived GET event streams deliver each event when the server flushes it', () => {
  it.each(['gzip', 'br', 'deflate'] as const)('legacy SSE behind a %s proxy: connect and calls are answered over the compressed stream', async (coding) => {
    const proxy = await compressingProxy(await ssePeer(), coding);
    const conn = await connect(proxy, 'sse');
    for (let i = 0; i < 5; i++) expect(textOf(await conn.callTool('echo', { text: `e${i}` }))).toBe(`e${i}`);
    // A result bigger than one zlib chunk (16 KiB) and one socket read.
    expect(textOf(await conn.callTool('big', { bytes: 300_000 }))).toHaveLength(300_000);
    expect(textOf(await conn.callTool('echo', { text: 'after' }))).toBe('after');
  });

  it.each(['gzip', 'br'] as const)('streamable HTTP standby GET behind a %s proxy: a server notification arrives', async (coding) => {
    const proxy = await compressingProxy(await streamablePeer(), coding);
    const getOpen = proxy.nextGetOpen();
    const conn = await connect(proxy, 'streamable-http');
    await getOpen;
    const changed = new Promise<void>((r) => conn.on('toolsChanged', () => r()));
    proxy.servers[0]!.sendToolListChanged();
    await changed;
    expect(textOf(await conn.callTool('echo', { text: 'ok' }))).toBe('ok');
  });
});

/** A proxy that reads each whole answer and sends it gzipped in one write, with its Content-Length. */
async function bufferingGzipProxy(peer: Peer): Promise<Peer> {
  const target = new URL(peer.url);
  const http = createServer((req, res) => {
    const upstream = httpRequest({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (up) => {
      const chunks: Buffer[] = [];
      up.on('data', (c: Buffer) => chunks.push(c));
      up.on('end', () => {
        const headers = { ...up.headers };
        const raw = Buffer.concat(chunks);
        const body = up.statusCode === 200 ? zlib.gzipSync(raw) : raw;
        if (up.statusCode === 200) headers['content-encoding'] = 'gzip';
        headers['content-length'] = String(body.length);
        delete headers['transfer-encoding'];
        res.writeHead(up.statusCode ?? 502, headers);
        res.end(body);
      });
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  const l = await listenOnLoopback(http);
  cleanups.push(() => l.close());
  return { ...peer, url: `${l.origin}${target.pathname}`, origin: l.origin };
}

describe('FINDING 1 (through a real connection)', () => {
  // FINDING 1
  it('a gzip JSON result over maxResultBytes: the call is too_large, and the SDK\'s read of that response ends too', async () => {
    const gz = watchDecoders(zlib.Gunzip);
    const proxy = await bufferingGzipProxy(await streamablePeer({ json: true }));
    const reads: Promise<unknown>[] = [];
    const conn = await connect(proxy, 'streamable-http', {
      limits: { maxResultBytes: 1_000 },
      standbyStream: false,
      createTransport: (ctx) =>
        createDefaultTransport({
          ...ctx,
          fetch: async (url, init) => {
            const res = await ctx.fetch(url, init);
            const json = res.json.bind(res);
            Object.defineProperty(res, 'json', {
              value: () => {
                const p = json();
                reads.push(p);
                return p;
              },
            });
            return res;
          },
        }),
    });
    const before = reads.length;
    // Decoders of the connect's answers are done with; the next one is the big result's.
    gz.created.splice(0);
    const next = gz.next();
    const err = await rejection(conn.callTool('big', { bytes: 200_000 }, { timeoutMs: 600_000 }));
    expect(err).toMatchObject({ code: 'too_large' });
    await (await next).closed;
    expect(reads.length).toBe(before + 1);
    // The SDK's `await response.json()` for that POST: still pending, holding what it read, until the connection closes.
    expect(await settledNow(reads[before]!)).toBe(true);
  });
});

describe('abort races', () => {
  it.each([
    ['fetch (reference)', () => sendWithUndici],
    ['dispatch', () => send],
    ['decoding + dispatch', () => decodeAndSend],
  ] as const)('%s: aborted in the same tick as the send → rejects with the reason; the dispatcher closes (nothing left queued)', async (_n, stageOf) => {
    const { url, closed } = await httpServer((_req, res) => res.end('late'));
    const agent = new Agent();
    const c = new AbortController();
    const reason = new Error('early');
    const p = stageOf()(request(url, agent, { signal: c.signal }));
    c.abort(reason);
    await expect(p).rejects.toBe(reason);
    // close() waits for every queued and running request: it resolves only if the aborted one was really let go.
    await agent.close();
    await Promise.all(closed);
  });

  it.each([
    ['fetch (reference)', () => sendWithUndici],
    ['dispatch', () => send],
    ['decoding + dispatch', () => decodeAndSend],
  ] as const)('%s: aborted between the headers and the first byte of a gzip body → the read rejects with the reason, the server sees the end', async (_n, stageOf) => {
    const { url, closed } = await httpServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'content-encoding': 'gzip' });
      res.flushHeaders();
    });
    const agent = new Agent();
    cleanups.push(() => agent.destroy());
    const c = new AbortController();
    const res = await stageOf()(request(url, agent, { signal: c.signal }));
    const read = res.body!.getReader().read();
    const reason = new Error('mid');
    c.abort(reason);
    await expect(read).rejects.toBe(reason);
    await Promise.all(closed);
  });

  it.each([
    ['fetch (reference)', () => sendWithUndici],
    ['decoding + dispatch', () => decodeAndSend],
  ] as const)('%s: abort while a gzip stream is being decoded, then cancel, then abort again: one rejection, nothing unhandled', async (_n, stageOf) => {
    const { url, closed } = await httpServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'content-encoding': 'gzip' });
      const gzip = zlib.createGzip({ flush: zlib.constants.Z_SYNC_FLUSH });
      gzip.pipe(res);
      gzip.write(`data: ${'y'.repeat(100_000)}\n\n`);
    });
    const agent = new Agent();
    cleanups.push(() => agent.destroy());
    const c = new AbortController();
    const res = await stageOf()(request(url, agent, { signal: c.signal }));
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(first.done).toBe(false);
    const reason = new Error('abort');
    c.abort(reason);
    await expect(reader.read()).rejects.toBe(reason);
    await expect(reader.cancel()).rejects.toBe(reason);
    c.abort(new Error('again'));
    await Promise.all(closed);
  });

  it('cancel after the body completed: no abort reaches the socket, which is reused for the next request', async () => {
    const sockets: unknown[] = [];
    const { url } = await httpServer((req, res) => {
      sockets.push(req.socket);
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
      res.end(zlib.gzipSync(Buffer.from('{"a":1}')));
    });
    const agent = new Agent();
    cleanups.push(() => agent.destroy());
    const first = await decodeAndSend(request(url, agent));
    expect(await first.text()).toBe('{"a":1}');
    const second = await decodeAndSend(request(url, agent));
    const reader = second.body!.getReader();
    while (!(await reader.read()).done);
    await reader.cancel();
    expect(await (await decodeAndSend(request(url, agent))).text()).toBe('{"a":1}');
    expect(sockets).toHaveLength(3);
    expect(new Set(sockets).size).toBe(1);
  });
});

describe('listeners on a long-lived signal', () => {
  it('500 requests of every ending (decoded, corrupt, cancelled, 204, refused by the watch) leave one listener; an abort then reaches only the live stream', async () => {
    let n = 0;
    const { url } = await httpServer((req, res) => {
      if (req.method === 'GET') {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'content-encoding': 'gzip' });
        const g = zlib.createGzip({ flush: zlib.constants.Z_SYNC_FLUSH });
        g.pipe(res);
        g.write(': open\n\n');
        return;
      }
      const k = n++ % 4;
      if (k === 0) {
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
        res.end(zlib.gzipSync(Buffer.from('{"ok":true}')));
      } else if (k === 1) {
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
        res.end('corrupt');
      } else if (k === 2) {
        res.writeHead(204);
        res.end();
      } else {
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
        res.end(zlib.gzipSync(Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { t: 'z'.repeat(5000) } }))));
      }
    });
    const answered: string[] = [];
    const stage = composeStages(send, [contentDecoding(), responseWatch({ serverName: 'svc', streams: 'streamable-http', maxMessageBytes: 1_000_000, answer: (_id, e) => answered.push(e.code) })]);
    const agent = new Agent();
    cleanups.push(() => agent.destroy());
    const transport = new AbortController();
    const stream = await stage(request(url, agent, { method: 'GET', body: undefined, signal: transport.signal }));
    const streamReader = stream.body!.getReader();
    expect(new TextDecoder().decode((await streamReader.read()).value)).toBe(': open\n\n');
    for (let i = 0; i < 500; i++) {
      const res = await stage({ ...request(url, agent, { signal: transport.signal }), requestId: 1 });
      if (i % 8 === 3) await res.body?.cancel();
      else await res.text().catch(() => {});
    }
    expect(getEventListeners(transport.signal, 'abort')).toHaveLength(1);
    const reason = new Error('closed');
    transport.abort(reason);
    await expect(streamReader.read()).rejects.toBe(reason);
    expect(answered).toEqual([]);
  });
});

describe('body chunks', () => {
  // FINDING 8 (the dispatch rows; fetch's row passes)
  it.each([
    ['fetch (reference)', () => sendWithUndici],
    ['dispatch', () => send],
    ['decoding + dispatch', () => decodeAndSend],
  ] as const)('%s: each chunk is a plain Uint8Array of its own (no view onto the socket read: headers, other bytes)', async (_n, stageOf) => {
    const { url } = await httpServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': 'secret=s3cr3t', 'content-length': 11 });
      res.end('{"ok":true}');
    });
    const agent = new Agent();
    cleanups.push(() => agent.destroy());
    const res = await stageOf()(request(url, agent));
    const reader = res.body!.getReader();
    const { value } = await reader.read();
    const whole = Buffer.from(value!.buffer).toString('latin1');
    expect({ plain: Object.getPrototypeOf(value) === Uint8Array.prototype, own: value!.byteOffset === 0 && value!.buffer.byteLength === value!.byteLength, leaks: whole.includes('s3cr3t') }).toEqual({
      plain: true,
      own: true,
      leaks: false,
    });
  });
});

/**
 * A proxy in front of `peer`: answers pass as they are, except that `rewrite` may take over the raw socket of a
 * POST whose body contains one of its keys, and every status line gets `reason` (raw bytes) when given.
 */
async function scriptedProxy(peer: Peer, opts: { reason?: Buffer; takeOver?: Record<string, (socket: Socket) => void> }): Promise<Peer> {
  const target = new URL(peer.url);
  const http = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      for (const [key, script] of Object.entries(opts.takeOver ?? {})) {
        if (body.includes(key)) return void script(res.socket as Socket);
      }
      const upstream = httpRequest({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (up) => {
        if (opts.reason) res.writeHead(up.statusCode ?? 502, opts.reason.toString('latin1'), up.headers);
        else res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      upstream.on('error', () => res.destroy());
      upstream.end(body);
    });
  });
  const l = await listenOnLoopback(http);
  cleanups.push(() => l.close());
  return { ...peer, url: `${l.origin}${target.pathname}`, origin: l.origin };
}

describe('through a real connection: what classifyError makes of the new errors', () => {
  // FINDING 4
  it('a server whose reason phrases are UTF-8 (HTTP/1.1 200 成功): fetch connects, so must the request path', async () => {
    const proxy = await scriptedProxy(await streamablePeer(), { reason: Buffer.from('成功', 'utf8') });
    const agent = new Agent();
    cleanups.push(() => agent.destroy());
    // Reference: the SDK transport on undici's fetch itself.
    const viaFetch = await connect(proxy, 'streamable-http', {
      standbyStream: false,
      createTransport: (ctx) => createDefaultTransport({ ...ctx, fetch: ((u: string | URL, i?: RequestInit) => undiciFetch(u, { ...(i as object), dispatcher: agent })) as never }),
    });
    expect(textOf(await viaFetch.callTool('echo', { text: 'fetch' }))).toBe('fetch');
    const conn = await connect(proxy, 'streamable-http', { standbyStream: false });
    expect(textOf(await conn.callTool('echo', { text: 'path' }))).toBe('path');
  });

  const raw = (head: string, body: Buffer | string = '') => (socket: Socket) => socket.end(Buffer.concat([Buffer.from(head), Buffer.from(body)]));
  it.each([
    ['a corrupt gzip JSON answer', raw('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: 7\r\n\r\n', 'corrupt')],
    ['a truncated gzip JSON answer', (s: Socket) => {
      const g = zlib.gzipSync(Buffer.from('{"jsonrpc":"2.0","id":2,"result":{"content":[]}}'));
      raw(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: ${g.length}\r\n\r\n`, g.subarray(0, 12))(s);
    }],
    ['headers, then the connection drops', raw('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"jsonrpc"')],
    ['six content codings', raw('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip,gzip,gzip,gzip,gzip,gzip\r\nContent-Length: 2\r\n\r\n', '{}')],
    ['a status no Response can carry (600)', raw('HTTP/1.1 600 Odd\r\nContent-Length: 2\r\n\r\n', '{}')],
    ['a connection closed before any status line', (s: Socket) => void s.destroy()],
    ['an event stream that ends before the answer, gzipped', (s: Socket) => {
      const g = zlib.gzipSync(Buffer.from(': nothing\n\n'));
      raw(`HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\nContent-Length: ${g.length}\r\n\r\n`, g)(s);
    }],
  ])('a call answered with %s → retryable transport_error; the connection stays usable', async (_name, script) => {
    const proxy = await scriptedProxy(await streamablePeer({ json: true }), { takeOver: { MISBEHAVE: script } });
    const conn = await connect(proxy, 'streamable-http', { standbyStream: false });
    const err = await rejection(conn.callTool('echo', { text: 'MISBEHAVE' }, { timeoutMs: 600_000 }));
    expect(err).toMatchObject({ code: 'transport_error', retryable: true, serverName: 'svc' });
    expect(textOf(await conn.callTool('echo', { text: 'fine' }))).toBe('fine');
  });

  it('a refused connection → connect_failed naming ECONNREFUSED, as with fetch', async () => {
    const l = await listenOnLoopback(createServer());
    const url = `${l.origin}/mcp`;
    await l.close();
    const err = await rejection(connectTo(url, 'streamable-http', cleanups));
    expect(err).toMatchObject({ code: 'connect_failed', retryable: true });
    expect((err as Error).message).toContain('ECONNREFUSED');
  });
});

describe('compressed error answers are capped', () => {
  // FINDING 5: the call rejected with a raw RangeError (redactSecrets' regex overflowed on the 32 MB message), and
  // the few-KB answer was inflated whole into memory: no cap applied to error statuses.
  it('a 500 whose few-KB brotli body inflates to 32 MB: cut at the error-body cap, a typed transport_error', async () => {
    const br = watchDecoders(zlib.BrotliDecompress);
    const DECODED = 32 * 1024 * 1024;
    const bomb = zlib.brotliCompressSync(Buffer.alloc(DECODED, 'a'));
    const proxy = await scriptedProxy(await streamablePeer({ json: true }), {
      takeOver: {
        BOMB: (s: Socket) =>
          s.end(Buffer.concat([Buffer.from(`HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Encoding: br\r\nContent-Length: ${bomb.length}\r\n\r\n`), bomb])),
      },
    });
    const conn = await connect(proxy, 'streamable-http', { standbyStream: false, limits: { maxResultBytes: 1_000 } });
    const err = (await rejection(conn.callTool('echo', { text: 'BOMB' }, { timeoutMs: 600_000 }))) as Error & { cause?: Error };
    expect(err).toMatchObject({ code: 'transport_error' });
    expect(bomb.length).toBeLessThan(64 * 1024);
    // What the error object holds, and what was inflated for it.
    expect({ heldInError: (err.cause?.message.length ?? 0) < 1024 * 1024, inflated: br.decoded() < 1024 * 1024 }).toEqual({ heldInError: true, inflated: true });
  });
});

describe('methods fetch refuses', () => {
  // FINDING 6: CONNECT was left pending forever (undici takes it as a tunnel: onUpgrade was a no-op); TRACE and
  // TRACK were sent, where fetch refuses all three with a TypeError.
  it.each(['CONNECT', 'TRACE', 'TRACK'])('%s: rejected before sending, as fetch does (not sent, not left pending)', async (method) => {
    const { url } = await rawServer((socket) => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
    const viaFetch = await outcome(sendWithUndici, url, { method, body: undefined });
    expect(viaFetch).toMatchObject({ rejected: { name: 'TypeError' } });
    const agent = new Agent();
    cleanups.push(() => agent.destroy());
    const settled = await Promise.race([
      send(request(url, agent, { method, body: undefined })).then(
        () => 'resolved',
        (e: unknown) => `rejected ${(e as Error).name}`,
      ),
      // The server answered and closed: the agent's socket is gone once undici saw it (nothing else can come).
      new Promise<string>((r) => agent.once('disconnect', () => setImmediate(() => r('still pending after the server answered and closed')))),
    ]);
    expect(settled).toBe('rejected TypeError');
  });
});
