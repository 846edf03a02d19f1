/**
 * An agent runtime's HTTP endpoint on node:http: verify the caller's bearer, build the UserContext (with an
 * always-fresh upstream token when the runtime keeps the user's session), call a tool as that user, and map
 * every typed error to an HTTP answer. No framework needed; with Express use `createBearerMiddleware`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import {
  OboError,
  SwitchboardError,
  authenticateRequest,
  createUpstreamTokenProvider,
  type BearerVerifier,
  type MCPManager,
  type UpstreamTokenProvider,
  type UserContext,
} from 'mcp-switchboard';

/** What a client posts: which tool of which server, with which arguments. */
interface ToolRequest {
  server: string;
  tool: string;
  arguments?: Record<string, unknown>;
}

export function createAgentService(manager: MCPManager, verifier: BearerVerifier, upstream?: UpstreamTokenProvider): Server {
  return createServer(async (req, res) => {
    // 1. Who is calling? A missing or bad token is answered 401/403 (RFC 6750 challenge) right here.
    const bearer = await authenticateRequest(verifier, req, res, { requiredScopes: ['access_as_user'] });
    if (!bearer) return;

    // 2. The user the tools run for. By default the OBO assertion is the bearer itself; with an upstream
    //    session the provider hands out a fresh access token (refreshed when about to expire) per exchange.
    const who = { id: bearer.subject, ...(bearer.tenantId ? { tenantId: bearer.tenantId } : {}) };
    const user: UserContext = upstream ? verifier.toUserContext(bearer, { upstreamToken: upstream.forUser(who) }) : verifier.toUserContext(bearer);

    // 3. Call the tool; stop waiting when the client goes away.
    const aborted = new AbortController();
    res.on('close', () => aborted.abort());
    try {
      const body = (await readJson(req)) as ToolRequest;
      const result = await manager.callTool({
        user,
        serverName: body.server,
        toolName: body.tool,
        arguments: body.arguments ?? {},
        signal: aborted.signal,
      });
      send(res, 200, result);
    } catch (err) {
      const answer = toHttpAnswer(err);
      send(res, answer.status, answer.body, answer.headers);
    }
  });
}

/** Typed errors → HTTP. Switch on `code` / `reason` / `retryable`, never on message text. */
export function toHttpAnswer(err: unknown): { status: number; body: Record<string, unknown>; headers?: Record<string, string> } {
  if (err instanceof OboError) {
    if (err.reason === 'missing_upstream_token') return { status: 401, body: { error: 'sign_in_again' } };
    if (err.reason === 'untrusted') return { status: 403, body: { error: 'server_not_trusted', server: err.serverName } };
  }
  if (err instanceof SwitchboardError) {
    if (err.code === 'unknown_server') return { status: 404, body: { error: err.code } };
    if (err.code === 'user_required') return { status: 401, body: { error: err.code } };
    if (err.code === 'aborted') return { status: 499, body: { error: err.code } };
    if (err.retryable) return { status: 503, body: { error: err.code }, headers: { 'Retry-After': '5' } };
    return { status: 502, body: { error: err.code } }; // log err.toJSON(): it never holds a token
  }
  return { status: 500, body: { error: 'internal_error' } };
}

/** Sign-in callback of the host's web app (authorization code flow done elsewhere): keep the session. */
export function createSessions(clientSecret: string): UpstreamTokenProvider {
  return createUpstreamTokenProvider({
    issuer: 'https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0',
    clientId: process.env.RUNTIME_APP_ID!,
    clientSecret,
    skewMs: 120_000, // refresh two minutes before expiry
  });
}

export async function onSignedIn(
  upstream: UpstreamTokenProvider,
  user: { id: string; tenantId?: string },
  tokens: { access_token: string; refresh_token?: string; expires_in: number },
): Promise<void> {
  await upstream.setSession(user, {
    accessToken: tokens.access_token,
    ...(tokens.refresh_token ? { refreshToken: tokens.refresh_token } : {}),
    expiresAt: Date.now() + tokens.expires_in * 1000,
  });
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'Content-Type': 'application/json', ...headers }).end(JSON.stringify(body));
}
