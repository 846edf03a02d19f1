/**
 * The asking side of the elicitation tests: an SDK server's tool `ask`, which sends `elicitation/create` with the
 * params it is given and answers what came back (or the error), and the client side's call of it.
 */
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { McpError, type ClientCapabilities, type ElicitRequest, type ElicitRequestFormParams, type ElicitResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import type { MCPManager } from '../../src/MCPManager.js';
import type { UserContext } from '../../src/types.js';
import { firstText } from './mcp.js';

/** What `ask` answers: the client's capabilities and the elicitation's result, or its error. */
export interface Answer {
  /** The user of the session the tool ran on, when the server knows it (`app` without one). */
  sessionUser?: string;
  capabilities: ClientCapabilities | undefined;
  result?: ElicitResult;
  error?: { code: number | undefined; message: string };
}

/**
 * Registers `ask` on `mcp`: it sends `elicitation/create` with its JSON `params` (on the call's own stream), and
 * for an accepted URL-mode request the completion notification. `sessionUser`, when given, goes into each answer.
 */
export function registerAskTool(mcp: McpServer, sessionUser?: string): void {
  mcp.registerTool('ask', { inputSchema: { params: z.string() } }, async ({ params }, extra) => {
    const request = JSON.parse(params) as ElicitRequest['params'];
    const answer: Answer = { ...(sessionUser !== undefined ? { sessionUser } : {}), capabilities: mcp.server.getClientCapabilities() };
    try {
      answer.result = await mcp.server.elicitInput(request, { relatedRequestId: extra.requestId });
      if (request.mode === 'url' && answer.result.action === 'accept') {
        await mcp.server.createElicitationCompletionNotifier(request.elicitationId, { relatedRequestId: extra.requestId })();
      }
    } catch (err) {
      answer.error = { code: err instanceof McpError ? err.code : undefined, message: (err as Error).message };
    }
    return { content: [{ type: 'text', text: JSON.stringify(answer) }] };
  });
}

/** Calls `ask` on `serverName` (as `user`, if any) with `params`, and returns its answer. */
export async function ask(m: MCPManager, serverName: string, user: UserContext | undefined, params: ElicitRequest['params']): Promise<Answer> {
  const result = await m.callTool({ ...(user ? { user } : {}), serverName, toolName: 'ask', arguments: { params: JSON.stringify(params) } });
  return JSON.parse(firstText(result)!) as Answer;
}

/** Every SEP-1034 default kind, all fields optional. */
export const withDefaults: ElicitRequestFormParams = {
  message: 'Profile',
  requestedSchema: {
    type: 'object',
    properties: {
      name: { type: 'string', default: 'John Doe' },
      age: { type: 'integer', default: 30 },
      score: { type: 'number', default: 95.5 },
      status: { type: 'string', enum: ['active', 'inactive', 'pending'], default: 'active' },
      verified: { type: 'boolean', default: true },
    },
    required: [],
  },
};
