/**
 * What comes back from outside (a server's JSON-RPC error, a 401 body, an IdP's error answer, a child process's
 * arguments, a host's own errors) never carries a secret into an error's message, `toJSON()` or its inspected
 * form (what a logger prints). Found by review; each case echoes the secret the way a real peer would.
 */
import http from 'node:http';
import { inspect } from 'node:util';
import vm from 'node:vm';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { createOboTokenResolver } from '../../src/auth/oboTokenResolver.js';
import { classifyError } from '../../src/connection/classifyError.js';
import { OboError } from '../../src/errors.js';
import { MCPManager } from '../../src/MCPManager.js';
import { oneOf } from '../../src/options.js';

const S = 'SECRETzzTOKEN123456';
const everything = (e: unknown) => `${(e as Error).message}\n${JSON.stringify(e)}\n${inspect(e, { depth: 10 })}`;

it('a server error echoing a bearer: redacted in the message and the cause', () => {
  const e = classifyError(new McpError(-32000, `invalid bearer ${S}`), 'call', 'files');
  expect(e.code).toBe('server_error');
  expect(e.message).toContain('invalid bearer');
  expect(everything(e)).not.toContain(S);
});

it('OboError.toJSON keeps no error message and only the known fields of a plain cause', () => {
  const cases = [
    new Error(`direct ${S}`),
    new Error('outer', { cause: new Error(`inner ${S}`) }),
    vm.runInNewContext(`Object.assign(new Error('x ${S}'), { body: '${S}' })`) as unknown,
    { headers: { authorization: S }, status: 400 },
  ];
  for (const cause of cases) expect(JSON.stringify(new OboError('untrusted', 'refused', { cause }).toJSON())).not.toContain(S);
  expect(new OboError('untrusted', 'refused', { cause: { status: 400, headers: { a: S } } }).toJSON()).toMatchObject({ cause: { status: 400 } });
});

it('a stdio command whose arguments hold a secret: nowhere in the error', async () => {
  const m = new MCPManager({ servers: { s: { command: '/nonexistent/mcp-bin', args: ['--token', S], stderr: 'ignore' } } });
  const err = await m.listTools({ serverName: 's' }).catch((e: unknown) => e);
  await m.close();
  expect(err).toMatchObject({ code: 'connect_failed' });
  expect(everything(err)).not.toContain(S);
});

it('a 401 whose body echoes the bearer and the URL query: nowhere in the error', async () => {
  const srv = http.createServer((req, res) => res.writeHead(401, { 'content-type': 'text/plain' }).end(`bad token: ${req.headers.authorization} url=${req.url}`));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  const m = new MCPManager({ servers: { s: { url: `http://127.0.0.1:${port}/mcp?key=${S}`, headers: { Authorization: `Bearer ${S}` } } } });
  const err = await m.listTools({ serverName: 's' }).catch((e: unknown) => e);
  await m.close();
  await new Promise<void>((r) => srv.close(() => r()));
  expect(err).toMatchObject({ code: 'connect_failed' });
  expect(everything(err)).not.toContain(S);
});

it.each([
  ['an opaque assertion in error_description', { error: 'invalid_grant', error_description: `assertion opaque-${S} is invalid` }],
  ['a JWT not starting with eyJ in error_description', { error: 'invalid_grant', error_description: `assertion ew0K${S}.eyJzdWIiOiJ4In0.sig${S} is invalid` }],
  ['the assertion in the error code', { error: `invalid_grant:opaque-${S}` }],
  ['the assertion as a claims challenge', { error: 'interaction_required', claims: `opaque-${S}` }],
  ['the client secret in error_description', { error: 'invalid_client', error_description: `client_secret cs-${S} wrong` }],
])('an IdP echoing %s: nowhere in the OboError', async (_label, body) => {
  const srv = http.createServer((req, res) => {
    const base = `http://127.0.0.1:${(srv.address() as { port: number }).port}`;
    if (req.url?.startsWith('/.well-known')) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ issuer: base, token_endpoint: `${base}/token`, jwks_uri: `${base}/jwks` }));
      return;
    }
    req.resume();
    req.on('end', () => res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify(body)));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const issuer = `http://127.0.0.1:${(srv.address() as { port: number }).port}`;
  try {
    const resolve = createOboTokenResolver({ issuer, clientId: 'c', clientSecret: `cs-${S}`, allowInsecureRequests: true, retryDelayMs: 1 });
    const err = await resolve({ user: { id: 'u' }, assertion: `opaque-${S}`, scopes: ['api://x/.default'], serverName: 'g' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OboError);
    expect(everything(err)).not.toContain(S);
  } finally {
    await new Promise<void>((r) => srv.close(() => r()));
  }
});

it('an option given a secret by mistake is described, never echoed', () => {
  expect(() => oneOf(S, ['jwt-bearer', 'token-exchange'], 'createOboTokenResolver: grant')).toThrow(/got a string of 19 characters/);
  try {
    oneOf(S, ['a'], 'x');
  } catch (e) {
    expect(everything(e)).not.toContain(S);
  }
});
