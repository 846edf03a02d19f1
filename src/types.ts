/**
 * Types shared across the package: who a call is made for, and the logger contract.
 * @module
 */

/**
 * The user a connection or a call is made for.
 *
 * @example
 * ```ts
 * const user: UserContext = {
 *   id: 'oid-1234',
 *   tenantId: 'contoso',
 *   upstreamToken: upstream.forUser({ id: 'oid-1234', tenantId: 'contoso' }),
 *   vars: { GITHUB_ORG: 'contoso' },
 * };
 * ```
 */
export interface UserContext {
  /** Stable principal id. Required: a missing id is an error, never "anonymous". */
  id: string;
  /** Tenant (e.g. Entra `tid`). Part of every key: two tenants with the same `id` share nothing. */
  tenantId?: string;
  /** The user's e-mail, for `{{user.email}}` placeholders. */
  email?: string;
  /**
   * The OBO assertion: the user's federated access token, or a function returning it. A function is called
   * for every exchange, so a live, refreshed session token is used rather than a snapshot taken at login.
   */
  upstreamToken?: string | (() => Promise<string | undefined>);
  /** Values for `{{var.NAME}}` placeholders declared in a server's `customUserVars`. */
  vars?: Record<string, string>;
}

/**
 * A logger: any pino-compatible object works (`logger.info(obj, msg)` or `logger.info(msg)`).
 * The package never logs a token.
 *
 * @example
 * ```ts
 * import pino from 'pino';
 * const manager = new MCPManager({ servers, logger: pino() });
 * ```
 */
export interface Logger {
  /** Verbose diagnostics. */
  debug(obj: unknown, msg?: string): void;
  /** Normal operation. */
  info(obj: unknown, msg?: string): void;
  /** Something went wrong but was handled. */
  warn(obj: unknown, msg?: string): void;
  /** Something failed. */
  error(obj: unknown, msg?: string): void;
}

/**
 * A logger that drops everything: the default.
 *
 * @example
 * ```ts
 * const logger: Logger = options.logger ?? silentLogger;
 * ```
 */
export const silentLogger: Logger = Object.freeze({
  debug() {},
  info() {},
  warn() {},
  error() {},
});
