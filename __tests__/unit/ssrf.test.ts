import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { LookupAddress } from 'node:dns';
import { fetch as undiciFetch, Agent, EnvHttpProxyAgent, ProxyAgent } from 'undici';
import { SwitchboardError } from '../../src/errors.js';
import {
  checkAddress,
  checkHost,
  classifyAddress,
  createGuardedLookup,
  isHostAllowed,
  type LookupFunction,
} from '../../src/transport/ssrf.js';
import { HttpClient } from '../../src/transport/httpClient.js';
import { createAuthFetch } from '../../src/transport/authFetch.js';
import { listenOnLoopback } from '../support/http.js';

describe('classifyAddress', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.0.9', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'link-local'],
    ['169.254.0.1', 'link-local'],
    ['100.64.0.1', 'shared'],
    ['100.127.255.255', 'shared'],
    ['0.0.0.0', 'this-network'],
    ['0.1.2.3', 'this-network'],
    ['224.0.0.1', 'multicast'],
    ['255.255.255.255', 'reserved'],
  ])('IPv4 %s is %s', (ip, kind) => {
    expect(classifyAddress(ip)).toBe(kind);
  });

  it.each(['8.8.8.8', '93.184.215.14', '172.32.0.1', '172.15.255.255', '100.128.0.1', '100.63.255.255', '11.0.0.1', '169.255.0.1'])(
    'IPv4 %s is public',
    (ip) => {
      expect(classifyAddress(ip)).toBeUndefined();
    },
  );

  it.each([
    ['::1', 'loopback'],
    ['[::1]', 'loopback'],
    ['::', 'unspecified'],
    ['fc00::1', 'unique-local'],
    ['fd12:3456:789a::1', 'unique-local'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['febf:ffff::1', 'link-local'],
    ['ff02::1', 'multicast'],
  ])('IPv6 %s is %s', (ip, kind) => {
    expect(classifyAddress(ip)).toBe(kind);
  });

  it.each(['2001:4860:4860::8888', '2606:4700::1111', '2a00::1'])('IPv6 %s is public', (ip) => {
    expect(classifyAddress(ip)).toBeUndefined();
  });

  it.each([
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['[::ffff:7f00:1]', 'loopback'],
    ['::ffff:169.254.169.254', 'link-local'],
    ['::ffff:a9fe:a9fe', 'link-local'],
    ['::ffff:10.0.0.1', 'private'],
    ['0:0:0:0:0:ffff:c0a8:0101', 'private'],
    ['::127.0.0.1', 'loopback'],
    ['64:ff9b::10.0.0.1', 'private'],
  ])('IPv4-carrying IPv6 %s is judged by its IPv4 address (%s)', (ip, kind) => {
    expect(classifyAddress(ip)).toBe(kind);
  });

  it('judges an IPv4-mapped public address as public', () => {
    expect(classifyAddress('::ffff:8.8.8.8')).toBeUndefined();
    expect(classifyAddress('64:ff9b::8.8.8.8')).toBeUndefined();
  });

  it('agrees with how the URL parser normalises mapped and odd IPv4 forms', () => {
    for (const href of ['http://[::ffff:127.0.0.1]/', 'http://0x7f.1/', 'http://2130706433/', 'http://017700000001/']) {
      expect(classifyAddress(new URL(href).hostname)).toBe('loopback');
    }
  });

  it('throws a TypeError for something that is not an IP', () => {
    expect(() => classifyAddress('evil.test')).toThrow(TypeError);
  });
});

