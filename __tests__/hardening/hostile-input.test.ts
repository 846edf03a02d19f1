/**
 * Hostile input, property-based (fast-check): server configs, placeholder values, bearer JWTs and IdP
 * responses. Whatever comes in, the answer is a value or a typed error (ConfigError, BearerError, OboError),
 * never another exception, an uncaught exception or an unhandled rejection. Then the size caps, each with a
 * clear error: tool results, tool lists, IdP responses.
 */
import fc from 'fast-check';
import { SignJWT, exportJWK, generateKeyPair, type JWK } from 'jose';
import { MockAgent } from 'undici';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { z } from 'zod';
import { createBearerVerifier } from '../../src/auth/bearerVerifier.js';
import { createOboTokenResolver } from '../../src/auth/oboTokenResolver.js';
import { parseServerConfig, parseServersConfig, resolveConfigPlaceholders } from '../../src/config/parse.js';
import { BearerError, ConfigError, OboError, SwitchboardError } from '../../src/errors.js';
import { MCPConnectionFactory } from '../../src/MCPConnectionFactory.js';
import { MCPManager } from '../../src/MCPManager.js';
import { startTestIdp } from '../../src/testing/testIdp.js';
import { startTestMcpServer } from '../../src/testing/testMcpServer.js';
import type { UserContext } from '../../src/types.js';
import { testIdpResolver } from '../support/idp.js';
import { report as figure } from '../support/report.js';

const stray: unknown[] = [];
const onStray = (err: unknown) => void stray.push(err);
beforeAll(() => {
  process.on('unhandledRejection', onStray);
  process.on('uncaughtException', onStray);
});
afterAll(() => {
  process.off('unhandledRejection', onStray);
  process.off('uncaughtException', onStray);
});

/** Runs `fn`; a throw must be one of `allowed`. */
function onlyTyped(fn: () => unknown, ...allowed: (abstract new (...a: never[]) => Error)[]): void {
  try {
    fn();
  } catch (err) {
    if (!allowed.some((C) => err instanceof C)) throw new Error(`untyped error: ${String((err as Error)?.name)}: ${String((err as Error)?.message)}`);
  }
}

const runs = (n: number) => ({ numRuns: n, seed: Number(process.env.FC_SEED ?? 20260801) });
const report = (property: string, n: number) => figure('fuzz', `${property}: ${n} runs, seed ${runs(n).seed}`);

// Strings that tend to break parsers: control characters, placeholders, URL and header metacharacters.
const nasty = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.constantFrom('', ' ', '\r\n', '\0', '{{user.id}}', '{{var.X}}', '${HOME}', '${', '{{', '}}', '{{user.__proto__}}', '__proto__', 'constructor',
    'http://', 'https://a.example/{{user.email}}', 'ws://x', 'javascript:alert(1)', '..', '%00', '\u202e', 'a'.repeat(10_000)),
);
const configish = fc.record(
  {
    type: fc.oneof(fc.constantFrom('stdio', 'sse', 'streamable-http', 'http', 'websocket', 'ftp', ''), nasty),
    url: fc.oneof(nasty, fc.webUrl(), fc.constantFrom('https://mcp.example.com/{{user.id}}', 'ws://h/{{var.T}}', 'http://[::1]/')),
    command: nasty,
    args: fc.oneof(fc.array(nasty, { maxLength: 4 }), nasty),
    env: fc.oneof(fc.dictionary(nasty, nasty, { maxKeys: 3 }), nasty),
    headers: fc.oneof(fc.dictionary(nasty, nasty, { maxKeys: 3 }), fc.anything()),
    obo: fc.oneof(fc.record({ scopes: fc.oneof(nasty, fc.array(nasty, { maxLength: 3 })), audience: nasty }, { requiredKeys: [] }), fc.anything()),
    timeoutMs: fc.oneof(fc.integer(), fc.double(), nasty),
    initTimeoutMs: fc.oneof(fc.integer(), fc.double(), nasty),
    source: fc.oneof(fc.constantFrom('config', 'user'), nasty),
    updatedAt: fc.oneof(fc.integer(), nasty, fc.date({ noInvalidDate: false })),
    customUserVars: fc.oneof(fc.dictionary(nasty, fc.record({ title: nasty }, { requiredKeys: [] }), { maxKeys: 2 }), fc.anything()),
  },
  { requiredKeys: [] },
);

