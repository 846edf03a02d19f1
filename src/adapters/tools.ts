/**
 * MCP tools (as `listTools` returns them, per server) as the tool definitions of OpenAI Chat Completions,
 * OpenAI Responses, Anthropic Messages, Gemini and the Vercel AI SDK, with a `names` map back to (server, tool).
 * @module
 */
import { AdapterError } from './errors.js';
import {
  AI_SDK_NAME_RULES,
  ANTHROPIC_NAME_RULES,
  GEMINI_NAME_RULES,
  OPENAI_NAME_RULES,
  type ToolNameRules,
} from './constraints.js';
import type { ToolTarget } from './dispatch.js';
import { assignToolNames, type ToolNamingOptions } from './names.js';
import { normalizeInputSchema, type ArgumentPath, type JsonSchema, type SchemaDialect, type SchemaIssue } from './schema.js';

/**
 * An MCP tool as the converters read it: the fields of the MCP SDK's `Tool` they use (a `listTools()` result's
 * `tools` fit as they are).
 *
 * @example
 * ```ts
 * const tool: McpToolDefinition = { name: 'read_file', description: 'Read a file', inputSchema: { type: 'object', properties: { path: { type: 'string' } } } };
 * ```
 */
export interface McpToolDefinition {
  name: string;
  title?: string;
  /** Sent as the tool's description (`title` when there is none). */
  description?: string;
  /** A JSON Schema object; absent means no arguments (`{ type: 'object', properties: {} }`). */
  inputSchema?: unknown;
}

/**
 * The tools to convert, by server name: each value is that server's tool list (`(await listTools()).tools`), or
 * the `listTools()` result itself.
 *
 * @example
 * ```ts
 * const servers: ToolsByServer = { files: filesTools, tickets: await manager.listTools({ user, serverName: 'tickets' }) };
 * ```
 */
export type ToolsByServer = Readonly<Record<string, readonly McpToolDefinition[] | { readonly tools: readonly McpToolDefinition[] }>>;

/**
 * Where a model-facing name leads (the values of `names`): the server and MCP tool name, plus, for OpenAI strict
 * tools, the argument paths whose `null` means "absent" (see `restoreToolArguments`).
 *
 * @example
 * ```ts
 * const entry: ToolNameEntry = { serverName: 'files', toolName: 'read_file', omitNulls: [['head'], ['tail']] };
 * ```
 */
export interface ToolNameEntry extends ToolTarget {
  /**
   * OpenAI strict mode only: optional properties were sent as required-and-nullable, so the model sends `null`
   * for "not given". Pass the parsed arguments and these paths to `restoreToolArguments` before calling the
   * tool (`dispatchToolCall` does).
   */
  omitNulls?: readonly ArgumentPath[];
}

/**
 * Something about a tool's schema the API could not take as is: a keyword moved into the description, strict
 * mode not possible, or a tool left out.
 *
 * @example
 * ```ts
 * for (const w of warnings) logger.warn({ server: w.serverName, tool: w.toolName, at: w.path }, w.message);
 * ```
 */
export interface AdapterWarning {
  serverName: string;
  /** The MCP tool name. */
  toolName: string;
  message: string;
  /** JSON Pointer into the tool's `inputSchema` (`''`: the root or the tool itself). */
  path: string;
}

/**
 * Options of every `to*Tools` converter.
 *
 * @example
 * ```ts
 * const options: ToolAdapterOptions = { separator: '-', onUnsupported: 'error' };
 * ```
 */
export interface ToolAdapterOptions extends ToolNamingOptions {
  /**
   * What to do with a schema the API cannot take as is:
   * - `'warn'` (default): push an {@link AdapterWarning} and keep the tool when its meaning is kept (a keyword the
   *   API rejects is moved into the description, where the model reads it, and the MCP server still enforces
   *   it; strict mode falls back to non-strict); leave the tool out when it cannot be expressed at all
   *   (recursion, a remote `$ref`, …);
   * - `'error'`: throw `AdapterError('schema_unsupported')` (with `serverName`, `toolName`, `path`) instead.
   */
  onUnsupported?: 'warn' | 'error';
}

/**
 * What every `to*Tools` converter returns.
 *
 * @example
 * ```ts
 * const { tools, names, warnings }: ToolsResult<AnthropicTool[]> = toAnthropicTools(servers);
 * ```
 */
