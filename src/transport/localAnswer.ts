/**
 * How the request path fails one request without failing the connection: it answers that request locally
 * with a JSON-RPC error whose `data` is the typed error itself. The SDK hands `data` to the `McpError` it
 * rejects the request with, by reference, so the connection gets the very `SwitchboardError` back; no
 * message text is ever matched.
 * @module
 */
import { ErrorCode, McpError, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { SwitchboardError } from '../errors.js';

/**
 * The local answer to request `id`: a JSON-RPC error carrying `error` as its `data`. Deliver it through the
 * transport's `onmessage`, never over the wire.
 *
 * @example
 * ```ts
 * transport.onmessage?.(localErrorAnswer(7, new SwitchboardError('too_large', 'result over the cap')));
 * ```
 */
export function localErrorAnswer(id: string | number, error: SwitchboardError): JSONRPCMessage {
  return { jsonrpc: '2.0', id, error: { code: ErrorCode.InternalError, message: error.message, data: error } };
}

/**
 * The typed error of a request answered by {@link localErrorAnswer}, or `undefined` for any other error.
 *
 * @example
 * ```ts
 * const own = localErrorOf(err);
 * if (own) throw own;
 * ```
 */
export function localErrorOf(err: unknown): SwitchboardError | undefined {
  return err instanceof McpError && err.data instanceof SwitchboardError ? err.data : undefined;
}
