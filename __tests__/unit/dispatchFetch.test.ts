/**
 * The request path's last stage, `sendOnDispatcher`, against a real loopback HTTP server: what a caller of the
 * request path gets must be what undici's fetch gave (the MCP SDK's transports and our interceptors read it as a
 * fetch `Response`), on good answers and on every way a server or the caller can end a request early.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { getEventListeners } from 'node:events';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { Agent } from 'undici';
import { sendOnDispatcher } from '../../src/transport/dispatchFetch.js';
import { composeStages, sendWithUndici, type OutgoingRequest, type RequestStage } from '../../src/transport/requestPath.js';
import { contentDecoding } from '../../src/transport/interceptors/contentDecoding.js';
import { requestSignal } from '../../src/transport/interceptors/requestSignal.js';
import { outgoingRequest } from '../support/requestPath.js';
import { listenOnLoopback, type Listening } from '../support/http.js';
import { deferred, type Deferred } from '../support/deferred.js';

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

let handle: Handler;
let server: Listening;
let agent: Agent;
/** What the server saw of each request: method, headers, body; and when its connection closed. */
let seen: { method: string; headers: IncomingMessage['headers']; body: string; closed: Deferred<void> }[];
const send: RequestStage = sendOnDispatcher(requestSignal()(sendWithUndici));
/** The two stages as the request path composes them: decoding at the dispatcher, under everything else. */
const decodeAndSend: RequestStage = composeStages(send, [contentDecoding()]);

beforeAll(async () => {
  server = await listenOnLoopback(
    createServer(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const body = Buffer.concat(chunks).toString('utf8');
      const closed = deferred<void>();
      res.on('close', () => closed.resolve());
      seen.push({ method: req.method!, headers: req.headers, body, closed });
      handle(req, res, body);
    }),
  );
});
afterAll(() => server.close());
beforeEach(() => {
  seen = [];
  agent = new Agent();
});
afterEach(() => agent.destroy());

function request(over: Partial<OutgoingRequest> = {}): OutgoingRequest {
  return outgoingRequest(new URL(`${server.origin}/mcp`), agent, over);
}

