/**
 * MCP tool results (`CallToolResult`) turned into each LLM API's tool-result shape: OpenAI Chat Completions and
 * Responses, Anthropic Messages, Google Gemini and the Vercel AI SDK. Pure functions, no I/O.
 *
 * Every converter works the same way: the result's content blocks become text and (where the API accepts them
 * in a tool result) images; everything the API cannot take becomes a one-line text marker the model can read
 * (`[audio: audio/wav, 5120 bytes omitted]`); the text is capped at `maxBytes` UTF-8 bytes with a truncation
 * marker; `isError` is carried the way the API carries it.
 * @module
 */
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { SwitchboardErrorCode } from '../errors.js';

/**
 * Default cap on a tool result's text, in UTF-8 bytes (about 25k tokens of English).
 *
 * @example
 * ```ts
 * const message = toOpenAIToolResult(result, { maxBytes: DEFAULT_MAX_TOOL_RESULT_BYTES / 4 });
 * ```
 */
export const DEFAULT_MAX_TOOL_RESULT_BYTES = 100_000;

/**
 * Default cap on one image, in bytes of its base64 data as sent. Anthropic refuses images over 5 MB
 * (https://docs.anthropic.com/en/docs/build-with-claude/vision); larger ones become a text marker.
 *
 * @example
 * ```ts
 * const block = toAnthropicToolResult(result, { maxImageBytes: DEFAULT_MAX_IMAGE_BYTES / 5 }); // 1 MiB images at most
 * ```
 */
export const DEFAULT_MAX_IMAGE_BYTES = 5 * 1024 * 1024;

/**
 * What {@link dispatchToolCall} adds to the `CallToolResult` it returns: which call it answers. The converters
 * read `id` and `name` from it, so `toOpenAIToolResult(result)` needs no options after a dispatch.
 *
 * @example
 * ```ts
 * const info: ToolCallInfo = { id: 'call_abc', name: 'files__read_file', serverName: 'files', toolName: 'read_file', outcome: 'called' };
 * ```
 */
export interface ToolCallInfo {
  /** The API's id of the tool call (OpenAI `tool_call_id` / `call_id`, Anthropic `tool_use_id`, Gemini `id`). */
  id?: string;
  /** The tool name the model used (the model-facing name, not the MCP tool name). */
  name: string;
  /** The MCP server the name mapped to; absent when the name is unknown. */
  serverName?: string;
  /** The MCP tool name the name mapped to; absent when the name is unknown. */
  toolName?: string;
  /**
   * - `called`: the MCP server answered (its result may still have `isError: true`);
   * - `refused`: the host's `approve` hook refused the call, nothing was sent;
   * - `failed`: the call failed with a typed error turned into a result ({@link toolResultForError}).
   */
  outcome: 'called' | 'refused' | 'failed';
  /** The error's code when `outcome` is `refused` (`tool_call_refused`) or `failed`. */
  errorCode?: SwitchboardErrorCode;
}

/**
 * A `CallToolResult`, as returned by `MCPManager.callTool`, optionally with the {@link ToolCallInfo} that
 * {@link dispatchToolCall} adds. Every converter of this module takes one.
 *
 * @example
 * ```ts
 * const result: DispatchedToolResult = { content: [{ type: 'text', text: '42' }], call: { name: 'calc__add', outcome: 'called' } };
 * ```
 */
export type DispatchedToolResult = CallToolResult & { call?: ToolCallInfo };

/**
 * Size caps shared by every converter.
 *
 * @example
 * ```ts
 * const caps: ToolResultOptions = { maxBytes: 20_000, maxImageBytes: 1024 * 1024 };
 * ```
 */
export interface ToolResultOptions {
  /**
   * Cap on the result's text in UTF-8 bytes, markers included, across all its text parts; default
   * {@link DEFAULT_MAX_TOOL_RESULT_BYTES}. Text past it is cut on a character boundary, one marker
   * `\n[truncated: <total> bytes, showing <kept>]` is appended, and later text parts are dropped (images between
   * them stay); a cap smaller than the marker keeps only the marker. A positive integer (else `TypeError`).
   */
  maxBytes?: number;
  /**
   * Cap on one image's base64 data, in bytes; default {@link DEFAULT_MAX_IMAGE_BYTES}. A larger image becomes a
   * text marker. Images do not count against `maxBytes`. A positive integer (else `TypeError`).
   */
  maxImageBytes?: number;
}