describe('isHostAllowed / checkHost / checkAddress', () => {
  it('matches exact names case-insensitively and *.suffix on subdomains only', () => {
    const allow = ['MCP.Internal.Example', '*.tools.example', '10.0.0.5', '::1'];
    expect(isHostAllowed('mcp.internal.example', allow)).toBe(true);
    expect(isHostAllowed('mcp.internal.example.', allow)).toBe(true);
    expect(isHostAllowed('a.b.tools.example', allow)).toBe(true);
    expect(isHostAllowed('tools.example', allow)).toBe(false);
    expect(isHostAllowed('eviltools.example', allow)).toBe(false);
    expect(isHostAllowed('10.0.0.5', allow)).toBe(true);
    expect(isHostAllowed('[::1]', allow)).toBe(true);
    expect(isHostAllowed('other.example', allow)).toBe(false);
    expect(isHostAllowed('x', undefined)).toBe(false);
  });

  it('blocks literal private IPs and localhost names, leaves other names to connect time', () => {
    const ssrf = { blockPrivate: true };
    for (const host of ['127.0.0.1', '[::1]', '169.254.169.254', '10.1.2.3', 'localhost', 'api.localhost', '[::ffff:7f00:1]']) {
      const err = checkHost(host, ssrf);
      expect(err).toBeInstanceOf(SwitchboardError);
      expect(err?.code).toBe('ssrf_blocked');
    }
    expect(checkHost('evil.test', ssrf)).toBeUndefined();
    expect(checkHost('8.8.8.8', ssrf)).toBeUndefined();
  });

  it('lets allowHosts through before address rules, and blockPrivate:false turns the rules off', () => {
    expect(checkHost('10.0.0.5', { allowHosts: ['10.0.0.5'] })).toBeUndefined();
    expect(checkHost('10.0.0.6', { allowHosts: ['10.0.0.5'] })?.code).toBe('ssrf_blocked');
    expect(checkHost('127.0.0.1', { blockPrivate: false })).toBeUndefined();
    expect(checkAddress('127.0.0.1', { blockPrivate: false })).toBeUndefined();
    expect(checkAddress('10.1.2.3', {}, 'evil.test')?.message).toContain('evil.test');
  });
});