describe('sendOnDispatcher: answers as fetch answers', () => {
  it('sends the method, headers and body, with the defaults fetch adds only where the caller set none', async () => {
    handle = (_req, res) => res.end('ok');
    const res = await decodeAndSend(request({ headers: { 'content-type': 'application/json', authorization: 'Bearer t1', accept: 'application/json, text/event-stream' } }));
    expect(await res.text()).toBe('ok');
    expect(seen[0]).toMatchObject({
      method: 'POST',
      body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
      headers: { 'content-type': 'application/json', authorization: 'Bearer t1', accept: 'application/json, text/event-stream', 'user-agent': 'mcp-switchboard', 'accept-encoding': 'gzip, deflate, br' },
    });
    await decodeAndSend(request({ headers: { 'accept-encoding': 'identity' }, body: 'plain' })).then((r) => r.text());
    expect(seen[1]!.headers).toMatchObject({ 'content-type': 'text/plain;charset=UTF-8', accept: '*/*', 'accept-encoding': 'identity' });
  });

  it('gives status, status text and every header, repeated ones included', async () => {
    handle = (_req, res) => {
      res.writeHead(418, 'Short And Stout', [
        ['Set-Cookie', 'a=1'],
        ['Set-Cookie', 'b=2'],
        ['Mcp-Session-Id', 's-1'],
      ]);
      res.end('teapot');
    };
    const res = await send(request());
    expect([res.status, res.statusText, res.ok]).toEqual([418, 'Short And Stout', false]);
    expect(res.headers.get('mcp-session-id')).toBe('s-1');
    expect(res.headers.getSetCookie()).toEqual(['a=1', 'b=2']);
    expect(await res.text()).toBe('teapot');
  });

  it('returns redirects as they are (the redirects stage follows them), with their Location', async () => {
    handle = (_req, res) => {
      res.writeHead(307, { Location: '/elsewhere' });
      res.end();
    };
    const res = await send(request());
    expect([res.status, res.headers.get('location')]).toEqual([307, '/elsewhere']);
    expect(seen).toHaveLength(1);
  });

  it.each([
    ['204', 'POST', 204],
    ['304', 'GET', 304],
    ['a HEAD', 'HEAD', 200],
  ])('gives %s response a null body, as fetch does', async (_name, method, status) => {
    handle = (_req, res) => {
      res.writeHead(status, { 'Content-Length': '0' });
      res.end();
    };
    const res = await send(request({ method, body: method === 'POST' ? '{}' : undefined }));
    expect(res.status).toBe(status);
    expect(res.body).toBeNull();
  });

  it.each([
    ['gzip', gzipSync],
    ['x-gzip', gzipSync],
    ['deflate', deflateSync],
    ['br', brotliCompressSync],
  ])('decodes a %s body', async (coding, encode) => {
    const text = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { text: 'é'.repeat(50_000) } });
    handle = (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Encoding': coding });
      res.end(encode(Buffer.from(text)));
    };
    const res = await decodeAndSend(request());
    // Decoded: the coding and the length the server declared are gone, as in fetch's decoded responses.
    expect([res.headers.get('content-encoding'), res.headers.get('content-length')]).toEqual([null, null]);
    expect(await res.text()).toBe(text);
  });

  it('without the decoding stage, a coded body comes as it was sent, headers and all', async () => {
    handle = (_req, res) => {
      res.writeHead(200, { 'Content-Encoding': 'gzip' });
      res.end(gzipSync(Buffer.from('zipped')));
    };
    const res = await send(request());
    expect(res.headers.get('content-encoding')).toBe('gzip');
    expect(Buffer.from(await res.arrayBuffer())).toEqual(gzipSync(Buffer.from('zipped')));
  });

  it('decodes two codings in the order they were applied, and passes an unknown coding through as it came', async () => {
    handle = (_req, res) => {
      res.writeHead(200, { 'Content-Encoding': 'gzip, br' });
      res.end(brotliCompressSync(gzipSync(Buffer.from('twice'))));
    };
    expect(await (await decodeAndSend(request())).text()).toBe('twice');
    handle = (_req, res) => {
      res.writeHead(200, { 'Content-Encoding': 'zz-unknown' });
      res.end('raw bytes');
    };
    expect(await (await decodeAndSend(request())).text()).toBe('raw bytes');
  });

  it('refuses more than 5 content codings (resource exhaustion), as fetch does', async () => {
    handle = (_req, res) => {
      res.writeHead(200, { 'Content-Encoding': 'gzip, gzip, gzip, gzip, gzip, gzip' });
      res.end('x');
    };
    await expect(decodeAndSend(request())).rejects.toMatchObject({ name: 'TypeError', message: 'fetch failed' });
  });

  it('fails a corrupt gzip body while it is read, not silently', async () => {
    handle = (_req, res) => {
      res.writeHead(200, { 'Content-Encoding': 'gzip' });
      res.end(Buffer.from('not gzip at all, not at all'));
    };
    const res = await decodeAndSend(request());
    await expect(res.text()).rejects.toThrow();
  });

  it('decodes a large gzip body with back-pressure: every byte arrives, in order, read slowly', async () => {
    const big = Buffer.alloc(8 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4096) big[i] = (i / 4096) % 251;
    handle = (_req, res) => {
      res.writeHead(200, { 'Content-Encoding': 'gzip' });
      res.end(gzipSync(big));
    };
    const res = await decodeAndSend(request());
    const reader = res.body!.getReader();
    const parts: Uint8Array[] = [];
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value);
      await new Promise((r) => setImmediate(r));
    }
    expect(Buffer.concat(parts).equals(big)).toBe(true);
  });

  it('streams a large body with back-pressure: every byte arrives, in order, read slowly', async () => {
    const chunk = Buffer.alloc(64 * 1024);
    handle = (_req, res) => {
      let i = 0;
      const write = (): void => {
        while (i < 128) {
          chunk.fill(i % 251);
          if (!res.write(Buffer.from(chunk))) {
            i++;
            res.once('drain', write);
            return;
          }
          i++;
        }
        res.end();
      };
      write();
    };
    const res = await send(request());
    const reader = res.body!.getReader();
    let total = 0;
    let ok = true;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      for (let k = 0; k < value.length; k += 4096) if (value[k] !== Math.floor((total + k) / chunk.length) % 251) ok = false;
      total += value.length;
      await new Promise((r) => setImmediate(r));
    }
    expect([total, ok]).toEqual([128 * chunk.length, true]);
  });

  it('sends bytes and form bodies itself, and other bodies (a Blob) through the fetch fallback', async () => {
    handle = (_req, res) => res.end('ok');
    await (await send(request({ body: new TextEncoder().encode('bytes') }))).text();
    await (await send(request({ headers: {}, body: new URLSearchParams({ a: '1' }) }))).text();
    await (await send(request({ body: new Blob(['blob']) }))).text();
    expect(seen.map((s) => s.body)).toEqual(['bytes', 'a=1', 'blob']);
    expect(seen[1]!.headers['content-type']).toBe('application/x-www-form-urlencoded;charset=UTF-8');
  });
});

