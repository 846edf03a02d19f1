/**
 * A model's tool call, routed back to the MCP server it came from: the model-facing name looked up in the
 * `names` map of a `to*Tools` converter, the arguments parsed, an optional human approval, then
 * `MCPManager.callTool` with the user's identity.
 * @module
 */
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { SwitchboardError, type SwitchboardErrorCode } from '../errors.js';
import type { CallToolArgs } from '../MCPManager.js';
import type { UserContext } from '../types.js';
import { AdapterError } from './errors.js';
import type { DispatchedToolResult, ToolCallInfo } from './results.js';
import { restoreToolArguments, type ArgumentPath } from './schema.js';

/**
 * Where a model-facing tool name leads: the MCP server and the tool's own name on it. The values of the
 * `names` map every `to*Tools` converter returns.
 *
 * @example
 * ```ts
 * const names = new Map<string, ToolTarget>([['files__read_file', { serverName: 'files', toolName: 'read_file' }]]);
 * ```
 */
export interface ToolTarget {
  serverName: string;
  toolName: string;
  /**
   * OpenAI strict mode only: argument paths whose `null` means "not given" (set by the `to*Tools` converters);
   * {@link dispatchToolCall} removes those `null`s before the approval hook and the call.
   */
  omitNulls?: readonly ArgumentPath[];
}

/**
 * The call an {@link ApproveToolCall} hook is asked about: who, which tool, with which (parsed) arguments.
 *
 * @example
 * ```ts
 * const approve = (call: ToolCallApprovalRequest) => call.toolName !== 'delete_file' || call.user?.id === 'admin';
 * ```
 */
export interface ToolCallApprovalRequest {
  /** The user the call would be made for. */
  user: UserContext | undefined;
  /** The model-facing tool name. */
  name: string;
  /** The API's id of the tool call, when given. */
  id?: string;
  /** The MCP server. */
  serverName: string;
  /** The MCP tool name. */
  toolName: string;
  /** The parsed arguments (absent when the model sent none). */
  arguments: Record<string, unknown> | undefined;
}

/**
 * A human-in-the-loop decision: `true` / `{ approved: true }` lets the call through; `false` /
 * `{ approved: false, reason? }` refuses it. `reason` is shown to the model, so it must hold nothing secret.
 *
 * @example
 * ```ts
 * const decision: ToolCallApproval = { approved: false, reason: 'the user declined' };
 * ```
 */
export type ToolCallApproval = boolean | { approved: boolean; reason?: string };

/**
 * The approval hook of {@link dispatchToolCall}, sync or async. Called after the name and arguments are known to
 * be good and before anything is sent. A throw or rejection propagates (nothing is sent).
 *
 * @example
 * ```ts
 * const approve: ApproveToolCall = async (call) => ui.confirm(`Run ${call.toolName} on ${call.serverName}?`);
 * ```
 */
export type ApproveToolCall = (call: ToolCallApprovalRequest) => ToolCallApproval | Promise<ToolCallApproval>;

/**
 * What {@link dispatchToolCall} needs of the manager: `callTool` (an `MCPManager` has it; a test can pass a fake).
 *
 * @example
 * ```ts
 * const fake: ToolCaller = { callTool: async (args) => ({ content: [{ type: 'text', text: `called ${args.toolName}` }] }) };
 * ```
 */
export interface ToolCaller {
  callTool(args: CallToolArgs): Promise<CallToolResult>;
}

/**
 * Arguments of {@link dispatchToolCall}.
 *
 * @example
 * ```ts
 * const args: DispatchToolCallArgs = { user, id: 'call_abc', name: 'files__read_file', arguments: '{"path":"/a.txt"}', names, errorsAsResults: true };
 * ```
 */