/**
 * One piece of a tool result once normalised: text, or an image the target API accepts.
 *
 * @example
 * ```ts
 * const parts: ToolResultPart[] = [{ type: 'text', text: 'chart:' }, { type: 'image', mimeType: 'image/png', data: 'iVBORw0KGgo=' }];
 * ```
 */
export type ToolResultPart = { type: 'text'; text: string } | { type: 'image'; mimeType: string; data: string };

/**
 * Options of {@link toolResultParts}: the caps, and which images to keep as images.
 *
 * @example
 * ```ts
 * const opts: ToolResultPartsOptions = { acceptImage: (mimeType) => mimeType === 'image/png', maxBytes: 50_000 };
 * ```
 */
export interface ToolResultPartsOptions extends ToolResultOptions {
  /** Whether an image of this MIME type is kept as an image; default none (every image becomes a marker). */
  acceptImage?: (mimeType: string) => boolean;
}

/**
 * A `CallToolResult` as a list of text and image parts, for an API this module has no converter for. Content
 * blocks, in order:
 * - `text`: its text;
 * - `image`: an image part when `acceptImage(mimeType)`, within `maxImageBytes`, its `mimeType` is
 *   `image/<subtype>` and its `data` is padded standard base64, else `[image: image/png, 1234 bytes omitted]`
 *   (`[image: image/png, not valid base64, omitted]` when the data is not base64);
 * - `audio`: `[audio: audio/wav, 1234 bytes omitted]`;
 * - `resource` (embedded): a text resource's text; a blob is kept as an image when it is one the API accepts
 *   (with the same checks as an `image`), else `[resource: <uri> (<mimeType>), 1234 bytes omitted]`;
 * - `resource_link`: `[resource link: <title or name> <uri> (<mimeType>): <description>]`;
 * - any other type: `[unsupported content: <type>]`.
 *
 * With no content blocks, `structuredContent` is given as its JSON text (servers that return
 * `structuredContent` SHOULD also send it as a text block, in which case it is not repeated). Adjacent text parts
 * are joined with a newline; a result with nothing at all is `[no content]`. The text is then capped (see
 * {@link ToolResultOptions.maxBytes}). Sizes in markers are decoded bytes.
 *
 * @example
 * ```ts
 * const parts = toolResultParts({ content: [{ type: 'text', text: 'hi' }, { type: 'audio', data: 'AAAA', mimeType: 'audio/wav' }] });
 * // [{ type: 'text', text: 'hi\n[audio: audio/wav, 3 bytes omitted]' }]
 * ```
 */
export function toolResultParts(result: CallToolResult, options: ToolResultPartsOptions = {}): ToolResultPart[] {
  const { maxBytes, maxImageBytes } = caps(options);
  const accept = (mimeType: string, data: string) =>
    IMAGE_MIME_TYPE.test(mimeType) && (options.acceptImage?.(mimeType) ?? false) && data.length <= maxImageBytes && isBase64(data);
  const raw: ToolResultPart[] = [];
  const blocks: unknown[] = Array.isArray(result.content) ? result.content : [];
  for (const block of blocks) raw.push(partOf(block, accept));
  if (blocks.length === 0) {
    // Older servers answer `{ toolResult }` (protocol 2024-10-07); anything else without content is structured.
    const structured = result.structuredContent ?? (result as { toolResult?: unknown }).toolResult;
    if (structured !== undefined) raw.push({ type: 'text', text: JSON.stringify(structured) ?? String(structured) });
  }
  const merged: ToolResultPart[] = [];
  for (const part of raw) {
    const last = merged.at(-1);
    if (part.type === 'text' && last?.type === 'text') last.text = `${last.text}\n${part.text}`;
    else merged.push({ ...part });
  }
  if (merged.length === 0) merged.push({ type: 'text', text: '[no content]' });
  return capParts(merged, maxBytes);
}

/** `image/<subtype>`: what an image part's MIME type (sent on as a data URL or `media_type`) must look like. */
const IMAGE_MIME_TYPE = /^image\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;

/** Padded standard base64 (RFC 4648 §4), as the APIs take image data: no whitespace, no URL-safe alphabet. */
function isBase64(data: string): boolean {
  return data.length > 0 && data.length % 4 === 0 && /^[A-Za-z0-9+/]*={0,2}$/.test(data);
}