describe('sendOnDispatcher: failures look like fetch failures', () => {
  it('a refused connection is TypeError("fetch failed") with the socket error as cause', async () => {
    const closed = await listenOnLoopback(createServer());
    const url = new URL(`${closed.origin}/mcp`);
    await closed.close();
    const err = await send(request({ url })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TypeError);
    expect(err).toMatchObject({ message: 'fetch failed', cause: { code: 'ECONNREFUSED' } });
  });

  it('refuses a URL with credentials and a scheme other than http(s) before sending anything', async () => {
    await expect(send(request({ url: new URL(`http://u:p@127.0.0.1:${server.port}/mcp`) }))).rejects.toBeInstanceOf(TypeError);
    await expect(send(request({ url: new URL('file:///etc/passwd') }))).rejects.toMatchObject({ message: 'fetch failed' });
    expect(seen).toHaveLength(0);
  });

  it('a status a Response cannot carry (600) is a fetch failure, not a crash', async () => {
    const raw = createNetServer((socket: Socket) => {
      socket.once('data', () => socket.end('HTTP/1.1 600 Odd\r\nContent-Length: 2\r\n\r\nhi'));
    });
    await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
    const { port } = raw.address() as AddressInfo;
    try {
      await expect(send(request({ url: new URL(`http://127.0.0.1:${port}/mcp`) }))).rejects.toMatchObject({ message: 'fetch failed' });
    } finally {
      await new Promise((r) => raw.close(r));
    }
  });

  it('a server that drops the connection mid-body fails the read with TypeError("terminated")', async () => {
    handle = (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      res.write('data: {"partial":', () => res.socket?.destroy());
    };
    const res = await send(request());
    const err = await res.text().catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'TypeError', message: 'terminated' });
  });

  it('an abort before the answer rejects with the signal reason, and the server sees the request end', async () => {
    const gotIt = deferred<void>();
    handle = () => gotIt.resolve();
    const controller = new AbortController();
    const pending = send(request({ signal: controller.signal }));
    await gotIt.promise;
    const reason = new Error('transport closed');
    controller.abort(reason);
    await expect(pending).rejects.toBe(reason);
    await seen[0]!.closed.promise;
  });

  it('an abort while the body streams errors the body with the reason and ends the request', async () => {
    handle = (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      res.write('event: message\ndata: 1\n\n');
    };
    const controller = new AbortController();
    const res = await send(request({ signal: controller.signal }));
    const reader = res.body!.getReader();
    await reader.read();
    const reason = new Error('closing');
    controller.abort(reason);
    await expect(reader.read()).rejects.toBe(reason);
    await seen[0]!.closed.promise;
  });

  it('an already aborted signal rejects at once and sends nothing', async () => {
    const reason = new Error('gone');
    await expect(send(request({ signal: AbortSignal.abort(reason) }))).rejects.toBe(reason);
    expect(seen).toHaveLength(0);
  });

  it('cancelling the body ends the request on the server side', async () => {
    handle = (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      res.write(': open\n\n');
    };
    const res = await send(request());
    await res.body!.cancel();
    await seen[0]!.closed.promise;
    expect(seen).toHaveLength(1);
  });
});

describe('sendOnDispatcher: one listener on a long-lived signal', () => {
  it('1,000 requests that share a transport signal leave one abort listener on it, and an abort still reaches a live stream', async () => {
    handle = (req, res) => {
      if (req.method === 'GET') {
        res.writeHead(200, { 'Content-Type': 'text/event-stream' });
        res.write(': open\n\n');
      } else res.end('{}');
    };
    const transport = new AbortController();
    const stream = await send(request({ method: 'GET', body: undefined, signal: transport.signal }));
    for (let i = 0; i < 1000; i++) await (await send(request({ signal: transport.signal }))).text();
    expect(getEventListeners(transport.signal, 'abort')).toHaveLength(1);
    const reader = stream.body!.getReader();
    await reader.read();
    const reason = new Error('transport closed');
    transport.abort(reason);
    await expect(reader.read()).rejects.toBe(reason);
  });
});
