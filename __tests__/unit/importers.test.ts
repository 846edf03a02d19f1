import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requiresUserScopedConnection } from '../../src/config/parse.js';
import { loadConfigFile, parseConfigText } from '../../src/config/loadConfigFile.js';
import { detectConfigFormat, importClaudeDesktop, importLibreChat, importVsCode } from '../../src/config/importers/index.js';
import { ConfigError } from '../../src/errors.js';
import { issuesOf } from '../support/errors.js';

const FIXTURES = join(process.cwd(), '__tests__/fixtures/configs');

async function asyncIssuesOf(p: Promise<unknown>): Promise<{ path: string; message: string }[]> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConfigError);
  return (err as ConfigError).issues;
}

function warningAt(warnings: { path: string; message: string }[], path: string): string | undefined {
  return warnings.find((w) => w.path === path)?.message;
}

describe('LibreChat importer', () => {
  it('imports a realistic librechat.yaml: transports, placeholders, OBO, headers, customUserVars, OAuth', async () => {
    const { servers, format, warnings } = await loadConfigFile(join(FIXTURES, 'librechat.yaml'));
    expect(format).toBe('librechat');
    expect(Object.keys(servers).sort()).toEqual(['calendar', 'filesystem', 'graph', 'notes', 'realtime', 'search', 'tickets']);

    const fs = servers.filesystem!;
    expect(fs.type === 'stdio' && fs.args?.[2]).toBe('/srv/librechat/users/{{user.id}}');
    expect(fs.type === 'stdio' && fs.env).toEqual({ NODE_ENV: 'production', OWNER_EMAIL: '{{user.email}}' });
    expect(fs.type === 'stdio' && fs.stderr).toBe('ignore');
    expect(requiresUserScopedConnection(fs)).toBe(true);

    // type omitted with an http URL: LibreChat means SSE; the YAML merge key supplied the timeouts
    const search = servers.search!;
    expect(search.type).toBe('sse');
    expect(search.type === 'sse' && search.headers).toEqual({ 'X-User-ID': '{{user.id}}', 'X-Api-Key': '${SEARCH_API_KEY}' });
    expect(search.timeoutMs).toBe(45000);
    expect(search.initTimeoutMs).toBe(15000);

    const graph = servers.graph!;
    expect(graph.type).toBe('streamable-http');
    expect(graph.type === 'streamable-http' && graph.obo?.scopes).toEqual(['api://graph-mcp/.default', 'offline_access']);
    expect(graph.title).toBe('Microsoft Graph');
    expect(graph.type === 'streamable-http' && graph.headers).toEqual({ 'X-User-Email': '{{user.email}}', 'X-User-Role': '{{var.LIBRECHAT_USER_ROLE}}' });
    expect(Object.keys(graph.customUserVars ?? {})).toEqual(['LIBRECHAT_USER_ROLE']);
    expect(warningAt(warnings, 'mcpServers.graph.headers.X-User-Role')).toMatch(/no built-in equivalent.*UserContext\.vars/);

    const tickets = servers.tickets!;
    expect(tickets.type === 'streamable-http' && tickets.url).toBe('https://tickets.example.com/mcp/{{var.TICKETS_WORKSPACE}}');
    expect(tickets.type === 'streamable-http' && tickets.headers).toEqual({ Authorization: 'Bearer {{var.TICKETS_API_KEY}}' });
    expect(tickets.customUserVars).toEqual({
      TICKETS_API_KEY: { title: 'Tickets API key', description: 'Create one under <a href="https://tickets.example.com/settings">Settings</a>.' },
      TICKETS_WORKSPACE: { title: 'Workspace' },
    });
    expect(tickets.timeoutMs).toBe(30000);
    expect(warningAt(warnings, 'mcpServers.tickets.headers.X-Conversation')).toMatch(/not imported: \{\{LIBRECHAT_BODY_CONVERSATIONID\}\} has no equivalent/);
    expect(warningAt(warnings, 'mcpServers.tickets.customUserVars.TICKETS_API_KEY.sensitive')).toMatch(/UI hint/);

    const calendar = servers.calendar!;
    expect(calendar.type === 'streamable-http' && calendar.oauth).toEqual({ scopes: ['calendar.read', 'calendar.write'], clientId: 'librechat-prod' });
    for (const f of ['authorization_url', 'token_url', 'client_secret', 'redirect_uri']) {
      expect(warningAt(warnings, `mcpServers.calendar.oauth.${f}`)).toMatch(/^not imported/);
    }
    expect(JSON.stringify({ servers, warnings })).not.toContain('do-not-copy-me');

    expect(servers.notes!.type === 'sse' && servers.notes!.oauth).toEqual({});
    expect(servers.realtime!.type).toBe('websocket');

    expect(warningAt(warnings, 'mcpSettings')).toMatch(/SSRF/);
    expect(warningAt(warnings, 'mcpServers.filesystem.iconPath')).toMatch(/UI/);
    expect(warningAt(warnings, 'mcpServers.filesystem.chatMenu')).toMatch(/not imported/);
    expect(warningAt(warnings, 'mcpServers.search.serverInstructions')).toMatch(/not imported/);
    // startup: false matches connecting on first use, so it is not a warning
    expect(warningAt(warnings, 'mcpServers.graph.startup')).toBeUndefined();
  });

  it('imports an oauth block the package can run: an ${ENV} client secret is carried over, endpoints are discovered instead', () => {
    const { servers, warnings } = importLibreChat({
      mcpServers: {
        linear: { type: 'streamable-http', url: 'https://mcp.linear.app/mcp', requiresOAuth: true },
        notes: {
          type: 'streamable-http',
          url: 'https://notes.example.com/mcp',
          oauth: { client_id: 'chat', client_secret: '${NOTES_SECRET}', scope: 'notes:read', token_url: 'https://auth.example.com/token', redirect_uri: 'https://chat.example.com/cb' },
        },
      },
    });
    expect(servers.linear).toEqual({ type: 'streamable-http', url: 'https://mcp.linear.app/mcp', oauth: {} });
    expect((servers.notes as { oauth?: unknown }).oauth).toEqual({ clientId: 'chat', clientSecret: '${NOTES_SECRET}', scopes: 'notes:read' });
    expect(warningAt(warnings, 'mcpServers.notes.oauth.token_url')).toMatch(/discovered/);
    expect(warningAt(warnings, 'mcpServers.notes.oauth.redirect_uri')).toMatch(/oauth\.redirectUri/);
  });

  it('maps the type like LibreChat does and keeps explicit types', () => {
    const { servers } = importLibreChat({
      mcpServers: {
        a: { url: 'https://x.example.com/sse' },
        b: { url: 'ws://127.0.0.1:9/ws' },
        c: { command: 'node' },
        d: { type: 'http', url: 'https://x.example.com/mcp' },
        e: { type: 'streamable-http', url: '${MCP_URL}/mcp' },
      },
    });
    expect(servers).toEqual({
      a: { url: 'https://x.example.com/sse', type: 'sse' },
      b: { url: 'ws://127.0.0.1:9/ws', type: 'websocket' },
      c: { command: 'node' },
      d: { type: 'streamable-http', url: 'https://x.example.com/mcp' },
      e: { type: 'streamable-http', url: '${MCP_URL}/mcp' },
    });
  });

  it('reports token placeholders: dropped from headers with an OBO hint, kept (and invalid) elsewhere', () => {
    const { servers, warnings } = importLibreChat({
      mcpServers: {
        g: { type: 'streamable-http', url: 'https://g.example.com/mcp', headers: { Authorization: 'Bearer {{LIBRECHAT_OPENID_ACCESS_TOKEN}}', 'X-Trace': 'on' } },
      },
    });
    expect(servers.g).toEqual({ type: 'streamable-http', url: 'https://g.example.com/mcp', headers: { 'X-Trace': 'on' } });
    expect(warningAt(warnings, 'mcpServers.g.headers.Authorization')).toMatch(/not imported: \{\{LIBRECHAT_OPENID_ACCESS_TOKEN\}\} has no equivalent.*obo\.scopes/);

    const issues = issuesOf(() => parseConfigText('mcpServers:\n  g:\n    url: https://g.example.com/{{LIBRECHAT_GRAPH_ACCESS_TOKEN}}\n', { fileName: 'librechat.yaml' }));
    expect(issues).toEqual([{ path: 'mcpServers.g.url', message: expect.stringMatching(/unknown placeholder \{\{LIBRECHAT_GRAPH_ACCESS_TOKEN\}\}/) }]);
  });

  it('reports validation problems at the LibreChat field the operator wrote', () => {
    const yaml = [
      'mcpServers:',
      '  tickets.v2:',
      '    type: streamable-http',
      '    url: https://t.example.com/mcp',
      '    timeout: -1',
      '    initTimeout: 1.5',
      '    oauth:',
      '      client_id: 7',
      '  files:',
      '    command: node',
      '    obo: { scopes: api://x/.default }',
      '  keyed:',
      '    type: sse',
      '    url: https://k.example.com/sse',
      '    headers:',
      "      X-Key: '{{UNDECLARED_KEY}}'",
    ].join('\n');
    const issues = issuesOf(() => parseConfigText(yaml, { fileName: 'librechat.yml' }));
    expect(issues.map((i) => i.path).sort()).toEqual([
      'mcpServers.files.obo',
      'mcpServers.keyed.headers.X-Key',
      'mcpServers.tickets.v2.initTimeout',
      'mcpServers.tickets.v2.oauth.client_id',
      'mcpServers.tickets.v2.timeout',
    ]);
    expect(issues.find((i) => i.path.endsWith('X-Key'))?.message).toMatch(/\{\{var\.UNDECLARED_KEY\}\} is not declared in customUserVars/);
  });

  it('warns about startup, LibreChat fields not imported and odd stderr', () => {
    const { servers, warnings } = importLibreChat({
      mcpServers: {
        s: { command: 'node', startup: true, stderr: 2, apiKey: { source: 'user' } },
        o: { url: 'https://o.example.com/mcp', type: 'sse', obo: { scopes: 's' }, requiresOAuth: 'yes' },
      },
    });
    expect(servers.s).toEqual({ command: 'node' });
    expect(warningAt(warnings, 'mcpServers.s.startup')).toMatch(/first use/);
    expect(warningAt(warnings, 'mcpServers.s.stderr')).toMatch(/inherit/);
    expect(warningAt(warnings, 'mcpServers.s.apiKey')).toBeDefined();
    expect(warningAt(warnings, 'mcpServers.o.requiresOAuth')).toMatch(/true or false/);
    expect((servers.o as { obo: unknown }).obo).toEqual({ scopes: 's' });
  });

  it('refuses unknown fields inside a block it maps (a typo is an error, not a warning), naming each', () => {
    const issues = issuesOf(() =>
      importLibreChat({ mcpServers: { o: { url: 'https://o.example.com/mcp', obo: { scopes: 's', audiance: 'r' }, timout: 5 } } }),
    );
    expect(issues.map((i) => i.path).sort()).toEqual(['mcpServers.o.obo.audiance', 'mcpServers.o.timout']);
    expect(issues.find((i) => i.path === 'mcpServers.o.timout')!.message).toMatch(/timeout/);
  });

  it('keeps placeholders already written in this package\'s syntax (no {{var.var.X}})', () => {
    const { servers } = importLibreChat({ mcpServers: { g: { url: 'https://g.example.com/mcp', headers: { 'X-Org': '{{var.ORG}}', 'X-User': '{{user.id}}', 'X-Team': '{{TEAM}}' } } } });
    expect((servers.g as { headers: Record<string, string> }).headers).toEqual({ 'X-Org': '{{var.ORG}}', 'X-User': '{{user.id}}', 'X-Team': '{{var.TEAM}}' });
  });

  it('needs an mcpServers mapping', () => {
    expect(issuesOf(() => importLibreChat({ version: '1.2.8' }))).toEqual([{ path: 'mcpServers', message: 'is missing' }]);
    expect(issuesOf(() => importLibreChat({ mcpServers: [] }))[0]!.path).toBe('mcpServers');
    expect(issuesOf(() => importLibreChat('x'))[0]!.path).toBe('(root)');
  });
});

