/**
 * Elicitation through `MCPManager({ onElicitation })` against a real SDK server over streamable HTTP on
 * 127.0.0.1. Each session is an `McpServer` that knows its user (from `X-User`, as a server would from its
 * bearer); its tool `ask` sends `server.elicitInput(...)` with the params it is given (on the call's own stream)
 * and answers the session's user, the client's capabilities and the elicitation's result (or its error), so
 * every assertion is on what the server saw:
 * - the capability is declared only with a handler;
 * - form mode: accept with the SEP-1034 defaults filled in (string, integer, number, enum, boolean), decline,
 *   cancel; URL mode with the completion notification as the `elicitationComplete` event;
 * - two users on one user-scoped server: each request reaches the handler with its own `ctx.user`, and the
 *   server sees the answer on that user's session; a shared (app-level) server's request has no user;
 * - a throwing handler: the server gets a JSON-RPC error, the connection stays up.
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { ErrorCode, type ElicitRequest, type ElicitResult } from '@modelcontextprotocol/sdk/types.js';
import { MCPManager } from '../../src/MCPManager.js';
import type { ElicitationRequest, ServerRequestContext } from '../../src/MCPConnection.js';
import type { MCPManagerEvents } from '../../src/events.js';
import type { UserContext } from '../../src/types.js';
import { ask, registerAskTool, withDefaults } from '../support/elicitation.js';
import { listenOnLoopback, type Listening } from '../support/http.js';
import { perSessionMcpServer } from '../support/sessionServer.js';

/** A streamable HTTP server with one McpServer per session, which knows the session's user and has `ask`. */
async function startAskServer(): Promise<Listening> {
  const server = perSessionMcpServer((req) => {
    const mcp = new McpServer({ name: 'asker', version: '1.0.0' });
    registerAskTool(mcp, typeof req.headers['x-user'] === 'string' ? req.headers['x-user'] : 'app');
    return mcp;
  });
  return listenOnLoopback(server);
}

const alice: UserContext = { id: 'alice', tenantId: 'contoso' };
const bob: UserContext = { id: 'bob', tenantId: 'fabrikam' };

/** One required field, no default. */
const whoAreYou: ElicitRequest['params'] = {
  message: 'Who are you?',
  requestedSchema: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] },
};

let http: Listening;
const cleanups: (() => Promise<void>)[] = [];
beforeAll(async () => {
  http = await startAskServer();
  cleanups.push(() => http.close());
});
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function manager(onElicitation?: (request: ElicitationRequest, ctx: ServerRequestContext) => Promise<ElicitResult>): MCPManager {
  const m = new MCPManager({
    servers: {
      // `{{user.id}}` in a header: user-scoped, one session per user.
      perUser: { type: 'streamable-http', url: `${http.origin}/mcp`, headers: { 'X-User': '{{user.id}}' } },
      shared: { type: 'streamable-http', url: `${http.origin}/mcp` },
    },
    ...(onElicitation ? { onElicitation } : {}),
  });
  cleanups.push(() => m.close());
  return m;
}