describe('server configs', () => {
  it('parseServersConfig: anything at all → configs or ConfigError', () => {
    const n = 2_000;
    fc.assert(
      fc.property(fc.anything({ withNullPrototype: true, withMap: true, withSet: true, withBigInt: true, withDate: true, withTypedArray: true }), (input) => {
        onlyTyped(() => parseServersConfig(input), ConfigError);
      }),
      runs(n),
    );
    report('parseServersConfig(anything)', n);
  });

  it('parseServersConfig: config-shaped records with hostile fields → configs or ConfigError (issues with paths)', () => {
    const n = 2_000;
    fc.assert(
      fc.property(fc.dictionary(nasty, configish, { maxKeys: 3 }), (servers) => {
        try {
          parseServersConfig(servers);
        } catch (err) {
          if (!(err instanceof ConfigError)) throw err;
          expect(err.issues.length).toBeGreaterThan(0);
          for (const i of err.issues) expect(typeof i.path).toBe('string');
        }
      }),
      runs(n),
    );
    report('parseServersConfig(config-shaped)', n);
  });

  it('MCPManager constructor and upsertServer: hostile configs → ConfigError, nothing applied', () => {
    const n = 500;
    fc.assert(
      fc.property(nasty, configish, (name, config) => {
        let made: MCPManager | undefined;
        onlyTyped(() => (made = new MCPManager({ servers: { [name]: config } })), ConfigError);
        void made?.close();
        const m = new MCPManager({ servers: {} });
        onlyTyped(() => m.upsertServer(name, config), ConfigError);
        void m.close();
      }),
      runs(n),
    );
    report('MCPManager(servers) + upsertServer', n);
  });
});

describe('placeholder values', () => {
  const user = fc.record({
    id: nasty,
    email: fc.oneof(nasty, fc.emailAddress()),
    tenantId: fc.oneof(nasty, fc.constant(undefined)),
    vars: fc.dictionary(fc.constantFrom('X', 'T', 'KEY', '__proto__'), nasty, { maxKeys: 3 }),
  });

  it('user values never change the URL origin, never inject a header line; failures are ConfigError', () => {
    const n = 2_000;
    const config = parseServerConfig('svc', {
      url: 'https://api.example.com/u/{{user.id}}/t/{{user.tenantId}}?k={{var.X}}',
      headers: { 'X-Email': '{{user.email}}', Authorization: 'Bearer {{var.KEY}}', 'X-Env': '${FUZZ_ENV}' },
      customUserVars: { X: {}, KEY: {} },
    });
    fc.assert(
      fc.property(user, fc.dictionary(fc.constantFrom('FUZZ_ENV', 'OTHER'), nasty, { maxKeys: 2 }), (u, env) => {
        try {
          const resolved = resolveConfigPlaceholders('svc', config, { user: u as UserContext, env });
          if (resolved.type !== 'streamable-http') throw new Error('type changed');
          expect(new URL(resolved.url).origin).toBe('https://api.example.com');
          for (const v of Object.values(resolved.headers ?? {})) expect(v).not.toMatch(/[\r\n\0]/);
        } catch (err) {
          if (!(err instanceof ConfigError)) throw err;
        }
      }),
      runs(n),
    );
    report('resolveConfigPlaceholders(user/env values)', n);
  });

  it('stdio args/env placeholders: any value → resolved strings or ConfigError', () => {
    const n = 1_000;
    const config = parseServerConfig('cli', { command: 'tool', args: ['--user', '{{user.id}}', '{{var.T}}'], env: { TOKEN: '{{var.KEY}}', HOME_DIR: '${FUZZ_ENV}' }, customUserVars: { T: {}, KEY: {} } });
    fc.assert(
      fc.property(user, fc.dictionary(fc.constantFrom('FUZZ_ENV'), nasty), (u, env) => {
        try {
          const resolved = resolveConfigPlaceholders('cli', config, { user: u as UserContext, env });
          if (resolved.type !== 'stdio') throw new Error('type changed');
          expect(resolved.command).toBe('tool');
          for (const a of resolved.args ?? []) expect(typeof a).toBe('string');
        } catch (err) {
          if (!(err instanceof ConfigError)) throw err;
        }
      }),
      runs(n),
    );
    report('resolveConfigPlaceholders(stdio placeholders)', n);
  });
});