describe('Claude Desktop importer', () => {
  it('imports claude_desktop_config.json with env, skipping disabled servers and reporting the rest', async () => {
    const { servers, format, warnings } = await loadConfigFile(join(FIXTURES, 'claude_desktop_config.json'));
    expect(format).toBe('claude-desktop');
    expect(Object.keys(servers).sort()).toEqual(['filesystem', 'github', 'postgres']);
    const gh = servers.github!;
    expect(gh.type === 'stdio' && gh.env).toEqual({ GITHUB_PERSONAL_ACCESS_TOKEN: 'ghp_exampleexampleexample' });
    expect(gh.type === 'stdio' && gh.args?.at(-1)).toBe('ghcr.io/github/github-mcp-server');
    expect(requiresUserScopedConnection(gh)).toBe(false);
    expect(warnings).toEqual([
      { path: 'mcpServers.postgres.env.PGPASSWORD', message: expect.stringMatching(/literally/) },
      { path: 'mcpServers.postgres.autoApprove', message: 'not imported: no equivalent field' },
      { path: 'mcpServers.old-weather.disabled', message: 'server is disabled: not imported' },
    ]);
    // warnings name the field, never its value
    expect(JSON.stringify(warnings)).not.toContain('ghp_');
  });

  it('maps remote entries of the shared mcpServers JSON shape', () => {
    const { servers, warnings } = importClaudeDesktop({
      mcpServers: { remote: { url: 'https://r.example.com/mcp', headers: { 'X-Org': 'acme' } }, legacy: { type: 'sse', url: 'https://r.example.com/sse' } },
    });
    expect(servers).toEqual({ remote: { url: 'https://r.example.com/mcp', headers: { 'X-Org': 'acme' } }, legacy: { type: 'sse', url: 'https://r.example.com/sse' } });
    expect(warnings).toEqual([]);
  });

  it('reports invalid servers at their path in the file', () => {
    const issues = issuesOf(() => parseConfigText('{"mcpServers": {"x": {"command": ""}, "y": 3}}', { fileName: 'claude_desktop_config.json' }));
    expect(issues.map((i) => i.path).sort()).toEqual(['mcpServers.x.command', 'mcpServers.y']);
    expect(issuesOf(() => importClaudeDesktop({ preferences: {} }))).toEqual([{ path: 'mcpServers', message: 'is missing' }]);
  });
});

