/**
 * A "chat backend" written from the docs only (README, docs/oauth.md, docs/configuration.md, docs/extending.md):
 * per-user MCP OAuth run by the package, driven like a browser, plus elicitation and the host-run
 * (`userAuthHeaders`) step-up path. Real peers on 127.0.0.1 only.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest, type ElicitResult } from '@modelcontextprotocol/sdk/types.js';
import {
  AuthorizationError,
  AuthorizationRequiredError,
  MCPManager,
  MemoryOAuthStore,
  type AuthChallenge,
  type UserContext,
} from '../../src/index.js';
import { ADMIN_SCOPE, approve, startAuthServer, startProtectedMcpServer, type AuthServer, type ProtectedMcpServer } from '../support/oauthPeers.js';

const listen = (s: Server) => new Promise<string>((r) => s.listen(0, '127.0.0.1', () => r(`http://127.0.0.1:${(s.address() as AddressInfo).port}`)));
const closeServer = (s: Server) => new Promise<void>((r) => { s.closeAllConnections(); s.close(() => r()); });
const readBody = async (req: IncomingMessage) => { let b = ''; for await (const c of req) b += c; return b; };
const json = (res: ServerResponse, status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));

let as: AuthServer;
let mcp: ProtectedMcpServer;
let chat: Server;
let chatOrigin: string;
let redirectUri: string;
let manager: MCPManager;
const store = new MemoryOAuthStore();
let clock = 0; // offset added to the wall clock // the manager's `oauth.now` (TSDoc only; docs/oauth.md does not mention it)
let ivanReadToken = '';
const authRequiredEvents: { userId?: string; serverName: string }[] = [];

/** The signed-in user of a browser session: cookie `uid=<id>`. */
function sessionUser(cookie: string | undefined): UserContext | undefined {
  const id = /(?:^|;\s*)uid=([^;]+)/.exec(cookie ?? '')?.[1];
  return id ? { id } : undefined;
}

async function handle(req: IncomingMessage, res: ServerResponse) {
  if (req.method === 'POST' && req.url === '/chat') {
    const user = sessionUser(req.headers.cookie);
    if (!user) return json(res, 401, { error: 'sign in' });
    const { tool, args } = JSON.parse((await readBody(req)) || '{}') as { tool: string; args?: Record<string, unknown> };
    try {
      const result = await manager.callTool({ user, serverName: 'notes', toolName: tool, arguments: args });
      return json(res, 200, { result });
    } catch (err) {
      if (err instanceof AuthorizationRequiredError) return json(res, 401, { connect: err.authorizationUrl.href });
      if (err instanceof AuthorizationError) return json(res, 403, { error: err.code });
      return json(res, 500, { error: String(err) });
    }
  }
  // docs/oauth.md §2, verbatim apart from the base URL.
  if (!req.url?.startsWith('/oauth/callback')) return void res.writeHead(404).end();
  const user = sessionUser(req.headers.cookie);
  try {
    const { serverName } = await manager.completeAuthorization(new URL(req.url, 'https://chat.example.com'), user ? { user } : {});
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`Connected to ${serverName}. You can close this window.`);
  } catch (err) {
    const code = err instanceof AuthorizationError ? err.code : 'error';
    res.writeHead(code === 'authorization_failed' ? 502 : 400, { 'content-type': 'text/plain' }).end(`Could not connect (${code}).`);
  }
}

/** The browser of user `uid`. */
const browser = (uid: string) => ({
  chat: async (tool = 'whoami', args?: Record<string, unknown>) => {
    const res = await fetch(`${chatOrigin}/chat`, { method: 'POST', headers: { cookie: `uid=${uid}`, 'content-type': 'application/json' }, body: JSON.stringify({ tool, args }) });
    return { status: res.status, body: (await res.json()) as { connect?: string; result?: { content: { type: string; text: string }[] }; error?: string } };
  },
  open: async (callbackUrl: string) => {
    const res = await fetch(callbackUrl, { headers: { cookie: `uid=${uid}` } });
    return { status: res.status, text: await res.text() };
  },
  /** POST /chat → connect URL → consent at the AS → our callback. */
  connect: async (tool = 'whoami') => {
    const first = await browser(uid).chat(tool);
    expect(first.status).toBe(401);
    expect(first.body.connect).toBeDefined();
    const callback = await approve(first.body.connect!, uid, redirectUri);
    const cb = await browser(uid).open(callback);
    expect(cb).toEqual({ status: 200, text: 'Connected to notes. You can close this window.' });
    return { connectUrl: new URL(first.body.connect!), callback };
  },
});
const textOf = (r: { result?: { content: { text: string }[] } }) => r.result?.content.map((c) => c.text).join('') ?? '';
const okCallsOf = (sub: string) => mcp.requests.filter((r) => r.outcome === 'ok' && r.sub === sub && r.rpc.includes('tools/call'));

