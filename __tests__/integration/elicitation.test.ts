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
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { ErrorCode, McpError, type ClientCapabilities, type ElicitRequest, type ElicitResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { MCPManager } from '../../src/MCPManager.js';
import type { ElicitationRequest, ServerRequestContext } from '../../src/MCPConnection.js';
import type { MCPManagerEvents } from '../../src/events.js';
import type { UserContext } from '../../src/types.js';
import { listenOnLoopback, type Listening } from '../support/http.js';
import { firstText } from '../support/mcp.js';

/** What `ask` answers. */
interface Answer {
  /** The user of the session the tool ran on (`X-User`), `app` without one. */
  sessionUser: string;
  capabilities: ClientCapabilities | undefined;
  result?: ElicitResult;
  error?: { code: number | undefined; message: string };
}

/** A streamable HTTP server with one McpServer per session, which knows the session's user. */
async function startAskServer(): Promise<Listening> {
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  const server = createServer((req, res) => {
    void (async () => {
      const sid = req.headers['mcp-session-id'];
      let transport = typeof sid === 'string' ? sessions.get(sid) : undefined;
      if (!transport) {
        if (req.method !== 'POST' || sid !== undefined) {
          res.writeHead(404).end();
          return;
        }
        const sessionUser = typeof req.headers['x-user'] === 'string' ? req.headers['x-user'] : 'app';
        const mcp = new McpServer({ name: 'asker', version: '1.0.0' });
        mcp.registerTool('ask', { inputSchema: { params: z.string() } }, async ({ params }, extra) => {
          const request = JSON.parse(params) as ElicitRequest['params'];
          const answer: Answer = { sessionUser, capabilities: mcp.server.getClientCapabilities() };
          try {
            answer.result = await mcp.server.elicitInput(request, { relatedRequestId: extra.requestId });
            if (request.mode === 'url' && answer.result.action === 'accept') {
              await mcp.server.createElicitationCompletionNotifier(request.elicitationId, { relatedRequestId: extra.requestId })();
            }
          } catch (err) {
            answer.error = { code: err instanceof McpError ? err.code : undefined, message: (err as Error).message };
          }
          return { content: [{ type: 'text', text: JSON.stringify(answer) }] };
        });
        const created: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (id) => void sessions.set(id, created),
        });
        created.onclose = () => {
          if (created.sessionId) sessions.delete(created.sessionId);
        };
        await mcp.connect(created);
        transport = created;
      }
      await transport.handleRequest(req, res);
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  return listenOnLoopback(server);
}

const alice: UserContext = { id: 'alice', tenantId: 'contoso' };
const bob: UserContext = { id: 'bob', tenantId: 'fabrikam' };

/** Every SEP-1034 default kind, all fields optional. */
const withDefaults: ElicitRequest['params'] = {
  message: 'Profile',
  requestedSchema: {
    type: 'object',
    properties: {
      name: { type: 'string', default: 'John Doe' },
      age: { type: 'integer', default: 30 },
      score: { type: 'number', default: 95.5 },
      status: { type: 'string', enum: ['active', 'inactive', 'pending'], default: 'active' },
      verified: { type: 'boolean', default: true },
    },
    required: [],
  },
};
/** One required field, no default. */
const whoAreYou: ElicitRequest['params'] = {
  message: 'Who are you?',
  requestedSchema: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] },
};

async function ask(m: MCPManager, serverName: string, user: UserContext | undefined, params: ElicitRequest['params']): Promise<Answer> {
  const result = await m.callTool({ ...(user ? { user } : {}), serverName, toolName: 'ask', arguments: { params: JSON.stringify(params) } });
  return JSON.parse(firstText(result)!) as Answer;
}

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
