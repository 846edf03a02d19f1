/**
 * A per-server circuit breaker for connects. A server that fails for everyone backs off for everyone; one
 * user's failures never block others: only server-level failures count (not OBO, config, auth or limit
 * errors), and a user-scoped server opens only after failures from several distinct users.
 * @module
 */
import { SwitchboardError } from '../errors.js';

/**
 * Options of the per-server connect circuit breaker (`MCPManagerOptions.circuitBreaker`).
 *
 * @example
 * ```ts
 * const circuitBreaker: CircuitBreakerOptions = { failureThreshold: 3, minDistinctUsers: 2, maxBackoffMs: 30_000 };
 * const manager = new MCPManager({ servers, oboTokenResolver, circuitBreaker });
 * ```
 */
export interface CircuitBreakerOptions {
  /** Consecutive server-level connect failures that open the circuit. Default 5. */
  failureThreshold?: number;
  /** Distinct users among those failures needed to open a user-scoped server's circuit. Default 2. */
  minDistinctUsers?: number;
  /** First open period. Default 1 000 ms; doubles on each failed trial up to `maxBackoffMs`. */
  baseBackoffMs?: number;
  /** Longest open period. Default 60 000 ms. */
  maxBackoffMs?: number;
  /** Clock; defaults to `Date.now`. */
  now?: () => number;
}

interface ServerCircuit {
  failures: number;
  principals: Set<string>;
  openUntil: number;
  backoffMs: number;
  trialInFlight: boolean;
  open: boolean;
}

/**
 * Principal used for shared app-level connections.
 *
 * @example
 * ```ts
 * breaker.failure('time', APP_PRINCIPAL, err); // a shared connection failed
 * ```
 */
export const APP_PRINCIPAL = '\u0000app';

const NOT_SERVER_LEVEL = new Set(['aborted', 'limit_reached', 'config_invalid', 'ssrf_blocked', 'manager_closed', 'circuit_open', 'user_required', 'unknown_server']);

/**
 * True for failures that say something about the server for everyone (unreachable, timing out, failing
 * initialize), false for failures specific to a caller (OBO, bad user config, a 401/403 for that user).
 *
 * @example
 * ```ts
 * isServerLevelFailure(new OboError('untrusted', 'no')); // false: says nothing about the server
 * isServerLevelFailure(new SwitchboardError('connect_timeout', 'slow')); // true
 * ```
 */
export function isServerLevelFailure(err: unknown): boolean {
  if (!(err instanceof SwitchboardError)) return true;
  if (err.code.startsWith('obo_') || err.code.startsWith('authorization_') || NOT_SERVER_LEVEL.has(err.code)) return false;
  const status = (err as { status?: unknown }).status ?? (err.cause as { status?: unknown } | undefined)?.status;
  if (status === 401 || status === 403) return false;
  return true;
}

/**
 * Tracks connect outcomes per server and refuses connects while a server's circuit is open.
 *
 * @example
 * ```ts
 * const breaker = new CircuitBreaker({ failureThreshold: 3 });
 * breaker.check('github');               // throws SwitchboardError('circuit_open') while open
 * try { await connect(); breaker.success('github'); } catch (e) { breaker.failure('github', userKey, e); throw e; }
 * ```
 */
export class CircuitBreaker {
  readonly #threshold: number;
  readonly #minUsers: number;
  readonly #base: number;
  readonly #max: number;
  readonly #now: () => number;
  readonly #servers = new Map<string, ServerCircuit>();

  constructor(opts: CircuitBreakerOptions = {}) {
    this.#threshold = opts.failureThreshold ?? 5;
    this.#minUsers = opts.minDistinctUsers ?? 2;
    this.#base = opts.baseBackoffMs ?? 1000;
    this.#max = opts.maxBackoffMs ?? 60_000;
    this.#now = opts.now ?? Date.now;
    if (!(Number.isInteger(this.#threshold) && this.#threshold > 0)) throw new TypeError('failureThreshold must be a positive integer');
    if (!(Number.isInteger(this.#minUsers) && this.#minUsers > 0)) throw new TypeError('minDistinctUsers must be a positive integer');
    if (!(this.#base > 0 && this.#max >= this.#base)) throw new TypeError('baseBackoffMs must be > 0 and maxBackoffMs >= baseBackoffMs');
  }

  /**
   * Throws `circuit_open` (retryable) while the server's circuit is open. Once the open period is over, one
   * caller gets through as a trial; others are refused until the trial succeeds or fails.
   * Returns true when this caller is the trial; pass that to {@link failure}.
   */
  check(serverName: string): boolean {
    const c = this.#servers.get(serverName);
    if (!c?.open) return false;
    const now = this.#now();
    if (now < c.openUntil || c.trialInFlight) {
      throw new SwitchboardError('circuit_open', `"${serverName}" is failing for every user; connects are paused for ${Math.max(0, c.openUntil - now)} ms`, {
        serverName,
        retryable: true,
      });
    }
    c.trialInFlight = true;
    return true;
  }

  /** A connect succeeded: the circuit closes and counters reset. */
  success(serverName: string): void {
    this.#servers.delete(serverName);
  }

  /** A connect failed; only server-level failures count (see {@link isServerLevelFailure}). */
  failure(serverName: string, principal: string, err: unknown, trial = false): void {
    let c = this.#servers.get(serverName);
    if (!isServerLevelFailure(err)) {
      if (trial && c) c.trialInFlight = false;
      return;
    }
    if (!c) {
      c = { failures: 0, principals: new Set(), openUntil: 0, backoffMs: this.#base, trialInFlight: false, open: false };
      this.#servers.set(serverName, c);
    }
    c.failures++;
    if (c.principals.size < this.#minUsers) c.principals.add(principal);
    if (trial || c.open) {
      c.trialInFlight = false;
      c.backoffMs = Math.min(this.#max, c.backoffMs * 2);
      c.openUntil = this.#now() + c.backoffMs;
      return;
    }
    const enoughUsers = c.principals.size >= this.#minUsers || c.principals.has(APP_PRINCIPAL);
    if (c.failures >= this.#threshold && enoughUsers) {
      c.open = true;
      c.openUntil = this.#now() + c.backoffMs;
    }
  }

  /** Whether a server's circuit is open now. */
  isOpen(serverName: string): boolean {
    const c = this.#servers.get(serverName);
    return !!c?.open && this.#now() < c.openUntil;
  }

  /** Forgets a server (e.g. removed or its config changed). */
  reset(serverName: string): void {
    this.#servers.delete(serverName);
  }
}