export interface ToolsResult<T> {
  /** The tool definitions, in the order of `servers` then of each server's tools; left-out tools are absent. */
  tools: T;
  /** Model-facing name → (server, tool), for every tool in `tools`. Give it to `dispatchToolCall`. */
  names: Map<string, ToolNameEntry>;
  warnings: AdapterWarning[];
}

/** Reports schema issues per `onUnsupported`; returns whether the tool is kept. */
type Reporter = (issues: readonly SchemaIssue[], note?: string) => boolean;

/** Names every tool, converts each with `convert`, and collects names and warnings. */
function convertAll<T>(
  servers: ToolsByServer,
  options: ToolAdapterOptions,
  rules: ToolNameRules,
  api: string,
  convert: (tool: McpToolDefinition, name: string, report: Reporter, entry: ToolNameEntry) => T | undefined,
): ToolsResult<T[]> {
  if (typeof servers !== 'object' || servers === null) throw new TypeError('servers must be an object of server name → tool list');
  const onUnsupported = options.onUnsupported ?? 'warn';
  if (onUnsupported !== 'warn' && onUnsupported !== 'error') throw new TypeError(`onUnsupported must be 'warn' or 'error', got ${String(onUnsupported)}`);
  const warnings: AdapterWarning[] = [];
  const tools: { serverName: string; tool: McpToolDefinition }[] = [];
  for (const [serverName, list] of Object.entries(servers)) {
    const items = Array.isArray(list) ? list : (list as { tools?: unknown })?.tools;
    if (!Array.isArray(items)) throw new TypeError(`servers['${serverName}'] must be a tool list (listTools().tools) or a listTools() result`);
    for (const tool of items as unknown[]) {
      const name = (tool as McpToolDefinition | null)?.name;
      if (typeof name === 'string' && name !== '') tools.push({ serverName, tool: tool as McpToolDefinition });
      else warnings.push({ serverName, toolName: String(name), message: `${api}: a tool without a name was left out`, path: '' });
    }
  }
  const modelNames = assignToolNames(
    tools.map(({ serverName, tool }) => ({ serverName, toolName: tool.name })),
    rules,
    options,
  );
  const names = new Map<string, ToolNameEntry>();
  const converted: T[] = [];
  tools.forEach(({ serverName, tool }, i) => {
    const toolName = tool.name;
    const report: Reporter = (issues, note) => {
      let kept = true;
      for (const issue of issues) {
        const dropsTool = issue.kind !== 'relaxed' && note === undefined;
        const message = `${api}: ${issue.message}${note ? `; ${note}` : dropsTool ? '; the tool was left out' : ''}`;
        if (onUnsupported === 'error') throw new AdapterError('schema_unsupported', `Tool '${toolName}' of server '${serverName}': ${message}`, { serverName, toolName, path: issue.path });
        warnings.push({ serverName, toolName, message, path: issue.path });
        if (dropsTool) kept = false;
      }
      return kept;
    };
    const entry: ToolNameEntry = { serverName, toolName };
    let value: T | undefined;
    try {
      value = convert(tool, modelNames[i]!, report, entry);
    } catch (err) {
      if (err instanceof AdapterError) throw err; // onUnsupported: 'error'
      // Anything else (a hostile schema, a throwing jsonSchema callback) costs this tool only, not the others.
      // Only the error's name is quoted: its message may hold anything.
      const what = err instanceof Error && /^[A-Za-z][\w.]{0,63}$/.test(err.name) ? err.name : 'error';
      const message = `${api}: the tool could not be converted (${what}); the tool was left out`;
      if (onUnsupported === 'error') throw new AdapterError('schema_unsupported', `Tool '${toolName}' of server '${serverName}': ${message}`, { serverName, toolName, path: '' });
      warnings.push({ serverName, toolName, message, path: '' });
      return;
    }
    if (value === undefined) return;
    names.set(modelNames[i]!, entry);
    converted.push(value);
  });
  return { tools: converted, names, warnings };
}

/** The description the model sees: the tool's description, else its title. */
function checkStrict(strict: unknown): void {
  if (strict !== 'auto' && typeof strict !== 'boolean') throw new TypeError(`strict must be 'auto', true or false, got ${String(strict)}`);
}

function descriptionOf(tool: McpToolDefinition): { description?: string } {
  const text = typeof tool.description === 'string' && tool.description !== '' ? tool.description : tool.title;
  return typeof text === 'string' && text !== '' ? { description: text } : {};
}

