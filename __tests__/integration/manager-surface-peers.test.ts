/**
 * The manager's client surface against SDK servers of our own on 127.0.0.1 (streamable HTTP), for what
 * server-everything cannot show from the outside. Each server records, for every HTTP request it receives, who
 * sent it (a verified bearer's subject, or the `X-User` header) and the JSON-RPC messages in it:
 * - cancellation reaching the server: an aborted `callTool` rejects with `aborted`, and the server receives
 *   `notifications/cancelled` for that very request (server-everything's long-running tool ignores cancellation
 *   and logs nothing of it, so it could not show this);
 * - `listChanged`: a server that adds a tool, a prompt and a resource at runtime; the manager reports
 *   `toolsChanged` / `promptsChanged` / `resourcesChanged` naming the server and the user, and the next list
 *   comes from the server, not the dropped cache;
 * - per-caller credentials on the new operations: two users' `readResource`, `getPrompt`, `complete` and
 *   `listResources` through one manager with On-Behalf-Of; each request's bearer, verified by the server, is
 *   its own user's.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import {
  CompleteRequestSchema,
  GetPromptRequestSchema,
  ListResourcesRequestSchema,
  ReadResourceRequestSchema,
  type RequestId,
} from '@modelcontextprotocol/sdk/types.js';
import { createBearerVerifier } from '../../src/auth/bearerVerifier.js';
import { SwitchboardError } from '../../src/errors.js';
import { MCPManager } from '../../src/MCPManager.js';
import { startTestIdp, type TestIdp } from '../../src/testing/testIdp.js';
import type { UserContext } from '../../src/types.js';
import { deferred } from '../support/deferred.js';
import { rejectionOf } from '../support/errors.js';
import { listenOnLoopback, readJson } from '../support/http.js';
import { testIdpResolver } from '../support/idp.js';
import { firstText, nextManagerEvent } from '../support/mcp.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** One JSON-RPC message as the server received it, with who sent the HTTP request carrying it. */
interface Received {
  subject: string;
  sessionId: string | undefined;
  message: { method?: string; id?: RequestId; params?: Record<string, unknown> };
}

/**
 * A streamable HTTP server with one MCP server per session (built by `open` for the subject of the request that
 * opened it). `identify` names the sender of every request (throw → 401, nothing handled); the subject reaches
 * the handlers as `extra.authInfo.extra.subject`. Every request and every JSON-RPC message is recorded.
 */