/** The size options, checked: positive integers, else a `TypeError` naming the option. */
function caps(options: ToolResultOptions): { maxBytes: number; maxImageBytes: number } {
  const check = (name: 'maxBytes' | 'maxImageBytes', fallback: number): number => {
    const value = options[name];
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) throw new TypeError(`${name} must be a positive integer, got ${String(value)}`);
    return value;
  };
  return { maxBytes: check('maxBytes', DEFAULT_MAX_TOOL_RESULT_BYTES), maxImageBytes: check('maxImageBytes', DEFAULT_MAX_IMAGE_BYTES) };
}

/**
 * A `CallToolResult` as one string: {@link toolResultParts} with every image as a marker. What the text-only
 * result shapes (OpenAI Chat Completions, Gemini, the AI SDK) carry.
 *
 * @example
 * ```ts
 * toolResultText({ content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] }); // 'a\nb'
 * ```
 */
export function toolResultText(result: CallToolResult, options: ToolResultOptions = {}): string {
  const [first] = toolResultParts(result, { ...options, acceptImage: undefined });
  return first?.type === 'text' ? first.text : '';
}

/**
 * Cuts `text` to at most `maxBytes` UTF-8 bytes, marker included, on a character boundary (never inside a
 * multi-byte character), and appends `\n[truncated: <total> bytes, showing <kept>]`. Text within the cap is
 * returned as is.
 *
 * @example
 * ```ts
 * truncateText('é'.repeat(100), 60); // 12 × 'é', then '\n[truncated: 200 bytes, showing 24]': 59 bytes
 * ```
 */
export function truncateText(text: string, maxBytes: number): string {
  caps({ maxBytes });
  const total = Buffer.byteLength(text, 'utf8');
  if (total <= maxBytes) return text;
  const bytes = Buffer.from(text, 'utf8');
  // Reserve room for the marker as it would read with the widest possible "showing" figure.
  const budget = Math.max(0, maxBytes - Buffer.byteLength(truncationMarker(total, maxBytes), 'utf8'));
  let end = Math.min(budget, bytes.length);
  // Back off over UTF-8 continuation bytes (10xxxxxx) so no character is split.
  while (end > 0 && ((bytes[end] as number) & 0xc0) === 0x80) end--;
  return `${bytes.subarray(0, end).toString('utf8')}${truncationMarker(total, end)}`;
}

function truncationMarker(total: number, shown: number): string {
  return `\n[truncated: ${total} bytes, showing ${shown}]`;
}

/**
 * Applies one text budget across the text parts, in order; images pass through. Over budget, the text part
 * where the budget runs out is cut and gets the one marker (room for it reserved up front), and the text parts
 * after it are dropped: all text, marker included, stays within `maxBytes` (unless the marker alone is larger).
 */
function capParts(parts: ToolResultPart[], maxBytes: number): ToolResultPart[] {
  const sizes = parts.map((p) => (p.type === 'text' ? Buffer.byteLength(p.text, 'utf8') : 0));
  const total = sizes.reduce((n, size) => n + size, 0);
  if (total <= maxBytes) return parts;
  let left = Math.max(0, maxBytes - Buffer.byteLength(truncationMarker(total, maxBytes), 'utf8'));
  let kept = 0;
  let cut = false;
  const out: ToolResultPart[] = [];
  parts.forEach((part, i) => {
    if (part.type !== 'text') {
      out.push(part);
      return;
    }
    if (cut) return;
    if (sizes[i]! <= left) {
      out.push(part);
      left -= sizes[i]!;
      kept += sizes[i]!;
      return;
    }
    const bytes = Buffer.from(part.text, 'utf8');
    let end = left;
    // Back off over UTF-8 continuation bytes (10xxxxxx) so no character is split.
    while (end > 0 && ((bytes[end] as number) & 0xc0) === 0x80) end--;
    kept += end;
    cut = true;
    out.push({ type: 'text', text: bytes.subarray(0, end).toString('utf8') + truncationMarker(total, kept) });
  });
  return out;
}