/** A fake DNS: names map to fixed answers; records every name asked. */
function fakeDns(table: Record<string, LookupAddress[]>): { lookup: LookupFunction; asked: string[] } {
  const asked: string[] = [];
  const lookup: LookupFunction = (hostname, options, callback) => {
    asked.push(hostname);
    const answer = table[hostname];
    queueMicrotask(() => {
      if (!answer) return callback(Object.assign(new Error(`ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), '');
      if (options.all) return callback(null, answer);
      return callback(null, answer[0]!.address, answer[0]!.family);
    });
  };
  return { lookup, asked };
}

function lookupOnce(lookup: LookupFunction, host: string, all: boolean): Promise<{ err: unknown; address: unknown }> {
  return new Promise((resolve) => lookup(host, { all }, (err, address) => resolve({ err, address })));
}

describe('createGuardedLookup (no connection made: the lookup alone is exercised)', () => {
  const dns = fakeDns({
    'loop.test': [{ address: '127.0.0.1', family: 4 }],
    'ten.test': [{ address: '10.1.2.3', family: 4 }],
    'metadata.test': [{ address: '169.254.169.254', family: 4 }],
    'v6loop.test': [{ address: '::1', family: 6 }],
    'mapped.test': [{ address: '::ffff:10.0.0.1', family: 6 }],
    'rebind.test': [
      { address: '93.184.215.14', family: 4 },
      { address: '10.0.0.1', family: 4 },
    ],
    'public.test': [{ address: '93.184.215.14', family: 4 }],
  });
  const guarded = createGuardedLookup({ blockPrivate: true, allowHosts: ['allowed-loop.test'] }, dns.lookup);

  it.each(['loop.test', 'ten.test', 'metadata.test', 'v6loop.test', 'mapped.test', 'rebind.test'])('refuses %s', async (host) => {
    for (const all of [true, false]) {
      const { err } = await lookupOnce(guarded, host, all);
      expect(err).toBeInstanceOf(SwitchboardError);
      expect((err as SwitchboardError).code).toBe('ssrf_blocked');
      expect((err as SwitchboardError).message).toContain(host);
    }
  });

  it('answers a name resolving to a public address, in the shape asked for', async () => {
    expect(await lookupOnce(guarded, 'public.test', false)).toEqual({ err: null, address: '93.184.215.14' });
    expect(await lookupOnce(guarded, 'public.test', true)).toEqual({ err: null, address: [{ address: '93.184.215.14', family: 4 }] });
  });

  it('passes DNS errors through', async () => {
    const { err } = await lookupOnce(guarded, 'nxdomain.test', false);
    expect((err as NodeJS.ErrnoException).code).toBe('ENOTFOUND');
  });
});

/** A loopback HTTP server counting TCP connections and requests. */
async function startCountingServer(): Promise<{ server: Server; port: number; sockets: Socket[]; requests: string[]; close(): Promise<void> }> {
  const sockets: Socket[] = [];
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.headers.host} ${req.url}`);
    res.end('ok');
  });
  server.on('connection', (s) => sockets.push(s));
  const { port, close } = await listenOnLoopback(server);
  return { server, port, sockets, requests, close };
}

describe('HttpClient guarded dispatcher (loopback only)', () => {
  let target: Awaited<ReturnType<typeof startCountingServer>>;
  let http: HttpClient;
  const dns = fakeDns({
    'evil.test': [{ address: '127.0.0.1', family: 4 }],
    'evil6.test': [{ address: '::1', family: 6 }],
    'allowed.test': [{ address: '127.0.0.1', family: 4 }],
  });

  beforeEach(async () => {
    target = await startCountingServer();
    http = new HttpClient({ lookup: dns.lookup, userSsrf: { allowHosts: ['allowed.test'] } });
  });
  afterEach(async () => {
    await http.close();
    await target.close();
  });

  async function fetchError(url: string, dispatcher: import('undici').Dispatcher): Promise<unknown> {
    return undiciFetch(url, { dispatcher }).then(
      () => undefined,
      (err: unknown) => err,
    );
  }

  it('refuses a name resolving to 127.0.0.1 or ::1 before a socket is opened to it', async () => {
    const { dispatcher } = http.forConfig({ source: 'user' });
    for (const host of ['evil.test', 'evil6.test']) {
      const err = await fetchError(`http://${host}:${target.port}/`, dispatcher);
      expect((err as { cause?: SwitchboardError }).cause).toBeInstanceOf(SwitchboardError);
      expect((err as { cause: SwitchboardError }).cause.code).toBe('ssrf_blocked');
    }
    expect(dns.asked).toEqual(expect.arrayContaining(['evil.test', 'evil6.test']));
    expect(target.sockets).toHaveLength(0);
  });

  it('refuses literal loopback IPs at connect time too (no lookup happens for them)', async () => {
    const { dispatcher } = http.forConfig({ source: 'user' });
    const err = await fetchError(`http://127.0.0.1:${target.port}/`, dispatcher);
    expect((err as { cause: SwitchboardError }).cause.code).toBe('ssrf_blocked');
    expect(target.sockets).toHaveLength(0);
  });

  it('lets an allowed host through the guard', async () => {
    const { dispatcher } = http.forConfig({ source: 'user' });
    const res = await undiciFetch(`http://allowed.test:${target.port}/x`, { dispatcher });
    expect(await res.text()).toBe('ok');
    expect(target.requests).toEqual([`GET allowed.test:${target.port} /x`]);
  });

  it('does not guard admin configs by default', async () => {
    const route = http.forConfig({ source: 'config' });
    expect(route.ssrf).toBeUndefined();
    const res = await undiciFetch(`http://127.0.0.1:${target.port}/`, { dispatcher: route.dispatcher });
    expect(res.status).toBe(200);
    await res.text();
  });

  it('authFetch surfaces the guard error itself, and refuses literal IPs before calling the auth provider', async () => {
    const route = http.forConfig({ source: 'user' });
    let providerCalls = 0;
    const fetch = createAuthFetch({ ...route, authHeaders: async () => (providerCalls++, { Authorization: 'Bearer t' }) });
    await expect(fetch(`http://evil.test:${target.port}/`)).rejects.toMatchObject({ code: 'ssrf_blocked' });
    await expect(fetch(`http://[::ffff:127.0.0.1]:${target.port}/`)).rejects.toMatchObject({ code: 'ssrf_blocked' });
    expect(providerCalls).toBe(1); // evil.test: only the connect hook knows its address
    expect(target.sockets).toHaveLength(0);
  });
});

describe('HttpClient routing', () => {
  it('guards user configs by default, everything when ssrf is an object, and shares dispatchers', async () => {
    const plain = new HttpClient();
    expect(plain.forConfig({}).ssrf).toBeUndefined();
    expect(plain.forConfig({ source: 'user' }).ssrf).toEqual({ blockPrivate: true });
    expect(plain.forConfig({}).dispatcher).toBe(plain.forConfig({ source: 'config' }).dispatcher);
    expect(plain.forConfig({}).dispatcher).not.toBe(plain.forConfig({ source: 'user' }).dispatcher);
    expect(plain.forConfig({}).dispatcher).toBeInstanceOf(Agent);
    await plain.close();

    const all = new HttpClient({ ssrf: { allowHosts: ['a.example'] }, userSsrf: { allowHosts: ['b.example'] } });
    expect(all.forConfig({}).ssrf).toEqual({ blockPrivate: true, allowHosts: ['a.example'] });
    expect(all.forConfig({ source: 'user' }).ssrf).toEqual({ blockPrivate: true, allowHosts: ['b.example'] });
    await all.close();
  });

  it('uses a ProxyAgent per proxy URL (config proxy wins) and EnvHttpProxyAgent for "env"', async () => {
    const http = new HttpClient({ proxy: 'http://127.0.0.1:9/' });
    const a = http.forConfig({});
    expect(a.dispatcher).toBeInstanceOf(ProxyAgent);
    expect(http.forConfig({ proxy: 'http://127.0.0.1:10/' }).dispatcher).not.toBe(a.dispatcher);
    expect(http.forConfig({}).dispatcher).toBe(a.dispatcher);
    await http.close();
    const env = new HttpClient({ proxy: 'env' });
    expect(env.forConfig({}).dispatcher).toBeInstanceOf(EnvHttpProxyAgent);
    await env.close();
    expect(() => new HttpClient({ proxy: 'socks://x' })).toThrow(TypeError);
  });

  it('reads proxy env variables when constructed, and sends proxied requests to the proxy', async () => {
    const proxy = createServer();
    const connects: string[] = [];
    proxy.on('connect', (req, socket) => {
      connects.push(req.url ?? '');
      socket.end('HTTP/1.1 403 Forbidden\r\n\r\n');
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const saved = { HTTP_PROXY: process.env.HTTP_PROXY, http_proxy: process.env.http_proxy, NO_PROXY: process.env.NO_PROXY, no_proxy: process.env.no_proxy };
    process.env.HTTP_PROXY = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    delete process.env.http_proxy;
    delete process.env.NO_PROXY;
    delete process.env.no_proxy;
    const http = new HttpClient({ proxy: 'env' });
    // Changing the environment afterwards must not matter.
    process.env.HTTP_PROXY = 'http://127.0.0.1:9';
    try {
      const err = await undiciFetch('http://mcp.example.test/mcp', { dispatcher: http.forConfig({}).dispatcher }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect(connects).toEqual(['mcp.example.test:80']);
    } finally {
      for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k];
      else process.env[k] = v;
      await http.close();
      proxy.closeAllConnections();
      await new Promise<void>((r) => proxy.close(() => r()));
    }
  });

  it('close() is idempotent and forConfig afterwards fails', async () => {
    const http = new HttpClient();
    http.forConfig({});
    const p1 = http.close();
    expect(http.close()).toBe(p1);
    await p1;
    expect(() => http.forConfig({})).toThrow(SwitchboardError);
  });
});