describe('bearer JWTs', () => {
  let key: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
  let other: typeof key;
  let jwk: JWK;
  const ISS = 'https://idp.fuzz.test';
  const AUD = 'api://fuzz';
  const verifierFor = () =>
    createBearerVerifier({
      issuer: ISS,
      audience: AUD,
      jwksUri: `${ISS}/jwks`,
      // The key set is served from memory: nothing leaves the process.
      fetch: async () => new Response(JSON.stringify({ keys: [jwk] }), { status: 200, headers: { 'content-type': 'application/json' } }),
    });

  beforeAll(async () => {
    const pair = await generateKeyPair('RS256', { extractable: true });
    key = pair.privateKey;
    jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    other = (await generateKeyPair('RS256')).privateKey;
  });

  const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

  it('arbitrary Authorization values → BearerError', async () => {
    const n = 1_500;
    const verifier = verifierFor();
    const shaped = fc.oneof(
      fc.string(),
      fc.string({ unit: 'binary' }).map((s) => `Bearer ${s}`),
      fc.tuple(fc.string(), fc.string(), fc.string()).map(([a, b, c]) => `Bearer ${a}.${b}.${c}`),
      fc.tuple(fc.jsonValue(), fc.jsonValue(), fc.string()).map(([h, p, s]) => `Bearer ${b64(h)}.${b64(p)}.${s}`),
      fc.record({ alg: fc.constantFrom('none', 'HS256', 'RS256', 'ES256', 'PS256', 'EdDSA', ''), kid: fc.oneof(fc.string(), fc.constant('k1')), typ: fc.string() }, { requiredKeys: [] })
        .chain((h) => fc.jsonValue().map((p) => `Bearer ${b64(h)}.${b64(p)}.`)),
      fc.constant(undefined),
    );
    await fc.assert(
      fc.asyncProperty(shaped, async (authorization) => {
        const err = await verifier.verify(authorization as string).then(
          () => new Error('an arbitrary value was accepted'),
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(BearerError);
      }),
      runs(n),
    );
    report('verify(arbitrary Authorization)', n);
  });

  it('validly signed tokens with hostile claims → verified with a string subject, or BearerError', async () => {
    const n = 400;
    const verifier = verifierFor();
    const now = Math.floor(Date.now() / 1000);
    const claims = fc.record(
      {
        iss: fc.oneof(fc.constant(ISS), fc.jsonValue()),
        aud: fc.oneof(fc.constant(AUD), fc.constant([AUD, 'x']), fc.jsonValue()),
        sub: fc.oneof(fc.string(), fc.jsonValue()),
        exp: fc.oneof(fc.constant(now + 600), fc.integer(), fc.double(), fc.jsonValue()),
        nbf: fc.oneof(fc.integer(), fc.jsonValue()),
        scp: fc.oneof(fc.string(), fc.jsonValue()),
        roles: fc.jsonValue(),
        tid: fc.jsonValue(),
      },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(claims, fc.boolean(), async (c, rightKey) => {
        let token: string;
        try {
          token = await new SignJWT(c as Record<string, unknown>).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).sign(rightKey ? key : other);
        } catch {
          return; // jose refused to sign these claims: nothing to verify
        }
        try {
          const v = await verifier.verify(`Bearer ${token}`);
          expect(rightKey).toBe(true);
          expect(typeof v.subject).toBe('string');
          expect(v.subject.length).toBeGreaterThan(0);
          expect(v.claims.iss).toBe(ISS);
        } catch (err) {
          expect(err).toBeInstanceOf(BearerError);
        }
      }),
      runs(n),
    );
    report('verify(signed, hostile claims)', n);
  });
});