function partOf(block: unknown, accept: (mimeType: string, data: string) => boolean): ToolResultPart {
  const b = (block ?? {}) as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === 'string' ? v : '');
  switch (b.type) {
    case 'text':
      return { type: 'text', text: str(b.text) };
    case 'image': {
      const mimeType = str(b.mimeType) || 'application/octet-stream';
      const data = str(b.data);
      if (accept(mimeType, data)) return { type: 'image', mimeType, data };
      return text(`[image: ${mimeType}, ${isBase64(data) ? `${base64Bytes(data)} bytes` : 'not valid base64,'} omitted]`);
    }
    case 'audio':
      return text(`[audio: ${str(b.mimeType) || 'unknown type'}, ${base64Bytes(str(b.data))} bytes omitted]`);
    case 'resource': {
      const r = (b.resource ?? {}) as Record<string, unknown>;
      if (typeof r.text === 'string') return text(r.text);
      const mimeType = str(r.mimeType);
      const data = str(r.blob);
      if (mimeType && accept(mimeType, data)) return { type: 'image', mimeType, data };
      return text(`[resource: ${str(r.uri)}${mimeType ? ` (${mimeType})` : ''}, ${base64Bytes(data)} bytes omitted]`);
    }
    case 'resource_link': {
      const label = str(b.title) || str(b.name);
      const mimeType = str(b.mimeType);
      const description = str(b.description);
      return text(`[resource link: ${label ? `${label} ` : ''}${str(b.uri)}${mimeType ? ` (${mimeType})` : ''}${description ? `: ${description}` : ''}]`);
    }
    default:
      return text(`[unsupported content: ${typeof b.type === 'string' ? b.type.slice(0, 40) : typeof b.type}]`);
  }
}

function text(value: string): ToolResultPart {
  return { type: 'text', text: value };
}

/** Decoded size of base64 data, without decoding it. */
function base64Bytes(data: string): number {
  const s = data.replace(/\s+/g, '');
  const padding = s.endsWith('==') ? 2 : s.endsWith('=') ? 1 : 0;
  return Math.max(0, Math.floor((s.length * 3) / 4) - padding);
}

/** The options with `maxBytes` lowered by the `Error: ` prefix a failed result gets, so the prefix fits the cap. */
function roomForErrorPrefix<T extends ToolResultOptions>(result: CallToolResult, options: T): T {
  if (result.isError !== true) return options;
  return { ...options, maxBytes: Math.max(1, caps(options).maxBytes - 'Error: '.length) };
}

/** "Error: " in front of a failed result's text, for the shapes that have no error flag. */
function withErrorPrefix(result: CallToolResult, text: string): string {
  return result.isError === true ? `Error: ${text}` : text;
}

function requireId(value: string | undefined, option: string, fn: string): string {
  if (typeof value === 'string' && value !== '') return value;
  throw new TypeError(`${fn}: no tool call id; pass options.${option} (or dispatch the call with \`id\`)`);
}

// ---------------------------------------------------------------- OpenAI Chat Completions

/**
 * A Chat Completions `tool` message, answering one `tool_calls[]` entry of the assistant message.
 * Follows https://platform.openai.com/docs/api-reference/chat/create (messages → tool message: `role: 'tool'`,
 * `tool_call_id`, `content` a string or text parts only, so images cannot be sent here).
 *
 * @example
 * ```ts
 * const message: OpenAIChatToolMessage = { role: 'tool', tool_call_id: 'call_abc', content: 'done' };
 * ```
 */
export interface OpenAIChatToolMessage {
  role: 'tool';
  tool_call_id: string;
  content: string;
}

/**
 * Options of {@link toOpenAIToolResult}.
 *
 * @example
 * ```ts
 * const opts: OpenAIToolResultOptions = { toolCallId: toolCall.id, maxBytes: 50_000 };
 * ```
 */
export interface OpenAIToolResultOptions extends ToolResultOptions {
  /** The `tool_calls[].id` answered; default the `call.id` that {@link dispatchToolCall} set. */
  toolCallId?: string;
}

/**
 * An MCP tool result as an OpenAI Chat Completions `tool` message. The content is {@link toolResultText}:
 * images, audio and blobs become text markers (a Chat tool message takes text only); a result with
 * `isError: true` reads `Error: <text>` (the message has no error flag).
 *
 * @throws TypeError when there is no tool call id (neither `options.toolCallId` nor `result.call.id`).
 * @example
 * ```ts
 * import { dispatchToolCall, toOpenAIToolResult } from 'mcp-switchboard/adapters';
 * for (const toolCall of completion.choices[0].message.tool_calls ?? []) {
 *   const result = await dispatchToolCall(manager, { user, id: toolCall.id, name: toolCall.function.name, arguments: toolCall.function.arguments, names });
 *   messages.push(toOpenAIToolResult(result));
 * }
 * ```
 */
