/**
 * Issue 16, items 5–7: bad options are a `TypeError` naming the public option and what was expected; every
 * config message says what was expected; config problems are all reported in one pass.
 */
import { describe, expect, it } from '@jest/globals';
import { MCPManager } from '../../src/MCPManager.js';
import { MCPConnection } from '../../src/MCPConnection.js';
import { MCPConnectionFactory } from '../../src/MCPConnectionFactory.js';
import { createOboTokenResolver } from '../../src/auth/oboTokenResolver.js';
import { createUpstreamTokenProvider } from '../../src/auth/upstreamToken.js';
import { createBearerVerifier } from '../../src/auth/bearerVerifier.js';
import { ConnectionPool } from '../../src/pool/ConnectionPool.js';
import { parseServerConfig, parseServersConfig } from '../../src/config/index.js';
import { nonNegativeMs, oneOf, positiveInt, positiveMs, positiveMsOrInfinity } from '../../src/options.js';
import { issuesOf } from '../support/errors.js';

/** The error `fn` throws (fails the test if it throws nothing). */
function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a throw');
}

describe('option errors: one TypeError naming the public option', () => {
  it.each([
    ['maxConnectionsPerUser: 0', () => new MCPManager({ servers: {}, maxConnectionsPerUser: 0 }), 'MCPManager: maxConnectionsPerUser must be a positive integer (got 0)'],
    ['maxUserConnections: 1.5', () => new MCPManager({ servers: {}, maxUserConnections: 1.5 }), 'MCPManager: maxUserConnections must be a positive integer (got 1.5)'],
    ['idleTimeoutMs: 0', () => new MCPManager({ servers: {}, idleTimeoutMs: 0 }), 'MCPManager: idleTimeoutMs must be a number of milliseconds > 0 (or Infinity) (got 0)'],
    ['appIdleTimeoutMs: -5', () => new MCPManager({ servers: {}, appIdleTimeoutMs: -5 }), 'MCPManager: appIdleTimeoutMs must be a number of milliseconds > 0 (or Infinity) (got -5)'],
    ['oboTokenResolver: "x"', () => new MCPManager({ servers: {}, oboTokenResolver: 'x' as never }), 'MCPManager: oboTokenResolver must be a function (got a string of 1 characters)'],
    [
      'MCPConnection limits.maxTools: 0',
      () => new MCPConnection({ serverName: 's', config: parseServerConfig('s', { command: 'x' }), createTransport: async () => ({}) as never, limits: { maxTools: 0 } }),
      'MCPConnection: limits.maxTools must be a positive integer (got 0)',
    ],
    ['OBO resolver timeoutMs: 0', () => createOboTokenResolver({ issuer: 'https://idp.test', clientId: 'c', clientSecret: 's', timeoutMs: 0 }), 'createOboTokenResolver: timeoutMs must be a number of milliseconds > 0 (got 0)'],
    ['OBO resolver maxEntries: 2.5', () => createOboTokenResolver({ issuer: 'https://idp.test', clientId: 'c', clientSecret: 's', maxEntries: 2.5 }), 'createOboTokenResolver: maxEntries must be a positive integer (got 2.5)'],
    ['OBO resolver grant', () => createOboTokenResolver({ issuer: 'https://idp.test', clientId: 'c', clientSecret: 's', grant: 'password' as never }), "createOboTokenResolver: grant must be one of 'jwt-bearer', 'token-exchange', 'cross-app-access' (got a string of 8 characters)"],
    ['upstream skewMs: -1', () => createUpstreamTokenProvider({ issuer: 'https://idp.test', clientId: 'c', skewMs: -1 }), 'createUpstreamTokenProvider: skewMs must be a number of milliseconds >= 0 (got -1)'],
    ['upstream clientId', () => createUpstreamTokenProvider({ issuer: 'https://idp.test', clientId: '' }), 'createUpstreamTokenProvider: clientId must be a non-empty string (got an empty string)'],
    [
      'bearer verifier jwksCacheMaxAgeMs: -1 (through the JWKS cache)',
      () => createBearerVerifier({ issuer: 'https://idp.test', audience: 'api', jwksUri: 'https://idp.test/keys', jwksCacheMaxAgeMs: -1 }),
      'createBearerVerifier: jwksCacheMaxAgeMs must be a number of milliseconds >= 0 (got -1)',
    ],
    [
      'ConnectionPool maxTotal: 0',
      () => new ConnectionPool({ connect: async () => ({}) as never, idleTimeoutMs: 1000, maxTotal: 0 }),
      'ConnectionPool: maxTotal must be a positive integer (got 0)',
    ],
  ])('%s', (_name, make, message) => {
    const err = thrown(make);
    expect(err).toBeInstanceOf(TypeError);
    expect(err.message).toBe(message);
  });

  it('the helpers return the value, or the fallback for undefined, and never echo a string option', () => {
    expect(positiveInt(undefined, 'n', 7)).toBe(7);
    expect(positiveInt(3, 'n')).toBe(3);
    expect(nonNegativeMs(0, 'ms')).toBe(0);
    expect(positiveMs(undefined, 'ms', undefined)).toBeUndefined();
    expect(positiveMsOrInfinity(Infinity, 'idle')).toBe(Infinity);
    expect(() => positiveMs(Infinity, 'ms')).toThrow(TypeError);
    expect(oneOf(undefined, ['a', 'b'] as const, 'x', 'a')).toBe('a');
    expect(() => positiveInt('s3cr3t-value', 'n')).toThrow('n must be a positive integer (got a string of 12 characters)');
  });
});

