/**
 * The standby-stream gate: puts the GET requests of a streamable HTTP connection (the standby stream the SDK
 * opens after `initialize`, and the SDK's own reconnects of it) under the connection's {@link RetryPolicy}.
 *
 * Why: the SDK transport reopens a GET stream that ended gracefully with an attempt counter that starts again
 * at each close and no delay floor, so a server that answers each GET with an event stream and ends it at once
 * (or sends `retry: 50`) draws GETs in a tight loop. The gate bounds that load whatever the SDK does.
 * @module
 */
import { backoffDelay, type RetryPolicy } from '../../connection/retryPolicy.js';
import type { Logger } from '../../types.js';
import type { OutgoingRequest, RequestInterceptor, RequestStage } from '../requestPath.js';

/**
 * Settings of {@link standbyGate}.
 *
 * @example
 * ```ts
 * const opts: StandbyGateOptions = { policy: new RetryPolicy({ maxAttempts: 5 }), enabled: true, logger: console, serverName: 'docs' };
 * ```
 */
export interface StandbyGateOptions {
  /** The connection's policy, shared by the transports of its reconnects. */
  policy: RetryPolicy;
  /** `false`: no standby stream at all; every standby GET is answered 405 locally. */
  enabled: boolean;
  /** Gets one warning when the budget is spent. */
  logger: Logger;
  /** For the warning. */
  serverName: string;
}

/**
 * A GET sent less than `healthyAfterMs` after the previous one is a retry: it waits the policy's next delay
 * (cut short when the request's signal aborts) before it goes out. When the budget is spent, or the standby
 * stream is turned off, the GET is answered locally with `405 Method Not Allowed`, which the SDK takes as "this
 * server offers no standby stream" and stops. A GET answered with a `200` event stream makes the policy healthy.
 *
 * A GET that resumes a response stream (`Last-Event-ID`) is not a standby stream: it passes even when the
 * standby stream is off and spends no standby budget. Resumptions in a row (each within `healthyAfterMs` of the
 * previous) wait the policy's backoff and have a budget of their own, `4 × maxAttempts + 2`; past it they are
 * answered 405 locally (one warning) until `healthyAfterMs` has passed without one.
 *
 * @example
 * ```ts
 * const stage = composeStages(sendWithUndici, [standbyGate({ policy, enabled: true, logger, serverName: 'docs' })]);
 * ```
 */
export function standbyGate(opts: StandbyGateOptions): RequestInterceptor {
  const { policy, logger, serverName } = opts;
  const state = gateStateOf(policy);
  return (next) => (req) => (req.method === 'GET' ? gated(next, req) : next(req));

  // Only GETs pay for an async frame here: POSTs (every call) pass straight through.
  async function gated(next: RequestStage, req: OutgoingRequest): Promise<Response> {
    const resuming = req.headers['last-event-id'] !== undefined;
    if (!opts.enabled && !resuming) return notAllowed();
    if (req.signal?.aborted) return notAllowed();
    // Resuming a cut response stream (Last-Event-ID) carries a call's response: it does not spend the standby
    // budget, and has a larger one of its own (concurrent calls whose streams a proxy cut at once must not starve
    // each other). Resumptions in a row come no sooner than the policy's backoff after the previous one, whatever
    // they were answered: a server that answers each one 200 and ends it at once (with an event id, so that the
    // SDK resumes again, even after the call ended) would otherwise draw one every floor delay for as long as the
    // connection lives.
    if (resuming) {
      const now = Date.now();
      if (state.lastResumedAt === undefined || now - state.lastResumedAt >= policy.options.healthyAfterMs) {
        state.resumesInRow = 0;
        state.resumeWarned = false;
      }
      if (state.resumesInRow >= resumeBudget(policy)) {
        if (!state.resumeWarned) {
          state.resumeWarned = true;
          logger.warn({ serverName, attempts: state.resumesInRow }, 'MCP stream resumption refused: the server keeps ending resumed streams; retry budget spent');
        }
        return notAllowed();
      }
      // Counted from the previous resumption, not added to the wait the server asked for (`retry`, which the SDK
      // honoured before this GET): SEP-1699 wants the reconnection when the server said, when that is no sooner.
      const since = state.lastResumedAt === undefined ? Infinity : now - state.lastResumedAt;
      const delayMs = (state.resumesInRow > 0 ? backoffDelay(state.resumesInRow - 1, policy.options) : policy.options.minDelayMs) - since;
      if (delayMs > 0 && !(await wait(delayMs, req.signal))) return notAllowed();
      state.resumesInRow++;
      state.lastResumedAt = Date.now();
      return sent(next, req);
    }
    if (state.lastSentAt !== undefined && Date.now() - state.lastSentAt < policy.options.healthyAfterMs) {
      const delayMs = policy.nextDelay();
      if (delayMs === undefined) {
        if (!state.warned) {
          state.warned = true;
          // No URL, no header: the server name says enough and carries no secret.
          logger.warn({ serverName, attempts: policy.attempts }, 'MCP standby stream off: the server keeps ending it; retry budget spent');
        }
        return notAllowed();
      }
      // A transport closing while its GET waits gets the same quiet "no stream" answer: a rejection would make
      // the SDK schedule yet another attempt after its close.
      if (!(await wait(delayMs, req.signal))) return notAllowed();
    }
    state.lastSentAt = Date.now();
    const res = await sent(next, req);
    if (res.status === 200 && (res.headers.get('content-type') ?? '').includes('text/event-stream')) {
      policy.healthy();
      state.warned = false;
    }
    return res;
  }
}

/**
 * Sends a gated GET. One that fails because its transport closed meanwhile gets the quiet "no stream" answer: a
 * rejection would make the SDK schedule another attempt after the close, on a timer the server's `retry` sets.
 */
async function sent(next: RequestStage, req: OutgoingRequest): Promise<Response> {
  try {
    return await next(req);
  } catch (err) {
    if (req.signal?.aborted) return notAllowed();
    throw err;
  }
}

/** Resumptions in a row allowed before they are refused: room for several calls' streams cut at once. */
function resumeBudget(policy: RetryPolicy): number {
  return 4 * policy.options.maxAttempts + 2;
}

/** When the last GET of a policy's connection went out; shared by every gate on that policy (its reconnects). */
interface GateState {
  lastSentAt: number | undefined;
  /** When the previous resuming GET (`Last-Event-ID`) went out. */
  lastResumedAt?: number;
  /** Resuming GETs in a row, each within `healthyAfterMs` of the previous (their number sets the backoff). */
  resumesInRow: number;
  /** The resumption budget's warning was logged. */
  resumeWarned: boolean;
  warned: boolean;
}
const states = new WeakMap<RetryPolicy, GateState>();

function gateStateOf(policy: RetryPolicy): GateState {
  let s = states.get(policy);
  if (!s) {
    s = { lastSentAt: undefined, warned: false, resumesInRow: 0, resumeWarned: false };
    states.set(policy, s);
  }
  return s;
}

function notAllowed(): Response {
  return new Response(null, { status: 405, statusText: 'Method Not Allowed (standby stream off)' });
}

/** Resolves `true` after `ms`, or `false` as soon as `signal` aborts. */
function wait(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    // The standby stream is optional: it never keeps the process alive.
    timer.unref();
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
