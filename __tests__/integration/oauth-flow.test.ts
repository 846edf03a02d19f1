/**
 * The MCP authorization flow run by the package, against real peers on loopback: an oidc-provider
 * authorization server (PKCE, dynamic registration, resource indicators, rotating refresh tokens, RFC 9207 iss)
 * and an SDK MCP server that verifies every bearer against the AS's JWKS. Driven the way a host would: catch
 * `AuthorizationRequiredError`, send the "browser" to its URL, hand the callback to `completeAuthorization`,
 * call again. Judged by what the MCP server and the AS received.
 */
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { decodeJwt } from 'jose';
import { AuthorizationError, AuthorizationRequiredError } from '../../src/errors.js';
import { MCPManager } from '../../src/MCPManager.js';
import type { OAuthOptions } from '../../src/oauth/authorizer.js';
import { MemoryOAuthStore } from '../../src/oauth/store.js';
import type { UserContext } from '../../src/types.js';
import { ADMIN_SCOPE, approve, READ_SCOPE, startAuthServer, startProtectedMcpServer, type AuthServer, type ProtectedMcpServer } from '../support/oauthPeers.js';

let as: AuthServer;
let mcp: ProtectedMcpServer;
let REDIRECT: string;
let managers: MCPManager[] = [];

beforeAll(async () => {
  let issuer = '';
  mcp = await startProtectedMcpServer({ issuer: () => issuer });
  as = await startAuthServer({ resource: mcp.url, accessTokenTtlSec: 300 });
  issuer = as.issuer;
  // Never requested: the browser stops at the redirect to it.
  REDIRECT = `${new URL(mcp.url).origin}/callback`;
});
afterAll(async () => {
  await Promise.all([mcp?.close(), as?.close()]);
});
beforeEach(() => {
  mcp.requests.length = 0;
  as.tokenRequests.length = 0;
  mcp.stubbornScope = false;
  // Relaxed by default so each test exercises its own part of the flow; the stock behaviour has its own tests.
  as.strict.offlineAccess = false;
  as.strict.registeredScope = false;
});
afterEach(async () => {
  await Promise.all(managers.map((m) => m.close()));
  managers = [];
});

function makeManager(extra: Partial<OAuthOptions> = {}) {
  const store = new MemoryOAuthStore();
  const manager = new MCPManager({ servers: { notes: { url: mcp.url, oauth: {} } }, oauth: { redirectUri: REDIRECT, store, ...extra } });
  const required: { serverName: string; userId?: string; authorizationUrl: URL }[] = [];
  manager.on('authorizationRequired', (e) => required.push(e));
  managers.push(manager);
  return { manager, store, required };
}

const whoami = async (manager: MCPManager, user: UserContext) => {
  const r = (await manager.callTool({ user, serverName: 'notes', toolName: 'whoami' })) as CallToolResult;
  return JSON.parse((r.content[0] as { text: string }).text) as { sub: string; scopes: string[] };
};

async function authRequired(p: Promise<unknown>): Promise<AuthorizationRequiredError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AuthorizationRequiredError);
  return err as AuthorizationRequiredError;
}

async function authError(p: Promise<unknown>, code: string): Promise<AuthorizationError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AuthorizationError);
  expect((err as AuthorizationError).code).toBe(code);
  return err as AuthorizationError;
}

/** What the host does: the call, and on AuthorizationRequiredError the browser, the callback, the call again. */
async function consentThen<T>(manager: MCPManager, user: UserContext, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (!(err instanceof AuthorizationRequiredError)) throw err;
    const callback = await approve(err.authorizationUrl, user.id, REDIRECT);
    await manager.completeAuthorization(callback, { user });
    return call();
  }
}

const jtiOf = (token: string) => decodeJwt(token).jti as string;

