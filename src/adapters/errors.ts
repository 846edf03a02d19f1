/**
 * The one error class of `mcp-switchboard/adapters`. It extends the package's {@link SwitchboardError}, so a host
 * that already switches on `err.code` handles adapter failures the same way.
 * @module
 */
import { SwitchboardError, type SwitchboardErrorOptions } from '../errors.js';

/**
 * Codes of {@link AdapterError}:
 * - `schema_unsupported`: a tool's input schema cannot be represented for the target API without changing its
 *   meaning (recursion, an unresolvable `$ref`, a keyword strict mode cannot express, …) and the host asked for
 *   `onUnsupported: 'error'`.
 * - `invalid_tool_arguments`: the model's tool-call arguments are not valid JSON or not a JSON object.
 * - `unknown_tool`: the model called a tool name that is not in the `names` map.
 * - `tool_call_refused`: the host's `approve(call)` hook refused the call.
 *
 * @example
 * ```ts
 * function describe(code: AdapterErrorCode): string {
 *   return code === 'schema_unsupported' ? 'fix the tool schema' : 'tell the model';
 * }
 * ```
 */
export type AdapterErrorCode = 'schema_unsupported' | 'invalid_tool_arguments' | 'unknown_tool' | 'tool_call_refused';

/**
 * Options of an {@link AdapterError}: those of every error of the package, plus the tool and the place in its
 * schema the error concerns.
 *
 * @example
 * ```ts
 * const options: AdapterErrorOptions = { serverName: 'files', toolName: 'read_file', path: '/properties/mode' };
 * ```
 */
export interface AdapterErrorOptions extends SwitchboardErrorOptions {
  /** The MCP tool name (not the model-facing name), when the error concerns one tool. */
  toolName?: string;
  /** A JSON Pointer into the tool's input schema (or arguments) where the problem is, e.g. `/properties/tree`. */
  path?: string;
}

/**
 * An error of the agent-runtime adapters (`mcp-switchboard/adapters`); see {@link AdapterErrorCode}.
 *
 * @example
 * ```ts
 * try {
 *   convert();
 * } catch (err) {
 *   if (err instanceof AdapterError && err.code === 'schema_unsupported') console.warn(err.toolName, err.path, err.message);
 * }
 * ```
 */
export class AdapterError extends SwitchboardError {
  declare readonly code: AdapterErrorCode;
  /** The MCP tool name the error concerns, when there is one. */
  readonly toolName?: string;
  /** A JSON Pointer to the part of the schema (or arguments) the error concerns, when there is one. */
  readonly path?: string;

  constructor(code: AdapterErrorCode, message: string, options: AdapterErrorOptions = {}) {
    const { toolName, path, ...rest } = options;
    super(code, message, rest);
    if (toolName !== undefined) this.toolName = toolName;
    if (path !== undefined) this.path = path;
  }

  /** The log-safe JSON form of {@link SwitchboardError.toJSON}, plus `toolName` and `path` when set. */
  override toJSON(): Record<string, unknown> {
    return {
      ...super.toJSON(),
      ...(this.toolName === undefined ? {} : { toolName: this.toolName }),
      ...(this.path === undefined ? {} : { path: this.path }),
    };
  }
}
