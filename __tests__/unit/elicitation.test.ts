/**
 * Elicitation (MCP 2025-11-25, `elicitation/create`) through `MCPManager({ onElicitation })`, against in-memory
 * SDK servers (one `McpServer` per connection, whose tool `ask` sends the elicitation request it is given and
 * answers what came back, or the error):
 * - the `elicitation` client capability (`{ form: {}, url: {} }`) is declared only when a handler is given;
 * - form mode: `accept` with the schema's defaults filled in for the fields left out (SEP-1034: string,
 *   integer, number, enum, boolean), `decline`, `cancel`;
 * - URL mode: the handler sees `url` and `elicitationId`; `notifications/elicitation/complete` becomes the
 *   manager's `elicitationComplete` event naming the server and the user;
 * - who is asked: on a user connection `ctx.user` is that connection's user, on a shared one it is absent;
 * - a throwing handler, a result that does not match the schema, an invalid action: the server gets a JSON-RPC
 *   error (never the text of the host's error), a warning is logged, the connection stays up.
 */
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { ErrorCode, type ElicitRequest, type ElicitResult } from '@modelcontextprotocol/sdk/types.js';
import { MCPManager, type MCPManagerOptions } from '../../src/MCPManager.js';
import { MCPConnectionFactory } from '../../src/MCPConnectionFactory.js';
import { MCPConnection, type ElicitationRequest, type ServerRequestContext } from '../../src/MCPConnection.js';
import { clientCapabilitiesFor } from '../../src/connection/protocolClient.js';
import { parseServerConfig } from '../../src/config/index.js';
import type { MCPManagerEvents } from '../../src/events.js';
import type { UserContext } from '../../src/types.js';
import { createInMemoryServerFactory } from '../../src/testing/inMemory.js';
import { spyLogger } from '../support/misbehaving.js';
import { ask, registerAskTool, withDefaults } from '../support/elicitation.js';

/** One McpServer per connection (in memory); `ask` sends `elicitation/create` with the params it is given. */
function inMemoryServers(logger?: MCPManagerOptions['logger']) {
  const createTransport = async () => {
    const mcp = new McpServer({ name: 'asker', version: '1.0.0' });
    registerAskTool(mcp);
    const [client, server] = InMemoryTransport.createLinkedPair();
    await mcp.connect(server);
    return client;
  };
  return new MCPConnectionFactory({ createTransport, ...(logger ? { logger } : {}) });
}

const servers = {
  // A `{{user.id}}` placeholder makes a server user-scoped: one connection per user.
  perUser: { command: 'asker', args: ['--user', '{{user.id}}'] },
  shared: { command: 'asker' },
};

const alice: UserContext = { id: 'alice', tenantId: 'contoso', email: 'alice@contoso.example' };
const bob: UserContext = { id: 'bob', tenantId: 'fabrikam', email: 'bob@fabrikam.example' };

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

function manager(extra: Partial<MCPManagerOptions> = {}): MCPManager {
  // Connections log through their factory's logger.
  const factory = inMemoryServers(extra.logger);
  const m = new MCPManager({ servers, connectionFactory: factory, ...extra });
  open.push(factory, m);
  return m;
}

const calls: { request: ElicitationRequest; ctx: ServerRequestContext }[] = [];
afterEach(() => void calls.splice(0));
/** A handler that records its calls and answers `answer(request, ctx)`. */
const recording =
  (answer: (request: ElicitationRequest, ctx: ServerRequestContext) => ElicitResult | Promise<ElicitResult>) =>
  async (request: ElicitationRequest, ctx: ServerRequestContext): Promise<ElicitResult> => {
    calls.push({ request, ctx });
    return answer(request, ctx);
  };

describe('elicitation: the client capability', () => {
  it('is not declared without onElicitation: the server cannot ask', async () => {
    const m = manager();
    const answer = await ask(m, 'perUser', alice, withDefaults);
    expect(answer.capabilities).toEqual({});
    expect(answer.error?.message).toMatch(/does not support form elicitation/);
  });

  it('is declared as { form: {}, url: {} } with onElicitation', async () => {
    const m = manager({ onElicitation: recording(() => ({ action: 'decline' })) });
    expect((await ask(m, 'perUser', alice, withDefaults)).capabilities).toEqual({ elicitation: { form: {}, url: {} } });
    expect((await ask(m, 'shared', undefined, withDefaults)).capabilities).toEqual({ elicitation: { form: {}, url: {} } });
    expect(clientCapabilitiesFor({ elicitation: async () => ({ action: 'cancel' }) })).toEqual({ elicitation: { form: {}, url: {} } });
    expect(clientCapabilitiesFor({ roots: () => [] })).toEqual({ roots: { listChanged: false } });
  });

  it('refuses an onElicitation that is not a function, naming the option', () => {
    expect(() => new MCPManager({ servers, onElicitation: 'yes' as never })).toThrow(/MCPManager: onElicitation must be a function/);
    const config = parseServerConfig('x', { command: 'x' });
    expect(() => new MCPConnection({ serverName: 'x', config, createTransport: async () => undefined as never, handlers: { elicitation: 1 as never } })).toThrow(
      /MCPConnection: handlers\.elicitation must be a function/,
    );
  });
});