describe('consent', () => {
  it('the first call rejects with AuthorizationRequiredError (PKCE S256, state, resource); concurrent calls of a user share one flow', async () => {
    const { manager, required } = makeManager();
    const alice = { id: 'alice' };
    const settled = await Promise.allSettled(Array.from({ length: 4 }, () => whoami(manager, alice)));
    const errors = settled.map((s) => (s as PromiseRejectedResult).reason as AuthorizationRequiredError);
    for (const e of errors) expect(e).toBeInstanceOf(AuthorizationRequiredError);
    const [err] = errors as [AuthorizationRequiredError];
    expect(err.code).toBe('authorization_required');
    expect(err.serverName).toBe('notes');
    expect(err.retryable).toBe(false);
    const q = err.authorizationUrl.searchParams;
    expect(err.authorizationUrl.origin).toBe(as.issuer);
    expect(q.get('response_type')).toBe('code');
    expect(q.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(q.get('code_challenge_method')).toBe('S256');
    expect(q.get('state')).toBe(err.state);
    expect(q.get('resource')).toBe(mcp.url);
    expect(q.get('redirect_uri')).toBe(REDIRECT);
    expect(q.get('scope')?.split(' ')).toEqual(expect.arrayContaining([READ_SCOPE, 'offline_access']));
    // One flow: the same URL and state for every concurrent call, one event.
    expect(new Set(errors.map((e) => e.state)).size).toBe(1);
    expect(new Set(errors.map((e) => e.authorizationUrl.href)).size).toBe(1);
    expect(required).toHaveLength(1);
    expect(required[0]).toMatchObject({ serverName: 'notes', userId: 'alice' });
    expect(required[0]!.authorizationUrl.href).toBe(err.authorizationUrl.href);
    // Nothing reached the server with a token.
    expect(mcp.requests.every((r) => r.outcome === 'none')).toBe(true);

    const callback = await approve(err.authorizationUrl, 'alice', REDIRECT);
    expect(new URL(callback).searchParams.get('iss')).toBe(as.issuer);
    await expect(manager.completeAuthorization(callback, { user: alice })).resolves.toMatchObject({ serverName: 'notes', userId: 'alice' });
    expect(as.grants('authorization_code')).toHaveLength(1);
    expect(as.grants('authorization_code')[0]).toMatchObject({ status: 200, resource: mcp.url });

    const me = await whoami(manager, alice);
    expect(me.sub).toBe('alice');
    expect(me.scopes).toContain(READ_SCOPE);
    expect(required).toHaveLength(1);
  });

  it('two users consent to one server: each request carries only its own user`s token; B still needs B`s consent', async () => {
    const { manager, required } = makeManager();
    const alice = { id: 'alice' };
    const bob = { id: 'bob' };
    expect((await consentThen(manager, alice, () => whoami(manager, alice))).sub).toBe('alice');

    const bobErr = await authRequired(whoami(manager, bob));
    expect(required.map((e) => e.userId)).toEqual(['alice', 'bob']);
    expect(bobErr.state).not.toBe(required[0]!.authorizationUrl.searchParams.get('state'));
    // Alice's consent did not leak to Bob: his request carried no token.
    expect(mcp.requests.filter((r) => r.sub === 'bob')).toHaveLength(0);

    const cb = await approve(bobErr.authorizationUrl, 'bob', REDIRECT);
    await manager.completeAuthorization(cb, { user: bob });
    const mark = mcp.requests.length;
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 ? whoami(manager, bob).then((r) => ['bob', r.sub]) : whoami(manager, alice).then((r) => ['alice', r.sub]))),
    );
    for (const [asked, got] of results) expect(got).toBe(asked);
    const after = mcp.requests.slice(mark);
    expect(after.every((r) => r.outcome === 'ok')).toBe(true);
    expect(new Set(after.map((r) => r.sub))).toEqual(new Set(['alice', 'bob']));
    // Each user's token is that user's: no token id was seen with two subjects.
    const subOfJti = new Map<string, Set<string>>();
    for (const r of mcp.requests.filter((x) => x.jti)) subOfJti.set(r.jti!, (subOfJti.get(r.jti!) ?? new Set()).add(r.sub!));
    for (const subs of subOfJti.values()) expect(subs.size).toBe(1);
  });
});