export interface DispatchToolCallArgs {
  /** The user the call is made for: their identity and credentials are the ones used (`callTool`'s `user`). */
  user?: UserContext;
  /** The tool name the model called (the model-facing name). */
  name: string;
  /** The API's id of the tool call; copied to the result's `call.id`, so the result converters need no options. */
  id?: string;
  /**
   * The arguments as the model sent them: a JSON string (OpenAI, Chat and Responses) or an object (Anthropic
   * `input`, Gemini `args`). Absent, `null` or an empty string → no arguments. Anything that is not a JSON object
   * → `AdapterError('invalid_tool_arguments')`.
   */
  arguments?: unknown;
  /** The `names` map returned by the `to*Tools` converter the tools were given to the model with. */
  names: ReadonlyMap<string, ToolTarget>;
  /**
   * Cap on the arguments' size in UTF-8 bytes (a string as sent, an object as its JSON); default
   * {@link DEFAULT_MAX_ARGUMENT_BYTES}. Larger → `AdapterError('invalid_tool_arguments')`, nothing is sent.
   */
  maxArgumentBytes?: number;
  /** The approval hook; see {@link ApproveToolCall}. Absent: every call is approved. */
  approve?: ApproveToolCall;
  /**
   * Return typed failures the model can act on as results with `isError: true` (see {@link toolResultForError})
   * instead of throwing them. `true` uses {@link isModelFacingError}; a function decides per error. Default
   * `false`: they are thrown. A refusal by `approve` is always a result.
   */
  errorsAsResults?: boolean | ((err: unknown) => boolean);
  /** Aborts the call; passed to `callTool`. */
  signal?: AbortSignal;
  /** Timeout of the call in ms; passed to `callTool`. */
  timeoutMs?: number;
  /** Receives the server's progress notifications; passed to `callTool`. */
  onProgress?: CallToolArgs['onProgress'];
  /** Restart `timeoutMs` on each progress notification; passed to `callTool`. */
  resetTimeoutOnProgress?: boolean;
  /** Bound on the whole call in ms however much progress arrives; passed to `callTool`. */
  maxTotalTimeoutMs?: number;
}

/**
 * Default cap on a tool call's arguments, in UTF-8 bytes: 1 MiB.
 *
 * @example
 * ```ts
 * const result = await dispatchToolCall(manager, { user, name, arguments: args, names, maxArgumentBytes: DEFAULT_MAX_ARGUMENT_BYTES / 4 });
 * ```
 */
export const DEFAULT_MAX_ARGUMENT_BYTES = 1024 * 1024;

/**
 * Routes a model's tool call to its MCP server through `manager.callTool`, for `user`:
 * 1. `name` is looked up in `names` (unknown → `AdapterError('unknown_tool')`);
 * 2. `arguments` is parsed when a string (not JSON, not a JSON object, or over `maxArgumentBytes` →
 *    `AdapterError('invalid_tool_arguments')`),
 *    and the `null`s that stand for "not given" in OpenAI strict mode ({@link ToolTarget.omitNulls}) are removed;
 * 3. `approve`, when given, is asked; a refusal is returned as a result with `isError: true` whose text says the
 *    call was refused and why (nothing is sent);
 * 4. `callTool({ user, serverName, toolName, arguments, signal, timeoutMs, onProgress, … })`.
 *
 * Returns the MCP `CallToolResult` (a tool's own failure is `isError: true` in it, as MCP reports it) with
 * `call` ({@link ToolCallInfo}) added, ready for `toOpenAIToolResult`, `toAnthropicToolResult`, … Typed failures
 * (steps 1–2, and `callTool`'s `SwitchboardError`s) are thrown, or returned as `isError` results with
 * `errorsAsResults`.
 *
 * @throws AdapterError `unknown_tool` or `invalid_tool_arguments` (unless `errorsAsResults` covers them).
 * @throws SwitchboardError whatever `callTool` throws (`user_required`, `aborted`, `call_timeout`, `OboError`, …).
 * @example
 * ```ts
 * import { dispatchToolCall, toOpenAIToolResult } from 'mcp-switchboard/adapters';
 * const result = await dispatchToolCall(manager, {
 *   user,
 *   id: toolCall.id,
 *   name: toolCall.function.name,
 *   arguments: toolCall.function.arguments, // a JSON string
 *   names,
 *   approve: async (call) => (await askUser(call)) || { approved: false, reason: 'the user declined' },
 *   errorsAsResults: true,
 * });
 * messages.push(toOpenAIToolResult(result));
 * ```
 */