describe('VS Code importer', () => {
  it('imports .vscode/mcp.json (JSONC): inputs become customUserVars, ${env:X} becomes ${X}', async () => {
    const { servers, format, warnings } = await loadConfigFile(join(FIXTURES, 'mcp.json'));
    expect(format).toBe('vscode');
    const gh = servers.github!;
    expect(gh.type).toBe('streamable-http');
    expect(gh.type === 'streamable-http' && gh.headers).toEqual({ Authorization: 'Bearer {{var.github-pat}}' });
    expect(gh.customUserVars).toEqual({ 'github-pat': { title: 'GitHub personal access token' } });
    expect(requiresUserScopedConnection(gh)).toBe(true);

    const jira = servers.jira!;
    expect(jira.type === 'sse' && jira.url).toBe('https://{{var.jira_site}}.atlassian.example.com/mcp/sse');
    expect(jira.customUserVars).toEqual({ jira_site: { title: 'Jira site name' } });

    const pw = servers.playwright!;
    expect(pw.type === 'stdio' && pw.env).toEqual({ DEBUG: '${PW_DEBUG}' });
    expect(pw.customUserVars).toBeUndefined();

    expect(warnings.map((w) => w.path)).toEqual([
      'inputs.0.password',
      'inputs.2.type',
      'servers.playwright.args.3',
      'servers.playwright.envFile',
      'servers.playwright.sandboxEnabled',
    ]);
    expect(warningAt(warnings, 'servers.playwright.args.3')).toMatch(/\$\{workspaceFolder\} has no equivalent/);
    expect(warningAt(warnings, 'servers.playwright.sandboxEnabled')).toMatch(/NOT sandboxed/);
  });

  it('declares only the inputs a server uses, and reports inputs that cannot be mapped', () => {
    const { servers, warnings } = importVsCode({
      $schema: 'https://example.com/schema.json',
      inputs: [
        { type: 'pickString', id: 'region', description: 'Region', options: ['eu', 'us'], default: 'eu' },
        { type: 'promptString', id: 'unused' },
        { type: 'promptString' },
      ],
      servers: { a: { type: 'http', url: 'https://${input:region}.example.com/mcp', dev: { watch: 'src/**' } } },
      mcp: {},
    });
    expect(servers.a).toEqual({ type: 'streamable-http', url: 'https://{{var.region}}.example.com/mcp', customUserVars: { region: { title: 'Region' } } });
    expect(warnings.map((w) => w.path).sort()).toEqual(['inputs.0.default', 'inputs.0.options', 'inputs.2', 'mcp', 'servers.a.dev']);
  });

  it('an undeclared ${input:...} is a validation error at its path', () => {
    const issues = issuesOf(() => parseConfigText('{ "servers": { "a": { "type": "http", "url": "https://a.example.com/mcp", "headers": { "Authorization": "Bearer ${input:nope}" } } } }', { fileName: '.vscode/mcp.json' }));
    expect(issues).toEqual([{ path: 'servers.a.headers.Authorization', message: 'placeholder {{var.nope}} is not declared in customUserVars' }]);
  });
});