describe('callbacks', () => {
  it('replayed, tampered iss, missing iss, another user: refused, and never reach the token endpoint', async () => {
    const { manager } = makeManager();
    const alice = { id: 'alice' };
    const bob = { id: 'bob' };

    const e1 = await authRequired(whoami(manager, alice));
    const cb1 = new URL(await approve(e1.authorizationUrl, 'alice', REDIRECT));
    expect(cb1.searchParams.get('iss')).toBe(as.issuer);
    cb1.searchParams.set('iss', 'http://127.0.0.1:1');
    await authError(manager.completeAuthorization(cb1, { user: alice }), 'authorization_issuer_mismatch');

    const e2 = await authRequired(whoami(manager, alice));
    expect(e2.state).not.toBe(e1.state);
    const cb2 = new URL(await approve(e2.authorizationUrl, 'alice', REDIRECT));
    cb2.searchParams.delete('iss');
    await authError(manager.completeAuthorization(cb2, { user: alice }), 'authorization_issuer_mismatch');

    const e3 = await authRequired(whoami(manager, alice));
    const cb3 = await approve(e3.authorizationUrl, 'alice', REDIRECT);
    await authError(manager.completeAuthorization(cb3, { user: bob }), 'authorization_user_mismatch');
    expect(as.grants('authorization_code')).toHaveLength(0);

    const e4 = await authRequired(whoami(manager, alice));
    const cb4 = await approve(e4.authorizationUrl, 'alice', REDIRECT);
    await manager.completeAuthorization(cb4, { user: alice });
    await authError(manager.completeAuthorization(cb4, { user: alice }), 'authorization_invalid_state');
    await authError(manager.completeAuthorization(cb4), 'authorization_invalid_state');
    expect(as.grants('authorization_code')).toHaveLength(1);
    expect((await whoami(manager, alice)).sub).toBe('alice');
    // Bob got nothing from any of it.
    expect(mcp.subsSeen()).not.toContain('bob');
  });

  it('a callback after the flow expired is refused; the next call starts a new flow', async () => {
    let now = Date.now();
    const { manager, required } = makeManager({ flowTtlMs: 60_000, now: () => now });
    const alice = { id: 'alice' };
    const e1 = await authRequired(whoami(manager, alice));
    const cb = await approve(e1.authorizationUrl, 'alice', REDIRECT);
    now += 60_001;
    await authError(manager.completeAuthorization(cb, { user: alice }), 'authorization_invalid_state');
    expect(as.grants('authorization_code')).toHaveLength(0);

    const e2 = await authRequired(whoami(manager, alice));
    expect(e2.state).not.toBe(e1.state);
    expect(required).toHaveLength(2);
    await manager.completeAuthorization(await approve(e2.authorizationUrl, 'alice', REDIRECT), { user: alice });
    expect((await whoami(manager, alice)).sub).toBe('alice');
  });
});