describe('config messages say what was expected', () => {
  it('a missing obo.scopes', () => {
    const issues = issuesOf(() => parseServersConfig({ graph: { url: 'https://x/mcp', obo: {} } }));
    expect(issues).toEqual([{ path: 'graph.obo.scopes', message: expect.stringMatching(/^is required: scopes as a space-separated string or an array of strings/) }]);
  });

  it.each([
    [{ url: 'https://x/mcp', obo: { scopes: 5 } }, 'obo.scopes', /^must be scopes as a space-separated string or an array/],
    [{ url: 'https://x/mcp', obo: 'x' }, 'obo', /^must be an object \{ scopes, audience\?, grant\?, clientId\?, clientSecret\? \}/],
    [{ command: 'x', stderr: 'loud' }, 'stderr', /^must be one of "inherit", "ignore", "pipe" \(got "loud"\)$/],
    [{ command: 'x', source: 'admin' }, 'source', /^must be one of "config", "user"/],
    [{ type: 'sse' }, 'url', /^is required: a URL string \(http or https\)$/],
    [{ url: 'not a url' }, 'url', /^must be an absolute URL \(http or https\), e\.g\. https:\/\/mcp\.example\.com\/mcp$/],
    [{ command: 5 }, 'command', /^must be the command to run, a non-empty string \(got a number\)$/],
    [{ command: 'x', updatedAt: true }, 'updatedAt', /^must be epoch milliseconds, an ISO date string or a Date \(got a boolean\)$/],
    [{ url: 'https://x/mcp', headers: 'x' }, 'headers', /^must be an object of header name → value/],
    [{ command: 'x', customUserVars: { A: 'x' } }, 'customUserVars.A', /^must be an object \{ title\?, description\? \}/],
  ])('%j', (config, path, message) => {
    const issues = issuesOf(() => parseServersConfig({ s: config }));
    expect(issues).toContainEqual({ path: `s.${path}`, message: expect.stringMatching(message) });
    for (const issue of issues) expect(issue.message).not.toMatch(/^Invalid (input|option|URL)/);
  });
});

describe('config validation runs in one pass', () => {
  it('reports an undeclared {{var.X}} together with the other errors of the same server', () => {
    const issues = issuesOf(() =>
      parseServersConfig({
        http: { url: 'https://x/{{var.ORG}}/mcp', timeoutMs: -1 },
        stdio: { command: 'x', args: ['--org', '{{var.ORG}}'], stderr: 'loud' },
        typeless: { headers: { A: '{{var.TEAM}}' } },
        proxied: { url: 'https://x/mcp', proxy: 'http://{{var.PROXY}}:3128' },
      }),
    );
    expect(issues.map((i) => i.path)).toEqual(
      expect.arrayContaining(['http.timeoutMs', 'http.url', 'stdio.stderr', 'stdio.args.1', 'typeless', 'typeless.headers.A', 'proxied.proxy']),
    );
    expect(issues.find((i) => i.path === 'http.url')?.message).toBe('placeholder {{var.ORG}} is not declared in customUserVars');
  });
});

describe('MCPManager reports every config problem at once', () => {
  it('a missing oboTokenResolver is listed together with the schema errors', async () => {
    const { MCPManager } = await import('../../src/MCPManager.js');
    const { ConfigError } = await import('../../src/errors.js');
    let err: unknown;
    try {
      new MCPManager({ servers: { graph: { url: 'https://g.example.com/mcp', obo: {} }, local: { command: 'x', timeoutMs: 0 } } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as InstanceType<typeof ConfigError>).issues.map((i) => i.path).sort()).toEqual(['graph.obo', 'graph.obo.scopes', 'local.timeoutMs']);
  });
});

describe('unknown options are refused, not ignored', () => {
  it('MCPManager names a connection setting passed to it and says where it goes', () => {
    expect(() => new MCPManager({ servers: {}, reconnect: { maxAttempts: 1 } } as never)).toThrow(
      'MCPManager: unknown option "reconnect"; connection settings go to the factory: connectionFactory: new MCPConnectionFactory({ reconnect })',
    );
    expect(() => new MCPManager({ servers: {}, limits: { maxResultBytes: 1 } } as never)).toThrow(/connectionFactory: new MCPConnectionFactory\(\{ limits \}\)/);
  });

  it('a misspelt option gets the closest known name', () => {
    expect(() => new MCPManager({ servers: {}, idleTimeoutMS: 1_000 } as never)).toThrow('MCPManager: unknown option "idleTimeoutMS"; did you mean "idleTimeoutMs"?');
    expect(() => new MCPConnectionFactory({ standbyStreams: false } as never)).toThrow('MCPConnectionFactory: unknown option "standbyStreams"; did you mean "standbyStream"?');
    expect(() => new MCPConnectionFactory({ reconnect: { maxAtempts: 1 } } as never)).toThrow('reconnect: unknown option "maxAtempts"; did you mean "maxAttempts"?');
    expect(() => new MCPConnectionFactory({ bogus: 1 } as never)).toThrow('MCPConnectionFactory: unknown option "bogus"');
  });

  it('undefined values count as absent (spreading optional settings stays easy)', () => {
    expect(() => new MCPConnectionFactory({ reconnect: undefined, bogus: undefined } as never).close()).not.toThrow();
  });
});
