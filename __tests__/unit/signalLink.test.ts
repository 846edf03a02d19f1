import { getEventListeners } from 'node:events';
import { followSignal, SignalLink } from '../../src/connection/signalLink.js';

describe('followSignal', () => {
  it('puts one listener on a signal however many follow it, and removes it with the last follower', () => {
    const session = new AbortController();
    const unfollows = Array.from({ length: 50 }, () => followSignal(session.signal, () => {}));
    expect(getEventListeners(session.signal, 'abort')).toHaveLength(1);
    for (const unfollow of unfollows.slice(1)) unfollow();
    expect(getEventListeners(session.signal, 'abort')).toHaveLength(1);
    unfollows[0]!();
    unfollows[0]!(); // idempotent
    expect(getEventListeners(session.signal, 'abort')).toHaveLength(0);
    // A new follower after the last one left gets a listener again.
    const again = followSignal(session.signal, () => {});
    expect(getEventListeners(session.signal, 'abort')).toHaveLength(1);
    again();
  });

  it('calls every follower still following when the signal aborts, once each, and no one who left', () => {
    const session = new AbortController();
    const calls: string[] = [];
    followSignal(session.signal, () => calls.push('a'));
    const leaveB = followSignal(session.signal, () => calls.push('b'));
    followSignal(session.signal, () => calls.push('c'));
    leaveB();
    session.abort(new Error('user left'));
    session.abort();
    expect(calls).toEqual(['a', 'c']);
    expect(getEventListeners(session.signal, 'abort')).toHaveLength(0);
  });

  it('calls the follower at once for an already aborted signal and adds no listener', () => {
    const calls: number[] = [];
    const unfollow = followSignal(AbortSignal.abort(), () => calls.push(1));
    expect(calls).toEqual([1]);
    unfollow();
  });
});

describe('followSignal with keepListener', () => {
  it('keeps the one listener when the last follower leaves; it still aborts later followers, and goes with the abort', () => {
    const parent = new AbortController();
    const calls: string[] = [];
    for (let i = 0; i < 3; i++) followSignal(parent.signal, () => calls.push(`left-${i}`), { keepListener: true })();
    expect(getEventListeners(parent.signal, 'abort')).toHaveLength(1);
    followSignal(parent.signal, () => calls.push('staying'), { keepListener: true });
    parent.abort();
    expect(calls).toEqual(['staying']);
    expect(getEventListeners(parent.signal, 'abort')).toHaveLength(0);
  });
});

describe('SignalLink', () => {
  it('aborts its own signal with the parent reason until disposed', () => {
    const parent = new AbortController();
    const linked = new SignalLink(parent.signal);
    const detached = new SignalLink(parent.signal);
    detached.dispose();
    const reason = new Error('stop');
    parent.abort(reason);
    expect(linked.signal.aborted).toBe(true);
    expect(linked.signal.reason).toBe(reason);
    expect(detached.signal.aborted).toBe(false);
  });
});