async function startPeer(identify: (req: IncomingMessage) => Promise<string>, open: (subject: string) => McpServer | Server) {
  const received: Received[] = [];
  const requests: { httpMethod: string; subject: string | undefined; sessionId: string | undefined }[] = [];
  const waiters = new Set<() => void>();
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  const http = createServer((req: IncomingMessage & { auth?: AuthInfo }, res) => {
    void (async () => {
      const sid = req.headers['mcp-session-id'];
      const sessionId = typeof sid === 'string' ? sid : undefined;
      let subject: string;
      try {
        subject = await identify(req);
      } catch {
        requests.push({ httpMethod: req.method ?? '', subject: undefined, sessionId });
        res.writeHead(401, { 'WWW-Authenticate': 'Bearer error="invalid_token"' }).end();
        return;
      }
      requests.push({ httpMethod: req.method ?? '', subject, sessionId });
      const body = req.method === 'POST' ? await readJson(req) : undefined;
      for (const message of body === undefined ? [] : Array.isArray(body) ? body : [body]) received.push({ subject, sessionId, message: message as Received['message'] });
      for (const wake of [...waiters]) wake();
      req.auth = { token: '', clientId: 'peer', scopes: [], extra: { subject } };
      let transport = sessionId ? sessions.get(sessionId) : undefined;
      if (!transport) {
        if (req.method !== 'POST' || sessionId !== undefined) {
          res.writeHead(404).end();
          return;
        }
        const created: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (id) => void sessions.set(id, created),
        });
        await open(subject).connect(created);
        transport = created;
      }
      await transport.handleRequest(req, res, body);
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  const listening = await listenOnLoopback(http);
  cleanups.push(async () => {
    await Promise.all([...sessions.values()].map((t) => t.close().catch(() => {})));
    await listening.close();
  });
  return {
    url: `${listening.origin}/mcp`,
    received,
    requests,
    /** Resolves with the first received message matching `test` (already received, or when it arrives). */
    waitFor(test: (r: Received) => boolean): Promise<Received> {
      return new Promise((resolve) => {
        const check = () => {
          const found = received.find(test);
          if (!found) return;
          waiters.delete(check);
          resolve(found);
        };
        waiters.add(check);
        check();
      });
    },
    /** How many requests of `method` `subject` sent. */
    count(subject: string, method: string): number {
      return received.filter((r) => r.subject === subject && r.message.method === method).length;
    },
  };
}

const byUserHeader = async (req: IncomingMessage) => {
  const user = req.headers['x-user'];
  if (typeof user !== 'string' || user === '') throw new Error('no user');
  return user;
};

function managerOf(options: ConstructorParameters<typeof MCPManager>[0]): MCPManager {
  const m = new MCPManager(options);
  cleanups.push(() => m.close());
  return m;
}


const alice: UserContext = { id: 'alice', tenantId: 'contoso' };
const bob: UserContext = { id: 'bob', tenantId: 'fabrikam' };

describe('cancellation reaches the server', () => {
  it('an aborted callTool rejects with `aborted`; the server receives notifications/cancelled for that request and its handler is aborted', async () => {
    const started = deferred<RequestId>();
    const handlerAborted = deferred<unknown>();
    const peer = await startPeer(byUserHeader, () => {
      const mcp = new McpServer({ name: 'waiter', version: '1.0.0' });
      // Never answers on its own: only a cancellation ends it.
      mcp.registerTool('wait', {}, (extra) => {
        started.resolve(extra.requestId);
        return new Promise((resolve) => {
          extra.signal.addEventListener('abort', () => {
            handlerAborted.resolve(extra.signal.reason);
            resolve({ content: [{ type: 'text', text: 'cancelled' }] });
          });
        });
      });
      mcp.registerTool('ping', {}, async () => ({ content: [{ type: 'text', text: 'pong' }] }));
      return mcp;
    });
    const manager = managerOf({ servers: { waiter: { url: peer.url, headers: { 'X-User': '{{user.id}}' } } } });

    const controller = new AbortController();
    const call = manager.callTool({ user: alice, serverName: 'waiter', toolName: 'wait', signal: controller.signal, timeoutMs: 60_000 });
    const requestId = await started.promise; // the server is running the call
    controller.abort();
    const err = await rejectionOf(call, SwitchboardError);
    expect(err).toMatchObject({ code: 'aborted', serverName: 'waiter' });

    const cancelled = await peer.waitFor((r) => r.message.method === 'notifications/cancelled');
    expect(cancelled.subject).toBe('alice');
    expect(cancelled.message.params?.requestId).toBe(requestId);
    const toolCall = peer.received.find((r) => r.message.method === 'tools/call' && r.message.id === requestId)!;
    expect(cancelled.sessionId).toBe(toolCall.sessionId);
    await handlerAborted.promise; // the SDK server acted on it

    // The connection is still good.
    expect(firstText(await manager.callTool({ user: alice, serverName: 'waiter', toolName: 'ping' }))).toBe('pong');
    expect(manager.stats().userPool.connects).toBe(1);
  });
});

describe('listChanged through the manager', () => {
  /** A server per session that grows a tool, a prompt and a resource when `grow` is called. */
  function growingServer() {
    let grown = 0;
    return (subject: string) => {
      const mcp = new McpServer({ name: 'growing', version: '1.0.0' });
      // McpServer would also send list_changed on its own when something is registered after connect, outside
      // the call (on the standby stream, whose timing against the call's stream is not fixed): only the
      // notifications sent within the call here, so that the counts below are exact.
      mcp.sendToolListChanged = mcp.sendPromptListChanged = mcp.sendResourceListChanged = () => {};
      mcp.registerPrompt('base', {}, () => ({ messages: [{ role: 'user', content: { type: 'text', text: `base for ${subject}` } }] }));
      mcp.registerResource('base', 'grow://base', {}, async (uri) => ({ contents: [{ uri: uri.href, text: 'base' }] }));
      mcp.registerTool('grow', {}, async (extra) => {
        const name = `added-${++grown}`;
        mcp.registerTool(name, {}, async () => ({ content: [{ type: 'text', text: name }] }));
        mcp.registerPrompt(name, {}, () => ({ messages: [{ role: 'user', content: { type: 'text', text: name } }] }));
        mcp.registerResource(name, `grow://${name}`, {}, async (uri) => ({ contents: [{ uri: uri.href, text: name }] }));
        await extra.sendNotification({ method: 'notifications/tools/list_changed' });
        await extra.sendNotification({ method: 'notifications/prompts/list_changed' });
        await extra.sendNotification({ method: 'notifications/resources/list_changed' });
        return { content: [{ type: 'text', text: name }] };
      });
      return mcp;
    };
  }

  it('toolsChanged / promptsChanged / resourcesChanged name the server and the user; the next lists are fetched again, for that user only', async () => {
    const peer = await startPeer(byUserHeader, growingServer());
    const manager = managerOf({ servers: { growing: { url: peer.url, headers: { 'X-User': '{{user.id}}' } } } });
    const events: { event: string; payload: object }[] = [];
    for (const event of ['toolsChanged', 'promptsChanged', 'resourcesChanged'] as const) manager.on(event, (payload) => events.push({ event, payload }));
    const serverName = 'growing';
    const lists = async (user: UserContext) => ({
      tools: (await manager.listTools({ user, serverName })).map((t) => t.name).sort(),
      prompts: (await manager.listPrompts({ user, serverName })).map((p) => p.name).sort(),
      resources: (await manager.listResources({ user, serverName })).map((r) => r.uri).sort(),
    });
    const before = { tools: ['grow'], prompts: ['base'], resources: ['grow://base'] };
    expect(await lists(alice)).toEqual(before);
    expect(await lists(bob)).toEqual(before);
    expect(await lists(alice)).toEqual(before); // cached: nothing asked again
    expect(['tools/list', 'prompts/list', 'resources/list'].map((m) => peer.count('alice', m))).toEqual([1, 1, 1]);

    const changed = Promise.all([
      nextManagerEvent(manager, 'toolsChanged', (e) => e.userId === 'alice'),
      nextManagerEvent(manager, 'promptsChanged', (e) => e.userId === 'alice'),
      nextManagerEvent(manager, 'resourcesChanged', (e) => e.userId === 'alice'),
    ]);
    expect(firstText(await manager.callTool({ user: alice, serverName, toolName: 'grow' }))).toBe('added-1');
    for (const e of await changed) expect(e).toEqual({ serverName, scope: 'user', userId: 'alice', tenantId: 'contoso' });

    // The caches were dropped: the lists are asked again, and have the new entries.
    expect(await lists(alice)).toEqual({ tools: ['added-1', 'grow'], prompts: ['added-1', 'base'], resources: ['grow://added-1', 'grow://base'] });
    expect(['tools/list', 'prompts/list', 'resources/list'].map((m) => peer.count('alice', m))).toEqual([2, 2, 2]);
    // Bob's session did not change: no event names him, his lists stay cached.
    expect(await lists(bob)).toEqual(before);
    expect(['tools/list', 'prompts/list', 'resources/list'].map((m) => peer.count('bob', m))).toEqual([1, 1, 1]);
    const forAlice = { serverName, scope: 'user', userId: 'alice', tenantId: 'contoso' };
    expect(events).toEqual([
      { event: 'toolsChanged', payload: forAlice },
      { event: 'promptsChanged', payload: forAlice },
      { event: 'resourcesChanged', payload: forAlice },
    ]);
  });
});

describe('per-caller credentials on the new operations (On-Behalf-Of)', () => {
  let idp: TestIdp;
  beforeAll(async () => {
    idp = await startTestIdp({ exchangedTokenTtlSec: 300 });
  });
  afterAll(async () => {
    await idp.close();
  });

  /** Who the handler of each request was told it serves (its bearer's subject), and whom the request was about. */
  interface Served {
    method: string;
    subject: string;
    about: string | undefined;
  }

  /** A low-level SDK server answering resources, prompts and completions with the subject of each request's bearer. */
  function notesServer(served: Served[]) {
    return () => {
      const server = new Server({ name: 'notes', version: '1.0.0' }, { capabilities: { resources: {}, prompts: {}, completions: {} } });
      const subjectOf = (extra: { authInfo?: AuthInfo }) => String(extra.authInfo?.extra?.subject);
      server.setRequestHandler(ListResourcesRequestSchema, async (_req, extra) => {
        const subject = subjectOf(extra);
        served.push({ method: 'resources/list', subject, about: undefined });
        return { resources: [{ uri: `note://${subject}/today`, name: 'today' }] };
      });
      server.setRequestHandler(ReadResourceRequestSchema, async (req, extra) => {
        const subject = subjectOf(extra);
        served.push({ method: 'resources/read', subject, about: /^note:\/\/([^/]+)\//.exec(req.params.uri)?.[1] });
        return { contents: [{ uri: req.params.uri, text: `note of ${subject}` }] };
      });
      server.setRequestHandler(GetPromptRequestSchema, async (req, extra) => {
        const subject = subjectOf(extra);
        served.push({ method: 'prompts/get', subject, about: req.params.arguments?.for });
        return { messages: [{ role: 'user', content: { type: 'text', text: `brief for ${subject}` } }] };
      });
      server.setRequestHandler(CompleteRequestSchema, async (req, extra) => {
        const subject = subjectOf(extra);
        served.push({ method: 'completion/complete', subject, about: req.params.argument.value });
        return { completion: { values: [subject] } };
      });
      return server;
    };
  }

  it('two users through one manager: every request the server verifies carries its own caller’s identity, 0 mismatches', async () => {
    const verifier = createBearerVerifier({ issuer: idp.issuer, audience: idp.downstreamAudience, allowInsecureRequests: true });
    const served: Served[] = [];
    const peer = await startPeer(async (req) => (await verifier.verify(req.headers.authorization)).subject, notesServer(served));
    const manager = managerOf({
      servers: { notes: { url: peer.url, obo: { scopes: `${idp.downstreamAudience}/.default` } } },
      oboTokenResolver: testIdpResolver(idp, { timeoutMs: 60_000 }),
    });
    const users = await Promise.all(
      [alice, bob].map(async (u) => ({ ...u, upstreamToken: await idp.mintAccessToken({ sub: u.id, ...(u.tenantId ? { tenantId: u.tenantId } : {}) }) })),
    );
    const serverName = 'notes';
    const ROUNDS = 3;

    // Interleaved: both users' operations in flight at once, on their two connections.
    const outcomes = await Promise.all(
      Array.from({ length: ROUNDS }, () => users).flat().map(async (user) => {
        const [read, prompt, completion, resources] = await Promise.all([
          manager.readResource({ user, serverName, uri: `note://${user.id}/today` }),
          manager.getPrompt({ user, serverName, name: 'brief', arguments: { for: user.id } }),
          manager.complete({ user, serverName, ref: { type: 'ref/prompt', name: 'brief' }, argument: { name: 'for', value: user.id } }),
          manager.listResources({ user, serverName }),
        ]);
        return {
          user: user.id,
          got: [
            (read.contents[0] as { text: string }).text,
            (prompt.messages[0]!.content as { text: string }).text,
            completion.values.join(','),
            resources.map((r) => r.uri).join(','),
          ],
        };
      }),
    );
    // What each caller got back was made for them...
    for (const { user, got } of outcomes) expect(got).toEqual([`note of ${user}`, `brief for ${user}`, user, `note://${user}/today`]);

    // ... because each request carried their own bearer (verified by the server; none refused).
    expect(peer.requests.filter((r) => r.subject === undefined)).toEqual([]);
    const mismatches = served.filter((s) => s.about !== undefined && s.about !== s.subject);
    expect(mismatches).toEqual([]);
    for (const user of ['alice', 'bob']) {
      for (const method of ['resources/read', 'prompts/get', 'completion/complete']) {
        expect([user, method, served.filter((s) => s.subject === user && s.about === user && s.method === method).length]).toEqual([user, method, ROUNDS]);
      }
      expect(served.filter((s) => s.method === 'resources/list' && s.subject === user).length).toBeGreaterThanOrEqual(1);
    }
    // Two sessions, one per user, each only ever used with that user's bearer.
    const subjectsBySession = new Map<string, Set<string>>();
    for (const r of peer.requests) if (r.sessionId) subjectsBySession.set(r.sessionId, (subjectsBySession.get(r.sessionId) ?? new Set()).add(r.subject!));
    expect([...subjectsBySession.values()].map((s) => [...s]).sort()).toEqual([['alice'], ['bob']]);
    expect(manager.stats().userConnections).toBe(2);
  });
});