export async function dispatchToolCall(manager: ToolCaller, args: DispatchToolCallArgs): Promise<DispatchedToolResult> {
  const { user, name, id, names } = args;
  const maxArgumentBytes = args.maxArgumentBytes ?? DEFAULT_MAX_ARGUMENT_BYTES;
  if (typeof maxArgumentBytes !== 'number' || !Number.isSafeInteger(maxArgumentBytes) || maxArgumentBytes <= 0) {
    throw new TypeError(`maxArgumentBytes must be a positive integer, got ${String(maxArgumentBytes)}`);
  }
  const base = { ...(id === undefined ? {} : { id }), name };
  let target: ToolTarget | undefined;
  try {
    target = resolveToolName(names, name);
    checkArgumentSize(args.arguments, maxArgumentBytes, target);
    const parsed = parseToolArguments(args.arguments, { toolName: target.toolName, serverName: target.serverName });
    // Strict mode sent optional properties as required-and-nullable: the server must see them absent.
    const toolArguments = parsed === undefined ? undefined : restoreToolArguments(parsed, target.omitNulls);
    if (args.approve) {
      const decision = await args.approve({ user, ...base, serverName: target.serverName, toolName: target.toolName, arguments: toolArguments });
      const approved = typeof decision === 'boolean' ? decision : decision?.approved === true;
      if (!approved) {
        const reason = typeof decision === 'object' && decision !== null ? decision.reason : undefined;
        const refusal = new AdapterError('tool_call_refused', refusalMessage(target.toolName, reason), {
          serverName: target.serverName,
          toolName: target.toolName,
        });
        return withCall(toolResultForError(refusal), { ...base, ...where(target), outcome: 'refused', errorCode: refusal.code });
      }
    }
    const result = await manager.callTool({
      user,
      serverName: target.serverName,
      toolName: target.toolName,
      arguments: toolArguments,
      signal: args.signal,
      timeoutMs: args.timeoutMs,
      onProgress: args.onProgress,
      resetTimeoutOnProgress: args.resetTimeoutOnProgress,
      maxTotalTimeoutMs: args.maxTotalTimeoutMs,
    });
    return withCall(result, { ...base, ...where(target), outcome: 'called' });
  } catch (err) {
    const asResult = args.errorsAsResults === true ? isModelFacingError(err) : typeof args.errorsAsResults === 'function' && args.errorsAsResults(err);
    if (!asResult) throw err;
    const errorCode = err instanceof SwitchboardError ? err.code : undefined;
    return withCall(toolResultForError(err), { ...base, ...where(target), outcome: 'failed', ...(errorCode ? { errorCode } : {}) });
  }
}

/**
 * The server and MCP tool a model-facing name leads to.
 *
 * @throws AdapterError `unknown_tool` when `names` does not have it.
 * @example
 * ```ts
 * const { serverName, toolName } = resolveToolName(names, 'files__read_file');
 * ```
 */
export function resolveToolName(names: ReadonlyMap<string, ToolTarget>, name: string): ToolTarget {
  const target = typeof name === 'string' ? names.get(name) : undefined;
  if (!target) throw new AdapterError('unknown_tool', `Unknown tool ${quote(name)}: it is not one of the tools offered`);
  return target;
}

/**
 * A tool call's arguments as `callTool` takes them: a plain object, or `undefined` for none. A string is parsed
 * as JSON and must be an object (the JSON text `null` is not); `undefined`, `null` and an empty (or blank)
 * string mean no arguments.
 *
 * The error message never quotes the arguments (the model may have put anything in them): it says what was
 * wrong and, for bad JSON, how long the text was.
 *
 * @throws AdapterError `invalid_tool_arguments` when the value is not JSON, or not a JSON object.
 * @example
 * ```ts
 * parseToolArguments('{"path":"/a.txt"}'); // { path: '/a.txt' }
 * parseToolArguments(''); // undefined
 * parseToolArguments('[1,2]'); // throws AdapterError('invalid_tool_arguments')
 * ```
 */
export function parseToolArguments(value: unknown, where: { toolName?: string; serverName?: string } = {}): Record<string, unknown> | undefined {
  const fail = (what: string) =>
    new AdapterError('invalid_tool_arguments', `The arguments of tool ${quote(where.toolName ?? '?')} ${what}; send a JSON object`, {
      ...(where.toolName === undefined ? {} : { toolName: where.toolName }),
      ...(where.serverName === undefined ? {} : { serverName: where.serverName }),
    });
  if (value === undefined || value === null) return undefined;
  let parsed: unknown = value;
  if (typeof value === 'string') {
    if (value.trim() === '') return undefined;
    try {
      parsed = JSON.parse(value);
    } catch {
      // The SyntaxError's message quotes the input: not kept, not even as the cause.
      throw fail(`are not valid JSON (${value.length} characters)`);
    }
  }
  if (!isPlainObject(parsed)) throw fail(`are ${describe(parsed)}, not an object`);
  return parsed;
}