describe('format detection', () => {
  it.each([
    [{ version: '1.2.8', mcpServers: {} }, 'yaml', undefined, 'librechat'],
    [{ mcpServers: {} }, 'yaml', 'servers.yaml', 'librechat'],
    [{ mcpServers: {} }, 'json', 'claude_desktop_config.json', 'claude-desktop'],
    [{ servers: {}, inputs: [] }, 'json', 'anything.json', 'vscode'],
    [{ servers: {} }, 'json', '/repo/.vscode/mcp.json', 'vscode'],
    [{ servers: { a: { env: { X: '${env:X}' } } } }, 'json', 'x.json', 'vscode'],
    [{ servers: {} }, 'json', 'switchboard.json', 'switchboard'],
    [{ servers: {} }, 'yaml', 'switchboard.yaml', 'switchboard'],
    [{ other: {} }, 'yaml', 'x.yaml', undefined],
    [['servers'], 'yaml', 'x.yaml', undefined],
  ] as const)('%j (%s, %s) → %s', (doc, syntax, fileName, expected) => {
    expect(detectConfigFormat(doc, { syntax, ...(fileName ? { fileName } : {}) })).toBe(expected);
  });

  it('an explicit format wins over detection', () => {
    const text = 'mcpServers:\n  a:\n    url: https://a.example.com/mcp\n';
    expect(parseConfigText(text, { fileName: 'a.yaml' }).servers.a!.type).toBe('sse');
    const asClaude = parseConfigText(text, { fileName: 'a.yaml', format: 'claude-desktop' });
    expect(asClaude.format).toBe('claude-desktop');
    expect(asClaude.servers.a!.type).toBe('streamable-http');
    expect(issuesOf(() => parseConfigText(text, { fileName: 'a.yaml', format: 'switchboard' }))).toEqual([{ path: 'servers', message: 'is missing' }]);
  });

  it('refuses an unknown format option and an unrecognised document', () => {
    expect(() => parseConfigText('servers: {}', { format: 'cursor' as never })).toThrow(TypeError);
    expect(issuesOf(() => parseConfigText('endpoints: {}\n', { fileName: 'x.yaml' }))[0]!.path).toBe('(root)');
  });
});

