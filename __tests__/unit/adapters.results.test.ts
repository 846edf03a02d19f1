/**
 * `mcp-switchboard/adapters`, results and dispatch: every MCP content type as each API's tool result, checked
 * against that API's published constraints (written below with their sources); size caps on character
 * boundaries; `isError`; and dispatch's typed failures (bad JSON, unknown tool), refusals and pass-through,
 * against a fake `callTool`. No network, no API keys.
 */
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import {
  DEFAULT_MAX_TOOL_RESULT_BYTES,
  toAISDKToolResult,
  toAnthropicToolResult,
  toGeminiToolResult,
  toOpenAIResponsesToolResult,
  toOpenAIToolResult,
  toolResultParts,
  toolResultText,
  truncateText,
  type DispatchedToolResult,
} from '../../src/adapters/results.js';
import {
  dispatchToolCall,
  isModelFacingError,
  parseToolArguments,
  toolResultForError,
  type ToolCaller,
  type ToolTarget,
} from '../../src/adapters/dispatch.js';
import { AdapterError } from '../../src/adapters/errors.js';
import { SwitchboardError } from '../../src/errors.js';
import type { CallToolArgs } from '../../src/MCPManager.js';

// ---------------------------------------------------------------- published constraints, per API

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * OpenAI Chat Completions, tool message (https://platform.openai.com/docs/api-reference/chat/create, messages →
 * "Tool message"): `role: "tool"`, `tool_call_id` (string, required), `content` (string or array of text parts,
 * required). Images are accepted in user messages only.
 */
function assertOpenAIChatToolMessage(m: unknown): void {
  const o = m as Record<string, unknown>;
  expect(Object.keys(o).sort()).toEqual(['content', 'role', 'tool_call_id']);
  expect(o.role).toBe('tool');
  expect(typeof o.tool_call_id).toBe('string');
  expect((o.tool_call_id as string).length).toBeGreaterThan(0);
  expect(typeof o.content).toBe('string');
}

/**
 * OpenAI Responses, input item `function_call_output` (https://platform.openai.com/docs/api-reference/responses/create):
 * `type: "function_call_output"`, `call_id` (string, required), `output`: a string, or a list of `input_text`
 * (`text`), `input_image` (`image_url`: a URL or base64 data URL; `detail`: `low` | `high` | `auto`) and
 * `input_file` parts. Image formats: PNG, JPEG, WEBP, non-animated GIF
 * (https://platform.openai.com/docs/guides/images-vision).
 */
function assertOpenAIResponsesOutput(item: unknown): void {
  const o = item as Record<string, unknown>;
  expect(o.type).toBe('function_call_output');
  expect(typeof o.call_id).toBe('string');
  if (typeof o.output === 'string') return;
  expect(Array.isArray(o.output)).toBe(true);
  for (const part of o.output as Record<string, unknown>[]) {
    if (part.type === 'input_text') expect(typeof part.text).toBe('string');
    else {
      expect(part.type).toBe('input_image');
      expect(['low', 'high', 'auto']).toContain(part.detail);
      const m = /^data:(image\/(png|jpeg|webp|gif));base64,(.*)$/.exec(part.image_url as string);
      expect(m).not.toBeNull();
      expect(m![3]).toMatch(BASE64);
    }
  }
}

/**
 * Anthropic Messages, `tool_result` block (https://docs.anthropic.com/en/docs/agents-and-tools/tool-use/implement-tool-use):
 * `type: "tool_result"`, `tool_use_id` (required), `content` a string or a list of `text` / `image` (and
 * `document`) blocks, `is_error` optional boolean. Text blocks must be non-empty. Images:
 * `source: { type: "base64", media_type, data }` with media_type image/jpeg, image/png, image/gif or image/webp
 * (https://docs.anthropic.com/en/docs/build-with-claude/vision).
 */
function assertAnthropicToolResult(block: unknown): void {
  const o = block as Record<string, unknown>;
  expect(o.type).toBe('tool_result');
  expect(typeof o.tool_use_id).toBe('string');
  expect(typeof o.is_error).toBe('boolean');
  expect(Array.isArray(o.content)).toBe(true);
  for (const c of o.content as Record<string, any>[]) {
    if (c.type === 'text') expect(c.text.length).toBeGreaterThan(0);
    else {
      expect(c.type).toBe('image');
      expect(c.source.type).toBe('base64');
      expect(['image/jpeg', 'image/png', 'image/gif', 'image/webp']).toContain(c.source.media_type);
      expect(c.source.data).toMatch(BASE64);
    }
  }
}

