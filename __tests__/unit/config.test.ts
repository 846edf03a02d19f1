import { parseServersConfig, parseServerConfig, requiresUserScopedConnection, resolveConfigPlaceholders } from '../../src/config/index.js';
import { issuesOf } from '../support/errors.js';

describe('parseServersConfig', () => {
  it('infers the transport and normalises http and obo scopes', () => {
    const cfg = parseServersConfig({
      a: { command: 'node', args: ['x.js'] },
      b: { url: 'https://mcp.example.com/mcp', obo: { scopes: 'api://x/.default  offline_access' } },
      c: { type: 'http', url: 'http://127.0.0.1:1/mcp' },
      d: { url: 'wss://mcp.example.com/ws' },
      e: { type: 'sse', url: 'https://mcp.example.com/sse', headers: { 'X-Org': '{{var.ORG}}' }, customUserVars: { ORG: { title: 'Org' } } },
    });
    expect(cfg.a.type).toBe('stdio');
    expect(cfg.b.type).toBe('streamable-http');
    expect(cfg.b.type === 'streamable-http' && cfg.b.obo?.scopes).toEqual(['api://x/.default', 'offline_access']);
    expect(cfg.c.type).toBe('streamable-http');
    expect(cfg.d.type).toBe('websocket');
    expect(cfg.e.type).toBe('sse');
  });

  it('reports every problem with its path and applies nothing', () => {
    const issues = issuesOf(() =>
      parseServersConfig({
        github: { url: 'not a url' },
        files: { command: 'node', obo: { scopes: 'x' } },
        ws: { url: 'wss://x/ws', obo: { scopes: 'x' } },
        typo: { url: 'https://x/mcp', header: { A: 'b' } },
        neg: { url: 'https://x/mcp', timeoutMs: -1 },
        kind: { type: 'carrier-pigeon', url: 'https://x' },
        empty: {},
        badvar: { url: 'https://x/{{var.NOPE}}' },
        badph: { url: 'https://x/mcp', headers: { A: '{{user.password}}' } },
        crlf: { url: 'https://x/mcp', headers: { A: 'b\r\nX-Evil: 1' } },
      }),
    );
    const paths = issues.map((i) => i.path);
    expect(paths).toEqual(
      expect.arrayContaining(['github.url', 'files.obo', 'ws.obo', 'typo.header', 'neg.timeoutMs', 'kind.type', 'empty', 'badvar.url', 'badph.headers.A', 'crlf.headers.A']),
    );
    expect(issues.find((i) => i.path === 'github.url')?.message).toBe('must be an absolute URL (http or https), e.g. https://mcp.example.com/mcp');
    expect(issues.find((i) => i.path === 'files.obo')?.message).toMatch(/header-capable transport/);
    expect(issues.find((i) => i.path === 'typo.header')?.message).toBe('unknown field');
  });

  it('rejects wrong protocols and credentials in URLs', () => {
    const issues = issuesOf(() => parseServersConfig({ a: { type: 'sse', url: 'ftp://x/sse' }, b: { url: 'https://u:p@x/mcp' }, c: { type: 'websocket', url: 'https://x' } }));
    expect(issues.map((i) => i.path).sort()).toEqual(['a.url', 'b.url', 'c.url']);
  });

  it('rejects non-object input', () => {
    expect(issuesOf(() => parseServersConfig(null))[0]!.path).toBe('(root)');
    expect(issuesOf(() => parseServersConfig({ a: 'x' }))[0]!.path).toBe('a');
  });
});

describe('requiresUserScopedConnection', () => {
  it.each([
    [{ url: 'https://x/mcp', obo: { scopes: 's' } }, true],
    [{ url: 'https://x/mcp', oauth: {} }, true],
    [{ url: 'https://x/mcp', source: 'user' }, true],
    [{ url: 'https://x/{{user.id}}' }, true],
    [{ command: 'x', env: { T: '{{var.T}}' }, customUserVars: { T: {} } }, true],
    [{ url: 'https://x/mcp', headers: { A: '${TOKEN}' } }, false],
    [{ command: 'x' }, false],
  ])('%j → %s', (input, expected) => {
    expect(requiresUserScopedConnection(parseServerConfig('s', input))).toBe(expected);
  });
});

describe('resolveConfigPlaceholders', () => {
  const user = { id: 'a/b c', email: 'a@example.com', tenantId: 't1', vars: { ORG: 'x\r\nEvil: 1' } };

  it('percent-encodes user values in URLs and resolves env at call time', () => {
    const cfg = parseServerConfig('s', { url: 'https://x/{{user.tenantId}}/{{user.id}}', headers: { 'X-Key': '${KEY}', 'X-Mail': '{{user.email}}' } });
    const out = resolveConfigPlaceholders('s', cfg, { user, env: { KEY: 'k1' } });
    expect(out.type === 'streamable-http' && out.url).toBe('https://x/t1/a%2Fb%20c');
    expect(out.type === 'streamable-http' && out.headers).toEqual({ 'X-Key': 'k1', 'X-Mail': 'a@example.com' });
  });

  it('resolves ${ENV} in a proxy URL, and names it when unset', () => {
    const cfg = parseServerConfig('s', { url: 'https://x/mcp', proxy: '${CORP_PROXY}' });
    const out = resolveConfigPlaceholders('s', cfg, { env: { CORP_PROXY: 'http://proxy.corp:3128' } });
    expect(out.type === 'streamable-http' && out.proxy).toBe('http://proxy.corp:3128');
    expect(issuesOf(() => resolveConfigPlaceholders('s', cfg, { env: {} }))).toEqual([{ path: 's.proxy', message: 'environment variable ${CORP_PROXY} is not set' }]);
    expect(issuesOf(() => resolveConfigPlaceholders('s', cfg, { env: { CORP_PROXY: 'ftp://x' } }))[0]).toMatchObject({ path: 's.proxy' });
  });

  it('names every unresolvable placeholder and rejects CR/LF in headers', () => {
    const cfg = parseServerConfig('s', {
      url: 'https://x/mcp',
      headers: { A: '${MISSING}', B: '{{var.ORG}}' },
      customUserVars: { ORG: {}, OTHER: {} },
    });
    const issues = issuesOf(() => resolveConfigPlaceholders('s', cfg, { user, env: {} }));
    expect(issues).toEqual([
      { path: 's.headers.A', message: 'environment variable ${MISSING} is not set' },
      { path: 's.headers.B', message: 'header value contains CR, LF or NUL after placeholder resolution' },
    ]);
    const noUser = issuesOf(() => resolveConfigPlaceholders('s', parseServerConfig('s', { command: 'x', args: ['{{user.id}}'] }), { env: {} }));
    expect(noUser[0]).toEqual({ path: 's.args.0', message: 'placeholder {{user.id}} needs a user, and none was given' });
    const noEmail = issuesOf(() => resolveConfigPlaceholders('s', parseServerConfig('s', { command: 'x', args: ['{{user.email}}'] }), { user: { id: 'u' }, env: {} }));
    expect(noEmail[0]!.message).toMatch(/no email/);
  });
});
