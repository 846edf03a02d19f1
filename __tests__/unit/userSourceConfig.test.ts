/**
 * A config written by an end user (`source: 'user'`, as every per-call `serverConfig` is) may neither read the
 * host's environment through `${NAME}` placeholders nor start a local process (stdio). Operator configs are
 * unchanged.
 */
import { ConfigError } from '../../src/errors.js';
import { parseServerConfig, parseServersConfig, resolveConfigPlaceholders } from '../../src/config/index.js';
import { ConnectionShapes } from '../../src/config/connectionShape.js';
import { resolvePlaceholders } from '../../src/config/placeholders.js';
import type { ServerConfig } from '../../src/config/schema.js';
import type { ConfigIssue } from '../../src/errors.js';
import { issuesOf } from '../support/errors.js';

const ENV_MESSAGE = "environment placeholders (${…}) are not allowed in a user config (source: 'user')";
const STDIO_MESSAGE = 'a user config cannot start a local process (stdio)';
const env = { DB_PASSWORD: 'hunter2', MCP_URL: 'https://internal.example.com', CORP_PROXY: 'http://proxy.internal:3128' };
const user = { id: 'u1', email: 'ada@example.com', vars: { KEY: 'user-key' } };

describe("parsing a source: 'user' config", () => {
  it('refuses ${ENV} in a header, naming the exact field and the placeholder', () => {
    const issues = issuesOf(() => parseServerConfig('svc', { url: 'https://mcp.example.com/mcp', headers: { 'X-Key': '${DB_PASSWORD}' }, source: 'user' }));
    expect(issues).toEqual([{ path: 'svc.headers.X-Key', message: `${ENV_MESSAGE}: \${DB_PASSWORD}` }]);
  });

  it('refuses ${ENV} in the url, the proxy and a websocket url', () => {
    const issues = issuesOf(() =>
      parseServersConfig({
        a: { url: 'https://mcp.example.com/mcp?k=${DB_PASSWORD}', source: 'user' },
        b: { url: '${MCP_URL}/mcp', source: 'user' },
        c: { type: 'sse', url: 'https://mcp.example.com/sse', proxy: '${CORP_PROXY}', source: 'user' },
        d: { url: 'wss://mcp.example.com/ws/${DB_PASSWORD}', source: 'user' },
        e: { url: 'https://mcp.example.com/mcp', headers: { A: 'x ${DB_PASSWORD} ${MCP_URL}' }, source: 'user' },
      }),
    );
    expect(issues).toEqual([
      { path: 'a.url', message: `${ENV_MESSAGE}: \${DB_PASSWORD}` },
      { path: 'b.url', message: `${ENV_MESSAGE}: \${MCP_URL}` },
      { path: 'c.proxy', message: `${ENV_MESSAGE}: \${CORP_PROXY}` },
      { path: 'd.url', message: `${ENV_MESSAGE}: \${DB_PASSWORD}` },
      { path: 'e.headers.A', message: `${ENV_MESSAGE}: \${DB_PASSWORD}, \${MCP_URL}` },
    ]);
  });

  it('refuses stdio at <name>.command, and ${ENV} in its args and env too', () => {
    const issues = issuesOf(() => parseServerConfig('svc', { command: 'sh', args: ['-c', 'echo ${DB_PASSWORD}'], env: { P: '${DB_PASSWORD}' }, source: 'user' }));
    expect(issues).toEqual([
      { path: 'svc.command', message: expect.stringContaining(STDIO_MESSAGE) },
      { path: 'svc.args.1', message: `${ENV_MESSAGE}: \${DB_PASSWORD}` },
      { path: 'svc.env.P', message: `${ENV_MESSAGE}: \${DB_PASSWORD}` },
    ]);
    expect(issuesOf(() => parseServerConfig('svc', { type: 'stdio', command: 'node', source: 'user' }))).toEqual([
      { path: 'svc.command', message: expect.stringContaining(STDIO_MESSAGE) },
    ]);
  });

  it('reports these rules alongside other problems of the same config, in one pass', () => {
    const issues = issuesOf(() => parseServerConfig('svc', { url: 'https://mcp.example.com/mcp', headers: { A: '${DB_PASSWORD}' }, timeoutMs: -1, source: 'user' }));
    expect(issues.map((i) => i.path).sort()).toEqual(['svc.headers.A', 'svc.timeoutMs']);
    expect(issuesOf(() => parseServerConfig('svc', { command: 'node', cwd: 5, source: 'user' })).map((i) => i.path).sort()).toEqual(['svc.command', 'svc.cwd']);
  });

  it('still allows {{user.*}} and {{var.*}} placeholders', () => {
    const config = parseServerConfig('svc', {
      url: 'https://mcp.example.com/{{user.id}}/mcp',
      headers: { 'X-Key': 'Bearer {{var.KEY}}', 'X-Mail': '{{user.email}}' },
      customUserVars: { KEY: { title: 'Key' } },
      source: 'user',
    });
    const resolved = resolveConfigPlaceholders('svc', config, { user, env });
    expect(resolved.type === 'streamable-http' && [resolved.url, resolved.headers]).toEqual([
      'https://mcp.example.com/u1/mcp',
      { 'X-Key': 'Bearer user-key', 'X-Mail': 'ada@example.com' },
    ]);
  });

  it('is the ConfigError a host catches', () => {
    expect(() => parseServerConfig('svc', { url: '${MCP_URL}', source: 'user' })).toThrow(ConfigError);
    expect(() => parseServerConfig('svc', { command: 'node', source: 'user' })).toThrow(/svc\.command: a user config cannot start a local process \(stdio\)/);
  });
});

