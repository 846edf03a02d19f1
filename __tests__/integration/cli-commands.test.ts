/**
 * The `tools`, `call` and `demo` commands end to end, in-process, against real loopback peers.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';
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

  it('explains a missing resolver for an OBO server, naming the field, with exit 2', async () => {
    const io = capturedIo();
    expect(await main(['tools', configFile, '--server', 'graph', '--user', 'u'], io)).toBe(2);
    expect(io.err()).toContain('graph.obo: On-Behalf-Of needs the oboTokenResolver option');
  });

  it('reports a typed error without the token when the upstream token is missing', async () => {
    const env = { MCP_SWITCHBOARD_OBO_ISSUER: idp.issuer, MCP_SWITCHBOARD_OBO_CLIENT_ID: idp.client.clientId, MCP_SWITCHBOARD_OBO_CLIENT_SECRET: idp.client.clientSecret, MCP_SWITCHBOARD_OBO_INSECURE: '1' };
    const io = capturedIo({ env });
    expect(await main(['tools', configFile, '--server', 'graph', '--user', 'u'], io)).toBe(1);
    expect(io.err()).toMatch(/^error \[obo_missing_upstream_token\]: /);
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
  it('runs a small scenario end to end and reports no errors and no mismatches as JSON', async () => {
    const io = capturedIo();
    expect(await main(['demo', '--users', '6', '--calls', '3', '--idle-ms', '50', '--json'], io)).toBe(0);
    const report = JSON.parse(io.out());
    expect(report).toMatchObject({ errors: 0, mismatches: 0, scenario: { users: 6, callsPerUser: 3, rounds: 2, totalCalls: 54 } });
    // Every user connection is evicted after round 1 and reopened in round 2 (and maybe again if idle mid-round).
    expect(report.connections.userOpened).toBeGreaterThanOrEqual(12);
    expect(report.connections.evicted.idle).toBeGreaterThanOrEqual(6);
    expect(report.obo.exchanges).toBe(6);
    expect(report.obo.cacheHits).toBeGreaterThan(0);
  }, 60_000);

  it('rejects a bad flag value', async () => {
    const io = capturedIo();
    expect(await main(['demo', '--users', 'many'], io)).toBe(2);
    expect(io.err()).toContain('--users takes a positive whole number');
  });
});