describe('loadConfigFile', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'switchboard-cfg-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads our own format in YAML, with paths under servers', async () => {
    const ok = await loadConfigFile(join(FIXTURES, 'switchboard.yaml'));
    expect(ok.format).toBe('switchboard');
    expect(Object.keys(ok.servers)).toEqual(['everything', 'graph', 'github']);
    expect(ok.warnings).toEqual([]);
    const issues = await asyncIssuesOf(loadConfigFile(join(FIXTURES, 'invalid.yaml')));
    expect(issues.map((i) => i.path)).toEqual(['servers.github.url', 'servers.github.timeoutMs', 'servers.files.obo']);
  });

  it('reads our own format in JSON with comments, trailing commas and a BOM; other top-level keys are reported', async () => {
    const file = join(dir, 'servers.json');
    await writeFile(file, '\uFEFF{\n  // app-pool server\n  "servers": { "e": { "url": "https://e.example.com/mcp", /* inline */ }, },\n  "logging": true,\n}\n');
    const { servers, format, warnings } = await loadConfigFile(file);
    expect(format).toBe('switchboard');
    expect(servers.e!.type).toBe('streamable-http');
    expect(warnings).toEqual([{ path: 'logging', message: 'ignored: not part of the servers config' }]);
  });

  it('sniffs JSON vs YAML when the file has no known extension', () => {
    expect(parseConfigText('{"mcpServers": {"a": {"command": "x"}}}', { fileName: 'config' }).format).toBe('claude-desktop');
    expect(parseConfigText('mcpServers:\n  a: { command: x }\n', { fileName: 'config' }).format).toBe('librechat');
  });

  it('reports JSON syntax errors with line and column under (file), without quoting values', () => {
    const text = '{\n  "servers": {\n    "a": { "url": Bearer sk-live-123 }\n  }\n}\n';
    const issues = issuesOf(() => parseConfigText(text, { fileName: 'x.json' }));
    expect(issues.length).toBeGreaterThan(0);
    expect(issues[0]).toEqual({ path: '(file)', message: expect.stringMatching(/^JSON line 3, column 19: /) });
    expect(JSON.stringify(issues)).not.toContain('sk-live-123');
  });

  it('reports YAML syntax errors and duplicate keys with line and column', async () => {
    const broken = await asyncIssuesOf(loadConfigFile(join(FIXTURES, 'broken.yaml')));
    expect(broken[0]).toEqual({ path: '(file)', message: expect.stringMatching(/^YAML line \d+, column \d+: Missing closing/) });
    expect(JSON.stringify(broken)).not.toContain('secret-in-broken-file');
    const dup = issuesOf(() => parseConfigText('servers:\n  a: { command: x }\n  a: { command: y }\n', { fileName: 'd.yaml' }));
    expect(dup).toEqual([{ path: '(file)', message: 'YAML line 3, column 3: Map keys must be unique' }]);
  });

  it('a __proto__ key in the file is reported as a server name, never applied as a prototype', () => {
    for (const [text, fileName, path] of [
      ['{"mcpServers": {"__proto__": {"command": "x"}}}', 'claude_desktop_config.json', 'mcpServers.__proto__'],
      ['mcpServers:\n  __proto__: { command: x }\n', 'librechat.yaml', 'mcpServers.__proto__'],
      ['{"servers": {"__proto__": {"command": "x"}}, "inputs": []}', 'mcp.json', 'servers.__proto__'],
      ['servers:\n  __proto__: { command: x }\n', 'servers.yaml', 'servers.__proto__'],
    ] as const) {
      const issues = issuesOf(() => parseConfigText(text, { fileName }));
      expect(issues.map((i) => i.path)).toContain(path);
    }
    expect(({} as Record<string, unknown>).command).toBeUndefined();
  });

  it('reports unreadable and empty files', async () => {
    const missing = join(dir, 'nope.yaml');
    const issues = await asyncIssuesOf(loadConfigFile(missing));
    expect(issues).toEqual([{ path: '(file)', message: `cannot read ${missing} (ENOENT)` }]);
    const empty = join(dir, 'empty.yaml');
    await writeFile(empty, '# nothing here\n');
    expect(await asyncIssuesOf(loadConfigFile(empty))).toEqual([{ path: '(root)', message: 'the file is empty' }]);
  });
});