beforeAll(async () => {
  mcp = await startProtectedMcpServer({ issuer: () => as.issuer });
  as = await startAuthServer({ resource: mcp.url });
  chat = createServer((req, res) => void handle(req, res));
  chatOrigin = await listen(chat);
  redirectUri = `${chatOrigin}/oauth/callback`;
  manager = new MCPManager({
    servers: { notes: { url: mcp.url, oauth: {} } },
    oauth: { redirectUri, store, now: () => Date.now() + clock },
  });
  manager.on('authorizationRequired', (e) => authRequiredEvents.push({ userId: e.userId, serverName: e.serverName }));
});

afterAll(async () => {
  await manager?.close();
  if (chat) await closeServer(chat);
  await mcp?.close();
  await as?.close();
});

describe('chat backend with package-run MCP OAuth (docs/oauth.md)', () => {
  test('two fresh users connect concurrently; each call reaches the MCP server as its own user', async () => {
    await Promise.all(['alice', 'bob'].map((u) => browser(u).connect()));
    const [a, b] = await Promise.all([browser('alice').chat(), browser('bob').chat()]);
    expect(a.status).toBe(200);
    expect(b.status).toBe(200);
    expect(textOf(a.body)).toContain('alice');
    expect(textOf(b.body)).toContain('bob');
    expect(textOf(a.body)).not.toContain('bob');
    // Server side: the successful tool calls carried each user's own token.
    expect(okCallsOf('alice')).toHaveLength(1);
    expect(okCallsOf('bob')).toHaveLength(1);
    expect(authRequiredEvents.filter((e) => e.userId === 'alice')).toHaveLength(1);
  });

  test('opening the callback link twice: the second says the link expired, the connection stays', async () => {
    const { callback } = await browser('carol').connect();
    const again = await browser('carol').open(callback);
    expect(again).toEqual({ status: 400, text: 'Could not connect (authorization_invalid_state).' });
    const r = await browser('carol').chat();
    expect(r.status).toBe(200);
    expect(textOf(r.body)).toContain('carol');
  });

  test('another signed-in user opening my callback link is refused, and the flow is spent', async () => {
    const first = await browser('dave').chat();
    const callback = await approve(first.body.connect!, 'dave', redirectUri);
    expect(await browser('mallory').open(callback)).toEqual({ status: 400, text: 'Could not connect (authorization_user_mismatch).' });
    expect((await browser('dave').open(callback)).status).toBe(400); // spent
    expect((await browser('dave').chat()).status).toBe(401);
  });

  test('the user declines at the authorization server (error=access_denied)', async () => {
    const first = await browser('erin').chat();
    const url = new URL(first.body.connect!);
    const state = url.searchParams.get('state')!;
    const declined = new URL(redirectUri);
    declined.searchParams.set('error', 'access_denied');
    declined.searchParams.set('state', state);
    declined.searchParams.set('iss', as.issuer);
    expect(await browser('erin').open(declined.href)).toEqual({ status: 400, text: 'Could not connect (authorization_denied).' });
    // "Not connected": the next chat asks again, with a new flow.
    const next = await browser('erin').chat();
    expect(next.status).toBe(401);
    expect(new URL(next.body.connect!).searchParams.get('state')).not.toBe(state);
  });

  test('disconnect (revokeAuthorization), then chat again: consent is asked again, then it works', async () => {
    await browser('frank').connect();
    expect((await browser('frank').chat()).status).toBe(200);
    await manager.revokeAuthorization({ user: { id: 'frank' }, serverName: 'notes' });
    await browser('frank').connect(); // 401 + connect link again
    const r = await browser('frank').chat();
    expect(r.status).toBe(200);
    expect(textOf(r.body)).toContain('frank');
  });

  test('the access token expires (oauth.now): refreshed without asking the user again', async () => {
    await browser('grace').connect();
    expect((await browser('grace').chat()).status).toBe(200);
    const before = okCallsOf('grace').length;
    const oldJti = okCallsOf('grace').at(-1)!.jti;
    const refreshesBefore = as.grants('refresh_token').length;
    clock += 3600_000; // past the 300 s access token lifetime
    const r = await browser('grace').chat();
    expect(r.status).toBe(200);
    expect(okCallsOf('grace')).toHaveLength(before + 1);
    expect(as.grants('refresh_token').length).toBeGreaterThan(refreshesBefore);
    expect(okCallsOf('grace').at(-1)!.jti).not.toBe(oldJti);
  });

  test('the MCP server refuses the token (revoked server-side): one refresh, the call goes through', async () => {
    await browser('heidi').connect();
    expect((await browser('heidi').chat()).status).toBe(200); // the MCP server has now seen heidi's token
    const jtis = mcp.refuseTokensOf('heidi');
    const refreshesBefore = as.grants('refresh_token').length;
    const r = await browser('heidi').chat();
    expect(r.status).toBe(200);
    const last = okCallsOf('heidi').at(-1)!;
    expect(jtis.length).toBeGreaterThan(0);
    expect(jtis).not.toContain(last.jti);
    expect(mcp.requests.some((q) => q.outcome === 'refused' && q.sub === 'heidi')).toBe(true);
    expect(as.grants('refresh_token').length).toBe(refreshesBefore + 1);
  });

  test('scope step-up: admin_note asks for consent to notes:admin, then works', async () => {
    await browser('ivan').connect();
    ivanReadToken = (await store.getTokens({ serverName: 'notes', userId: 'ivan' }))!.access_token;
    const step = await browser('ivan').chat('admin_note');
    expect(step.status).toBe(401);
    expect(new URL(step.body.connect!).searchParams.get('scope')).toContain(ADMIN_SCOPE);
    const cb = await approve(step.body.connect!, 'ivan', redirectUri);
    expect((await browser('ivan').open(cb)).status).toBe(200);
    const r = await browser('ivan').chat('admin_note');
    expect(r.status).toBe(200);
    expect(mcp.requests.at(-1)).toMatchObject({ outcome: 'ok', sub: 'ivan', rpc: ['tools/call'] });
    expect(mcp.requests.at(-1)!.scope).toContain(ADMIN_SCOPE);
  });
});