describe('refresh', () => {
  it('a store that cannot take the rotated refresh token (outage) does not lose it: calls fail retryably until it is saved, then go on with it', async () => {
    let now = Date.now();
    const { manager, store } = makeManager({ now: () => now });
    const alice = { id: 'alice' };
    const key = { serverName: 'notes', userId: 'alice' };
    await consentThen(manager, alice, () => whoami(manager, alice));
    const rt1 = (await store.getTokens(key))!.refresh_token!;
    const setTokens = store.setTokens.bind(store);
    let down = true;
    store.setTokens = (k, t) => (down ? Promise.reject(new Error('store down')) : setTokens(k, t));

    now += 300_000;
    // Refreshed at the authorization server, but not stored: not used either (saved before use), and not lost.
    expect(await authError(whoami(manager, alice), 'authorization_failed')).toMatchObject({ retryable: true });
    const [first] = as.grants('refresh_token');
    expect(first).toMatchObject({ status: 200, refreshTokenPresented: rt1 });
    expect((await store.getTokens(key))!.refresh_token).toBe(rt1);
    const mark = mcp.requests.length;
    expect(await authError(whoami(manager, alice), 'authorization_failed')).toMatchObject({ retryable: true });
    expect(as.grants('refresh_token')).toHaveLength(1); // rt1 is never presented again
    expect(mcp.requests.slice(mark).filter((r) => r.outcome === 'ok')).toHaveLength(0);

    down = false;
    expect((await whoami(manager, alice)).sub).toBe('alice'); // saved now, and used
    expect((await store.getTokens(key))!.refresh_token).toBe(first!.refreshTokenIssued);
    now += 300_000;
    expect((await whoami(manager, alice)).sub).toBe('alice');
    expect(as.grants('refresh_token').map((g) => [g.refreshTokenPresented, g.status])).toEqual([
      [rt1, 200],
      [first!.refreshTokenIssued, 200],
    ]);
  });

  it('an expired access token is refreshed once, the rotated refresh token stored and the old one never presented again (20 concurrent calls → 1 refresh)', async () => {
    let now = Date.now();
    const { manager, store } = makeManager({ now: () => now });
    const alice = { id: 'alice' };
    await consentThen(manager, alice, () => whoami(manager, alice));
    const [code] = as.grants('authorization_code');
    const rt1 = code!.refreshTokenIssued!;
    expect(rt1).toBeDefined();
    const t1 = jtiOf(code!.accessToken!);

    now += 300_000; // the 300 s access token is past its refresh skew
    expect((await whoami(manager, alice)).sub).toBe('alice');
    const refreshes = as.grants('refresh_token');
    expect(refreshes).toHaveLength(1);
    expect(refreshes[0]).toMatchObject({ status: 200, refreshTokenPresented: rt1 });
    const rt2 = refreshes[0]!.refreshTokenIssued!;
    expect(rt2).toBeDefined();
    expect(rt2).not.toBe(rt1);
    const t2 = jtiOf(refreshes[0]!.accessToken!);
    expect(t2).not.toBe(t1);
    expect((await store.getTokens({ serverName: 'notes', userId: 'alice' }))?.refresh_token).toBe(rt2);
    expect(mcp.requests.at(-1)!.jti).toBe(t2);

    now += 300_000;
    const mark = mcp.requests.length;
    const results = await Promise.all(Array.from({ length: 20 }, () => whoami(manager, alice)));
    expect(results.every((r) => r.sub === 'alice')).toBe(true);
    const all = as.grants('refresh_token');
    expect(all).toHaveLength(2);
    expect(all[1]).toMatchObject({ status: 200, refreshTokenPresented: rt2 });
    const t3 = jtiOf(all[1]!.accessToken!);
    expect(new Set(mcp.requests.slice(mark).map((r) => r.jti))).toEqual(new Set([t3]));
    // Each refresh token was presented once.
    expect(all.filter((r) => r.refreshTokenPresented === rt1)).toHaveLength(1);
    expect(all.filter((r) => r.refreshTokenPresented === rt2)).toHaveLength(1);
    expect((await store.getTokens({ serverName: 'notes', userId: 'alice' }))?.refresh_token).toBe(all[1]!.refreshTokenIssued);
  });

  it('a token the server refuses is refreshed once, then the call succeeds', async () => {
    const { manager } = makeManager();
    const alice = { id: 'alice' };
    await consentThen(manager, alice, () => whoami(manager, alice));
    const refusedJtis = mcp.refuseTokensOf('alice');
    expect(refusedJtis).toHaveLength(1);
    const mark = mcp.requests.length;
    expect((await whoami(manager, alice)).sub).toBe('alice');
    expect(as.grants('refresh_token')).toHaveLength(1);
    const after = mcp.requests.slice(mark);
    expect(after.filter((r) => r.outcome === 'refused')).toHaveLength(1);
    expect(after.at(-1)!.outcome).toBe('ok');
    expect(after.at(-1)!.jti).toBe(jtiOf(as.grants('refresh_token')[0]!.accessToken!));
    // The refused token is not sent again.
    expect((await whoami(manager, alice)).sub).toBe('alice');
    expect(mcp.requests.slice(mark + 1).filter((r) => refusedJtis.includes(r.jti!))).toHaveLength(0);
  });

  it('concurrent calls whose token the server refuses: one refresh, not one per refused request', async () => {
    const { manager } = makeManager();
    const alice = { id: 'alice' };
    await consentThen(manager, alice, () => whoami(manager, alice));
    const refusedJtis = mcp.refuseTokensOf('alice');
    const gate = mcp.holdRefusals();
    try {
      const calls = Array.from({ length: 8 }, () => whoami(manager, alice));
      await gate.held(8);
      // The first refusal is answered; its refresh and retry complete before the other refusals are answered.
      gate.release(1);
      await Promise.race(calls);
      gate.stop();
      const results = await Promise.all(calls);
      expect(results.every((r) => r.sub === 'alice')).toBe(true);
    } finally {
      gate.stop();
    }
    expect(as.grants('refresh_token')).toHaveLength(1);
    expect(mcp.requests.filter((r) => r.outcome === 'refused')).toHaveLength(8);
    expect(refusedJtis).toHaveLength(1);
  });

  it('a refused refresh (invalid_grant) asks for consent again; neither the refused access token nor the dead refresh token is sent again', async () => {
    const { manager, required } = makeManager();
    const alice = { id: 'alice' };
    await consentThen(manager, alice, () => whoami(manager, alice));
    const rt = as.grants('authorization_code')[0]!.refreshTokenIssued!;
    const refusedJtis = mcp.refuseTokensOf('alice');
    expect(as.revokeRefreshTokens('alice')).toBeGreaterThan(0);
    const mark = mcp.requests.length;

    const err = await authRequired(whoami(manager, alice));
    expect(required).toHaveLength(2);
    expect(as.grants('refresh_token')).toEqual([expect.objectContaining({ refreshTokenPresented: rt, status: 400, error: 'invalid_grant' })]);
    // Again, before consent: the same flow, no token sent, no refresh tried.
    const again = await authRequired(whoami(manager, alice));
    expect(again.state).toBe(err.state);
    expect(as.grants('refresh_token')).toHaveLength(1);
    const sinceRefusal = mcp.requests.slice(mark);
    expect(sinceRefusal.filter((r) => refusedJtis.includes(r.jti!))).toHaveLength(1); // the one the server refused

    await manager.completeAuthorization(await approve(err.authorizationUrl, 'alice', REDIRECT), { user: alice });
    expect((await whoami(manager, alice)).sub).toBe('alice');
    expect(mcp.requests.slice(mark).filter((r) => refusedJtis.includes(r.jti!))).toHaveLength(1);
    expect(as.tokenRequests.filter((r) => r.refreshTokenPresented === rt)).toHaveLength(1);
  });
});