/**
 * Gemini `FunctionResponse` (https://ai.google.dev/api/caching#FunctionResponse): `name` (required, the
 * FunctionDeclaration's name: "a-z, A-Z, 0-9, or contain underscores and dashes, with a maximum length of 64"),
 * `response` (required, a JSON object: a `google.protobuf.Struct`, so never an array or a scalar), `id` optional.
 */
function assertGeminiFunctionResponse(part: unknown): void {
  const fr = (part as { functionResponse: Record<string, unknown> }).functionResponse;
  expect(Object.keys(part as object)).toEqual(['functionResponse']);
  expect(fr.name).toMatch(/^[A-Za-z0-9_.:-]{1,64}$/);
  expect(typeof fr.response).toBe('object');
  expect(fr.response).not.toBeNull();
  expect(Array.isArray(fr.response)).toBe(false);
  if ('id' in fr) expect(typeof fr.id).toBe('string');
}

/**
 * AI SDK `ToolResultOutput` (`@ai-sdk/provider-utils`, https://ai-sdk.dev/docs/ai-sdk-core/tools-and-tool-calling):
 * `{ type: 'text' | 'error-text', value: string }` or `{ type: 'json' | 'error-json', value: JSONValue }`.
 */
function assertAISDKOutput(o: unknown): void {
  const v = o as { type: string; value: unknown };
  expect(['text', 'error-text', 'json', 'error-json']).toContain(v.type);
  if (v.type.endsWith('text')) expect(typeof v.value).toBe('string');
  else expect(JSON.parse(JSON.stringify(v.value))).toEqual(v.value);
}

/** Every converter on one result, each output checked against its API's constraints. */
function all(result: DispatchedToolResult, opts: { maxBytes?: number; maxImageBytes?: number } = {}) {
  const r = { ...result, call: result.call ?? { id: 'call_1', name: 'files__read', outcome: 'called' as const } };
  const out = {
    chat: toOpenAIToolResult(r, opts),
    responses: toOpenAIResponsesToolResult(r, opts),
    anthropic: toAnthropicToolResult(r, opts),
    gemini: toGeminiToolResult(r, opts),
    aisdk: toAISDKToolResult(r, opts),
  };
  assertOpenAIChatToolMessage(out.chat);
  assertOpenAIResponsesOutput(out.responses);
  assertAnthropicToolResult(out.anthropic);
  assertGeminiFunctionResponse(out.gemini);
  assertAISDKOutput(out.aisdk);
  return out;
}

const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';
const pngBytes = Buffer.from(PNG, 'base64').length;

// ---------------------------------------------------------------- content types