export function toOpenAIToolResult(result: DispatchedToolResult, options: OpenAIToolResultOptions = {}): OpenAIChatToolMessage {
  const id = requireId(options.toolCallId ?? result.call?.id, 'toolCallId', 'toOpenAIToolResult');
  return { role: 'tool', tool_call_id: id, content: withErrorPrefix(result, toolResultText(result, roomForErrorPrefix(result, options))) };
}

// ---------------------------------------------------------------- OpenAI Responses

/**
 * One part of a Responses `function_call_output` given as a list: text, or an image as a data URL.
 * Follows https://platform.openai.com/docs/api-reference/responses/create (input item `function_call_output`,
 * `output`: a string or a list of `input_text` / `input_image` / `input_file`).
 *
 * @example
 * ```ts
 * const part: OpenAIResponsesOutputPart = { type: 'input_image', image_url: 'data:image/png;base64,iVBORw0KGgo=', detail: 'auto' };
 * ```
 */
export type OpenAIResponsesOutputPart =
  | { type: 'input_text'; text: string }
  | { type: 'input_image'; image_url: string; detail: 'auto' | 'low' | 'high' };

/**
 * A Responses API `function_call_output` input item, answering the `function_call` item with the same `call_id`.
 *
 * @example
 * ```ts
 * const item: OpenAIResponsesFunctionCallOutput = { type: 'function_call_output', call_id: 'call_abc', output: 'done' };
 * ```
 */
export interface OpenAIResponsesFunctionCallOutput {
  type: 'function_call_output';
  call_id: string;
  /** A string when the result is text only, else a list of parts. */
  output: string | OpenAIResponsesOutputPart[];
}

/**
 * Options of {@link toOpenAIResponsesToolResult}.
 *
 * @example
 * ```ts
 * const opts: OpenAIResponsesToolResultOptions = { callId: item.call_id, imageDetail: 'low' };
 * ```
 */
export interface OpenAIResponsesToolResultOptions extends ToolResultOptions {
  /** The `function_call` item's `call_id`; default the `call.id` that {@link dispatchToolCall} set. */
  callId?: string;
  /** The `detail` of image parts; default `auto`. */
  imageDetail?: 'auto' | 'low' | 'high';
}

/**
 * Image types the OpenAI API accepts as input (PNG, JPEG, WEBP, non-animated GIF):
 * https://platform.openai.com/docs/guides/images-vision.
 */
const OPENAI_IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/webp', 'image/gif']);

/**
 * An MCP tool result as an OpenAI Responses API `function_call_output` item. Text only → `output` is a string;
 * with images of a type OpenAI accepts (PNG, JPEG, WEBP, GIF) → a list of `input_text` and `input_image`
 * (base64 data URL) parts; other images, audio and blobs are text markers. `isError: true` reads `Error: <text>`.
 *
 * @throws TypeError when there is no call id (neither `options.callId` nor `result.call.id`).
 * @example
 * ```ts
 * import { dispatchToolCall, toOpenAIResponsesToolResult } from 'mcp-switchboard/adapters';
 * for (const item of response.output) {
 *   if (item.type !== 'function_call') continue;
 *   const result = await dispatchToolCall(manager, { user, id: item.call_id, name: item.name, arguments: item.arguments, names });
 *   input.push(toOpenAIResponsesToolResult(result));
 * }
 * ```
 */
export function toOpenAIResponsesToolResult(
  result: DispatchedToolResult,
  options: OpenAIResponsesToolResultOptions = {},
): OpenAIResponsesFunctionCallOutput {
  const id = requireId(options.callId ?? result.call?.id, 'callId', 'toOpenAIResponsesToolResult');
  const parts = errorPrefixed(result, toolResultParts(result, { ...roomForErrorPrefix(result, options), acceptImage: (t) => OPENAI_IMAGE_TYPES.has(t) }));
  if (parts.every((p) => p.type === 'text')) return { type: 'function_call_output', call_id: id, output: parts.map((p) => p.text).join('\n') };
  const detail = options.imageDetail ?? 'auto';
  return {
    type: 'function_call_output',
    call_id: id,
    output: parts.filter((p) => p.type !== 'text' || p.text !== '').map((p): OpenAIResponsesOutputPart =>
      p.type === 'text' ? { type: 'input_text', text: p.text } : { type: 'input_image', image_url: `data:${p.mimeType};base64,${p.data}`, detail },
    ),
  };
}