describe('step-up', () => {
  it('403 insufficient_scope → consent for the union of scopes → the call succeeds', async () => {
    const { manager, required } = makeManager();
    const alice = { id: 'alice' };
    const first = await consentThen(manager, alice, () => whoami(manager, alice));
    expect(first.scopes).not.toContain(ADMIN_SCOPE);

    const admin = () => manager.callTool({ user: alice, serverName: 'notes', toolName: 'admin_note' }) as Promise<CallToolResult>;
    const err = await authRequired(admin());
    expect(mcp.requests.filter((r) => r.outcome === 'insufficient_scope')).toHaveLength(1);
    const scope = err.authorizationUrl.searchParams.get('scope')!.split(' ');
    expect(scope).toEqual(expect.arrayContaining([READ_SCOPE, ADMIN_SCOPE]));
    expect(required).toHaveLength(2);

    await manager.completeAuthorization(await approve(err.authorizationUrl, 'alice', REDIRECT), { user: alice });
    const r = await admin();
    expect((r.content[0] as { text: string }).text).toBe('admin ok');
    const last = mcp.requests.at(-1)!;
    expect(last.outcome).toBe('ok');
    expect(last.scope!.split(' ')).toEqual(expect.arrayContaining([READ_SCOPE, ADMIN_SCOPE]));
    expect((await whoami(manager, alice)).scopes).toEqual(expect.arrayContaining([READ_SCOPE, ADMIN_SCOPE]));
  });

  it('a server that keeps answering insufficient_scope ends with a non-retryable authorization_scope_limit', async () => {
    const { manager } = makeManager({ maxStepUps: 1 });
    const alice = { id: 'alice' };
    await consentThen(manager, alice, () => whoami(manager, alice));
    mcp.stubbornScope = true;
    const admin = () => manager.callTool({ user: alice, serverName: 'notes', toolName: 'admin_note' });
    const err = await authRequired(admin());
    await manager.completeAuthorization(await approve(err.authorizationUrl, 'alice', REDIRECT), { user: alice });
    const limit = await authError(admin(), 'authorization_scope_limit');
    expect(limit.retryable).toBe(false);
    const asked = mcp.requests.filter((r) => r.outcome === 'insufficient_scope').length;
    await authError(admin(), 'authorization_scope_limit');
    // No new consent is asked for.
    expect(as.grants('authorization_code')).toHaveLength(2);
    expect(mcp.requests.filter((r) => r.outcome === 'insufficient_scope').length).toBe(asked + 1);
    // Other tools still work.
    expect((await whoami(manager, alice)).sub).toBe('alice');
  });
});

