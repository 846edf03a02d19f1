/**
 * MCP tools given to an LLM API, the model's tool calls dispatched as the right user, and the results handed
 * back: OpenAI Chat Completions, OpenAI Responses, Anthropic Messages, Gemini and the Vercel AI SDK.
 *
 * The LLM SDKs are not dependencies of this package: each API call below is a `declare function` standing in for
 * it, with the request and response shapes typed loosely (the fields the loop reads).
 */
import { MCPManager, type UserContext } from 'mcp-switchboard';
import {
  AdapterError,
  dispatchToolCall,
  isModelFacingError,
  toAISDKTools,
  toAnthropicToolResult,
  toAnthropicTools,
  toGeminiToolResult,
  toGeminiTools,
  toOpenAIChatTools,
  toOpenAIResponsesToolResult,
  toOpenAIResponsesTools,
  toOpenAIToolResult,
  toolResultForError,
  toolResultText,
  type ApproveToolCall,
  type JsonSchema,
  type ToolTarget,
  type ToolsByServer,
} from 'mcp-switchboard/adapters';

const manager = new MCPManager({
  servers: {
    files: { url: 'https://files-mcp.example.com/mcp', obo: { scopes: 'api://files-mcp/.default' } },
    tickets: { url: 'https://tickets.example.com/mcp', headers: { Authorization: 'Bearer ${TICKETS_TOKEN}' } },
  },
});

// ---- 1. The user's tools, per server ------------------------------------------------------------------------

// Every server's tools as this user sees them. A server that fails is left out of this turn, not the whole turn.
async function toolsOf(user: UserContext): Promise<ToolsByServer> {
  const servers = manager.serverNames();
  const lists = await Promise.allSettled(servers.map((serverName) => manager.listTools({ user, serverName })));
  const byServer: Record<string, Awaited<ReturnType<MCPManager['listTools']>>> = {};
  lists.forEach((list, i) => {
    if (list.status === 'fulfilled') byServer[servers[i]!] = list.value;
    else console.warn(`tools of ${servers[i]} unavailable`, list.reason);
  });
  return byServer;
}

// ---- 2. OpenAI Chat Completions -----------------------------------------------------------------------------

// Stands in for `openai.chat.completions.create(...)`.
type ChatMessage = { role: string; content?: unknown; tool_calls?: { id: string; function: { name: string; arguments: string } }[] };
declare function chatCompletion(request: { model: string; messages: ChatMessage[]; tools: unknown[] }): Promise<{ choices: { message: ChatMessage }[] }>;

async function chatTurn(user: UserContext, messages: ChatMessage[]): Promise<string> {
  const { tools, names, warnings } = toOpenAIChatTools(await toolsOf(user));
  for (const w of warnings) console.warn(`${w.serverName}/${w.toolName} ${w.path}: ${w.message}`);
  for (;;) {
    const { message } = (await chatCompletion({ model: 'gpt-4.1', messages, tools })).choices[0]!;
    messages.push(message);
    if (!message.tool_calls?.length) return String(message.content ?? '');
    for (const call of message.tool_calls) {
      const result = await dispatchToolCall(manager, {
        user,
        id: call.id,
        name: call.function.name,
        arguments: call.function.arguments, // a JSON string, parsed for you
        names,
        errorsAsResults: true,
      });
      messages.push(toOpenAIToolResult(result)); // { role: 'tool', tool_call_id, content }
    }
  }
}

// ---- 3. OpenAI Responses ------------------------------------------------------------------------------------

// Stands in for `openai.responses.create(...)`.
type ResponseItem = { type: string; call_id?: string; name?: string; arguments?: string };
declare function createResponse(request: { model: string; input: unknown[]; tools: unknown[] }): Promise<{ output: ResponseItem[]; output_text: string }>;

async function responsesTurn(user: UserContext, input: unknown[]): Promise<string> {
  const { tools, names } = toOpenAIResponsesTools(await toolsOf(user)); // strict: 'auto' by default
  for (;;) {
    const response = await createResponse({ model: 'gpt-4.1', input, tools });
    input.push(...response.output);
    const calls = response.output.filter((item) => item.type === 'function_call');
    if (calls.length === 0) return response.output_text;
    for (const call of calls) {
      const result = await dispatchToolCall(manager, { user, id: call.call_id, name: call.name!, arguments: call.arguments, names, errorsAsResults: true });
      input.push(toOpenAIResponsesToolResult(result)); // { type: 'function_call_output', call_id, output }
    }
  }
}

// ---- 4. Anthropic Messages ----------------------------------------------------------------------------------

// Stands in for `anthropic.messages.create(...)`.
type ContentBlock = { type: string; id?: string; name?: string; input?: unknown; text?: string };
declare function createMessage(request: { model: string; max_tokens: number; messages: unknown[]; tools: unknown[] }): Promise<{ content: ContentBlock[]; stop_reason: string }>;

