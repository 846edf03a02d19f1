/**
 * Issue 16 ("A newcomer's first hour"), CLI part: strict LibreChat import, validate --json / --print, warnings
 * always printed, OBO environment documented, --upstream-token removed, demo package checks and report.
 */
import { join } from 'node:path';
import { createDemoCommand, DEMO_INSTALL_COMMAND } from '../../src/cli/demoCommand.js';
import { formatDemoReport, type DemoReport } from '../../src/cli/demo.js';
import { main } from '../../src/cli/main.js';
import { ImportError, importLibreChat } from '../../src/config/importers/index.js';
import { capturedIo } from '../support/cli.js';

const FIXTURES = join(process.cwd(), '__tests__/fixtures/configs');

describe('item 1: validate on LibreChat files', () => {
  it('reports typos inside mapped blocks as errors with a hint, and still prints the warnings', async () => {
    const io = capturedIo({ cwd: FIXTURES });
    expect(await main(['validate', 'librechat-typos.yaml'], io)).toBe(2);
    expect(io.out()).toBe('');
    expect(io.err().split('\n')).toEqual([
      'mcpServers.graph.timout: unknown field in a LibreChat server; did you mean `timeout`?',
      'mcpServers.graph.obo.audiance: unknown field in an obo block (it has scopes and audience); did you mean `audience`?',
      'warning: mcpServers.graph.iconPath: not imported: display icon of the LibreChat UI',
      '',
    ]);
  });

  it('prints warnings next to schema errors too', async () => {
    const io = capturedIo({ cwd: FIXTURES });
    expect(await main(['validate', 'librechat-invalid.yaml'], io)).toBe(2);
    expect(io.err().split('\n')).toEqual([
      expect.stringMatching(/^mcpServers\.search\.timeout: /),
      'warning: mcpServers.search.iconPath: not imported: display icon of the LibreChat UI',
      '',
    ]);
  });

  it('importLibreChat throws an ImportError carrying the warnings; unknown oauth and customUserVars keys are errors too', () => {
    let caught: unknown;
    try {
      importLibreChat({
        mcpServers: {
          s: { url: 'https://s.example.com/mcp', chatMenu: false, oauth: { scope: 'a', client_idd: 'x', token_url: 'https://t' }, customUserVars: { K: { title: 'K', sensitve: true } } },
        },
      });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ImportError);
    const e = caught as ImportError;
    expect(e.issues.map((i) => i.path)).toEqual(['mcpServers.s.oauth.client_idd', 'mcpServers.s.customUserVars.K.sensitve']);
    expect(e.issues[0]!.message).toMatch(/did you mean `client_id`/);
    expect(e.warnings.map((w) => w.path)).toEqual(['mcpServers.s.chatMenu', 'mcpServers.s.oauth.token_url']);
  });

  it('--json prints { ok, errors [{path,message}], warnings } for an invalid file, exit 2', async () => {
    const io = capturedIo({ cwd: FIXTURES });
    expect(await main(['validate', 'librechat-typos.yaml', '--json'], io)).toBe(2);
    expect(io.err()).toBe('');
    const result = JSON.parse(io.out());
    expect(result).toMatchObject({ ok: false, file: join(FIXTURES, 'librechat-typos.yaml'), format: 'librechat', servers: {} });
    expect(result.errors).toEqual([
      { path: 'mcpServers.graph.timout', message: expect.stringContaining('did you mean `timeout`') },
      { path: 'mcpServers.graph.obo.audiance', message: expect.stringContaining('did you mean `audience`') },
    ]);
    expect(result.warnings).toEqual([{ path: 'mcpServers.graph.iconPath', message: 'not imported: display icon of the LibreChat UI' }]);
  });

  it('--json for a valid file lists servers and warnings, exit 0', async () => {
    const io = capturedIo({ cwd: FIXTURES });
    expect(await main(['validate', 'librechat.yaml', '--json'], io)).toBe(0);
    const result = JSON.parse(io.out());
    expect(result).toMatchObject({ ok: true, format: 'librechat', errors: [] });
    expect(result.servers.filesystem).toEqual({ type: 'stdio', perUser: true });
    expect(result.warnings.length).toBeGreaterThan(0);
    expect(result.config).toBeUndefined();
  });

  it('--print writes the normalised config as JSON on stdout, the summary and warnings on stderr', async () => {
    const io = capturedIo({ cwd: FIXTURES });
    expect(await main(['validate', 'librechat.yaml', '--print'], io)).toBe(0);
    const config = JSON.parse(io.out());
    expect(Object.keys(config)).toEqual(['servers']);
    expect(config.servers.search).toMatchObject({ type: 'sse', url: 'https://mcp.internal.example.com/search/sse', timeoutMs: 45000 });
    expect(config.servers.graph.obo.scopes).toEqual(['api://graph-mcp/.default', 'offline_access']);
    expect(io.err()).toMatch(/^ok: 7 servers \(librechat\)\n/);
    expect(io.err()).toContain('warning: mcpServers.filesystem.iconPath: not imported');
    // With --json, the config is part of the result.
    const both = capturedIo({ cwd: FIXTURES });
    expect(await main(['validate', 'librechat.yaml', '--print', '--json'], both)).toBe(0);
    expect(JSON.parse(both.out()).config.servers.graph.type).toBe('streamable-http');
  });
});

