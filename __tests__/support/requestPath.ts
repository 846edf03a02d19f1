/**
 * Helpers of the request-path tests: a normalised request for one stage, and one connection to a loopback peer.
 */
import type { Agent } from 'undici';
import { MCPConnectionFactory, type MCPConnectionFactoryOptions } from '../../src/MCPConnectionFactory.js';
import type { MCPConnection } from '../../src/MCPConnection.js';
import { parseServersConfig } from '../../src/config/parse.js';
import type { OutgoingRequest } from '../../src/transport/requestPath.js';

/** A JSON-RPC `ping` POST to `url` through `dispatcher`, as the request path hands it to a stage; `over` wins. */
export function outgoingRequest(url: URL, dispatcher: Agent, over: Partial<OutgoingRequest> = {}): OutgoingRequest {
  return {
    url,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
    redirect: 'manual',
    forceRefresh: false,
    crossOrigin: false,
    dispatcher,
    ...over,
  };
}

/**
 * One connection (server name `svc`) to `url` over `type`, from a factory of its own that does not reconnect
 * unless `opts` says so; both are closed by the `cleanups` the test runs after it.
 */
export async function connectTo(
  url: string,
  type: 'sse' | 'streamable-http',
  cleanups: (() => Promise<unknown>)[],
  opts: MCPConnectionFactoryOptions = {},
): Promise<MCPConnection> {
  const factory = new MCPConnectionFactory({ reconnect: { maxAttempts: 0 }, ...opts });
  cleanups.push(() => factory.close());
  const config = parseServersConfig({ svc: { type, url } }).svc!;
  const conn = await factory.create({ serverName: 'svc', config });
  cleanups.push(() => conn.close());
  return conn;
}