/** Normalises for `dialect` and reports; `undefined` when the tool is left out. */
function schemaFor(tool: McpToolDefinition, dialect: SchemaDialect, report: Reporter): JsonSchema | undefined {
  const { schema, issues } = normalizeInputSchema(tool.inputSchema, dialect);
  return report(issues) ? schema : undefined;
}

/**
 * OpenAI `parameters` and whether they are strict. `'auto'`: strict when the schema fits strict mode, else
 * non-strict without a warning (that is what `'auto'` asks for); `true`: the same, but a fallback is reported.
 */
function openAIParameters(tool: McpToolDefinition, strict: 'auto' | boolean, report: Reporter, entry: ToolNameEntry): { parameters: JsonSchema; strict: boolean } | undefined {
  const lenient = schemaFor(tool, 'openai', report);
  if (lenient === undefined) return undefined;
  if (strict === false) return { parameters: lenient, strict: false };
  const { schema, issues, omitNulls } = normalizeInputSchema(tool.inputSchema, 'openai-strict');
  if (schema !== undefined) {
    if (omitNulls.length > 0) entry.omitNulls = omitNulls;
    return { parameters: schema, strict: true };
  }
  if (strict === true) report(issues.filter((i) => i.kind !== 'relaxed').map((i) => ({ ...i, message: `strict mode is not possible: ${i.message}` })), 'sent with strict: false');
  return { parameters: lenient, strict: false };
}

/**
 * Options of {@link toOpenAIChatTools} and {@link toOpenAIResponsesTools}.
 *
 * @example
 * ```ts
 * const options: OpenAIToolOptions = { strict: 'auto' };
 * ```
 */
export interface OpenAIToolOptions extends ToolAdapterOptions {
  /**
   * OpenAI strict mode (Structured Outputs for function calls):
   * - `'auto'`: `strict: true` for each tool whose schema fits strict mode's subset, `false` for the others;
   * - `true`: the same, and each tool that cannot be strict is reported (`onUnsupported`);
   * - `false`: never strict.
   *
   * Default: `false` for Chat Completions and `'auto'` for Responses, as each API's own default (Responses
   * treats a function tool as strict unless told otherwise). A strict schema has every property required, the
   * optional ones as nullable: the `names` entry's `omitNulls` says where `null` means "absent".
   */
  strict?: 'auto' | boolean;
}

/**
 * A Chat Completions function tool (`tools[]` of `POST /v1/chat/completions`).
 * Source: https://platform.openai.com/docs/api-reference/chat/create
 *
 * @example
 * ```ts
 * const tool: OpenAIChatTool = { type: 'function', function: { name: 'files__read_file', parameters: { type: 'object', properties: {} } } };
 * ```
 */
export interface OpenAIChatTool {
  type: 'function';
  function: {
    /** `^[a-zA-Z0-9_-]{1,64}$`. */
    name: string;
    description?: string;
    /** JSON Schema of the arguments; the root is an object. */
    parameters: JsonSchema;
    /** Present (and `true`) only for tools sent in strict mode. */
    strict?: boolean;
  };
}

/**
 * MCP tools as OpenAI Chat Completions `tools`: names `<server>__<tool>` made to match `^[a-zA-Z0-9_-]{1,64}$`,
 * schemas with local `$ref`s inlined, `properties` on the root and `items` on every array (OpenAI rejects
 * schemas without them), and strict mode per {@link OpenAIToolOptions.strict} (default `false`).
 *
 * @throws AdapterError `schema_unsupported` with `onUnsupported: 'error'`, for a schema the API cannot take.
 * @throws TypeError for malformed arguments (`servers` not an object of tool lists, a bad option).
 * @example
 * ```ts
 * const { tools, names, warnings } = toOpenAIChatTools({ files: filesTools, tickets: ticketTools });
 * const completion = await openai.chat.completions.create({ model: 'gpt-4.1', messages, tools });
 * for (const call of completion.choices[0].message.tool_calls ?? []) {
 *   const result = await dispatchToolCall(manager, { user, id: call.id, name: call.function.name, arguments: call.function.arguments, names });
 * }
 * ```
 */
export function toOpenAIChatTools(servers: ToolsByServer, options: OpenAIToolOptions = {}): ToolsResult<OpenAIChatTool[]> {
  const strict = options.strict ?? false;
  checkStrict(strict);
  return convertAll(servers, options, OPENAI_NAME_RULES, 'OpenAI Chat Completions', (tool, name, report, entry) => {
    const p = openAIParameters(tool, strict, report, entry);
    if (p === undefined) return undefined;
    return { type: 'function', function: { name, ...descriptionOf(tool), parameters: p.parameters, ...(p.strict ? { strict: true } : {}) } };
  });
}