describe('each MCP content type, for every API', () => {
  it('text: the text, as is', () => {
    const out = all({ content: [{ type: 'text', text: 'hello' }] });
    expect(out.chat).toEqual({ role: 'tool', tool_call_id: 'call_1', content: 'hello' });
    expect(out.responses).toEqual({ type: 'function_call_output', call_id: 'call_1', output: 'hello' });
    expect(out.anthropic).toEqual({ type: 'tool_result', tool_use_id: 'call_1', content: [{ type: 'text', text: 'hello' }], is_error: false });
    expect(out.gemini).toEqual({ functionResponse: { id: 'call_1', name: 'files__read', response: { output: 'hello' } } });
    expect(out.aisdk).toEqual({ type: 'text', value: 'hello' });
  });

  it('image (PNG): kept where the API takes images in tool results (Responses, Anthropic), a marker elsewhere', () => {
    const out = all({ content: [{ type: 'text', text: 'chart:' }, { type: 'image', data: PNG, mimeType: 'image/png' }] });
    const marker = `[image: image/png, ${pngBytes} bytes omitted]`;
    expect(out.chat.content).toBe(`chart:\n${marker}`);
    expect(out.responses.output).toEqual([
      { type: 'input_text', text: 'chart:' },
      { type: 'input_image', image_url: `data:image/png;base64,${PNG}`, detail: 'auto' },
    ]);
    expect(out.anthropic.content).toEqual([
      { type: 'text', text: 'chart:' },
      { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } },
    ]);
    expect(out.gemini.functionResponse.response).toEqual({ output: `chart:\n${marker}` });
    expect(out.aisdk).toEqual({ type: 'text', value: `chart:\n${marker}` });
  });

  it('image of a type the API refuses (SVG, TIFF): a marker; over maxImageBytes: a marker', () => {
    for (const mimeType of ['image/svg+xml', 'image/tiff']) {
      const out = all({ content: [{ type: 'image', data: 'AAAA', mimeType }] });
      expect(out.anthropic.content).toEqual([{ type: 'text', text: `[image: ${mimeType}, 3 bytes omitted]` }]);
      expect(out.responses.output).toBe(`[image: ${mimeType}, 3 bytes omitted]`);
    }
    const big = all({ content: [{ type: 'image', data: PNG, mimeType: 'image/png' }] }, { maxImageBytes: PNG.length - 1 });
    expect(big.anthropic.content).toEqual([{ type: 'text', text: `[image: image/png, ${pngBytes} bytes omitted]` }]);
    expect(big.responses.output).toBe(`[image: image/png, ${pngBytes} bytes omitted]`);
  });

  it('audio: a marker with its type and decoded size, for every API', () => {
    const data = Buffer.alloc(5120).toString('base64');
    const out = all({ content: [{ type: 'audio', data, mimeType: 'audio/wav' }] });
    const marker = '[audio: audio/wav, 5120 bytes omitted]';
    expect(out.chat.content).toBe(marker);
    expect(out.responses.output).toBe(marker);
    expect(out.anthropic.content).toEqual([{ type: 'text', text: marker }]);
    expect(out.gemini.functionResponse.response).toEqual({ output: marker });
  });

  it('embedded resource: a text resource is its text; a blob is a marker, or an image where images are taken', () => {
    const out = all({
      content: [
        { type: 'resource', resource: { uri: 'file:///a.txt', mimeType: 'text/plain', text: 'file body' } },
        { type: 'resource', resource: { uri: 'file:///a.bin', mimeType: 'application/octet-stream', blob: 'AAAAAA==' } },
      ],
    });
    expect(out.chat.content).toBe('file body\n[resource: file:///a.bin (application/octet-stream), 4 bytes omitted]');
    const img = all({ content: [{ type: 'resource', resource: { uri: 'file:///p.png', mimeType: 'image/png', blob: PNG } }] });
    expect(img.anthropic.content).toEqual([{ type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } }]);
    expect(img.chat.content).toBe(`[resource: file:///p.png (image/png), ${pngBytes} bytes omitted]`);
  });

  it('resource_link: a text line with its name (or title), URI, type and description', () => {
    const out = all({
      content: [
        { type: 'resource_link', uri: 'file:///r.md', name: 'r.md', title: 'Report', mimeType: 'text/markdown', description: 'the Q3 report' },
        { type: 'resource_link', uri: 'https://x/y', name: 'y' },
      ],
    });
    expect(out.chat.content).toBe('[resource link: Report file:///r.md (text/markdown): the Q3 report]\n[resource link: y https://x/y]');
    expect(out.anthropic.content).toEqual([{ type: 'text', text: out.chat.content }]);
  });

  it('structuredContent: its JSON text when there is no content; not repeated when the server also sent text', () => {
    const structuredContent = { temperature: 21.5, unit: 'C' };
    const only = all({ content: [], structuredContent });
    expect(only.chat.content).toBe(JSON.stringify(structuredContent));
    expect(only.gemini.functionResponse.response).toEqual(structuredContent);
    expect(only.aisdk).toEqual({ type: 'json', value: structuredContent });
    const both = all({ content: [{ type: 'text', text: JSON.stringify(structuredContent) }], structuredContent });
    expect(both.chat.content).toBe(JSON.stringify(structuredContent));
    expect(both.anthropic.content).toHaveLength(1);
    // Larger than the cap: Gemini falls back to the (capped) text rather than an uncapped object.
    const huge = { blob: 'x'.repeat(500) };
    const capped = all({ content: [], structuredContent: huge }, { maxBytes: 100 });
    expect(capped.gemini.functionResponse.response).toEqual({ output: expect.stringContaining('[truncated: ') });
    expect(capped.aisdk.type).toBe('text');
  });

  it('nothing at all, and unknown content types: a readable marker, never an empty text block', () => {
    const empty = all({ content: [] });
    expect(empty.chat.content).toBe('[no content]');
    expect(empty.anthropic.content).toEqual([{ type: 'text', text: '[no content]' }]);
    const emptyText = all({ content: [{ type: 'text', text: '' }] });
    expect(emptyText.anthropic.content).toEqual([{ type: 'text', text: '[no content]' }]);
    const future = all({ content: [{ type: 'hologram', data: 'x' } as never] });
    expect(future.chat.content).toBe('[unsupported content: hologram]');
  });

  it('isError: carried the way each API carries it', () => {
    const out = all({ isError: true, content: [{ type: 'text', text: 'disk full' }] });
    expect(out.chat.content).toBe('Error: disk full');
    expect(out.responses.output).toBe('Error: disk full');
    expect(out.anthropic).toMatchObject({ is_error: true, content: [{ type: 'text', text: 'disk full' }] });
    expect(out.gemini.functionResponse.response).toEqual({ error: 'disk full' });
    expect(out.aisdk).toEqual({ type: 'error-text', value: 'disk full' });
    const withImage = all({ isError: true, content: [{ type: 'image', data: PNG, mimeType: 'image/png' }] });
    expect((withImage.responses.output as unknown[])[0]).toEqual({ type: 'input_text', text: 'Error:' });
  });
});