describe('oauth.now as a test clock (TSDoc: "The clock, in ms since the epoch (tests)")', () => {
  // Revocation once compared flow and revocation times read from `oauth.now`: with a frozen test clock every flow
  // after a revoke was refused. Revocation now takes the user's started flows out of the flow store instead.
  test('with a frozen oauth.now clock, a user who disconnected connects again', async () => {
    const frozen = Date.now();
    const m2 = new MCPManager({ servers: { notes: { url: mcp.url, oauth: {} } }, oauth: { redirectUri, now: () => frozen } });
    const user = { id: 'judy' };
    const consent = async () => {
      const err = await m2.callTool({ user, serverName: 'notes', toolName: 'whoami' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AuthorizationRequiredError);
      const cb = await approve((err as AuthorizationRequiredError).authorizationUrl, user.id, redirectUri);
      await m2.completeAuthorization(cb, { user });
      expect((await m2.callTool({ user, serverName: 'notes', toolName: 'whoami' })).isError).toBeFalsy();
    };
    try {
      await consent();
      await m2.revokeAuthorization({ user, serverName: 'notes' });
      await consent(); // fails: AuthorizationError authorization_invalid_state "revoked after it started"
    } finally {
      await m2.close();
    }
  });
});

describe('host-run OAuth: userAuthHeaders with the challenge (docs/configuration.md)', () => {
  test('a 403 insufficient_scope gives the provider the challenge; the step-up token is sent on the resend', async () => {
    // The host's own token store: tokens for ivan obtained above (a read-only one and an admin one).
    const admin = (await store.getTokens({ serverName: 'notes', userId: 'ivan' }))!;
    expect(admin.scope).toContain(ADMIN_SCOPE);
    const calls: { user: string; forceRefresh: boolean; challenge?: AuthChallenge }[] = [];
    const hostManager = new MCPManager({
      servers: { notes: { url: mcp.url, oauth: {} } },
      userAuthHeaders: async ({ user, forceRefresh, challenge }) => {
        calls.push({ user: user.id, forceRefresh, challenge });
        if (user.id !== 'ivan') return undefined;
        return { Authorization: `Bearer ${challenge?.error === 'insufficient_scope' ? admin.access_token : ivanReadToken}` };
      },
    });
    try {
      const r = await hostManager.callTool({ user: { id: 'ivan' }, serverName: 'notes', toolName: 'admin_note' });
      expect(r.isError).toBeFalsy();
      const stepUp = calls.find((c) => c.challenge);
      expect(stepUp).toMatchObject({ user: 'ivan', forceRefresh: true, challenge: { status: 403, error: 'insufficient_scope' } });
      expect(stepUp!.challenge!.scope).toContain(ADMIN_SCOPE);
      // Server side: the refused request carried ivan's read token, the resend ivan's admin token.
      const [refused, ok] = mcp.requests.filter((q) => q.rpc.includes('tools/call')).slice(-2);
      expect(refused).toMatchObject({ outcome: 'insufficient_scope', sub: 'ivan' });
      expect(ok).toMatchObject({ outcome: 'ok', sub: 'ivan' });
      expect(ok!.scope).toContain(ADMIN_SCOPE);
    } finally {
      await hostManager.close();
    }
  });
});

describe('elicitation (docs/extending.md)', () => {
  test('a tool asks the user mid-call; onElicitation gets the calling user', async () => {
    const transports = new Map<string, StreamableHTTPServerTransport>();
    const http = createServer(async (req, res) => {
      const sid = req.headers['mcp-session-id'] as string | undefined;
      const body = req.method === 'POST' ? JSON.parse(await readBody(req)) : undefined;
      let transport = sid ? transports.get(sid) : undefined;
      if (!transport && req.method === 'POST' && isInitializeRequest(body)) {
        const server = new McpServer({ name: 'asker', version: '1.0.0' });
        server.registerTool('pick_color', { description: 'asks the user for a color' }, async (extra) => {
          const answer = await server.server.elicitInput({
            mode: 'form',
            message: 'Which color?',
            requestedSchema: { type: 'object', properties: { color: { type: 'string' } }, required: ['color'] },
          });
          const who = extra.requestInfo?.headers['x-user'];
          return { content: [{ type: 'text', text: `${who}:${answer.action}:${String(answer.content?.color)}` }] };
        });
        const t: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (id) => void transports.set(id, t),
        });
        await server.connect(t);
        transport = t;
      }
      if (!transport) return void res.writeHead(404).end();
      await transport.handleRequest(req, res, body);
    });
    const origin = await listen(http);
    const seen: { user?: string; serverName: string; message?: string }[] = [];
    const m = new MCPManager({
      servers: { asker: { url: `${origin}/mcp`, headers: { 'X-User': '{{user.id}}' } } },
      onElicitation: async (request, { user, serverName }): Promise<ElicitResult> => {
        seen.push({ user: user?.id, serverName, message: request.message });
        if (!user) return { action: 'decline' };
        return { action: 'accept', content: { color: user.id === 'alice' ? 'red' : 'blue' } };
      },
    });
    try {
      const [a, b] = await Promise.all([
        m.callTool({ user: { id: 'alice' }, serverName: 'asker', toolName: 'pick_color' }),
        m.callTool({ user: { id: 'bob' }, serverName: 'asker', toolName: 'pick_color' }),
      ]);
      expect(a.content).toEqual([{ type: 'text', text: 'alice:accept:red' }]);
      expect(b.content).toEqual([{ type: 'text', text: 'bob:accept:blue' }]);
      expect(seen.sort((x, y) => String(x.user).localeCompare(String(y.user)))).toEqual([
        { user: 'alice', serverName: 'asker', message: 'Which color?' },
        { user: 'bob', serverName: 'asker', message: 'Which color?' },
      ]);
    } finally {
      await m.close();
      for (const t of transports.values()) await t.close();
      await closeServer(http);
    }
  });
});