/**
 * A Responses API function tool (`tools[]` of `POST /v1/responses`).
 * Source: https://platform.openai.com/docs/api-reference/responses/create (tools → Function)
 *
 * @example
 * ```ts
 * const tool: OpenAIResponsesTool = { type: 'function', name: 'files__read_file', parameters: { type: 'object', properties: {} }, strict: false };
 * ```
 */
export interface OpenAIResponsesTool {
  type: 'function';
  /** `^[a-zA-Z0-9_-]{1,64}$`. */
  name: string;
  description?: string;
  /** JSON Schema of the arguments; the root is an object. */
  parameters: JsonSchema;
  /** Always present: the Responses API would otherwise treat the tool as strict. */
  strict: boolean;
}

/**
 * MCP tools as OpenAI Responses function tools: as {@link toOpenAIChatTools}, flat (`{ type, name, description,
 * parameters, strict }`), with `strict: true` where the schema fits strict mode (default `strict: 'auto'`) and
 * `strict: false` elsewhere. For strict tools, each optional property is sent required-and-nullable and listed in
 * the `names` entry's `omitNulls`, so `dispatchToolCall` can drop the `null`s again.
 *
 * @throws AdapterError `schema_unsupported` with `onUnsupported: 'error'`, for a schema the API cannot take
 *   (and, with `strict: true`, for one that cannot be strict).
 * @throws TypeError for malformed arguments.
 * @example
 * ```ts
 * const { tools, names } = toOpenAIResponsesTools({ files: filesTools });
 * const response = await openai.responses.create({ model: 'gpt-4.1', input, tools });
 * for (const item of response.output) {
 *   if (item.type === 'function_call') {
 *     const result = await dispatchToolCall(manager, { user, id: item.call_id, name: item.name, arguments: item.arguments, names });
 *   }
 * }
 * ```
 */
export function toOpenAIResponsesTools(servers: ToolsByServer, options: OpenAIToolOptions = {}): ToolsResult<OpenAIResponsesTool[]> {
  const strict = options.strict ?? 'auto';
  checkStrict(strict);
  return convertAll(servers, options, OPENAI_NAME_RULES, 'OpenAI Responses', (tool, name, report, entry) => {
    const p = openAIParameters(tool, strict, report, entry);
    if (p === undefined) return undefined;
    return { type: 'function', name, ...descriptionOf(tool), parameters: p.parameters, strict: p.strict };
  });
}

/**
 * An Anthropic Messages client tool (`tools[]` of `POST /v1/messages`).
 * Source: https://platform.claude.com/docs/en/agents-and-tools/tool-use/define-tools
 *
 * @example
 * ```ts
 * const tool: AnthropicTool = { name: 'files__read_file', input_schema: { type: 'object', properties: {} } };
 * ```
 */
export interface AnthropicTool {
  /** `^[a-zA-Z0-9_-]{1,64}$`. */
  name: string;
  description?: string;
  /** JSON Schema of the input; the root is an object (not `anyOf`/`oneOf`/`allOf`). */
  input_schema: JsonSchema & { type: 'object' };
}

/**
 * MCP tools as Anthropic Messages `tools`: names `<server>__<tool>` made to match `^[a-zA-Z0-9_-]{1,64}$`;
 * schemas in JSON Schema with local `$ref`s inlined and a plain object root (Anthropic rejects `oneOf`, `allOf`
 * and `anyOf` at the top level of `input_schema`; a root `allOf` is merged when that keeps its meaning).
 *
 * @throws AdapterError `schema_unsupported` with `onUnsupported: 'error'`, for a schema the API cannot take.
 * @throws TypeError for malformed arguments.
 * @example
 * ```ts
 * const { tools, names } = toAnthropicTools({ files: filesTools, tickets: ticketTools });
 * const message = await anthropic.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 1024, messages, tools });
 * for (const block of message.content) {
 *   if (block.type === 'tool_use') {
 *     const result = await dispatchToolCall(manager, { user, id: block.id, name: block.name, arguments: block.input, names });
 *   }
 * }
 * ```
 */
export function toAnthropicTools(servers: ToolsByServer, options: ToolAdapterOptions = {}): ToolsResult<AnthropicTool[]> {
  return convertAll(servers, options, ANTHROPIC_NAME_RULES, 'Anthropic', (tool, name, report) => {
    const schema = schemaFor(tool, 'json-schema', report);
    if (schema === undefined) return undefined;
    return { name, ...descriptionOf(tool), input_schema: schema as JsonSchema & { type: 'object' } };
  });
}