/** The parts with `Error: ` in front of the first text (or a leading text part) when the result failed. */
function errorPrefixed(result: CallToolResult, parts: ToolResultPart[]): ToolResultPart[] {
  if (result.isError !== true) return parts;
  const [first, ...rest] = parts;
  if (first?.type === 'text') return [{ type: 'text', text: `Error: ${first.text}` }, ...rest];
  return [{ type: 'text', text: 'Error:' }, ...parts];
}

// ---------------------------------------------------------------- Anthropic Messages

/**
 * A content block of an Anthropic `tool_result`: text, or a base64 image.
 * Follows https://docs.anthropic.com/en/docs/agents-and-tools/tool-use/implement-tool-use#handling-tool-use-and-tool-result-content-blocks.
 *
 * @example
 * ```ts
 * const block: AnthropicToolResultContent = { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } };
 * ```
 */
export type AnthropicToolResultContent =
  | { type: 'text'; text: string }
  | { type: 'image'; source: { type: 'base64'; media_type: 'image/jpeg' | 'image/png' | 'image/gif' | 'image/webp'; data: string } };

/**
 * An Anthropic Messages `tool_result` content block, sent in a `user` message after the assistant's `tool_use`
 * block with the same id.
 *
 * @example
 * ```ts
 * const block: AnthropicToolResultBlock = { type: 'tool_result', tool_use_id: 'toolu_01', content: [{ type: 'text', text: 'done' }], is_error: false };
 * ```
 */
export interface AnthropicToolResultBlock {
  type: 'tool_result';
  tool_use_id: string;
  content: AnthropicToolResultContent[];
  is_error: boolean;
}

/**
 * Options of {@link toAnthropicToolResult}.
 *
 * @example
 * ```ts
 * const opts: AnthropicToolResultOptions = { toolUseId: block.id, maxBytes: 50_000 };
 * ```
 */
export interface AnthropicToolResultOptions extends ToolResultOptions {
  /** The `tool_use` block's `id`; default the `call.id` that {@link dispatchToolCall} set. */
  toolUseId?: string;
}

/** The image types Anthropic accepts: https://docs.anthropic.com/en/docs/build-with-claude/vision. */
const ANTHROPIC_IMAGE_TYPES = new Set(['image/jpeg', 'image/png', 'image/gif', 'image/webp']);

/**
 * An MCP tool result as an Anthropic Messages `tool_result` block. Images of the types Anthropic accepts
 * (JPEG, PNG, GIF, WEBP; up to `maxImageBytes`) stay images; other images, audio and blobs are text markers.
 * `is_error` is the result's `isError`. Text blocks are never empty (Anthropic refuses empty text blocks).
 *
 * @throws TypeError when there is no tool use id (neither `options.toolUseId` nor `result.call.id`).
 * @example
 * ```ts
 * import { dispatchToolCall, toAnthropicToolResult } from 'mcp-switchboard/adapters';
 * const results = [];
 * for (const block of message.content) {
 *   if (block.type !== 'tool_use') continue;
 *   const result = await dispatchToolCall(manager, { user, id: block.id, name: block.name, arguments: block.input, names });
 *   results.push(toAnthropicToolResult(result));
 * }
 * messages.push({ role: 'user', content: results });
 * ```
 */
export function toAnthropicToolResult(result: DispatchedToolResult, options: AnthropicToolResultOptions = {}): AnthropicToolResultBlock {
  const id = requireId(options.toolUseId ?? result.call?.id, 'toolUseId', 'toAnthropicToolResult');
  const parts = toolResultParts(result, { ...options, acceptImage: (t) => ANTHROPIC_IMAGE_TYPES.has(t) });
  const content = parts
    .filter((p) => p.type !== 'text' || p.text !== '')
    .map((p): AnthropicToolResultContent =>
      p.type === 'text'
        ? { type: 'text', text: p.text }
        : { type: 'image', source: { type: 'base64', media_type: p.mimeType as 'image/png', data: p.data } },
    );
  if (content.length === 0) content.push({ type: 'text', text: '[no content]' });
  return { type: 'tool_result', tool_use_id: id, content, is_error: result.isError === true };
}

// ---------------------------------------------------------------- Google Gemini