describe('ids and names', () => {
  const result: CallToolResult = { content: [{ type: 'text', text: 'x' }] };

  it('come from the options, else from the dispatched call; missing → TypeError', () => {
    expect(toOpenAIToolResult(result, { toolCallId: 'call_9' }).tool_call_id).toBe('call_9');
    expect(toOpenAIResponsesToolResult(result, { callId: 'fc_9' }).call_id).toBe('fc_9');
    expect(toAnthropicToolResult(result, { toolUseId: 'toolu_9' }).tool_use_id).toBe('toolu_9');
    expect(toGeminiToolResult(result, { name: 'f' })).toEqual({ functionResponse: { name: 'f', response: { output: 'x' } } });
    expect(() => toOpenAIToolResult(result)).toThrow(TypeError);
    expect(() => toOpenAIResponsesToolResult(result)).toThrow(TypeError);
    expect(() => toAnthropicToolResult(result)).toThrow(TypeError);
    expect(() => toGeminiToolResult(result)).toThrow(TypeError);
    const dispatched: DispatchedToolResult = { ...result, call: { id: 'c', name: 'n', outcome: 'called' } };
    expect(toOpenAIToolResult(dispatched, { toolCallId: 'override' }).tool_call_id).toBe('override');
  });
});

// ---------------------------------------------------------------- caps

describe('size caps', () => {
  const utf8 = (s: string) => Buffer.byteLength(s, 'utf8');
  const MARKER = /\n\[truncated: (\d+) bytes, showing (\d+)\]$/;

  it('text within the cap is untouched; past it, cut within the cap with a marker giving both sizes', () => {
    expect(truncateText('abc', 3)).toBe('abc');
    const long = 'a'.repeat(1000);
    const cut = truncateText(long, 100);
    expect(utf8(cut)).toBeLessThanOrEqual(100);
    const [, total, shown] = MARKER.exec(cut)!;
    expect(Number(total)).toBe(1000);
    expect(cut).toBe(`${'a'.repeat(Number(shown))}\n[truncated: 1000 bytes, showing ${shown}]`);
  });

  it.each([
    ['2-byte', 'é'],
    ['3-byte', '€'],
    ['4-byte (a surrogate pair in UTF-16)', '😀'],
    ['mixed', 'aé€😀'],
  ])('never splits a %s character, whatever the cap', (_label, unit) => {
    const text = unit.repeat(200);
    for (let max = 40; max <= 120; max++) {
      const cut = truncateText(text, max);
      expect(utf8(cut)).toBeLessThanOrEqual(max);
      expect(cut).not.toContain('\uFFFD');
      const kept = cut.replace(MARKER, '');
      expect(text.startsWith(kept)).toBe(true);
      expect(Buffer.from(kept, 'utf8').toString('utf8')).toBe(kept); // no lone surrogate
      expect(Number(MARKER.exec(cut)![2])).toBe(utf8(kept));
    }
  });

  it('the default cap is 100,000 bytes, applied by every converter', () => {
    const out = all({ content: [{ type: 'text', text: 'x'.repeat(DEFAULT_MAX_TOOL_RESULT_BYTES + 1) }] });
    expect(utf8(out.chat.content)).toBeLessThanOrEqual(DEFAULT_MAX_TOOL_RESULT_BYTES);
    expect(out.chat.content).toMatch(MARKER);
    expect(utf8((out.anthropic.content[0] as { text: string }).text)).toBeLessThanOrEqual(DEFAULT_MAX_TOOL_RESULT_BYTES);
    expect(utf8(out.gemini.functionResponse.response.output as string)).toBeLessThanOrEqual(DEFAULT_MAX_TOOL_RESULT_BYTES);
  });

  it('one budget across text blocks around images: later text is cut first, images kept', () => {
    const parts = toolResultParts(
      { content: [{ type: 'text', text: 'a'.repeat(80) }, { type: 'image', data: PNG, mimeType: 'image/png' }, { type: 'text', text: 'b'.repeat(80) }] },
      { maxBytes: 120, acceptImage: () => true },
    );
    expect(parts.map((p) => p.type)).toEqual(['text', 'image', 'text']);
    const texts = parts.flatMap((p) => (p.type === 'text' ? [p.text] : []));
    expect(texts[0]).toBe('a'.repeat(80));
    expect(texts[1]).toMatch(MARKER);
    expect(texts.reduce((n, t) => n + utf8(t), 0)).toBeLessThanOrEqual(120);
    expect(toolResultText({ content: [{ type: 'text', text: 'é'.repeat(100) }] }, { maxBytes: 50 })).toMatch(MARKER);
  });
});