/**
 * A Gemini function declaration. `parameters` is Gemini's `Schema` (OpenAPI 3.0 subset, upper-case `type`s);
 * absent for a tool without arguments (Gemini rejects an `OBJECT` with no `properties`).
 * Source: https://ai.google.dev/api/caching#FunctionDeclaration
 *
 * @example
 * ```ts
 * const declaration: GeminiFunctionDeclaration = { name: 'files__read_file', parameters: { type: 'OBJECT', properties: { path: { type: 'STRING' } } } };
 * ```
 */
export interface GeminiFunctionDeclaration {
  /** Starts with a letter or `_`; then `[a-zA-Z0-9_.:-]`; at most 64 characters. */
  name: string;
  description?: string;
  parameters?: JsonSchema;
}

/**
 * A Gemini `Tool` holding function declarations: what `tools` (REST `tools[]`, `@google/genai`'s
 * `config.tools`) takes.
 *
 * @example
 * ```ts
 * const tool: GeminiTool = { functionDeclarations: [{ name: 'files__list_allowed_directories' }] };
 * ```
 */
export interface GeminiTool {
  functionDeclarations: GeminiFunctionDeclaration[];
}

/**
 * What {@link toGeminiTools} returns: `tools` ready for the request (one `Tool` with every declaration, or `[]`
 * when there are none) and the declarations on their own.
 *
 * @example
 * ```ts
 * const { tools, functionDeclarations, names, warnings }: GeminiToolsResult = toGeminiTools(servers);
 * ```
 */
export interface GeminiToolsResult extends ToolsResult<GeminiTool[]> {
  functionDeclarations: GeminiFunctionDeclaration[];
}

/**
 * MCP tools as Gemini function declarations. Names follow Gemini's rule (a letter or `_` first; `[a-zA-Z0-9_.:-]`;
 * 64 at most). Schemas become Gemini's OpenAPI subset (`GEMINI_SCHEMA_LIMITS`): local `$ref`s inlined,
 * `type: ['string', 'null']` → `{ type: 'STRING', nullable: true }`, several types → `anyOf`, `oneOf` → `anyOf`
 * (warned: exclusivity is lost), `const` → a one-value `enum`, `additionalProperties: false` dropped (Gemini has
 * no such field; the MCP server still rejects unknown keys), other keywords Gemini rejects (e.g. `format: "uri"`,
 * `exclusiveMinimum`, non-string `enum`) moved into the description with a warning. A value of any type, a tuple,
 * an array without `items` or recursion cannot be declared: the tool is left out (or an error thrown).
 *
 * Returns `tools: [{ functionDeclarations }]` for the request, and `functionDeclarations` on their own.
 *
 * @throws AdapterError `schema_unsupported` with `onUnsupported: 'error'`, for a schema Gemini cannot take as is.
 * @throws TypeError for malformed arguments.
 * @example
 * ```ts
 * const { tools, names } = toGeminiTools({ files: filesTools });
 * const response = await ai.models.generateContent({ model: 'gemini-2.5-flash', contents, config: { tools } });
 * for (const call of response.functionCalls ?? []) {
 *   const result = await dispatchToolCall(manager, { user, id: call.id, name: call.name, arguments: call.args, names });
 * }
 * ```
 */
export function toGeminiTools(servers: ToolsByServer, options: ToolAdapterOptions = {}): GeminiToolsResult {
  const { tools: functionDeclarations, names, warnings } = convertAll(servers, options, GEMINI_NAME_RULES, 'Gemini', (tool, name, report): GeminiFunctionDeclaration | undefined => {
    const schema = schemaFor(tool, 'gemini', report);
    if (schema === undefined) return undefined;
    const empty = !schema.properties || Object.keys(schema.properties as object).length === 0;
    return { name, ...descriptionOf(tool), ...(empty ? {} : { parameters: schema }) };
  });
  return { tools: functionDeclarations.length > 0 ? [{ functionDeclarations }] : [], functionDeclarations, names, warnings };
}

/**
 * The options the AI SDK passes to a tool's `execute` (the fields used here; the SDK's `ToolCallOptions` fits).
 *
 * @example
 * ```ts
 * const options: AISDKToolCallOptions = { toolCallId: 'call_1', abortSignal: AbortSignal.timeout(30_000) };
 * ```
 */