describe('elicitation over streamable HTTP', () => {
  it('declares no elicitation capability without a handler: the server cannot ask', async () => {
    const m = manager();
    const answer = await ask(m, 'perUser', alice, withDefaults);
    expect(answer.sessionUser).toBe('alice');
    expect(answer.capabilities?.elicitation).toBeUndefined();
    expect(answer.error?.message).toMatch(/does not support form elicitation/);
    await m.close();
  });

  describe('with onElicitation', () => {
    const calls: { request: ElicitationRequest; ctx: ServerRequestContext }[] = [];
    let answerWith: (request: ElicitationRequest, ctx: ServerRequestContext) => ElicitResult = () => ({ action: 'decline' });
    let m: MCPManager;
    beforeAll(() => {
      m = manager(async (request, ctx) => {
        calls.push({ request, ctx });
        return answerWith(request, ctx);
      });
    });
    afterEach(() => void calls.splice(0));

    it('declares { form: {}, url: {} }', async () => {
      answerWith = () => ({ action: 'decline' });
      expect((await ask(m, 'perUser', alice, withDefaults)).capabilities?.elicitation).toEqual({ form: {}, url: {} });
    });

    it('form mode, accept: the server receives every default for the fields left out', async () => {
      answerWith = () => ({ action: 'accept', content: {} });
      const answer = await ask(m, 'perUser', alice, withDefaults);
      expect(answer.error).toBeUndefined();
      expect(answer.result).toEqual({ action: 'accept', content: { name: 'John Doe', age: 30, score: 95.5, status: 'active', verified: true } });
      expect(calls[0]!.request).toMatchObject({ mode: 'form', message: 'Profile' });
    });

    it('form mode, decline and cancel', async () => {
      answerWith = () => ({ action: 'decline' });
      expect((await ask(m, 'perUser', alice, withDefaults)).result).toEqual({ action: 'decline' });
      answerWith = () => ({ action: 'cancel' });
      expect((await ask(m, 'perUser', alice, withDefaults)).result).toEqual({ action: 'cancel' });
    });

    it('URL mode: the handler decides; the completion notification is the elicitationComplete event', async () => {
      answerWith = (request) => (request.mode === 'url' && new URL(request.url).hostname === 'auth.example.com' ? { action: 'accept' } : { action: 'decline' });
      const completed = new Promise<MCPManagerEvents['elicitationComplete']>((resolve) => m.once('elicitationComplete', resolve));
      const accepted = await ask(m, 'perUser', bob, { mode: 'url', message: 'Connect', url: 'https://auth.example.com/start', elicitationId: 'el-42' });
      expect(accepted.result).toEqual({ action: 'accept' });
      expect(calls[0]!.request).toEqual({ mode: 'url', message: 'Connect', url: 'https://auth.example.com/start', elicitationId: 'el-42' });
      expect(await completed).toEqual({ serverName: 'perUser', scope: 'user', userId: 'bob', tenantId: 'fabrikam', elicitationId: 'el-42' });
      const declined = await ask(m, 'perUser', bob, { mode: 'url', message: 'Connect', url: 'https://elsewhere.example.com/', elicitationId: 'el-43' });
      expect(declined.result).toEqual({ action: 'decline' });
    });

    it('two users on one user-scoped server: each request is answered by that user, on that user’s session', async () => {
      answerWith = (_request, { user }) => (user ? { action: 'accept', content: { name: user.id } } : { action: 'decline' });
      const a = await ask(m, 'perUser', alice, whoAreYou);
      const b = await ask(m, 'perUser', bob, whoAreYou);
      expect([a.sessionUser, a.result]).toEqual(['alice', { action: 'accept', content: { name: 'alice' } }]);
      expect([b.sessionUser, b.result]).toEqual(['bob', { action: 'accept', content: { name: 'bob' } }]);
      expect(calls.map(({ ctx }) => [ctx.serverName, ctx.user?.id, ctx.user?.tenantId])).toEqual([
        ['perUser', 'alice', 'contoso'],
        ['perUser', 'bob', 'fabrikam'],
      ]);
    });

    it('a shared (app-level) server: the request has no user, even when a user made the call', async () => {
      answerWith = (_request, { user }) => (user ? { action: 'accept', content: { name: user.id } } : { action: 'decline' });
      const viaAlice = await ask(m, 'shared', alice, whoAreYou);
      const anonymous = await ask(m, 'shared', undefined, whoAreYou);
      expect([viaAlice.sessionUser, viaAlice.result]).toEqual(['app', { action: 'decline' }]);
      expect([anonymous.sessionUser, anonymous.result]).toEqual(['app', { action: 'decline' }]);
      expect(calls.map(({ ctx }) => [ctx.serverName, 'user' in ctx])).toEqual([
        ['shared', false],
        ['shared', false],
      ]);
    });

    it('a throwing handler: the server gets a JSON-RPC error; the connection stays up', async () => {
      answerWith = () => {
        throw new Error('host is down');
      };
      const failed = await ask(m, 'perUser', alice, withDefaults);
      expect(failed.result).toBeUndefined();
      expect(failed.error?.code).toBe(ErrorCode.InternalError);
      expect(failed.error?.message).not.toContain('host is down');
      answerWith = () => ({ action: 'accept', content: { name: 'Ada' } });
      const after = await ask(m, 'perUser', alice, withDefaults);
      expect(after.result).toEqual({ action: 'accept', content: { name: 'Ada', age: 30, score: 95.5, status: 'active', verified: true } });
    });

    it('content that does not match the schema never reaches the server as an answer', async () => {
      answerWith = () => ({ action: 'accept', content: { name: 42 } as unknown as Record<string, string> });
      const answer = await ask(m, 'perUser', alice, whoAreYou);
      expect(answer.result).toBeUndefined();
      expect(answer.error?.message).toMatch(/does not match the requested schema/);
    });
  });
});