describe('IdP responses', () => {
  const ISSUER = 'https://idp.fuzz.test';
  const assertion = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: 'u1', exp: Math.floor(Date.now() / 1000) + 3600 })).toString('base64url')}.`;

  it('arbitrary token endpoint answers (status, headers, body) → OboToken or OboError', async () => {
    const n = 600;
    const reply = fc.record({
      status: fc.oneof(fc.constantFrom(200, 201, 204, 301, 400, 401, 403, 404, 429, 500, 502, 503), fc.integer({ min: 200, max: 599 })),
      contentType: fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/html', 'application/x-www-form-urlencoded', ''),
      retryAfter: fc.option(fc.oneof(fc.nat().map(String), fc.string(), fc.constant('Wed, 21 Oct 2015 07:28:00 GMT'))),
      body: fc.oneof(
        fc.jsonValue().map((v) => JSON.stringify(v)),
        fc.string(),
        fc.record(
          {
            access_token: fc.oneof(fc.string(), fc.jsonValue(), fc.constant('eyJ.a.b')),
            token_type: fc.oneof(fc.constantFrom('Bearer', 'bearer', 'DPoP', 'N_A'), fc.jsonValue()),
            expires_in: fc.oneof(fc.integer(), fc.double(), fc.string(), fc.jsonValue()),
            error: fc.oneof(fc.constantFrom('invalid_grant', 'invalid_client', 'temporarily_unavailable', 'interaction_required'), fc.jsonValue()),
            error_description: fc.oneof(fc.string(), fc.constant(`AADSTS: token ${assertion}`)),
            error_codes: fc.jsonValue(),
            suberror: fc.jsonValue(),
            claims: fc.jsonValue(),
          },
          { requiredKeys: [] },
        ).map((o) => JSON.stringify(o)),
      ),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(reply, { minLength: 2, maxLength: 2 }), async (replies) => {
        const mock = new MockAgent();
        mock.disableNetConnect();
        const pool = mock.get(ISSUER);
        for (const r of replies) {
          pool.intercept({ path: '/token', method: 'POST' }).reply(r.status, r.body, {
            headers: { ...(r.contentType ? { 'content-type': r.contentType } : {}), ...(r.retryAfter === null ? {} : { 'retry-after': r.retryAfter }) },
          });
        }
        const resolver = createOboTokenResolver({
          issuer: ISSUER,
          tokenEndpoint: `${ISSUER}/token`,
          clientId: 'runtime',
          clientSecret: 'runtime-secret-value',
          dispatcher: mock,
          retryDelayMs: 0,
          maxRetryAfterMs: 0,
          timeoutMs: 5_000,
        });
        try {
          const token = await resolver({ user: { id: 'u1' }, assertion, scopes: ['api://x/.default'], serverName: 'fuzz' });
          expect(typeof token.accessToken).toBe('string');
          expect(token.accessToken.length).toBeGreaterThan(0);
        } catch (err) {
          expect(err).toBeInstanceOf(OboError);
          const dump = JSON.stringify(err) + String((err as Error).message);
          expect(dump).not.toContain(assertion);
          expect(dump).not.toContain('runtime-secret-value');
        } finally {
          await mock.close();
        }
      }),
      runs(n),
    );
    report('OBO resolver(arbitrary IdP answers)', n);
  });
});

describe('size caps', () => {
  async function connectTo(makeServer: () => McpServer | Server, limits?: { maxResultBytes?: number; maxTools?: number; maxToolPages?: number }) {
    const factory = new MCPConnectionFactory({
      ...(limits ? { limits } : {}),
      createTransport: async () => {
        const [client, srv] = InMemoryTransport.createLinkedPair();
        await makeServer().connect(srv);
        return client;
      },
    });
    const m = new MCPManager({ servers: { big: { command: 'big' } }, connectionFactory: factory });
    return { m, close: async () => (await m.close(), await factory.close()) };
  }

  it('a tool result over the default 16 MiB → SwitchboardError(too_large) naming the cap; smaller ones pass', async () => {
    const { m, close } = await connectTo(() => {
      const s = new McpServer({ name: 'big', version: '1' });
      s.registerTool('blob', { inputSchema: { mib: z.number() } }, async ({ mib }) => ({ content: [{ type: 'text', text: 'x'.repeat(mib * 1024 * 1024) }] }));
      return s;
    });
    try {
      const err = await m.callTool({ serverName: 'big', toolName: 'blob', arguments: { mib: 17 } }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SwitchboardError);
      expect(err).toMatchObject({ code: 'too_large', serverName: 'big' });
      expect((err as Error).message).toContain(String(16 * 1024 * 1024));
      const fine = await m.callTool({ serverName: 'big', toolName: 'blob', arguments: { mib: 1 } });
      expect((fine.content[0] as { text: string }).text).toHaveLength(1024 * 1024);
      figure('caps', `tool result 17 MiB → ${(err as SwitchboardError).code}: ${(err as Error).message}`);
    } finally {
      await close();
    }
  });

  it('limits.maxResultBytes over streamable HTTP: a 100 KiB result with a 64 KiB cap → too_large, the connection stays usable', async () => {
    const server = await startTestMcpServer({ transport: 'streamable-http' });
    const factory = new MCPConnectionFactory({ limits: { maxResultBytes: 64 * 1024 } });
    const m = new MCPManager({ servers: { web: { url: server.url } }, connectionFactory: factory });
    try {
      const err = await m.callTool({ serverName: 'web', toolName: 'echo', arguments: { text: 'y'.repeat(100 * 1024) } }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'too_large' });
      const ok = await m.callTool({ serverName: 'web', toolName: 'echo', arguments: { text: 'small' } });
      expect((ok.content[0] as { text: string }).text).toBe('small');
    } finally {
      await m.close();
      await factory.close();
      await server.close();
    }
  });

  it('tool lists: more tools than maxTools, or endless pages → too_large with the cap in the message', async () => {
    const lowLevel = (tools: number, endless: boolean) => () => {
      const s = new Server({ name: 'lists', version: '1' }, { capabilities: { tools: {} } });
      s.setRequestHandler(ListToolsRequestSchema, async (req) => {
        const page = Number(req.params?.cursor ?? 0);
        return {
          tools: Array.from({ length: tools }, (_, i) => ({ name: `t${page}-${i}`, inputSchema: { type: 'object' as const } })),
          ...(endless ? { nextCursor: String(page + 1) } : {}),
        };
      });
      return s;
    };
    const many = await connectTo(lowLevel(5_001, false));
    try {
      const err = await many.m.listTools({ serverName: 'big' }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'too_large' });
      expect((err as Error).message).toContain('5000 tools');
      figure('caps', `tools/list with 5001 tools → ${(err as Error).message}`);
    } finally {
      await many.close();
    }
    const endless = await connectTo(lowLevel(1, true), { maxToolPages: 5 });
    try {
      const err = await endless.m.listTools({ serverName: 'big' }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'too_large' });
      expect((err as Error).message).toContain('5 pages');
      figure('caps', `endless tools/list pages → ${(err as Error).message}`);
    } finally {
      await endless.close();
    }
  });

  it('an oversized IdP response (2 MiB) → OboError(exchange_failed, not retryable) naming the size cap; nothing sent to the server', async () => {
    const idp = await startTestIdp();
    const server = await startTestMcpServer({ transport: 'streamable-http' });
    const resolver = testIdpResolver(idp);
    const m = new MCPManager({ servers: { graph: { url: server.url, obo: { scopes: `${idp.downstreamAudience}/.default` } } }, oboTokenResolver: resolver });
    try {
      const user = { id: 'big', upstreamToken: await idp.mintAccessToken({ sub: 'big' }) };
      idp.failNext(1, { status: 200, grant: 'exchange', body: { access_token: 'z'.repeat(2 * 1024 * 1024), token_type: 'Bearer', expires_in: 300 } });
      const err = await m.callTool({ user, serverName: 'graph', toolName: 'whoami' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OboError);
      expect(err).toMatchObject({ reason: 'exchange_failed', retryable: false });
      expect((err as Error).message).toContain('size cap');
      expect(server.requests).toHaveLength(0);
      expect(idp.stats().exchanges).toBe(1); // not retried
      figure('caps', `2 MiB IdP token response → ${(err as Error).message}`);
    } finally {
      await m.close();
      await server.close();
      await idp.close();
    }
  });
});

describe('stray failures', () => {
  // Declared last: jest runs it after every test above.
  it('no uncaught exception or unhandled rejection during any of the above', async () => {
    await new Promise<void>((r) => setImmediate(r)); // let anything pending surface first
    expect(stray).toEqual([]);
  });
});
