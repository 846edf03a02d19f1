/**
 * cappedRequestFetch, the fetch of every IdP request (discovery and token endpoints), against a loopback HTTP
 * server: what openid-client sends arrives as it would through fetch, what comes back is a fetch's Response,
 * and failures keep fetch's shapes (the IdP error classification reads them).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { brotliCompressSync, gzipSync } from 'node:zlib';
import { cappedRequestFetch } from '../../src/auth/responseCap.js';
import { SwitchboardError } from '../../src/errors.js';
import { freePort } from '../support/coordinator.js';
import { listenOnLoopback, type Listening } from '../support/http.js';

let server: Listening;
let lastHeaders: IncomingMessage['headers'] = {};
let seen: { method?: string; contentType?: string; body: string; authorization?: string; userAgent?: string; accept?: string };
const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => void> = {
  '/token': (_req, res) => {
    res.setHeader('set-cookie', ['a=1', 'b=2']);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ access_token: 'at', token_type: 'Bearer' }));
  },
  '/moved': (_req, res) => {
    res.writeHead(302, { location: '/token' });
    res.end();
  },
  '/empty': (_req, res) => {
    res.writeHead(204);
    res.end();
  },
  '/declared-big': (_req, res) => {
    res.writeHead(200, { 'content-length': '2000' });
    res.end('x'.repeat(2000));
  },
  '/streamed-big': (_req, res) => {
    res.writeHead(200); // chunked: no length declared
    for (let i = 0; i < 20; i++) res.write('y'.repeat(100));
    res.end();
  },
  '/hang': () => {},
  // Compressed whether asked or not (some proxies do).
  '/gzip': (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
    res.end(gzipSync(JSON.stringify({ access_token: 'zipped' })));
  },
  '/br': (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'br' });
    res.end(brotliCompressSync(JSON.stringify({ access_token: 'brotli' })));
  },
  '/gzip-bomb': (_req, res) => {
    res.writeHead(200, { 'content-encoding': 'gzip' });
    res.end(gzipSync(Buffer.alloc(100_000))); // ~100 bytes on the wire, 100 KB decoded
  },
  '/compress': (_req, res) => {
    res.writeHead(200, { 'content-encoding': 'compress' });
    res.end('x');
  },
};

beforeAll(async () => {
  server = await listenOnLoopback(
    createServer(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      seen = { method: req.method, contentType: req.headers['content-type'], body: Buffer.concat(chunks).toString(), authorization: req.headers.authorization };
      lastHeaders = req.headers;
      (routes[req.url ?? ''] ?? ((_q, r) => r.writeHead(404).end()))(req, res);
    }),
  );
});
afterAll(() => server.close());

describe('cappedRequestFetch', () => {
  const fetch = cappedRequestFetch({ maxBytes: 1000 });

  it('sends a form body with the content type fetch would set, and returns status, every header and the body', async () => {
    const res = await fetch(`${server.origin}/token`, {
      method: 'post',
      headers: new Headers({ Authorization: 'Basic Y2xpZW50OnNlY3JldA==' }),
      body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: 'a.b.c' }),
    });
    expect(seen).toEqual({
      method: 'POST',
      contentType: 'application/x-www-form-urlencoded;charset=UTF-8',
      body: 'grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b.c',
      authorization: 'Basic Y2xpZW50OnNlY3JldA==',
    });
    expect(res).toBeInstanceOf(Response);
    expect(res.status).toBe(200);
    expect(res.headers.getSetCookie()).toEqual(['a=1', 'b=2']);
    expect(await res.json()).toEqual({ access_token: 'at', token_type: 'Bearer' });
  });

  it("sends fetch's User-Agent and Accept when the caller set none (the MCP SDK's discovery sets neither), and keeps the caller's", async () => {
    await fetch(`${server.origin}/token`, {});
    expect(lastHeaders).toMatchObject({ 'user-agent': 'mcp-switchboard', accept: '*/*', 'accept-encoding': 'gzip, deflate, br' });
    await fetch(`${server.origin}/token`, { headers: { 'User-Agent': 'host/1.0', Accept: 'application/json' } });
    expect(lastHeaders).toMatchObject({ 'user-agent': 'host/1.0', accept: 'application/json' });
  });

  it('decodes gzip and br bodies within the cap; a bomb is too_large, an unknown coding fails like fetch', async () => {
    for (const [path, token] of [['/gzip', 'zipped'], ['/br', 'brotli']] as const) {
      const res = await fetch(`${server.origin}${path}`, {});
      expect(res.headers.get('content-encoding')).toBeNull();
      expect(await res.json()).toEqual({ access_token: token });
    }
    await expect(fetch(`${server.origin}/gzip-bomb`, {})).rejects.toMatchObject({ code: 'too_large' });
    await expect(fetch(`${server.origin}/compress`, {})).rejects.toThrow('fetch failed');
  });

  it('joins repeated header names, even one named like an Object member', async () => {
    await fetch(`${server.origin}/token`, { headers: [['x-a', '1'], ['X-A', '2'], ['constructor', 'v']] });
    expect(lastHeaders).toMatchObject({ 'x-a': '1, 2', constructor: 'v' });
  });

  it('keeps a caller-set content type, and takes headers as a record or pairs', async () => {
    await fetch(`${server.origin}/token`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
    expect(seen.contentType).toBe('application/json');
    await fetch(`${server.origin}/token`, { method: 'POST', headers: [['authorization', 'Bearer x']], body: 'plain' });
    expect(seen).toMatchObject({ contentType: 'text/plain;charset=UTF-8', authorization: 'Bearer x', body: 'plain' });
  });

  it('returns a redirect as it is (openid-client asks for redirect: manual) and a 204 with no body', async () => {
    const moved = await fetch(`${server.origin}/moved`, { redirect: 'manual' });
    expect(moved.status).toBe(302);
    expect(moved.headers.get('location')).toBe('/token');
    const empty = await fetch(`${server.origin}/empty`, {});
    expect(empty.status).toBe(204);
    expect(empty.body).toBeNull();
  });

  it('refuses a body over the cap, declared or streamed, with too_large naming the cap only', async () => {
    for (const path of ['/declared-big', '/streamed-big']) {
      const err = await fetch(`${server.origin}${path}`, {}).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SwitchboardError);
      expect(err).toMatchObject({ code: 'too_large', message: 'IdP response larger than 1000 bytes refused' });
    }
    // The connection is usable afterwards.
    expect((await fetch(`${server.origin}/token`, {})).status).toBe(200);
  });

  it("fails like fetch: a refused connection is TypeError('fetch failed') with the socket error as cause", async () => {
    const port = await freePort();
    const err = (await fetch(`http://127.0.0.1:${port}/token`, {}).catch((e: unknown) => e)) as TypeError & { cause?: { code?: string } };
    expect(err).toBeInstanceOf(TypeError);
    expect(err.message).toBe('fetch failed');
    expect(err.cause?.code).toBe('ECONNREFUSED');
  });

  it("an aborted request rejects with the signal's reason", async () => {
    const controller = new AbortController();
    const pending = fetch(`${server.origin}/hang`, { signal: controller.signal });
    const reason = new Error('deadline');
    controller.abort(reason);
    await expect(pending).rejects.toBe(reason);
  });

  it('refuses a stream body and a bad cap', () => {
    expect(() => cappedRequestFetch({ maxBytes: 0 })).toThrow(TypeError);
    return expect(fetch(`${server.origin}/token`, { method: 'POST', body: new ReadableStream() })).rejects.toThrow('An IdP request body must be a string');
  });
});