describe('elicitation: form mode', () => {
  it('accept: the fields left out get their schema defaults (string, integer, number, enum, boolean)', async () => {
    const m = manager({ onElicitation: recording(() => ({ action: 'accept', content: {} })) });
    const answer = await ask(m, 'perUser', alice, withDefaults);
    expect(answer.error).toBeUndefined();
    expect(answer.result).toEqual({ action: 'accept', content: { name: 'John Doe', age: 30, score: 95.5, status: 'active', verified: true } });
    expect(calls).toHaveLength(1);
    expect(calls[0]!.request).toMatchObject({ mode: 'form', message: 'Profile', requestedSchema: withDefaults.requestedSchema });
  });

  it('accept: values given are kept, defaults fill only the rest; accept without content gets every default', async () => {
    let next: ElicitResult = { action: 'accept', content: { name: 'Ada', verified: false, status: 'pending' } };
    const m = manager({ onElicitation: recording(() => next) });
    expect((await ask(m, 'perUser', alice, withDefaults)).result).toEqual({
      action: 'accept',
      content: { name: 'Ada', age: 30, score: 95.5, status: 'pending', verified: false },
    });
    next = { action: 'accept' };
    expect((await ask(m, 'perUser', alice, withDefaults)).result).toEqual({
      action: 'accept',
      content: { name: 'John Doe', age: 30, score: 95.5, status: 'active', verified: true },
    });
  });

  it('decline and cancel reach the server as such (any content dropped)', async () => {
    let next: ElicitResult = { action: 'decline' };
    const m = manager({ onElicitation: recording(() => next) });
    expect((await ask(m, 'perUser', alice, withDefaults)).result).toEqual({ action: 'decline' });
    next = { action: 'cancel', content: { name: 'ignored' } };
    expect((await ask(m, 'perUser', alice, withDefaults)).result).toEqual({ action: 'cancel' });
  });
});

describe('elicitation: URL mode', () => {
  it('hands url and elicitationId to the handler; the completion notification is the elicitationComplete event', async () => {
    const m = manager({ onElicitation: recording((request) => (request.mode === 'url' && request.url.startsWith('https://') ? { action: 'accept' } : { action: 'decline' })) });
    const completed = new Promise<MCPManagerEvents['elicitationComplete']>((resolve) => m.once('elicitationComplete', resolve));
    const answer = await ask(m, 'perUser', alice, { mode: 'url', message: 'Connect your account', url: 'https://auth.example.com/connect?x=1', elicitationId: 'el-1' });
    expect(answer.result).toEqual({ action: 'accept' });
    expect(calls[0]!.request).toEqual({ mode: 'url', message: 'Connect your account', url: 'https://auth.example.com/connect?x=1', elicitationId: 'el-1' });
    expect(await completed).toEqual({ serverName: 'perUser', scope: 'user', userId: 'alice', tenantId: 'contoso', elicitationId: 'el-1' });
  });
});

describe('elicitation: who is asked', () => {
  it('on a user-scoped server each user’s request carries that user; on a shared server there is no user', async () => {
    const m = manager({
      onElicitation: recording((_request, { user }) => (user ? { action: 'accept', content: { name: user.id } } : { action: 'decline' })),
    });
    const params: ElicitRequest['params'] = { message: 'Who?', requestedSchema: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] } };
    expect((await ask(m, 'perUser', alice, params)).result).toEqual({ action: 'accept', content: { name: 'alice' } });
    expect((await ask(m, 'perUser', bob, params)).result).toEqual({ action: 'accept', content: { name: 'bob' } });
    expect((await ask(m, 'shared', undefined, params)).result).toEqual({ action: 'decline' });
    // The shared connection asked after users had used the manager: still no user.
    expect((await ask(m, 'shared', alice, params)).result).toEqual({ action: 'decline' });
    expect(calls.map(({ ctx }) => [ctx.serverName, ctx.user?.id])).toEqual([
      ['perUser', 'alice'],
      ['perUser', 'bob'],
      ['shared', undefined],
      ['shared', undefined],
    ]);
    expect(calls.every(({ ctx }) => ctx.signal instanceof AbortSignal && !ctx.signal.aborted)).toBe(true);
    expect(m.stats()).toMatchObject({ userConnections: 2, appConnections: 1 });
  });
});

