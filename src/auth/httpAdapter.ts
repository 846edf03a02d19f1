/**
 * Bearer verification for Node `http` handlers and Express-style middleware: one call verifies the request's
 * `Authorization` header or answers 401/403 with the RFC 6750 `WWW-Authenticate` challenge.
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BearerError } from '../errors.js';
import type { BearerVerifier, VerifiedBearer } from './bearerVerifier.js';

/**
 * Options of {@link authenticateRequest} and {@link createBearerMiddleware}.
 *
 * @example
 * ```ts
 * const options: BearerHttpOptions = {
 *   requiredScopes: ['mcp.tools'],
 *   resourceMetadataUrl: 'https://runtime.example.com/.well-known/oauth-protected-resource',
 * };
 * ```
 */
export interface BearerHttpOptions {
  /** Scopes this route needs on top of the verifier's own. */
  requiredScopes?: string[];
  /**
   * RFC 9728 protected resource metadata URL, added to every challenge as `resource_metadata` (what MCP
   * clients read to find the authorization server).
   */
  resourceMetadataUrl?: string;
}

/**
 * The `auth` object the middleware puts on the request, shaped like the MCP SDK's `AuthInfo`, so an SDK
 * server transport behind the middleware hands it to tool handlers as `extra.authInfo`.
 *
 * @example
 * ```ts
 * app.post('/mcp', createBearerMiddleware(verifier), (req, res) => transport.handleRequest(req, res, req.body));
 * // in a tool handler: extra.authInfo?.extra?.subject
 * ```
 */
export interface BearerAuthInfo {
  /** The raw token. */
  token: string;
  /** `azp`, `appid` or `client_id` of the token, or `''` when it names none. */
  clientId: string;
  /** Scopes and app roles. */
  scopes: string[];
  /** `exp`, in seconds since the epoch. */
  expiresAt?: number;
  /** Subject, tenant and the full verified bearer. */
  extra: { subject: string; tenantId?: string; bearer: VerifiedBearer };
}

/**
 * A request after {@link createBearerMiddleware} accepted it.
 *
 * @example
 * ```ts
 * app.get('/me', createBearerMiddleware(verifier), (req: AuthenticatedRequest, res) => res.json({ sub: req.bearer?.subject }));
 * ```
 */
export type AuthenticatedRequest = IncomingMessage & { auth?: BearerAuthInfo; bearer?: VerifiedBearer };

/**
 * Verifies a Node `http` request. On success returns the {@link VerifiedBearer}; on a {@link BearerError}
 * answers the request (401 or 403, `WWW-Authenticate`, a small JSON body) and returns `undefined`. Any other
 * error is rethrown.
 *
 * @example
 * ```ts
 * import { createServer } from 'node:http';
 * import { authenticateRequest } from 'mcp-switchboard';
 * createServer(async (req, res) => {
 *   const bearer = await authenticateRequest(verifier, req, res);
 *   if (!bearer) return; // already answered
 *   res.end(`hello ${bearer.subject}`);
 * });
 * ```
 */
export async function authenticateRequest(
  verifier: BearerVerifier,
  req: IncomingMessage,
  res: ServerResponse,
  opts: BearerHttpOptions = {},
): Promise<VerifiedBearer | undefined> {
  try {
    return await verifier.verify(req.headers.authorization, opts.requiredScopes ? { requiredScopes: opts.requiredScopes } : undefined);
  } catch (err) {
    if (!(err instanceof BearerError)) throw err;
    sendBearerError(res, err, opts);
    return undefined;
  }
}

/**
 * Express-style middleware `(req, res, next)`: verifies the request, then sets `req.auth`
 * ({@link BearerAuthInfo}, the MCP SDK's `AuthInfo` shape) and `req.bearer` and calls `next()`; on a
 * {@link BearerError} answers 401/403 itself; passes any other error to `next(err)`.
 *
 * @example
 * ```ts
 * import express from 'express';
 * import { createBearerMiddleware } from 'mcp-switchboard';
 * const app = express();
 * app.use('/mcp', createBearerMiddleware(verifier, { requiredScopes: ['mcp.tools'] }));
 * ```
 */
export function createBearerMiddleware(
  verifier: BearerVerifier,
  opts: BearerHttpOptions = {},
): (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void {
  return (req, res, next) => {
    authenticateRequest(verifier, req, res, opts).then(
      (bearer) => {
        if (!bearer) return;
        const r = req as AuthenticatedRequest;
        r.bearer = bearer;
        r.auth = toAuthInfo(bearer);
        next();
      },
      (err: unknown) => next(err),
    );
  };
}

/**
 * Answers a request with a {@link BearerError}: its `httpStatus`, its `WWW-Authenticate` value (plus
 * `resource_metadata` when given) and a JSON body `{ error, error_description }` (nothing for a missing token,
 * per RFC 6750 §3.1). Does nothing if the headers were already sent.
 *
 * @example
 * ```ts
 * import { sendBearerError } from 'mcp-switchboard';
 * try { await verifier.verify(req.headers.authorization); } catch (err) { if (err instanceof BearerError) sendBearerError(res, err); }
 * ```
 */
export function sendBearerError(res: ServerResponse, err: BearerError, opts: Pick<BearerHttpOptions, 'resourceMetadataUrl'> = {}): void {
  if (res.headersSent) return;
  let challenge = err.wwwAuthenticate;
  if (opts.resourceMetadataUrl) {
    const param = `resource_metadata="${opts.resourceMetadataUrl.replace(/[\\"]/g, '\\$&')}"`;
    challenge = challenge === 'Bearer' ? `Bearer ${param}` : `${challenge}, ${param}`;
  }
  const body =
    err.code === 'missing_token'
      ? ''
      : JSON.stringify({ error: err.code === 'insufficient_scope' ? 'insufficient_scope' : 'invalid_token', error_description: err.message });
  res.writeHead(err.httpStatus, {
    'WWW-Authenticate': challenge,
    'Cache-Control': 'no-store',
    ...(body ? { 'Content-Type': 'application/json' } : {}),
  });
  res.end(body);
}

/**
 * The MCP SDK `AuthInfo` shape of a verified bearer.
 *
 * @example
 * ```ts
 * import { toAuthInfo } from 'mcp-switchboard';
 * req.auth = toAuthInfo(await verifier.verify(req.headers.authorization));
 * ```
 */
export function toAuthInfo(bearer: VerifiedBearer): BearerAuthInfo {
  const c = bearer.claims;
  const clientId = [c.azp, c.appid, c.client_id].find((v): v is string => typeof v === 'string') ?? '';
  return {
    token: bearer.token,
    clientId,
    scopes: bearer.scopes,
    ...(typeof c.exp === 'number' ? { expiresAt: c.exp } : {}),
    extra: { subject: bearer.subject, ...(bearer.tenantId ? { tenantId: bearer.tenantId } : {}), bearer },
  };
}
