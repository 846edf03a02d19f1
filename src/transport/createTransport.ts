/**
 * The default transport of each config type.
 * @module
 */
import { getDefaultEnvironment } from '@modelcontextprotocol/sdk/client/stdio.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { SwitchboardError } from '../errors.js';
import type { ServerConfig } from '../config/schema.js';
import type { Transport, TransportContext } from './types.js';
import { StdioProcessTransport } from './stdioClientTransport.js';
import { WebSocketClientTransport } from './websocketClientTransport.js';

/**
 * Default transports: stdio → our StdioProcessTransport (command/args/env merged over a safe default
 * env/cwd/stderr; `close()` ends the server's whole process tree; lines over `ctx.maxMessageBytes` fail their
 * request with `too_large`); sse → SDK SSEClientTransport using ctx.fetch for BOTH the event stream and POSTs;
 * streamable-http → SDK StreamableHTTPClientTransport with fetch: ctx.fetch; websocket → our
 * WebSocketClientTransport (through `ctx.dispatcher` when given; messages over `ctx.maxMessageBytes` fail their
 * request with `too_large`).
 *
 * The HTTP transports get no `requestInit` and no SDK `authProvider`: headers and Authorization come from
 * `ctx.fetch` alone, per request, so nothing token-like is frozen into a transport.
 *
 * @example
 * ```ts
 * const factory = new MCPConnectionFactory({
 *   createTransport: (ctx) => (ctx.config.type === 'stdio' ? myStdio(ctx) : createDefaultTransport(ctx)),
 * });
 * ```
 */
export function createDefaultTransport(ctx: TransportContext): Transport {
  const config: ServerConfig = ctx.config;
  switch (config.type) {
    case 'stdio':
      return new StdioProcessTransport({
        serverName: ctx.serverName,
        command: config.command,
        ...(config.args ? { args: config.args } : {}),
        // Only a short list of the host's variables (PATH, HOME, …): the host's secrets stay with the host.
        env: { ...getDefaultEnvironment(), ...(config.env ?? {}) },
        ...(config.cwd ? { cwd: config.cwd } : {}),
        stderr: config.stderr ?? 'inherit',
        ...(ctx.maxMessageBytes === undefined ? {} : { maxMessageBytes: ctx.maxMessageBytes }),
        ...(ctx.closeGraceMs === undefined ? {} : { closeGraceMs: ctx.closeGraceMs }),
      });
    case 'sse':
      // SSEClientTransport uses `fetch` for the event stream too unless `eventSourceInit.fetch` overrides it.
      return new SSEClientTransport(new URL(config.url), { fetch: ctx.fetch });
    case 'streamable-http':
      return new StreamableHTTPClientTransport(new URL(config.url), {
        fetch: ctx.fetch,
        ...(ctx.reconnectionOptions ? { reconnectionOptions: ctx.reconnectionOptions } : {}),
      });
    case 'websocket':
      return new WebSocketClientTransport(new URL(config.url), {
        ...(ctx.dispatcher ? { dispatcher: ctx.dispatcher } : {}),
        ...(ctx.maxMessageBytes === undefined ? {} : { maxMessageBytes: ctx.maxMessageBytes }),
      });
    default: {
      const type = (config as { type?: unknown }).type;
      throw new SwitchboardError('config_invalid', `No default transport for type ${JSON.stringify(type)}`, {
        serverName: ctx.serverName,
      });
    }
  }
}