// ---------------------------------------------------------------- dispatch

const names = new Map<string, ToolTarget>([
  ['files__read_file', { serverName: 'files', toolName: 'read_file' }],
  ['tickets__create', { serverName: 'tickets', toolName: 'create' }],
]);

function fakeManager(answer: (args: CallToolArgs) => Promise<CallToolResult> | CallToolResult = (a) => ({ content: [{ type: 'text', text: `ok ${a.toolName}` }] })) {
  const calls: CallToolArgs[] = [];
  const manager: ToolCaller = {
    callTool: async (args) => {
      calls.push(args);
      return answer(args);
    },
  };
  return { manager, calls };
}

const alice = { id: 'alice' };

describe('dispatchToolCall', () => {
  it('routes the model-facing name to its server and tool, with the user and parsed JSON-string arguments', async () => {
    const { manager, calls } = fakeManager();
    const result = await dispatchToolCall(manager, { user: alice, id: 'call_1', name: 'files__read_file', arguments: '{"path":"/a.txt"}', names });
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ user: alice, serverName: 'files', toolName: 'read_file', arguments: { path: '/a.txt' } });
    expect(result).toEqual({
      content: [{ type: 'text', text: 'ok read_file' }],
      call: { id: 'call_1', name: 'files__read_file', serverName: 'files', toolName: 'read_file', outcome: 'called' },
    });
    expect(toOpenAIToolResult(result)).toEqual({ role: 'tool', tool_call_id: 'call_1', content: 'ok read_file' });
    expect(toGeminiToolResult(result).functionResponse.name).toBe('files__read_file');
  });

  it('takes object arguments as they are; none, null and an empty string are no arguments', async () => {
    const { manager, calls } = fakeManager();
    await dispatchToolCall(manager, { user: alice, name: 'tickets__create', arguments: { title: 't' }, names });
    for (const none of [undefined, null, '', '  ']) await dispatchToolCall(manager, { user: alice, name: 'tickets__create', arguments: none, names });
    expect(calls.map((c) => c.arguments)).toEqual([{ title: 't' }, undefined, undefined, undefined, undefined]);
  });

  it("removes strict mode's stand-in nulls (omitNulls) before the approval and the call", async () => {
    const { manager, calls } = fakeManager();
    const strictNames = new Map<string, ToolTarget>([['files__head', { serverName: 'files', toolName: 'head', omitNulls: [['lines'], ['opts', 'encoding']] }]]);
    const seen: unknown[] = [];
    const result = await dispatchToolCall(manager, {
      user: alice, name: 'files__head', names: strictNames,
      arguments: '{"path":"/a","lines":null,"opts":{"encoding":null,"mode":null}}',
      approve: (call) => (seen.push(call.arguments), true),
    });
    expect(seen).toEqual([{ path: '/a', opts: { mode: null } }]);
    expect(calls[0]!.arguments).toEqual({ path: '/a', opts: { mode: null } });
    expect(result.call).toEqual({ name: 'files__head', serverName: 'files', toolName: 'head', outcome: 'called' });
  });

  it('passes signal, timeoutMs and the progress options through to callTool', async () => {
    const { manager, calls } = fakeManager();
    const signal = new AbortController().signal;
    const onProgress = () => {};
    await dispatchToolCall(manager, {
      user: alice, name: 'files__read_file', names, signal, timeoutMs: 1234, onProgress, resetTimeoutOnProgress: true, maxTotalTimeoutMs: 5678,
    });
    expect(calls[0]).toMatchObject({ signal, timeoutMs: 1234, onProgress, resetTimeoutOnProgress: true, maxTotalTimeoutMs: 5678 });
  });

  it('bad JSON is a typed error whose message never quotes the arguments; nothing is sent', async () => {
    const { manager, calls } = fakeManager();
    const err = await dispatchToolCall(manager, { user: alice, name: 'files__read_file', arguments: '{"token":"sk-SECRET-123"', names }).catch((e) => e);
    expect(err).toBeInstanceOf(AdapterError);
    expect(err).toBeInstanceOf(SwitchboardError);
    expect(err.code).toBe('invalid_tool_arguments');
    expect(err.toolName).toBe('read_file');
    expect(err.serverName).toBe('files');
    expect(err.message).not.toContain('SECRET');
    expect(err.cause).toBeUndefined();
    expect(JSON.stringify(err.toJSON())).not.toContain('SECRET');
    expect(calls).toHaveLength(0);
  });

  it.each([['[1,2]'], ['"a string"'], ['42'], ['true'], ['null']])('JSON that is not an object (%s) is invalid_tool_arguments', (text) => {
    expect(() => parseToolArguments(text)).toThrow(expect.objectContaining({ code: 'invalid_tool_arguments' }));
  });

  it('non-plain objects and non-JSON values are refused too', () => {
    for (const v of [[1], 3, true, new Map(), new Date()]) {
      expect(() => parseToolArguments(v)).toThrow(expect.objectContaining({ code: 'invalid_tool_arguments' }));
    }
  });

  it('an unknown name is a typed error; nothing is sent', async () => {
    const { manager, calls } = fakeManager();
    const err = await dispatchToolCall(manager, { user: alice, name: 'read_file', names }).catch((e) => e);
    expect(err).toBeInstanceOf(AdapterError);
    expect(err.code).toBe('unknown_tool');
    expect(err.message).toContain('"read_file"');
    expect(calls).toHaveLength(0);
  });

  it('errorsAsResults: model-facing failures come back as isError results the model can read', async () => {
    const { manager } = fakeManager(() => {
      throw new SwitchboardError('server_error', 'MCP error -32602: Invalid arguments for tool read_file', { serverName: 'files' });
    });
    const unknown = await dispatchToolCall(manager, { user: alice, id: 'c1', name: 'nope', names, errorsAsResults: true });
    expect(unknown).toMatchObject({ isError: true, call: { id: 'c1', name: 'nope', outcome: 'failed', errorCode: 'unknown_tool' } });
    expect(toOpenAIToolResult(unknown).content).toBe('Error: Unknown tool "nope": it is not one of the tools offered');
    const bad = await dispatchToolCall(manager, { user: alice, id: 'c2', name: 'files__read_file', arguments: '{', names, errorsAsResults: true });
    expect(bad.call).toMatchObject({ outcome: 'failed', errorCode: 'invalid_tool_arguments', serverName: 'files', toolName: 'read_file' });
    expect(toAnthropicToolResult(bad)).toMatchObject({ is_error: true, tool_use_id: 'c2' });
    const server = await dispatchToolCall(manager, { user: alice, id: 'c3', name: 'files__read_file', names, errorsAsResults: true });
    expect(server.content).toEqual([{ type: 'text', text: 'MCP error -32602: Invalid arguments for tool read_file' }]);
  });

  it('errorsAsResults never swallows what the host must handle: aborts, credentials, other errors', async () => {
    for (const thrown of [
      new SwitchboardError('aborted', 'aborted'),
      new SwitchboardError('user_required', 'a user is required'),
      new SwitchboardError('connect_failed', 'unreachable', { retryable: true }),
      new TypeError('boom'),
    ]) {
      const { manager } = fakeManager(() => {
        throw thrown;
      });
      await expect(dispatchToolCall(manager, { user: alice, name: 'files__read_file', names, errorsAsResults: true })).rejects.toBe(thrown);
    }
    // A predicate of the host's own decides instead.
    const { manager } = fakeManager(() => {
      throw new SwitchboardError('connect_failed', '"files" is unavailable');
    });
    const r = await dispatchToolCall(manager, { user: alice, name: 'files__read_file', names, errorsAsResults: () => true });
    expect(r).toMatchObject({ isError: true, content: [{ type: 'text', text: '"files" is unavailable' }], call: { errorCode: 'connect_failed' } });
  });

  it('approve: asked with the parsed call; a refusal is a readable isError result and nothing is sent', async () => {
    const { manager, calls } = fakeManager();
    const asked: unknown[] = [];
    const refused = await dispatchToolCall(manager, {
      user: alice, id: 'call_7', name: 'tickets__create', arguments: '{"title":"t"}', names,
      approve: async (call) => {
        asked.push(call);
        return { approved: false, reason: 'the user declined' };
      },
    });
    expect(asked).toEqual([{ user: alice, id: 'call_7', name: 'tickets__create', serverName: 'tickets', toolName: 'create', arguments: { title: 't' } }]);
    expect(calls).toHaveLength(0);
    expect(refused).toEqual({
      isError: true,
      content: [{ type: 'text', text: 'The call to tool "create" was refused and not run: the user declined' }],
      call: { id: 'call_7', name: 'tickets__create', serverName: 'tickets', toolName: 'create', outcome: 'refused', errorCode: 'tool_call_refused' },
    });
    const block = toAnthropicToolResult(refused);
    assertAnthropicToolResult(block);
    expect(block.is_error).toBe(true);
    // `false` (sync) refuses too, without a reason; `true` / `{ approved: true }` let the call through.
    const plain = await dispatchToolCall(manager, { user: alice, name: 'tickets__create', names, approve: () => false });
    expect(plain.content).toEqual([{ type: 'text', text: 'The call to tool "create" was refused and not run' }]);
    await dispatchToolCall(manager, { user: alice, name: 'tickets__create', names, approve: () => true });
    await dispatchToolCall(manager, { user: alice, name: 'tickets__create', names, approve: async () => ({ approved: true }) });
    expect(calls).toHaveLength(2);
  });

  it('approve is not asked about an unknown tool or bad arguments; its own failure propagates', async () => {
    const { manager, calls } = fakeManager();
    let asked = 0;
    const approve = () => ++asked > 0;
    await expect(dispatchToolCall(manager, { user: alice, name: 'nope', names, approve })).rejects.toMatchObject({ code: 'unknown_tool' });
    await expect(dispatchToolCall(manager, { user: alice, name: 'tickets__create', arguments: '{', names, approve })).rejects.toMatchObject({ code: 'invalid_tool_arguments' });
    expect(asked).toBe(0);
    const boom = new Error('ui gone');
    await expect(dispatchToolCall(manager, { user: alice, name: 'tickets__create', names, approve: () => Promise.reject(boom), errorsAsResults: true })).rejects.toBe(boom);
    expect(calls).toHaveLength(0);
  });
});