async function anthropicTurn(user: UserContext, messages: unknown[]): Promise<string> {
  const { tools, names } = toAnthropicTools(await toolsOf(user));
  for (;;) {
    const message = await createMessage({ model: 'claude-sonnet-4-5', max_tokens: 4096, messages, tools });
    messages.push({ role: 'assistant', content: message.content });
    const uses = message.content.filter((block) => block.type === 'tool_use');
    if (uses.length === 0) return message.content.map((block) => block.text ?? '').join('');
    const results = [];
    for (const use of uses) {
      const result = await dispatchToolCall(manager, { user, id: use.id, name: use.name!, arguments: use.input, names, errorsAsResults: true });
      results.push(toAnthropicToolResult(result)); // { type: 'tool_result', tool_use_id, content, is_error }
    }
    messages.push({ role: 'user', content: results }); // every tool_result of the turn in one user message
  }
}

// ---- 5. Gemini ----------------------------------------------------------------------------------------------

// Stands in for `ai.models.generateContent(...)` of `@google/genai`.
type FunctionCall = { id?: string; name?: string; args?: Record<string, unknown> };
declare function generateContent(request: { model: string; contents: unknown[]; config: { tools: unknown[] } }): Promise<{ functionCalls?: FunctionCall[]; text?: string; candidates?: { content?: unknown }[] }>;

async function geminiTurn(user: UserContext, contents: unknown[]): Promise<string> {
  const { tools, names } = toGeminiTools(await toolsOf(user)); // tools: [{ functionDeclarations }]
  for (;;) {
    const response = await generateContent({ model: 'gemini-2.5-flash', contents, config: { tools } });
    contents.push(response.candidates?.[0]?.content);
    if (!response.functionCalls?.length) return response.text ?? '';
    const parts = [];
    for (const call of response.functionCalls) {
      const result = await dispatchToolCall(manager, { user, id: call.id, name: call.name!, arguments: call.args, names, errorsAsResults: true });
      parts.push(toGeminiToolResult(result)); // { functionResponse: { id?, name, response } }
    }
    contents.push({ role: 'user', parts });
  }
}

// ---- 6. Vercel AI SDK ---------------------------------------------------------------------------------------

// Stand in for `import { generateText, jsonSchema, stepCountIs } from 'ai'`.
declare function jsonSchema(schema: JsonSchema): unknown;
declare function generateText(options: { model: unknown; tools: Record<string, unknown>; prompt: string; stopWhen?: unknown }): Promise<{ text: string }>;
declare function stepCountIs(steps: number): unknown;
declare const model: unknown;

async function aiSdkAnswer(user: UserContext, prompt: string): Promise<string> {
  const { tools, names } = toAISDKTools(await toolsOf(user), {
    jsonSchema,
    // The SDK runs the calls: each one dispatched as this user, with the SDK's call id and abort signal.
    execute: async (name, args, { toolCallId, abortSignal }) => {
      const result = await dispatchToolCall(manager, { user, id: toolCallId, name, arguments: args, names, signal: abortSignal, errorsAsResults: true });
      return (result.isError ? 'Error: ' : '') + toolResultText(result); // what the SDK hands the model
    },
  });
  const { text } = await generateText({ model, tools, prompt, stopWhen: stepCountIs(5) });
  return text;
}

// ---- 7. Names, strict mode, warnings ------------------------------------------------------------------------

export async function describeTools(user: UserContext) {
  const servers = await toolsOf(user);
  // Fail on any schema the API cannot take as is, instead of a warning (e.g. in CI, against your servers).
  try {
    toGeminiTools(servers, { onUnsupported: 'error' });
  } catch (err) {
    if (err instanceof AdapterError && err.code === 'schema_unsupported') console.error(err.serverName, err.toolName, err.path, err.message);
    else throw err;
  }
  // Strict mode for every tool that fits it; the others are reported and sent non-strict.
  const { tools, names, warnings } = toOpenAIChatTools(servers, { strict: true, separator: '-' });
  for (const [modelName, { serverName, toolName, omitNulls }] of names) console.log(modelName, '→', serverName, toolName, omitNulls ?? []);
  return { tools, warnings };
}

// ---- 8. Approval and errors ---------------------------------------------------------------------------------

// Stands in for your UI: asks the user, resolves with their answer.
declare function askUser(question: string): Promise<boolean>;

// Tools that change something need the user's yes; the refusal is a result the model reads.
const approve: ApproveToolCall = async (call) => {
  if (!/^(create|update|delete)_/.test(call.toolName)) return true;
  const yes = await askUser(`Run ${call.toolName} on ${call.serverName} with ${JSON.stringify(call.arguments)}?`);
  return yes || { approved: false, reason: 'the user declined' };
};

export async function runToolCall(user: UserContext, names: ReadonlyMap<string, ToolTarget>, call: { id: string; name: string; arguments: string }) {
  try {
    return toOpenAIToolResult(await dispatchToolCall(manager, { user, ...call, names, approve }));
  } catch (err) {
    // Bad arguments, an unknown name, the server's own error, a timeout, a result too large: the model can act on
    // them (what `errorsAsResults: true` does). Anything else (credentials, consent, a closed manager): the host's.
    if (!isModelFacingError(err)) throw err;
    return toOpenAIToolResult(toolResultForError(err), { toolCallId: call.id });
  }
}

export const turns = { chatTurn, responsesTurn, anthropicTurn, geminiTurn, aiSdkAnswer };