/**
 * A Gemini `functionResponse` part, sent in a `user` content after the model's `functionCall` part.
 * Follows https://ai.google.dev/api/caching#FunctionResponse: `name` is the function's name, `response` a JSON
 * object ("e.g. `output`, `result` … if the function call failed, the response can have an `error` key"), and
 * `id` the function call's id when it had one.
 *
 * @example
 * ```ts
 * const part: GeminiFunctionResponsePart = { functionResponse: { name: 'files__read_file', response: { output: 'hello' } } };
 * ```
 */
export interface GeminiFunctionResponsePart {
  functionResponse: { id?: string; name: string; response: Record<string, unknown> };
}

/**
 * Options of {@link toGeminiToolResult}.
 *
 * @example
 * ```ts
 * const opts: GeminiToolResultOptions = { name: call.name, id: call.id };
 * ```
 */
export interface GeminiToolResultOptions extends ToolResultOptions {
  /** The function's name, as in the `functionCall`; default the `call.name` that {@link dispatchToolCall} set. */
  name?: string;
  /** The `functionCall`'s `id`, when it had one; default the `call.id` that {@link dispatchToolCall} set. */
  id?: string;
}

/**
 * An MCP tool result as a Gemini `functionResponse` part. `response` is:
 * - `{ error: <text> }` when `isError` is true;
 * - else the result's `structuredContent` (a JSON object) when it has one and its JSON is within `maxBytes`;
 * - else `{ output: <text> }` ({@link toolResultText}: images, audio and blobs are text markers).
 *
 * @throws TypeError when there is no name (neither `options.name` nor `result.call.name`).
 * @example
 * ```ts
 * import { dispatchToolCall, toGeminiToolResult } from 'mcp-switchboard/adapters';
 * const parts = [];
 * for (const call of response.functionCalls ?? []) {
 *   const result = await dispatchToolCall(manager, { user, id: call.id, name: call.name, arguments: call.args, names });
 *   parts.push(toGeminiToolResult(result));
 * }
 * contents.push({ role: 'user', parts });
 * ```
 */
export function toGeminiToolResult(result: DispatchedToolResult, options: GeminiToolResultOptions = {}): GeminiFunctionResponsePart {
  const name = options.name ?? result.call?.name;
  if (typeof name !== 'string' || name === '') throw new TypeError('toGeminiToolResult: no function name; pass options.name (or dispatch the call)');
  const id = options.id ?? result.call?.id;
  const structured = result.structuredContent;
  const { maxBytes } = caps(options);
  const response: Record<string, unknown> =
    result.isError === true
      ? { error: toolResultText(result, options) }
      : isObject(structured) && Buffer.byteLength(JSON.stringify(structured), 'utf8') <= maxBytes
        ? structured
        : { output: toolResultText(result, options) };
  return { functionResponse: { ...(id ? { id } : {}), name, response } };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// ---------------------------------------------------------------- Vercel AI SDK

/**
 * What an AI SDK tool's `toModelOutput` returns (`ToolResultOutput` of `@ai-sdk/provider-utils`, AI SDK 5 and
 * 6): only the variants both versions share. https://ai-sdk.dev/docs/ai-sdk-core/tools-and-tool-calling
 *
 * @example
 * ```ts
 * const output: AISDKToolResultOutput = { type: 'text', value: 'done' };
 * ```
 */
export type AISDKToolResultOutput =
  | { type: 'text'; value: string }
  | { type: 'error-text'; value: string }
  | { type: 'json'; value: Record<string, unknown> };

/**
 * An MCP tool result as an AI SDK tool output, for a tool's `toModelOutput`: `error-text` when `isError`, `json`
 * with the `structuredContent` when there is one (within `maxBytes`), else `text` ({@link toolResultText}).
 *
 * @example
 * ```ts
 * import { toAISDKToolResult } from 'mcp-switchboard/adapters';
 * const output = toAISDKToolResult({ content: [{ type: 'text', text: 'done' }] }); // { type: 'text', value: 'done' }
 * ```
 */
export function toAISDKToolResult(result: CallToolResult, options: ToolResultOptions = {}): AISDKToolResultOutput {
  if (result.isError === true) return { type: 'error-text', value: toolResultText(result, options) };
  const structured = result.structuredContent;
  const { maxBytes } = caps(options);
  if (isObject(structured) && Buffer.byteLength(JSON.stringify(structured), 'utf8') <= maxBytes) return { type: 'json', value: structured };
  return { type: 'text', value: toolResultText(result, options) };
}
