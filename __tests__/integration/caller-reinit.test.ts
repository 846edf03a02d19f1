/**
 * Found by review: a session re-initialized after a 404 uses the credentials of the caller whose request met the
 * 404, and a shared tools listing failed by one caller's credentials does not fail another caller's.
 */
import { ConfigError } from '../../src/errors.js';
import { MCPManager } from '../../src/MCPManager.js';
import { startTestMcpServer, type TestMcpServer } from '../../src/testing/testMcpServer.js';

let server: TestMcpServer;
let manager: MCPManager;
const seen: string[] = [];
beforeEach(async () => {
  seen.length = 0;
  server = await startTestMcpServer({
    transport: 'streamable-http',
    verifyBearer: async (authorization, req) => {
      seen.push(`${req.method} ${authorization}`);
      if (authorization === 'Bearer bad') throw new Error('nope');
      return { subject: 'dave' };
    },
  });
  manager = new MCPManager({
    servers: { search: { url: server.url, headers: { Authorization: 'Bearer {{var.API_KEY}}' }, customUserVars: { API_KEY: { title: 'k' } } } },
  });
});
afterEach(async () => {
  await manager.close();
  await server.close();
});

const call = (vars: Record<string, string>) => manager.callTool({ user: { id: 'dave', vars }, serverName: 'search', toolName: 'whoami' });

it('a re-init after a 404 for B\'s call is made with B\'s credentials, not those of A (who lacks the var)', async () => {
  await call({ API_KEY: 'good' });
  server.expireSessions();
  const [b, a] = await Promise.allSettled([call({ API_KEY: 'good' }), call({})]);
  expect(a.status).toBe('rejected');
  expect(b.status).toBe('fulfilled'); // B had good credentials
});

it('a re-init after a 404 for B succeeds while A, with another key, calls concurrently', async () => {
  await call({ API_KEY: 'good' });
  server.expireSessions();
  const cut = seen.length;
  const [b] = await Promise.allSettled([call({ API_KEY: 'good' }), call({ API_KEY: 'other' })]);
  expect(b.status).toBe('fulfilled');
});

it('a shared tools listing failed by A\'s credentials is made again for B with B\'s own', async () => {
  await call({ API_KEY: 'good' }); // warm; tools not listed yet
  const [a, b] = await Promise.allSettled([
    manager.listTools({ user: { id: 'dave', vars: {} }, serverName: 'search' }),
    manager.listTools({ user: { id: 'dave', vars: { API_KEY: 'good' } }, serverName: 'search' }),
  ]);
  expect(a.status).toBe('rejected');
  expect(b.status).toBe('fulfilled');
});

it('a later good caller is served after a bad caller\'s failure', async () => {
  await call({ API_KEY: 'good' });
  server.expireSessions();
  await Promise.allSettled([call({ API_KEY: 'good' }), call({})]);
  const r = await call({ API_KEY: 'good' }).then(() => 'ok', (e: Error) => `${e.constructor.name}: ${e.message}`);
  expect(r).toBe('ok');
});
