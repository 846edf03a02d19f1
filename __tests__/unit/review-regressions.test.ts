/**
 * Regressions found in review (the adversarial reproductions) in OperationScope and followSignal: a disposed
 * scope stays inert, and one abort runs every follower still following, each once, whatever the others do.
 * (The transport cases are in __tests__/integration/review-regressions.test.ts.)
 */
import { jest } from '@jest/globals';
import { OperationScope, type ScopeEndReason } from '../../src/connection/operationScope.js';
import { followSignal } from '../../src/connection/signalLink.js';

describe('OperationScope', () => {
  afterEach(() => {
    jest.useRealTimers();
  });

  // Guards OperationScope.touch(): a late touch (a progress notification after the call ended) must not re-arm the deadline of a disposed scope.
  it('touch() after dispose() arms no timer: the scope never ends afterwards', () => {
    jest.useFakeTimers();
    const toError = jest.fn((reason: ScopeEndReason) => new Error(reason));
    const scope = new OperationScope({ timeoutMs: 30, toError });
    scope.dispose();
    scope.touch();
    expect(jest.getTimerCount()).toBe(0);
    jest.advanceTimersByTime(60_000);
    expect(toError).not.toHaveBeenCalled();
    expect(scope.endedBy).toBeUndefined();
    expect(scope.signal.aborted).toBe(false);
  });
});

describe('followSignal', () => {
  // Guards followSignal's dispatch: a follower that throws does not stop the followers after it, and its error is not swallowed.
  it('a follower that throws does not stop the others; its error is rethrown on a microtask', () => {
    const ac = new AbortController();
    const calls: string[] = [];
    const boom = new Error('boom');
    followSignal(ac.signal, () => {
      calls.push('a');
      throw boom;
    });
    followSignal(ac.signal, () => calls.push('b'));
    followSignal(ac.signal, () => calls.push('c'));

    // The rethrow is queued during abort(): hold it here instead of letting it reach the process.
    const queued: (() => void)[] = [];
    const original = globalThis.queueMicrotask;
    globalThis.queueMicrotask = (cb: () => void) => void queued.push(cb);
    try {
      ac.abort();
    } finally {
      globalThis.queueMicrotask = original;
    }

    expect(calls).toEqual(['a', 'b', 'c']);
    expect(queued).toHaveLength(1);
    expect(() => queued[0]!()).toThrow(boom);
  });

  // Guards followSignal's dispatch: a follower unfollowed by an earlier follower during the same abort is not called.
  it('a follower removed by an earlier follower during the abort is not called', () => {
    const ac = new AbortController();
    const calls: string[] = [];
    let unfollowB = (): void => {};
    followSignal(ac.signal, () => {
      calls.push('a');
      unfollowB();
    });
    unfollowB = followSignal(ac.signal, () => calls.push('b'));
    followSignal(ac.signal, () => calls.push('c'));
    ac.abort();
    expect(calls).toEqual(['a', 'c']);
  });
});