describe('revocation and app grants', () => {
  it('revokeAuthorization closes the connection without starting a flow; the next call needs consent again and carries no token', async () => {
    const { manager, required } = makeManager();
    const alice = { id: 'alice' };
    const bob = { id: 'bob' };
    await consentThen(manager, alice, () => whoami(manager, alice));
    await consentThen(manager, bob, () => whoami(manager, bob));
    expect(required).toHaveLength(2);
    const markRevoke = mcp.requests.length;
    await manager.revokeAuthorization({ user: alice, serverName: 'notes' });
    // Closing the session is not a call of Alice's: it must not start an authorization (nor be sent token-less into a 401).
    expect(required).toHaveLength(2);
    expect(mcp.requests.slice(markRevoke).filter((r) => r.outcome === 'none')).toHaveLength(0);

    const mark = mcp.requests.length;
    const err = await authRequired(whoami(manager, alice));
    expect(required).toHaveLength(3);
    expect(required[2]!.authorizationUrl.href).toBe(err.authorizationUrl.href);
    const after = mcp.requests.slice(mark);
    // A new connection (its first request is an initialize), and no token of Alice's on it.
    expect(after[0]?.rpc).toEqual(['initialize']);
    expect(after.every((r) => r.outcome === 'none')).toBe(true);
    // Bob's grant is untouched.
    expect((await whoami(manager, bob)).sub).toBe('bob');
  });

  it('client credentials on an app-level server: no user, one client_credentials grant', async () => {
    const manager = new MCPManager({
      servers: { reports: { url: mcp.url, oauth: { grant: 'client_credentials', clientId: as.appClient.clientId, clientSecret: as.appClient.clientSecret } } },
      oauth: { redirectUri: REDIRECT },
    });
    managers.push(manager);
    const call = async () => {
      const r = (await manager.callTool({ serverName: 'reports', toolName: 'whoami' })) as CallToolResult;
      return JSON.parse((r.content[0] as { text: string }).text) as { sub: string; scopes: string[] };
    };
    expect((await call()).sub).toBe(as.appClient.clientId);
    expect((await call()).sub).toBe(as.appClient.clientId);
    expect(as.grants('client_credentials')).toEqual([expect.objectContaining({ status: 200, clientId: as.appClient.clientId, resource: mcp.url })]);
    expect(as.grants('authorization_code')).toHaveLength(0);
    expect(mcp.requests.filter((r) => r.outcome === 'ok').every((r) => r.sub === as.appClient.clientId)).toBe(true);
  });
});

describe('against a stock oidc-provider', () => {
  beforeEach(() => {
    as.strict.offlineAccess = true;
    as.strict.registeredScope = true;
  });

  it('offline_access is asked for so that the AS issues a refresh token (with prompt=consent, OIDC Core §11): expiry refreshes, no new consent', async () => {
    let now = Date.now();
    const { manager, required } = makeManager({ now: () => now });
    const alice = { id: 'alice' };
    const err = await authRequired(whoami(manager, alice));
    const q = err.authorizationUrl.searchParams;
    expect(q.get('scope')!.split(' ')).toContain('offline_access');
    expect(q.get('prompt')).toBe('consent');
    await manager.completeAuthorization(await approve(err.authorizationUrl, 'alice', REDIRECT), { user: alice });
    expect(as.grants('authorization_code')[0]!.refreshTokenIssued).toBeDefined();
    now += 300_000;
    expect((await whoami(manager, alice)).sub).toBe('alice');
    expect(as.grants('refresh_token')).toHaveLength(1);
    expect(required).toHaveLength(1);
  });

  it('step-up works when the AS holds a dynamically registered client to its registered scope (RFC 7591 §2)', async () => {
    const { manager } = makeManager();
    const alice = { id: 'alice' };
    await consentThen(manager, alice, () => whoami(manager, alice));
    const admin = () => manager.callTool({ user: alice, serverName: 'notes', toolName: 'admin_note' }) as Promise<CallToolResult>;
    const err = await authRequired(admin());
    const callback = new URL(await approve(err.authorizationUrl, 'alice', REDIRECT));
    expect(callback.searchParams.get('error')).toBeNull();
    await manager.completeAuthorization(callback, { user: alice });
    expect(((await admin()).content[0] as { text: string }).text).toBe('admin ok');
  });
});