/**
 * The typed failures a model can act on (correct its call, try another tool, tell the user), which
 * `errorsAsResults: true` returns as results: an {@link AdapterError} `invalid_tool_arguments`, `unknown_tool` or
 * `tool_call_refused`, and a `SwitchboardError` `server_error` (the MCP server answered with an error, e.g.
 * invalid params), `call_timeout` or `too_large`. Everything else (credentials, the user, configuration,
 * `aborted`, a closed manager, connection failures) is the host's to handle and is not model-facing.
 *
 * @example
 * ```ts
 * const result = await dispatchToolCall(manager, { user, name, arguments: args, names, errorsAsResults: isModelFacingError });
 * ```
 */
export function isModelFacingError(err: unknown): boolean {
  return err instanceof SwitchboardError && MODEL_FACING_CODES.has(err.code);
}

const MODEL_FACING_CODES = new Set<SwitchboardErrorCode>([
  'invalid_tool_arguments',
  'unknown_tool',
  'tool_call_refused',
  'server_error',
  'call_timeout',
  'too_large',
]);

/**
 * An error as a `CallToolResult` with `isError: true` the model can read. The text is a `SwitchboardError`'s
 * message (log-safe by construction: never a token, header or argument value) or, for any other error,
 * `Tool call failed (<error name>)` (its message may hold anything, so it is not used).
 *
 * @example
 * ```ts
 * import { dispatchToolCall, isModelFacingError, toolResultForError, toAnthropicToolResult } from 'mcp-switchboard/adapters';
 * let result;
 * try {
 *   result = await dispatchToolCall(manager, { user, id: toolUse.id, name: toolUse.name, arguments: toolUse.input, names });
 * } catch (err) {
 *   if (!isModelFacingError(err)) throw err;
 *   result = toolResultForError(err);
 * }
 * const block = toAnthropicToolResult(result, { toolUseId: toolUse.id });
 * ```
 */
export function toolResultForError(err: unknown): CallToolResult {
  const text =
    err instanceof SwitchboardError
      ? err.message
      : `Tool call failed (${err instanceof Error && /^[A-Za-z][\w.]{0,63}$/.test(err.name) ? err.name : 'error'})`;
  return { isError: true, content: [{ type: 'text', text }] };
}

/** Refuses arguments over `max` UTF-8 bytes (a string as is, anything else as its JSON) before they are parsed or sent. */
function checkArgumentSize(value: unknown, max: number, target: ToolTarget): void {
  if (value === undefined || value === null) return;
  let size: number;
  if (typeof value === 'string') {
    // UTF-16 length bounds the UTF-8 size from below (×1) and above (×3): only measure when it matters.
    size = value.length > max ? value.length : value.length * 3 <= max ? 0 : Buffer.byteLength(value, 'utf8');
  } else {
    let json: string | undefined;
    try {
      json = JSON.stringify(value);
    } catch {
      return; // parseToolArguments / callTool report what is wrong with it
    }
    size = json === undefined ? 0 : Buffer.byteLength(json, 'utf8');
  }
  if (size > max) {
    throw new AdapterError('invalid_tool_arguments', `The arguments of tool ${quote(target.toolName)} are over ${max} bytes; send smaller arguments`, {
      toolName: target.toolName,
      serverName: target.serverName,
    });
  }
}

/** The server and tool of a target, for {@link ToolCallInfo} (nothing else of the names map entry). */
function where(target: ToolTarget | undefined): { serverName?: string; toolName?: string } {
  return target ? { serverName: target.serverName, toolName: target.toolName } : {};
}

function withCall(result: CallToolResult, call: ToolCallInfo): DispatchedToolResult {
  return { ...result, call };
}

function refusalMessage(toolName: string, reason: string | undefined): string {
  const why = typeof reason === 'string' && reason.trim() !== '' ? `: ${reason.trim()}` : '';
  return `The call to tool ${quote(toolName)} was refused and not run${why}`;
}

/** A model-supplied name, quoted and bounded, for messages. */
function quote(name: unknown): string {
  const s = typeof name === 'string' ? name : String(name);
  return JSON.stringify(s.length > 128 ? `${s.slice(0, 128)}…` : s);
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  return typeof value === 'object' ? 'not a plain object' : `a ${typeof value}`;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