export interface AISDKToolCallOptions {
  toolCallId: string;
  abortSignal?: AbortSignal;
  messages?: unknown[];
}

/**
 * An AI SDK tool (what `tool({...})` / `dynamicTool({...})` of `ai` return): the description, the input schema
 * made by the `jsonSchema` you passed, and `execute` when you gave one.
 *
 * @example
 * ```ts
 * const t: AISDKTool<unknown> = { description: 'Read a file', inputSchema: jsonSchema({ type: 'object', properties: {} }) };
 * ```
 */
export interface AISDKTool<S> {
  description?: string;
  inputSchema: S;
  execute?: (args: unknown, options: AISDKToolCallOptions) => Promise<unknown>;
}

/**
 * Options of {@link toAISDKTools}.
 *
 * @example
 * ```ts
 * // import { jsonSchema } from 'ai'; (here a stand-in that returns the schema as is)
 * const options: AISDKToolOptions<JsonSchema> = { jsonSchema: (schema) => schema };
 * ```
 */
export interface AISDKToolOptions<S> extends ToolAdapterOptions {
  /**
   * The AI SDK's `jsonSchema` helper (`import { jsonSchema } from 'ai'`), injected so that this package does not
   * depend on `ai`. Called once per tool with its normalised JSON Schema.
   */
  jsonSchema(schema: JsonSchema): S;
  /**
   * Runs a call: given the model-facing name, the arguments and the AI SDK's execute options. With it, each
   * tool gets an `execute` and the SDK runs tool calls itself; without it, tools have no `execute` and the
   * host runs the calls (e.g. with `dispatchToolCall`).
   */
  execute?: (name: string, args: Record<string, unknown>, options: AISDKToolCallOptions) => unknown;
}

/**
 * MCP tools as a Vercel AI SDK tool set (`Record<name, tool>`, for `generateText({ tools })` / `streamText`).
 * Names follow every provider's rules at once (`^[a-zA-Z_][a-zA-Z0-9_-]{0,63}$`), as the SDK passes them on to
 * whichever provider is used. Schemas are JSON Schema with local `$ref`s inlined, wrapped by your `jsonSchema`;
 * the provider packages convert them further (e.g. `@ai-sdk/google` to Gemini's subset).
 *
 * Needs no runtime dependency on `ai`: pass its `jsonSchema`, and an `execute(name, args, options)` callback if
 * the SDK should run the calls.
 *
 * @throws AdapterError `schema_unsupported` with `onUnsupported: 'error'`, for a schema that cannot be converted.
 * @throws TypeError for malformed arguments (`jsonSchema` not a function, …).
 * @example
 * ```ts
 * // import { generateText, jsonSchema } from 'ai';
 * const { tools, names } = toAISDKTools({ files: filesTools }, {
 *   jsonSchema,
 *   execute: async (name, args, { toolCallId, abortSignal }) => {
 *     const result = await dispatchToolCall(manager, { user, id: toolCallId, name, arguments: args, names, signal: abortSignal, errorsAsResults: true });
 *     // The SDK sends a string as text and anything else as JSON: return text (toAISDKToolResult is for toModelOutput).
 *     return (result.isError ? 'Error: ' : '') + toolResultText(result);
 *   },
 * });
 * const { text } = await generateText({ model, tools, prompt: 'What is in /tmp?' });
 * ```
 */
export function toAISDKTools<S>(servers: ToolsByServer, options: AISDKToolOptions<S>): ToolsResult<Record<string, AISDKTool<S>>> {
  if (typeof options?.jsonSchema !== 'function') throw new TypeError("jsonSchema must be the AI SDK's jsonSchema function (import { jsonSchema } from 'ai')");
  const execute = options.execute;
  if (execute !== undefined && typeof execute !== 'function') throw new TypeError('execute must be a function');
  const { tools, names, warnings } = convertAll(servers, options, AI_SDK_NAME_RULES, 'AI SDK', (tool, name, report): [string, AISDKTool<S>] | undefined => {
    const schema = schemaFor(tool, 'openai', report);
    if (schema === undefined) return undefined;
    const aiTool: AISDKTool<S> = { ...descriptionOf(tool), inputSchema: options.jsonSchema(schema) };
    if (execute) aiTool.execute = async (args, callOptions) => execute(name, (args ?? {}) as Record<string, unknown>, callOptions);
    return [name, aiTool];
  });
  return { tools: Object.fromEntries(tools), names, warnings };
}
