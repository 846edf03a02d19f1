/**
 * The `tools`, `call` and `demo` commands end to end, in-process, against real loopback peers.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { main } from '../../src/cli/main.js';
import { createDemoCommand } from '../../src/cli/demoCommand.js';
import { startTestIdp, type TestIdp } from '../../src/testing/testIdp.js';
import { startTestMcpServer, type TestMcpServer } from '../../src/testing/testMcpServer.js';
import { createBearerVerifier } from '../../src/auth/bearerVerifier.js';
import { capturedIo } from '../support/cli.js';

let dir: string;
let idp: TestIdp;
let plain: TestMcpServer;
let protectedServer: TestMcpServer;
let configFile: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mcp-switchboard-cli-'));
  idp = await startTestIdp();
  const verifier = createBearerVerifier({ issuer: idp.issuer, audience: idp.downstreamAudience, allowInsecureRequests: true });
  plain = await startTestMcpServer({ transport: 'streamable-http' });
  protectedServer = await startTestMcpServer({
    transport: 'streamable-http',
    verifyBearer: async (authorization) => ({ subject: (await verifier.verify(authorization)).subject }),
  });
  configFile = join(dir, 'servers.json');
  await writeFile(
    configFile,
    JSON.stringify({
      servers: {
        plain: { url: plain.url },
        graph: { url: protectedServer.url, obo: { scopes: `${idp.downstreamAudience}/.default` } },
      },
    }),
  );
});

afterAll(async () => {
  await Promise.all([plain.close(), protectedServer.close(), idp.close()]);
  await rm(dir, { recursive: true, force: true });
});

describe('mcp-switchboard tools / call', () => {
  it('lists the tools of a server', async () => {
    const io = capturedIo();
    expect(await main(['tools', configFile, '--server', 'plain'], io)).toBe(0);
    expect(io.out().split('\n').map((l) => l.split(':')[0])).toEqual(expect.arrayContaining(['echo', 'whoami', 'slow', 'fail']));
  });

  it('calls a tool with JSON arguments and prints its text', async () => {
    const io = capturedIo();
    expect(await main(['call', configFile, '--server', 'plain', '--tool', 'echo', '--args', '{"text":"hello"}'], io)).toBe(0);
    expect(io.out()).toBe('hello\n');
  });

  it('calls an OBO server as a user, with the resolver configured from the environment', async () => {
    const token = await idp.mintAccessToken({ sub: 'cli-user', tenantId: 't1' });
    const env = {
      MCP_SWITCHBOARD_OBO_ISSUER: idp.issuer,
      MCP_SWITCHBOARD_OBO_CLIENT_ID: idp.client.clientId,
      MCP_SWITCHBOARD_OBO_CLIENT_SECRET: idp.client.clientSecret,
      MCP_SWITCHBOARD_OBO_INSECURE: '1',
      MCP_SWITCHBOARD_UPSTREAM_TOKEN: token,
    };
    const io = capturedIo({ env });
    expect(await main(['call', configFile, '--server', 'graph', '--tool', 'whoami', '--user', 'cli-user', '--tenant', 't1'], io)).toBe(0);
    expect(io.out()).toBe('cli-user\n');
    expect(io.err()).toBe('');
  });

  it('explains a missing resolver for an OBO server in terms of the environment variables, with exit 2', async () => {
    const io = capturedIo();
    expect(await main(['tools', configFile, '--server', 'graph', '--user', 'u'], io)).toBe(2);
    expect(io.err()).toBe(
      'error: server "graph" uses On-Behalf-Of (`obo` in its config): set MCP_SWITCHBOARD_OBO_ISSUER, MCP_SWITCHBOARD_OBO_CLIENT_ID and MCP_SWITCHBOARD_OBO_CLIENT_SECRET\n' +
        'see `mcp-switchboard help tools` for the environment variables\n',
    );
    expect(io.err()).not.toContain('oboTokenResolver');
  });

  it('names the missing variable when the OBO environment is half set, and checks GRANT', async () => {
    const half = capturedIo({ env: { MCP_SWITCHBOARD_OBO_ISSUER: idp.issuer } });
    expect(await main(['tools', configFile, '--server', 'graph', '--user', 'u'], half)).toBe(2);
    expect(half.err()).toMatch(/^error: MCP_SWITCHBOARD_OBO_ISSUER is set but MCP_SWITCHBOARD_OBO_CLIENT_ID is not/);
    const grant = capturedIo({ env: { MCP_SWITCHBOARD_OBO_ISSUER: idp.issuer, MCP_SWITCHBOARD_OBO_CLIENT_ID: 'c', MCP_SWITCHBOARD_OBO_CLIENT_SECRET: 's', MCP_SWITCHBOARD_OBO_GRANT: 'obo' } });
    expect(await main(['tools', configFile, '--server', 'graph', '--user', 'u'], grant)).toBe(2);
    expect(grant.err()).toMatch(/^error: MCP_SWITCHBOARD_OBO_GRANT must be jwt-bearer or token-exchange/);
    const noSecret = capturedIo({ env: { MCP_SWITCHBOARD_OBO_ISSUER: idp.issuer, MCP_SWITCHBOARD_OBO_CLIENT_ID: 'c' } });
    expect(await main(['tools', configFile, '--server', 'graph', '--user', 'u'], noSecret)).toBe(2);
    expect(noSecret.err()).toMatch(/^error: MCP_SWITCHBOARD_OBO_CLIENT_SECRET is not set/);
    const http = capturedIo({ env: { MCP_SWITCHBOARD_OBO_ISSUER: idp.issuer, MCP_SWITCHBOARD_OBO_CLIENT_ID: 'c', MCP_SWITCHBOARD_OBO_CLIENT_SECRET: 's' } });
    expect(await main(['tools', configFile, '--server', 'graph', '--user', 'u'], http)).toBe(2);
    expect(http.err()).toMatch(/^error: MCP_SWITCHBOARD_OBO_ISSUER is a plain-http URL: .*MCP_SWITCHBOARD_OBO_INSECURE=1/);
  });

  it('asks for --user on a per-user server', async () => {
    const env = { MCP_SWITCHBOARD_OBO_ISSUER: idp.issuer, MCP_SWITCHBOARD_OBO_CLIENT_ID: idp.client.clientId, MCP_SWITCHBOARD_OBO_CLIENT_SECRET: 's', MCP_SWITCHBOARD_OBO_INSECURE: '1' };
    const io = capturedIo({ env });
    expect(await main(['tools', configFile, '--server', 'graph'], io)).toBe(2);
    expect(io.err()).toMatch(/^mcp-switchboard: server "graph" connects per user \(On-Behalf-Of\): pass --user ID\n/);
  });

  it('names MCP_SWITCHBOARD_UPSTREAM_TOKEN and --upstream-token-stdin when the upstream token is missing', async () => {
    const env = { MCP_SWITCHBOARD_OBO_ISSUER: idp.issuer, MCP_SWITCHBOARD_OBO_CLIENT_ID: idp.client.clientId, MCP_SWITCHBOARD_OBO_CLIENT_SECRET: idp.client.clientSecret, MCP_SWITCHBOARD_OBO_INSECURE: '1' };
    const io = capturedIo({ env });
    expect(await main(['tools', configFile, '--server', 'graph', '--user', 'u'], io)).toBe(2);
    expect(io.err()).toMatch(/^error: server "graph" uses On-Behalf-Of, .*set MCP_SWITCHBOARD_UPSTREAM_TOKEN, or pipe the token in with --upstream-token-stdin\n/);
  });

  it('reads the upstream token from stdin with --upstream-token-stdin', async () => {
    const token = await idp.mintAccessToken({ sub: 'stdin-user', tenantId: 't1' });
    const env = {
      MCP_SWITCHBOARD_OBO_ISSUER: idp.issuer,
      MCP_SWITCHBOARD_OBO_CLIENT_ID: idp.client.clientId,
      MCP_SWITCHBOARD_OBO_CLIENT_SECRET: idp.client.clientSecret,
      MCP_SWITCHBOARD_OBO_INSECURE: '1',
      MCP_SWITCHBOARD_UPSTREAM_TOKEN: 'not-this-one',
    };
    const io = { ...capturedIo({ env }), stdin: Readable.from([Buffer.from(`${token}\n`)]) };
    expect(await main(['call', configFile, '--server', 'graph', '--tool', 'whoami', '--user', 'stdin-user', '--upstream-token-stdin'], io)).toBe(0);
    expect(io.out()).toBe('stdin-user\n');
    const empty = { ...capturedIo({ env }), stdin: Readable.from([]) };
    expect(await main(['tools', configFile, '--server', 'graph', '--user', 'u', '--upstream-token-stdin'], empty)).toBe(2);
    expect(empty.err()).toMatch(/^mcp-switchboard: --upstream-token-stdin: stdin was empty/);
  });

  it('rejects wrong usage with exit 2', async () => {
    for (const argv of [
      ['call', configFile, '--server', 'plain'],
      ['call', configFile, '--server', 'plain', '--tool', 'echo', '--args', '[1]'],
      ['tools', configFile, '--server', 'nope'],
      ['tools', configFile],
    ]) {
      const io = capturedIo();
      expect(await main(argv, io)).toBe(2);
    }
  });
});

describe('mcp-switchboard demo', () => {
  it('runs a small scenario end to end and reports no errors and no mismatches as JSON, with no progress output even on a TTY', async () => {
    const io = capturedIo();
    io.stdout.isTTY = true;
    io.stderr.isTTY = true;
    expect(await main(['demo', '--users', '6', '--calls', '3', '--idle-ms', '50', '--json'], io)).toBe(0);
    expect(io.err()).toBe('');
    const report = JSON.parse(io.out());
    expect(report).toMatchObject({ errors: 0, mismatches: 0, scenario: { users: 6, callsPerUser: 3, rounds: 2, totalCalls: 54 } });
    // Every user connection is evicted after round 1 and reopened in round 2 (and maybe again if idle mid-round).
    expect(report.connections.userOpened).toBeGreaterThanOrEqual(12);
    expect(report.connections.evicted.idle).toBeGreaterThanOrEqual(6);
    expect(report.obo.exchanges).toBe(6);
    expect(report.obo.cacheHits).toBeGreaterThan(0);
    // The warm round reuses the connections of the last cold round, even with a 50 ms idle timeout.
    expect(report.connections.userOpenedByRound).toHaveLength(3);
    expect(report.connections.userOpenedByRound.at(-1)).toBe(0);
    expect(report.roundMs).toHaveLength(3);
  }, 60_000);

  it('draws a live bar on a TTY; without server-everything it says so and runs without it', async () => {
    const io = capturedIo();
    io.stdout.isTTY = true;
    io.stderr.isTTY = true;
    const demo = createDemoCommand({ isInstalled: (name) => name !== '@modelcontextprotocol/server-everything' });
    expect(await main(['demo', '--users', '3', '--calls', '3', '--idle-ms', '30'], io, [demo])).toBe(0);
    expect(io.err()).toMatch(/^note: the optional package "@modelcontextprotocol\/server-everything" is not installed/);
    expect(io.err()).toContain('npm install @modelcontextprotocol/server-everything');
    expect(io.err()).toMatch(/\r\x1b\[K\[#*\.*\] \d+\/27 calls/);
    expect(io.err()).not.toMatch(/\{"idle"/);
    expect(io.out()).toMatch(/Servers .*directory .*shared .*\.\n/);
    expect(io.out()).not.toContain('server-everything over stdio');
    expect(io.out()).toMatch(/OK: no errors/);
  }, 60_000);

  it('prints progress lines, never a bar, when not on a TTY', async () => {
    const io = capturedIo();
    expect(await main(['demo', '--users', '3', '--calls', '2', '--idle-ms', '30', '--rounds', '1'], io)).toBe(0);
    expect(io.err()).not.toContain('\r');
    expect(io.err()).toMatch(/^progress: \d+\/12 calls$/m);
    expect(io.out()).toMatch(/connects joined/);
  }, 60_000);

  it('rejects a bad flag value', async () => {
    const io = capturedIo();
    expect(await main(['demo', '--users', 'many'], io)).toBe(2);
    expect(io.err()).toContain('--users takes a positive whole number');
  });
});