describe('elicitation: failures answer the server with an error, and are logged', () => {
  it('a throwing handler: a JSON-RPC error without the host error’s text; a warning; the connection stays up', async () => {
    const spy = spyLogger();
    let fail = true;
    const m = manager({
      logger: spy.logger,
      onElicitation: recording(async () => {
        if (fail) throw new Error('secret host detail');
        return { action: 'decline' };
      }),
    });
    const answer = await ask(m, 'perUser', alice, withDefaults);
    expect(answer.result).toBeUndefined();
    expect(answer.error?.code).toBe(ErrorCode.InternalError);
    expect(answer.error?.message).toMatch(/The client could not answer the elicitation request/);
    expect(answer.error?.message).not.toContain('secret host detail');
    expect(spy.matching('warn', 'handler of a server request failed')).toHaveLength(1);
    expect(spy.matching('warn', 'handler of a server request failed')[0]!.obj).toMatchObject({ serverName: 'perUser', method: 'elicitation/create', error: 'Error' });
    fail = false;
    expect((await ask(m, 'perUser', alice, withDefaults)).result).toEqual({ action: 'decline' });
    expect(m.stats().userConnections).toBe(1);
  });

  it('content that does not match the requested schema, or an invalid action, is a clear error', async () => {
    const spy = spyLogger();
    let next: unknown = { action: 'accept', content: { age: 'thirty' } };
    const m = manager({ logger: spy.logger, onElicitation: recording(() => next as ElicitResult) });
    const wrongType = await ask(m, 'perUser', alice, withDefaults);
    expect(wrongType.result).toBeUndefined();
    expect(wrongType.error?.message).toMatch(/does not match the requested schema: .*age/);
    const email: ElicitRequest['params'] = {
      message: 'Email',
      requestedSchema: { type: 'object', properties: { email: { type: 'string', format: 'email' } }, required: ['email'] },
    };
    next = { action: 'accept', content: {} }; // a required field without a default, left out
    expect((await ask(m, 'perUser', alice, email)).error?.message).toMatch(/does not match the requested schema: .*email/);
    next = { action: 'accept', content: { email: 'not an email' } };
    expect((await ask(m, 'perUser', alice, email)).error?.message).toMatch(/does not match the requested schema: .*email/);
    next = { action: 'ok' };
    expect((await ask(m, 'perUser', alice, withDefaults)).error?.message).toMatch(/returned action "ok"; expected 'accept', 'decline' or 'cancel'/);
    const warned = spy.matching('warn', 'handler of a server request failed');
    expect(warned).toHaveLength(4);
    expect(warned[0]!.obj).toMatchObject({ method: 'elicitation/create', invalidResult: expect.stringMatching(/requested schema/) });
    // The values the host put in the content are never logged.
    expect(JSON.stringify(spy.lines)).not.toContain('thirty');
    expect(JSON.stringify(spy.lines)).not.toContain('not an email');
  });
});

describe('elicitation: MCPConnection handlers', () => {
  it('a connection with a user passes it; one without passes none; both are told the server', async () => {
    const seen: ServerRequestContext[] = [];
    const made: McpServer[] = [];
    const mem = createInMemoryServerFactory(() => {
      const mcp = new McpServer({ name: 'm', version: '1.0.0' });
      made.push(mcp);
      return mcp;
    });
    open.push(mem);
    const connect = async (user?: UserContext) => {
      const conn = new MCPConnection({
        serverName: 'mem',
        config: parseServerConfig('mem', { command: 'x' }),
        ...(user ? { user } : {}),
        createTransport: mem.createTransport,
        handlers: { elicitation: async (_request, ctx) => (seen.push(ctx), { action: 'cancel' }) },
      });
      open.push(conn);
      await conn.connect();
      return made.at(-1)!;
    };
    const forAlice = await connect(alice);
    const shared = await connect();
    expect(forAlice.server.getClientCapabilities()).toEqual({ elicitation: { form: {}, url: {} } });
    expect(await forAlice.server.elicitInput(withDefaults)).toEqual({ action: 'cancel' });
    expect(await shared.server.elicitInput({ mode: 'url', message: 'Open', url: 'https://example.com/x', elicitationId: 'e' })).toEqual({ action: 'cancel' });
    expect(seen.map((ctx) => [ctx.serverName, ctx.user?.id])).toEqual([
      ['mem', 'alice'],
      ['mem', undefined],
    ]);
    expect('user' in seen[1]!).toBe(false);
  });
});
