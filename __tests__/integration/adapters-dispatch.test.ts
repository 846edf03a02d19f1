/**
 * `mcp-switchboard/adapters` end to end, over loopback: a scripted fake model (OpenAI Chat Completions shapes)
 * gets the MCP tools, emits tool calls with JSON-string arguments, and `dispatchToolCall` routes them through a
 * real `MCPManager` to a real MCP server (Streamable HTTP on 127.0.0.1). Two users run the same script; what
 * each request carried is decided by the server that received it. No network, no API keys.
 */
import { dispatchToolCall } from '../../src/adapters/dispatch.js';
import { toOpenAIChatTools } from '../../src/adapters/tools.js';
import { toAnthropicToolResult, toOpenAIToolResult, type OpenAIChatToolMessage } from '../../src/adapters/results.js';
import { MCPManager } from '../../src/MCPManager.js';
import { startTestMcpServer, type TestMcpServer } from '../../src/testing/testMcpServer.js';
import type { UserContext } from '../../src/types.js';

let server: TestMcpServer;
let manager: MCPManager;
/** The subject the server verified for each request's bearer, in order: the server's view of who called. */
let verified: string[];

beforeEach(async () => {
  verified = [];
  server = await startTestMcpServer({
    transport: 'streamable-http',
    // The "token" is the user id; the server accepts only a bearer and says whose it was.
    verifyBearer: async (authorization) => {
      const m = /^Bearer ([a-z]+)$/.exec(authorization ?? '');
      if (!m) throw new Error('no bearer');
      verified.push(m[1]!);
      return { subject: m[1]! };
    },
  });
  manager = new MCPManager({ servers: { tools: { url: server.url, headers: { Authorization: 'Bearer {{user.id}}' } } } });
});
afterEach(async () => {
  await manager.close();
  await server.close();
});

// ---------------------------------------------------------------- a scripted "model" (Chat Completions shapes)

interface ChatToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}
type ChatMessage =
  | { role: 'user'; content: string }
  | { role: 'assistant'; content: string | null; tool_calls?: ChatToolCall[] }
  | OpenAIChatToolMessage;
type ChatTool = ReturnType<typeof toOpenAIChatTools>['tools'][number];

/**
 * Turn 1: calls `whoami` and `echo` (arguments as a JSON string, as the Chat Completions API sends them).
 * Turn 2: answers with what the tools returned. It checks it was offered the tools it calls.
 */
function scriptedModel(messages: ChatMessage[], tools: ChatTool[]): Extract<ChatMessage, { role: 'assistant' }> {
  const offered = new Set(tools.map((t) => t.function.name));
  const toolMessages = messages.filter((m): m is OpenAIChatToolMessage => m.role === 'tool');
  if (toolMessages.length === 0) {
    const user = messages.find((m) => m.role === 'user')!.content;
    const calls: ChatToolCall[] = [
      { id: 'call_whoami', type: 'function', function: { name: 'tools__whoami', arguments: '{}' } },
      { id: 'call_echo', type: 'function', function: { name: 'tools__echo', arguments: JSON.stringify({ text: `echo for ${user}` }) } },
    ];
    for (const c of calls) if (!offered.has(c.function.name)) throw new Error(`model was not offered ${c.function.name}`);
    return { role: 'assistant', content: null, tool_calls: calls };
  }
  const byId = new Map(toolMessages.map((m) => [m.tool_call_id, m.content]));
  return { role: 'assistant', content: `I am ${byId.get('call_whoami')}; ${byId.get('call_echo')}` };
}

/** The host's agent loop for one user: model → tool calls → dispatch as that user → model, until an answer. */
async function runAgent(user: UserContext, prompt: string) {
  // The tools as the model is given them, and the names map back to (server, tool).
  const { tools, names, warnings } = toOpenAIChatTools({ tools: await manager.listTools({ user, serverName: 'tools' }) });
  expect(warnings).toEqual([]);
  const messages: ChatMessage[] = [{ role: 'user', content: prompt }];
  const dispatched = [];
  for (let turn = 0; turn < 4; turn++) {
    const reply = scriptedModel(messages, tools);
    messages.push(reply);
    if (!reply.tool_calls?.length) return { answer: reply.content, messages, dispatched };
    for (const call of reply.tool_calls) {
      const result = await dispatchToolCall(manager, { user, id: call.id, name: call.function.name, arguments: call.function.arguments, names });
      dispatched.push(result);
      messages.push(toOpenAIToolResult(result));
    }
  }
  throw new Error('the model never answered');
}

