import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { Agent } from 'undici';
import { SwitchboardError } from '../../src/errors.js';
import { createAuthFetch } from '../../src/transport/authFetch.js';
import type { AuthHeaderRequest } from '../../src/transport/types.js';
import { listenOnLoopback } from '../support/http.js';

interface Seen {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
  remotePort: number;
}

type Handler = (req: IncomingMessage, res: ServerResponse, seen: Seen) => void;

/** A loopback server recording every request; `handle` decides the answer (default 200 "ok"). */
async function startServer(): Promise<{ origin: string; seen: Seen[]; connections: () => number; handle: (h: Handler) => void; close(): Promise<void> }> {
  const seen: Seen[] = [];
  let handler: Handler = (_req, res) => res.end('ok');
  let connections = 0;
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      const s: Seen = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body, remotePort: req.socket.remotePort ?? 0 };
      seen.push(s);
      handler(req, res, s);
    });
  });
  server.on('connection', () => connections++);
  const { origin, close } = await listenOnLoopback(server);
  return { origin, seen, connections: () => connections, handle: (h) => (handler = h), close };
}

describe('createAuthFetch', () => {
  let a: Awaited<ReturnType<typeof startServer>>;
  let b: Awaited<ReturnType<typeof startServer>>;
  let dispatcher: Agent;

  beforeEach(async () => {
    [a, b] = await Promise.all([startServer(), startServer()]);
    dispatcher = new Agent({ keepAliveTimeout: 10_000 });
  });
  afterEach(async () => {
    await dispatcher.close();
    await Promise.all([a.close(), b.close()]);
  });

  /** A provider handing out token-1, token-2, … and recording each request. */
  function countingProvider(): { calls: AuthHeaderRequest[]; provider: (r: AuthHeaderRequest) => Promise<Record<string, string>> } {
    const calls: AuthHeaderRequest[] = [];
    return {
      calls,
      provider: async (r) => {
        calls.push(r);
        return { Authorization: `Bearer token-${calls.length}` };
      },
    };
  }

  it('merges config headers and the caller’s headers per request (the caller’s win)', async () => {
    const fetch = createAuthFetch({ dispatcher, headers: { 'X-Static': 'a', Accept: 'text/plain' } });
    const res = await fetch(`${a.origin}/mcp`, { method: 'POST', headers: new Headers({ 'x-call': 'b', accept: 'application/json' }), body: '{}' });
    expect(await res.text()).toBe('ok');
    expect(a.seen[0]).toMatchObject({ method: 'POST', path: '/mcp', body: '{}' });
    expect(a.seen[0]!.headers).toMatchObject({ 'x-static': 'a', 'x-call': 'b', accept: 'application/json' });
  });

  it('asks the provider for every request: two calls on one connection carry two different tokens', async () => {
    const { calls, provider } = countingProvider();
    // One socket per origin, so both requests share one keep-alive connection.
    const single = new Agent({ connections: 1, keepAliveTimeout: 10_000 });
    const fetch = createAuthFetch({ dispatcher: single, authHeaders: provider });
    await (await fetch(`${a.origin}/mcp`, { method: 'POST', body: '1' })).text();
    await (await fetch(new URL(`${a.origin}/mcp`), { method: 'DELETE' })).text();
    await single.close();
    expect(a.seen.map((s) => s.headers.authorization)).toEqual(['Bearer token-1', 'Bearer token-2']);
    expect(a.seen[0]!.remotePort).toBe(a.seen[1]!.remotePort);
    expect(a.connections()).toBe(1);
    expect(calls.map((c) => [c.method, c.url.href, c.forceRefresh])).toEqual([
      ['POST', `${a.origin}/mcp`, false],
      ['DELETE', `${a.origin}/mcp`, false],
    ]);
  });

  it('passes the caller’s signal to the provider', async () => {
    const { calls, provider } = countingProvider();
    const fetch = createAuthFetch({ dispatcher, authHeaders: provider });
    const ac = new AbortController();
    await (await fetch(a.origin, { signal: ac.signal })).text();
    expect(calls[0]!.signal).toBe(ac.signal);
  });

  it('sends nothing when the provider throws, and rejects with the very same error object', async () => {
    const boom = new Error('no token for you');
    const fetch = createAuthFetch({ dispatcher, headers: { Authorization: 'Bearer static' }, authHeaders: async () => Promise.reject(boom) });
    await expect(fetch(`${a.origin}/mcp`, { method: 'POST', body: '{}' })).rejects.toBe(boom);
    expect(a.seen).toHaveLength(0);
    expect(a.connections()).toBe(0);
  });

  it('never sends a config or caller Authorization when a provider exists', async () => {
    const answers: (Record<string, string> | undefined)[] = [undefined, {}, { 'X-Other': 'y' }];
    const fetch = createAuthFetch({
      dispatcher,
      headers: { Authorization: 'Bearer static-config' },
      authHeaders: async () => answers.shift(),
    });
    for (let i = 0; i < 3; i++) await (await fetch(a.origin, { headers: { authorization: 'Bearer from-sdk' } })).text();
    expect(a.seen.map((s) => s.headers.authorization)).toEqual([undefined, undefined, undefined]);
    expect(a.seen[2]!.headers['x-other']).toBe('y');
  });

  it('fails closed on a provider answer that is not a record: nothing is sent, not even the config headers', async () => {
    const cases: { opts: Parameters<typeof createAuthFetch>[0]; message: string }[] = [
      { opts: { dispatcher, headers: { 'X-Api-Key': 'shared' }, requestHeaders: () => undefined as never }, message: 'requestHeaders must return a record of header values (got undefined)' },
      { opts: { dispatcher, headers: { 'X-Api-Key': 'shared' }, authHeaders: async () => new Headers({ Authorization: 'Bearer x' }) as never }, message: 'authHeaders must return a record of header values (got a Headers object)' },
      { opts: { dispatcher, headers: { 'X-Api-Key': 'shared' }, authHeaders: async () => 'Bearer x' as never }, message: 'authHeaders must return a record of header values (got string)' },
    ];
    for (const { opts, message } of cases) {
      await expect(createAuthFetch(opts)(a.origin)).rejects.toThrow(message);
    }
    expect(a.seen).toHaveLength(0);
  });

  it('sends the config Authorization when there is no provider', async () => {
    const fetch = createAuthFetch({ dispatcher, headers: { Authorization: 'Bearer static-config' } });
    await (await fetch(a.origin)).text();
    expect(a.seen[0]!.headers.authorization).toBe('Bearer static-config');
  });

  it('on 401 asks again with forceRefresh and resends the same request once', async () => {
    a.handle((_req, res, s) => (s.headers.authorization === 'Bearer token-1' ? res.writeHead(401).end('no') : res.end('yes')));
    const { calls, provider } = countingProvider();
    const fetch = createAuthFetch({ dispatcher, authHeaders: provider, retryUnauthorized: true });
    const res = await fetch(`${a.origin}/mcp`, { method: 'POST', body: '{"id":1}' });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('yes');
    expect(calls.map((c) => c.forceRefresh)).toEqual([false, true]);
    expect(a.seen.map((s) => [s.method, s.body, s.headers.authorization])).toEqual([
      ['POST', '{"id":1}', 'Bearer token-1'],
      ['POST', '{"id":1}', 'Bearer token-2'],
    ]);
  });

  it('on a second 401 throws the onRejected error (or returns the response without onRejected)', async () => {
    a.handle((_req, res) => res.writeHead(401, { 'WWW-Authenticate': 'Bearer error="invalid_token"' }).end());
    const rejected = new SwitchboardError('obo_rejected_by_server', 'rejected');
    const statuses: number[] = [];
    const { calls, provider } = countingProvider();
    const fetch = createAuthFetch({
      dispatcher,
      authHeaders: provider,
      retryUnauthorized: true,
      onRejected: (r) => (statuses.push(r.status), rejected),
    });
    await expect(fetch(a.origin, { method: 'POST', body: 'x' })).rejects.toBe(rejected);
    expect(statuses).toEqual([401]);
    expect(calls.map((c) => c.forceRefresh)).toEqual([false, true]);
    expect(a.seen).toHaveLength(2);

    const plain = createAuthFetch({ dispatcher, authHeaders: provider, retryUnauthorized: true });
    const res = await plain(a.origin);
    expect(res.status).toBe(401);
    expect(a.seen).toHaveLength(4);
  });

  it('does not retry without retryUnauthorized', async () => {
    a.handle((_req, res) => res.writeHead(401).end());
    const { calls, provider } = countingProvider();
    const res = await createAuthFetch({ dispatcher, authHeaders: provider })(a.origin);
    expect(res.status).toBe(401);
    expect(calls).toHaveLength(1);
  });

  it('treats 403 with error="invalid_token" like 401, but not 403 insufficient_scope', async () => {
    a.handle((_req, res, s) =>
      s.path === '/scope'
        ? res.writeHead(403, { 'WWW-Authenticate': 'Bearer error="insufficient_scope", scope="x"' }).end()
        : s.headers.authorization === 'Bearer token-1'
          ? res.writeHead(403, { 'WWW-Authenticate': 'Bearer realm="mcp", error="invalid_token"' }).end()
          : res.end('ok'),
    );
    const first = countingProvider();
    const res = await createAuthFetch({ dispatcher, authHeaders: first.provider, retryUnauthorized: true })(`${a.origin}/tok`);
    expect(res.status).toBe(200);
    expect(first.calls.map((c) => c.forceRefresh)).toEqual([false, true]);

    const second = countingProvider();
    const res2 = await createAuthFetch({ dispatcher, authHeaders: second.provider, retryUnauthorized: true })(`${a.origin}/scope`);
    expect(res2.status).toBe(403);
    expect(second.calls).toHaveLength(1);
  });

  it('follows a same-origin redirect keeping auth (provider asked per hop) and the body on 307', async () => {
    a.handle((_req, res, s) => (s.path === '/old' ? res.writeHead(307, { Location: '/new' }).end() : res.end('moved')));
    const { calls, provider } = countingProvider();
    const fetch = createAuthFetch({ dispatcher, authHeaders: provider, headers: { Cookie: 'c=1' } });
    const res = await fetch(`${a.origin}/old`, { method: 'POST', body: 'payload' });
    expect(await res.text()).toBe('moved');
    expect(a.seen.map((s) => [s.method, s.path, s.body, s.headers.authorization, s.headers.cookie])).toEqual([
      ['POST', '/old', 'payload', 'Bearer token-1', 'c=1'],
      ['POST', '/new', 'payload', 'Bearer token-2', 'c=1'],
    ]);
    expect(calls.map((c) => c.url.pathname)).toEqual(['/old', '/new']);
  });

  it('drops Authorization, Cookie, Proxy-Authorization and config headers on a cross-origin redirect, without asking the provider', async () => {
    a.handle((_req, res) => res.writeHead(302, { Location: `${b.origin}/elsewhere` }).end());
    const { calls, provider } = countingProvider();
    const fetch = createAuthFetch({
      dispatcher,
      authHeaders: provider,
      headers: { Cookie: 'session=s', 'Proxy-Authorization': 'Basic p', 'X-Api-Key': 'secret', 'X-Both': 'config' },
    });
    const res = await fetch(`${a.origin}/start`, { headers: { 'Mcp-Protocol-Version': '2025-06-18', 'X-Both': 'caller' } });
    expect(await res.text()).toBe('ok');
    expect(b.seen).toHaveLength(1);
    expect(b.seen[0]!.headers.authorization).toBeUndefined();
    expect(b.seen[0]!.headers.cookie).toBeUndefined();
    expect(b.seen[0]!.headers['proxy-authorization']).toBeUndefined();
    expect(b.seen[0]!.headers['x-api-key']).toBeUndefined();
    expect(b.seen[0]!.headers['mcp-protocol-version']).toBe('2025-06-18');
    expect(b.seen[0]!.headers['x-both']).toBe('caller');
    expect(a.seen[0]!.headers['x-api-key']).toBe('secret');
    expect(calls).toHaveLength(1);
  });

  it('does not retry a 401 that came from another origin', async () => {
    a.handle((_req, res) => res.writeHead(307, { Location: `${b.origin}/` }).end());
    b.handle((_req, res) => res.writeHead(401).end());
    const { calls, provider } = countingProvider();
    const res = await createAuthFetch({ dispatcher, authHeaders: provider, retryUnauthorized: true })(a.origin);
    expect(res.status).toBe(401);
    expect(calls).toHaveLength(1);
  });

  it('turns POST into GET on 303, dropping the body', async () => {
    a.handle((_req, res, s) => (s.path === '/post' ? res.writeHead(303, { Location: '/result' }).end() : res.end('r')));
    await (await createAuthFetch({ dispatcher })(`${a.origin}/post`, { method: 'POST', body: 'x', headers: { 'Content-Type': 'text/plain' } })).text();
    expect(a.seen.map((s) => [s.method, s.body, s.headers['content-type']])).toEqual([
      ['POST', 'x', 'text/plain'],
      ['GET', '', undefined],
    ]);
  });

  it('fails after too many redirects', async () => {
    a.handle((_req, res, s) => res.writeHead(302, { Location: `/r${a.seen.length}${s.path.length}` }).end());
    const fetch = createAuthFetch({ dispatcher, maxRedirects: 2 });
    const err = await fetch(a.origin).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SwitchboardError);
    expect((err as SwitchboardError).code).toBe('transport_error');
    expect(a.seen).toHaveLength(3);
  });

  it('returns the redirect as is when the caller asks for redirect: "manual" (the SDK’s own policy)', async () => {
    a.handle((_req, res) => res.writeHead(307, { Location: `${b.origin}/` }).end());
    const res = await createAuthFetch({ dispatcher })(a.origin, { redirect: 'manual' });
    expect(res.status).toBe(307);
    expect(res.headers.get('location')).toBe(`${b.origin}/`);
    expect(b.seen).toHaveLength(0);
  });

  it('checks each redirect hop against the SSRF rules', async () => {
    a.handle((_req, res) => res.writeHead(302, { Location: 'http://169.254.169.254/latest/meta-data/' }).end());
    const fetch = createAuthFetch({ dispatcher, ssrf: { blockPrivate: true, allowHosts: ['127.0.0.1'] } });
    await expect(fetch(a.origin)).rejects.toMatchObject({ code: 'ssrf_blocked' });
    expect(a.seen).toHaveLength(1);
  });

  it('refuses non-http redirect targets and bad maxRedirects', async () => {
    a.handle((_req, res) => res.writeHead(302, { Location: 'file:///etc/passwd' }).end());
    await expect(createAuthFetch({ dispatcher })(a.origin)).rejects.toMatchObject({ code: 'transport_error' });
    expect(() => createAuthFetch({ dispatcher, maxRedirects: -1 })).toThrow(TypeError);
  });
});