describe('toolResultForError and isModelFacingError', () => {
  it("a SwitchboardError's (log-safe) message; any other error by its name only", () => {
    expect(toolResultForError(new AdapterError('unknown_tool', 'Unknown tool "x"'))).toEqual({ isError: true, content: [{ type: 'text', text: 'Unknown tool "x"' }] });
    const leaky = new Error('failed with Authorization: Bearer eyJhbGciOi');
    expect(toolResultForError(leaky)).toEqual({ isError: true, content: [{ type: 'text', text: 'Tool call failed (Error)' }] });
    expect(toolResultForError('a string')).toEqual({ isError: true, content: [{ type: 'text', text: 'Tool call failed (error)' }] });
  });

  it('model-facing: the adapter codes, server_error, call_timeout, too_large; nothing else', () => {
    for (const code of ['invalid_tool_arguments', 'unknown_tool', 'tool_call_refused'] as const) expect(isModelFacingError(new AdapterError(code, 'x'))).toBe(true);
    for (const code of ['server_error', 'call_timeout', 'too_large'] as const) expect(isModelFacingError(new SwitchboardError(code, 'x'))).toBe(true);
    for (const code of ['aborted', 'user_required', 'manager_closed', 'connect_failed', 'unknown_server', 'obo_untrusted', 'reauth_required'] as const) {
      expect(isModelFacingError(new SwitchboardError(code, 'x'))).toBe(false);
    }
    expect(isModelFacingError(new AdapterError('schema_unsupported', 'x'))).toBe(false);
    expect(isModelFacingError(new Error('x'))).toBe(false);
  });
});