describe('item 2: the OBO environment variables are documented', () => {
  it.each(['tools', 'call'])('%s --help lists every MCP_SWITCHBOARD_OBO_* variable and the upstream token variable', async (command) => {
    const io = capturedIo();
    expect(await main([command, '--help'], io)).toBe(0);
    for (const name of ['ISSUER', 'CLIENT_ID', 'CLIENT_SECRET', 'GRANT', 'INSECURE']) expect(io.out()).toContain(`MCP_SWITCHBOARD_OBO_${name}`);
    expect(io.out()).toContain('MCP_SWITCHBOARD_UPSTREAM_TOKEN');
    expect(io.out()).toContain('--upstream-token-stdin');
    expect(io.out()).not.toMatch(/--upstream-token [A-Z]/);
  });
});

describe('item 3: --upstream-token is gone', () => {
  it.each([
    [['tools', 'f.yaml', '--server', 'g', '--upstream-token', 'eyJsecret.token']],
    [['call', 'f.yaml', '--server', 'g', '--tool', 't', '--upstream-token=eyJsecret.token']],
  ])('%j is a usage error naming the replacements, without echoing the token', async (argv) => {
    const io = capturedIo();
    expect(await main(argv, io)).toBe(2);
    expect(io.err()).toMatch(/^mcp-switchboard: option --upstream-token was removed: .*MCP_SWITCHBOARD_UPSTREAM_TOKEN.*--upstream-token-stdin/);
    expect(io.err()).not.toContain('eyJsecret');
  });
});

describe('item 4: the demo says which packages are missing', () => {
  it('exits 1 naming oidc-provider and the install command, without running anything', async () => {
    const io = capturedIo();
    const demo = createDemoCommand({ isInstalled: (name) => name !== 'oidc-provider' });
    expect(await main(['demo'], io, [demo])).toBe(1);
    expect(io.err()).toContain('"oidc-provider"');
    expect(io.err()).toContain(DEMO_INSTALL_COMMAND);
    expect(DEMO_INSTALL_COMMAND).toBe('npm install oidc-provider ws @modelcontextprotocol/server-everything');
    expect(io.out()).toBe('');
  });

  it('finds the packages installed in this repository', async () => {
    const io = capturedIo();
    expect(await main(['demo', '--help'], io)).toBe(0);
    expect(io.out()).toContain(DEMO_INSTALL_COMMAND);
  });
});

describe('item 5: the demo report reads without the code', () => {
  const report: DemoReport = {
    scenario: { users: 200, callsPerUser: 5, rounds: 2, idleMs: 1000, totalCalls: 3000, servers: ['directory', 'shared', 'everything'], cpus: 2 },
    connections: { userOpened: 400, appOpened: 2, userOpenedByRound: [200, 200, 0], joined: 800, evicted: { idle: 400, closed: 2 }, openAtEnd: 2 },
    roundMs: [5000, 4000, 3000],
    obo: { exchanges: 200, cacheHits: 2800, lookups: 3000 },
    errors: 0,
    mismatches: 0,
    latencyMs: { p50: 2000, p95: 4000, p99: 4500, max: 5000 },
    warmLatencyMs: { p50: 1400, p95: 2800, p99: 2900, max: 3000 },
    overhead: { calls: 300, managerMeanMs: 6.16, rawSdkMeanMs: 5.9, ratio: 1.04 },
    heapUsedMB: 40,
    durationMs: 20000,
    sampleErrors: [],
  };

  it('explains each figure, queueing and joined connects, and never prints raw JSON', () => {
    const text = formatDemoReport(report);
    expect(text).not.toMatch(/[{}]/);
    expect(text).toContain('connects joined');
    expect(text).toMatch(/waited for that connect, instead of opening another/);
    expect(text).toMatch(/1,000 calls, up to 1,000 at a time, share 2 cores with the servers: most of this is waiting in line/);
    expect(text).toMatch(/cost of one call +6\.16 ms through mcp-switchboard, 5\.9 ms with the bare MCP SDK/);
    expect(text).toMatch(/none opened in the warm round \(expected none\)/);
    expect(text).toMatch(/400 idle, 2 closed/);
    expect(text).toMatch(/OK: no errors/);
    // Every figure row is followed by at least one line of explanation.
    const rows = text.split('\n').filter((l) => /^ {2}\S/.test(l) && / {2,}\S/.test(l.slice(2)));
    expect(rows.length).toBeGreaterThan(10);
  });

  it('flags a warm round that had to reconnect', () => {
    const text = formatDemoReport({ ...report, connections: { ...report.connections, userOpened: 583, userOpenedByRound: [200, 200, 183] } });
    expect(text).toMatch(/183 opened in the warm round \(expected none\)/);
    expect(text).toMatch(/the warm round had to reopen 183/);
  });
});