it("a scripted model's tool calls are dispatched as each user: the server sees alice's calls as alice's, bob's as bob's", async () => {
  const alice = { id: 'alice' };
  const bob = { id: 'bob' };

  // Both users' agent loops at once, on one manager: nothing of one may leak into the other.
  const [a, b] = await Promise.all([runAgent(alice, 'alice'), runAgent(bob, 'bob')]);

  // The model's answers carry what the server said: whoami is the subject the server verified for that call.
  expect(a.answer).toBe('I am alice; echo for alice');
  expect(b.answer).toBe('I am bob; echo for bob');
  // Server side: every request was verified as one of the two, both were seen, and each session the server
  // opened was used with one user's bearer only.
  expect(new Set(verified)).toEqual(new Set(['alice', 'bob']));
  const bySession = new Map<string, Set<string | undefined>>();
  for (const r of server.requests) if (r.sessionId) bySession.set(r.sessionId, (bySession.get(r.sessionId) ?? new Set()).add(r.authorization));
  expect([...bySession.values()].map((s) => [...s])).toEqual(expect.arrayContaining([['Bearer alice'], ['Bearer bob']]));
  for (const auths of bySession.values()) expect(auths.size).toBe(1);

  // The tool messages the model got, and the same results as Anthropic blocks.
  expect(a.messages.filter((m) => m.role === 'tool')).toEqual([
    { role: 'tool', tool_call_id: 'call_whoami', content: 'alice' },
    { role: 'tool', tool_call_id: 'call_echo', content: 'echo for alice' },
  ]);
  expect(b.dispatched.map((r) => r.call)).toEqual([
    { id: 'call_whoami', name: 'tools__whoami', serverName: 'tools', toolName: 'whoami', outcome: 'called' },
    { id: 'call_echo', name: 'tools__echo', serverName: 'tools', toolName: 'echo', outcome: 'called' },
  ]);
  expect(b.dispatched.map((r) => toAnthropicToolResult(r))).toEqual([
    { type: 'tool_result', tool_use_id: 'call_whoami', content: [{ type: 'text', text: 'bob' }], is_error: false },
    { type: 'tool_result', tool_use_id: 'call_echo', content: [{ type: 'text', text: 'echo for bob' }], is_error: false },
  ]);
});

it('a refused call and a failing tool come back as results the model reads; the refused one never reaches the server', async () => {
  const carol = { id: 'carol' };
  const { names } = toOpenAIChatTools({ tools: await manager.listTools({ user: carol, serverName: 'tools' }) });
  const before = server.requests.length;
  const refused = await dispatchToolCall(manager, {
    user: carol, id: 'call_1', name: 'tools__echo', arguments: '{"text":"x"}', names,
    approve: (call) => ({ approved: call.toolName !== 'echo', reason: 'echo needs a human' }),
  });
  expect(server.requests.length).toBe(before);
  expect(toOpenAIToolResult(refused)).toEqual({
    role: 'tool', tool_call_id: 'call_1', content: 'Error: The call to tool "echo" was refused and not run: echo needs a human',
  });

  const failed = await dispatchToolCall(manager, { user: carol, id: 'toolu_2', name: 'tools__fail', arguments: { mode: 'result' }, names });
  expect(toAnthropicToolResult(failed)).toEqual({
    type: 'tool_result', tool_use_id: 'toolu_2', content: [{ type: 'text', text: 'fail tool failed' }], is_error: true,
  });
  expect(verified.every((s) => s === 'carol')).toBe(true);

  // Arguments the server's schema refuses: the server's own answer (an isError result) reaches the model.
  const badArgs = await dispatchToolCall(manager, { user: carol, id: 'call_3', name: 'tools__echo', arguments: '{"text":42}', names });
  expect(badArgs.isError).toBe(true);
  expect(toOpenAIToolResult(badArgs).content).toMatch(/^Error: /);
});