describe('hostile results and arguments (review regressions)', () => {
  const utf8 = (s: string) => Buffer.byteLength(s, 'utf8');
  const MARKER = /\n\[truncated: (\d+) bytes, showing (\d+)\]$/;
  const textBytes = (parts: { type: string; text?: string }[]) => parts.filter((p) => p.type === 'text').reduce((n, p) => n + utf8(p.text!), 0);

  it('image data that is not base64, or a MIME type that is not image/<subtype>, is a text marker in every converter', () => {
    const bad = [
      { type: 'image' as const, mimeType: 'image/png', data: '"}]} not base64' },
      { type: 'image' as const, mimeType: 'image/png', data: 'iVBORw0KGgo' }, // unpadded
      { type: 'image' as const, mimeType: 'image/png', data: '' },
      { type: 'image' as const, mimeType: 'image/png;base64,AAAA', data: PNG },
      { type: 'image' as const, mimeType: 'text/html', data: PNG },
    ];
    for (const block of bad) {
      const out = all({ content: [block] });
      expect(out.anthropic.content.every((c) => c.type === 'text')).toBe(true);
      expect(typeof out.responses.output).toBe('string');
      expect(toolResultParts({ content: [block] }, { acceptImage: () => true }).every((p) => p.type === 'text')).toBe(true);
    }
    expect(toolResultText({ content: [bad[0]!] })).toBe('[image: image/png, not valid base64, omitted]');
    const blob = { type: 'resource' as const, resource: { uri: 'file:///x.png', mimeType: 'image/png', blob: 'not base64!' } };
    expect(toAnthropicToolResult({ content: [blob] }, { toolUseId: 't' }).content[0]!.type).toBe('text');
    expect(toAnthropicToolResult({ content: [{ type: 'image', mimeType: 'image/png', data: PNG }] }, { toolUseId: 't' }).content[0]!.type).toBe('image');
  });

  it('maxBytes bounds all text, markers included, when text and images alternate: one marker, later text dropped', () => {
    const content = [0, 1, 2, 3, 4, 5].map((i) => (i % 2 ? { type: 'image' as const, mimeType: 'image/png', data: PNG } : { type: 'text' as const, text: 'x'.repeat(80) }));
    for (const maxBytes of [100, 150, 200, 239]) {
      const parts = toolResultParts({ content }, { maxBytes, acceptImage: () => true });
      expect(textBytes(parts)).toBeLessThanOrEqual(maxBytes);
      expect(parts.filter((p) => p.type === 'text' && MARKER.test(p.text))).toHaveLength(1);
      expect(parts.filter((p) => p.type === 'image')).toHaveLength(3);
      const marker = MARKER.exec(parts.map((p) => (p.type === 'text' ? p.text : '')).join(''))!;
      expect(Number(marker[1])).toBe(240);
      expect(Number(marker[2])).toBe(textBytes(parts) - utf8(marker[0]));
    }
    expect(toolResultParts({ content }, { maxBytes: 240, acceptImage: () => true }).filter((p) => p.type === 'text' && MARKER.test(p.text))).toHaveLength(0);
    const responses = toOpenAIResponsesToolResult({ content }, { callId: 'c', maxBytes: 100 });
    const texts = (responses.output as { type: string; text?: string }[]).filter((p) => p.type === 'input_text');
    expect(texts.reduce((n, p) => n + utf8(p.text!), 0)).toBeLessThanOrEqual(100);
  });

  it.each([['maxBytes'], ['maxImageBytes']])('%s must be a positive integer: NaN, 0, negative, fractional, Infinity are a TypeError naming it', (option) => {
    const result: DispatchedToolResult = { content: [{ type: 'text', text: 'hi' }], structuredContent: { a: 1 }, call: { id: 'c', name: 'n', outcome: 'called' } };
    for (const bad of [NaN, 0, -1, 1.5, Infinity, '100' as unknown as number]) {
      const opts = { [option]: bad };
      for (const convert of [
        () => toolResultParts(result, opts),
        () => toolResultText(result, opts),
        () => toOpenAIToolResult(result, opts),
        () => toOpenAIResponsesToolResult(result, opts),
        () => toAnthropicToolResult(result, opts),
        () => toGeminiToolResult(result, opts),
        () => toAISDKToolResult(result, opts),
      ]) {
        expect(convert).toThrow(TypeError);
        expect(convert).toThrow(option);
      }
    }
    if (option === 'maxBytes') expect(() => truncateText('abc', NaN)).toThrow('maxBytes');
  });

  it('dispatchToolCall refuses arguments over maxArgumentBytes (default 1 MiB) without calling the server', async () => {
    const { manager, calls } = fakeManager();
    const huge = JSON.stringify({ path: 'x'.repeat(1024 * 1024) });
    await expect(dispatchToolCall(manager, { user: alice, name: 'files__read_file', arguments: huge, names })).rejects.toMatchObject({ code: 'invalid_tool_arguments', toolName: 'read_file' });
    await expect(dispatchToolCall(manager, { user: alice, name: 'files__read_file', arguments: { path: 'é'.repeat(60) }, names, maxArgumentBytes: 100 })).rejects.toMatchObject({ code: 'invalid_tool_arguments' });
    const asResult = await dispatchToolCall(manager, { user: alice, id: 'c', name: 'files__read_file', arguments: huge, names, errorsAsResults: true });
    expect(asResult).toMatchObject({ isError: true, call: { outcome: 'failed', errorCode: 'invalid_tool_arguments' } });
    expect(JSON.stringify(asResult).length).toBeLessThan(1000);
    expect(calls).toHaveLength(0);
    await dispatchToolCall(manager, { user: alice, name: 'files__read_file', arguments: { path: 'é'.repeat(40) }, names, maxArgumentBytes: 100 });
    expect(calls).toHaveLength(1);
    for (const bad of [0, -1, NaN, 1.5]) {
      await expect(dispatchToolCall(manager, { user: alice, name: 'files__read_file', arguments: '{}', names, maxArgumentBytes: bad })).rejects.toThrow(/maxArgumentBytes/);
    }
  });
});

describe('the Error: prefix fits the cap (review regressions)', () => {
  it('a failed result over maxBytes stays within it in the shapes that prefix "Error: "', () => {
    const failed: DispatchedToolResult = { isError: true, content: [{ type: 'text', text: 'x'.repeat(500) }], call: { id: 'c', name: 'n', outcome: 'called' } };
    expect(Buffer.byteLength(toOpenAIToolResult(failed, { maxBytes: 100 }).content)).toBeLessThanOrEqual(100);
    expect(Buffer.byteLength(toOpenAIResponsesToolResult(failed, { maxBytes: 100 }).output as string)).toBeLessThanOrEqual(100);
  });
});
