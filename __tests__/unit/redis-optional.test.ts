/**
 * `mcp-switchboard/redis` without the optional `redis` package: importing the subpath works; the coordinator's
 * operations reject naming the package and the install command.
 */
import { jest } from '@jest/globals';

jest.unstable_mockModule('redis', () => {
  throw Object.assign(new Error("Cannot find package 'redis' imported from /app/node_modules/mcp-switchboard/dist/redis/coordinator.js"), { code: 'ERR_MODULE_NOT_FOUND' });
});

it('rejects naming the missing package', async () => {
  const { createRedisCoordinator } = await import('../../src/redis/index.js');
  const c = createRedisCoordinator({ encryptionKey: new Uint8Array(32) });
  await expect(c.oboTokens.get('k')).rejects.toMatchObject({ code: 'config_invalid', message: expect.stringContaining('npm install redis@5') });
  await c.close();
});