describe('operator configs are unchanged', () => {
  it.each([undefined, 'config'] as const)('source %s: ${ENV} placeholders and stdio are fine', (source) => {
    const extra = source ? { source } : {};
    const servers = parseServersConfig({
      http: { url: '${MCP_URL}/mcp', headers: { 'X-Key': '${DB_PASSWORD}' }, proxy: '${CORP_PROXY}', ...extra },
      local: { command: 'node', args: ['${MCP_URL}'], env: { P: '${DB_PASSWORD}' }, ...extra },
    });
    const http = resolveConfigPlaceholders('http', servers.http!, { env });
    expect(http.type === 'streamable-http' && [http.url, http.headers, http.proxy]).toEqual([
      'https://internal.example.com/mcp',
      { 'X-Key': 'hunter2' },
      'http://proxy.internal:3128',
    ]);
    const local = resolveConfigPlaceholders('local', servers.local!, { env });
    expect(local.type === 'stdio' && [local.command, local.args, local.env]).toEqual(['node', ['https://internal.example.com'], { P: 'hunter2' }]);
  });
});

describe('resolving never reads env for a user config (defence in depth)', () => {
  // Built by hand, as a host or subclass might, without parseServerConfig.
  const handMade = { type: 'streamable-http', url: 'https://mcp.example.com/mcp', headers: { 'X-Key': '${DB_PASSWORD}' }, source: 'user' } as ServerConfig;

  it('resolveConfigPlaceholders refuses ${ENV} and never substitutes the value', () => {
    const err = (() => {
      try {
        resolveConfigPlaceholders('svc', handMade, { user, env });
      } catch (e) {
        return e;
      }
      throw new Error('resolved');
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).issues).toEqual([{ path: 'svc.headers.X-Key', message: `${ENV_MESSAGE}: \${DB_PASSWORD}` }]);
    expect(JSON.stringify(err)).not.toContain('hunter2');
  });

  it('resolveConfigPlaceholders refuses a hand-made user stdio config', () => {
    const stdio = { type: 'stdio', command: 'node', source: 'user' } as ServerConfig;
    expect(issuesOf(() => resolveConfigPlaceholders('svc', stdio, { user, env }))).toEqual([{ path: 'svc.command', message: expect.stringContaining(STDIO_MESSAGE) }]);
  });

  it("resolvePlaceholders with source: 'user' does not read env; without it, it does", () => {
    const issues: ConfigIssue[] = [];
    const reads: string[] = [];
    const spy = new Proxy(env, { get: (t, k) => (reads.push(String(k)), t[k as keyof typeof env]) });
    expect(resolvePlaceholders('${DB_PASSWORD}', { env: spy, source: 'user' }, 'header', 'svc.headers.A', issues)).toBe('');
    expect(reads).toEqual([]);
    expect(issues).toEqual([{ path: 'svc.headers.A', message: `${ENV_MESSAGE}: \${DB_PASSWORD}` }]);
    expect(resolvePlaceholders('${DB_PASSWORD}', { env, source: 'config' }, 'header', 'svc.headers.A', [])).toBe('hunter2');
  });

  it('connection shapes of a user config refuse ${ENV} mixed with user placeholders', () => {
    const mixed = { type: 'streamable-http', url: 'https://mcp.example.com/{{user.id}}/${DB_PASSWORD}', source: 'user' } as ServerConfig;
    expect(issuesOf(() => new ConnectionShapes().of('svc', mixed, user, env))).toEqual([{ path: 'svc.url', message: `${ENV_MESSAGE}: \${DB_PASSWORD}` }]);
  });
});
