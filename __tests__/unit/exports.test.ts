/**
 * Pins the public surface: the names ARCHITECTURE.md lists as the contract must stay exported, with the
 * right kinds, from the package root and from the `./testing` subpath.
 */
import * as api from '../../src/index.js';
import * as testing from '../../src/testing/index.js';

const CONTRACT_CLASSES = [
  'MCPManager',
  'UserConnectionManager',
  'MCPConnectionFactory',
  'MCPConnection',
  'AppConnectionPool',
  'SwitchboardError',
  'ConfigError',
  'OboError',
  'BearerError',
  'UpstreamTokenError',
] as const;

const CONTRACT_FUNCTIONS = [
  'parseServersConfig',
  'parseServerConfig',
  'requiresUserScopedConnection',
  'resolveServerConfig',
  'createOboTokenResolver',
  'createBearerVerifier',
  'createUpstreamTokenProvider',
  'defaultOboTrustChecker',
  'createAuthFetch',
  'createDefaultTransport',
] as const;

describe('public surface', () => {
  it.each(CONTRACT_CLASSES)('exports class %s', (name) => {
    expect(typeof (api as Record<string, unknown>)[name]).toBe('function');
    expect(String((api as Record<string, unknown>)[name])).toMatch(/^class /);
  });

  it.each(CONTRACT_FUNCTIONS)('exports function %s', (name) => {
    expect(typeof (api as Record<string, unknown>)[name]).toBe('function');
  });

  it('has no default export (named exports only)', () => {
    expect('default' in api).toBe(false);
    expect('default' in testing).toBe(false);
  });

  it('keeps the error hierarchy: one base class', () => {
    for (const E of [api.ConfigError, api.OboError, api.BearerError, api.UpstreamTokenError]) {
      expect(E.prototype).toBeInstanceOf(api.SwitchboardError);
    }
    const e = new api.OboError('untrusted', 'x');
    expect(e).toMatchObject({ reason: 'untrusted', retryable: false, code: 'obo_untrusted', name: 'OboError' });
    const b = new api.BearerError('insufficient_scope', 'need Files.Read', { scope: 'Files.Read' });
    expect(b).toMatchObject({ httpStatus: 403, wwwAuthenticate: 'Bearer error="insufficient_scope", error_description="need Files.Read", scope="Files.Read"' });
    expect(new api.BearerError('missing_token', 'no token').wwwAuthenticate).toBe('Bearer');
  });

  it('exports the test kit from the testing subpath', () => {
    for (const name of ['startTestMcpServer', 'startTestIdp', 'startWebSocketMcpServer', 'createInMemoryPair']) {
      expect(typeof (testing as Record<string, unknown>)[name]).toBe('function');
    }
  });
});
