/**
 * The one retry policy of every reconnect loop: floor, exponential growth with full jitter, cap, an attempt
 * budget restored only after `healthyAfterMs` of health, `reset()`, and bad options as `TypeError`s naming the
 * field. Jitter and clock are injected, so every figure is exact.
 */
import { RETRY_POLICY_DEFAULTS, RetryPolicy, resolveRetryPolicyOptions, type RetryPolicyOptions } from '../../src/connection/retryPolicy.js';

/** Delays of the next `n` attempts (`undefined` once the budget is spent). */
const delays = (p: RetryPolicy, n: number) => Array.from({ length: n }, () => p.nextDelay());

describe('RetryPolicy delays', () => {
  it('never goes below minDelayMs, even when the jitter draws 0', () => {
    const p = new RetryPolicy({ maxAttempts: 6, minDelayMs: 40, baseDelayMs: 100, maxDelayMs: 10_000 }, { random: () => 0 });
    expect(delays(p, 6)).toEqual([40, 40, 40, 40, 40, 40]);
  });

  it('grows exponentially from baseDelayMs (full jitter: random × base × 2^attempt)', () => {
    const half = new RetryPolicy({ maxAttempts: 5, minDelayMs: 0, baseDelayMs: 100, maxDelayMs: 100_000 }, { random: () => 0.5 });
    expect(delays(half, 5)).toEqual([50, 100, 200, 400, 800]);
    const full = new RetryPolicy({ maxAttempts: 5, minDelayMs: 0, baseDelayMs: 100, maxDelayMs: 100_000 }, { random: () => 1 });
    expect(delays(full, 5)).toEqual([100, 200, 400, 800, 1600]);
  });

  it('the floor applies above zero jitter too: max(minDelayMs, jittered)', () => {
    const p = new RetryPolicy({ maxAttempts: 4, minDelayMs: 150, baseDelayMs: 100, maxDelayMs: 100_000 }, { random: () => 1 });
    expect(delays(p, 4)).toEqual([150, 200, 400, 800]);
  });

  it('is capped at maxDelayMs, however many attempts (no overflow to Infinity)', () => {
    const p = new RetryPolicy({ maxAttempts: 2000, minDelayMs: 0, baseDelayMs: 100, maxDelayMs: 1_000 }, { random: () => 1 });
    const all = delays(p, 2000);
    expect(all.slice(0, 6)).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(all.every((d) => d !== undefined && d <= 1_000 && Number.isFinite(d))).toBe(true);
    expect(all.at(-1)).toBe(1_000);
  });

  it('stays within [minDelayMs, min(maxDelayMs, base × 2^attempt)] for any jitter', () => {
    let seed = 7;
    const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    const opts = { maxAttempts: 12, minDelayMs: 5, baseDelayMs: 10, maxDelayMs: 2_000 };
    for (let run = 0; run < 50; run++) {
      const p = new RetryPolicy(opts, { random });
      delays(p, 12).forEach((d, attempt) => {
        expect(d).toBeGreaterThanOrEqual(opts.minDelayMs);
        expect(d).toBeLessThanOrEqual(Math.max(opts.minDelayMs, Math.min(opts.maxDelayMs, opts.baseDelayMs * 2 ** attempt)));
      });
    }
  });
});

describe('RetryPolicy budget', () => {
  it('allows maxAttempts delays, then undefined for ever; `exhausted` and `attempts` say so without counting', () => {
    const p = new RetryPolicy({ maxAttempts: 3, minDelayMs: 5, baseDelayMs: 5, maxDelayMs: 20 }, { random: () => 0 });
    expect(p.exhausted).toBe(false);
    expect(delays(p, 3)).toEqual([5, 5, 5]);
    expect(p.attempts).toBe(3);
    expect(p.exhausted).toBe(true);
    expect(p.exhausted).toBe(true); // reading it does not count
    expect(delays(p, 5)).toEqual([undefined, undefined, undefined, undefined, undefined]);
    expect(p.attempts).toBe(3);
  });

  it('maxAttempts 0: never retries', () => {
    const p = new RetryPolicy({ maxAttempts: 0 });
    expect(p.exhausted).toBe(true);
    expect(p.nextDelay()).toBeUndefined();
  });

  it('is restored only after healthyAfterMs of health, measured from the first healthy() (injected clock)', () => {
    let now = 1_000;
    const p = new RetryPolicy({ maxAttempts: 2, minDelayMs: 1, baseDelayMs: 1, maxDelayMs: 1, healthyAfterMs: 60_000 }, { random: () => 1, now: () => now });
    expect(delays(p, 3)).toEqual([1, 1, undefined]);

    // Healthy, then failing again before healthyAfterMs: still spent (an accept-then-drop server gains nothing).
    p.healthy();
    now += 59_999;
    expect(p.exhausted).toBe(true);
    expect(p.nextDelay()).toBeUndefined();
    expect(p.attempts).toBe(2);

    // That failure ended the healthy period: health counts again from the next healthy().
    now += 10;
    p.healthy();
    now += 30_000;
    p.healthy(); // a later healthy() does not move the start
    now += 30_000;
    expect(p.exhausted).toBe(false);
    expect(p.nextDelay()).toBe(1);
    expect(p.attempts).toBe(1);
    expect(p.nextDelay()).toBe(1);
    expect(p.nextDelay()).toBeUndefined();
  });

  it('a graceful end right after success does not restore it (healthy for 0 ms)', () => {
    let now = 0;
    const p = new RetryPolicy({ maxAttempts: 1, healthyAfterMs: 1_000 }, { random: () => 0, now: () => now });
    expect(p.nextDelay()).toBe(100); // default floor
    p.healthy();
    expect(p.nextDelay()).toBeUndefined();
    now += 5_000; // time passes while broken: no health was reported
    expect(p.nextDelay()).toBeUndefined();
  });

  it('reset() restores the whole budget at once, without waiting for health', () => {
    const now = 0;
    const p = new RetryPolicy({ maxAttempts: 2, minDelayMs: 3, baseDelayMs: 3, maxDelayMs: 3, healthyAfterMs: 10 }, { random: () => 1, now: () => now });
    expect(delays(p, 3)).toEqual([3, 3, undefined]);
    p.reset();
    expect(p.attempts).toBe(0);
    expect(p.exhausted).toBe(false);
    expect(delays(p, 3)).toEqual([3, 3, undefined]);
    p.healthy();
    p.reset();
    expect(delays(p, 3)).toEqual([3, 3, undefined]);
  });
});

/** `{ maxAttempts: NaN }` (JSON would print NaN and Infinity as null). */
const describeOpts = (o: RetryPolicyOptions) => `{ ${Object.entries(o).map(([k, v]) => `${k}: ${typeof v === 'string' ? `'${v}'` : String(v)}`).join(', ')} }`;

describe('RetryPolicy options', () => {
  it('fills in the defaults (undefined counts as absent) and exposes them', () => {
    expect(RETRY_POLICY_DEFAULTS).toEqual({ maxAttempts: 5, minDelayMs: 100, baseDelayMs: 250, maxDelayMs: 10_000, healthyAfterMs: 30_000 });
    expect(Object.isFrozen(RETRY_POLICY_DEFAULTS)).toBe(true);
    expect(new RetryPolicy().options).toEqual(RETRY_POLICY_DEFAULTS);
    expect(resolveRetryPolicyOptions({ maxAttempts: 3, minDelayMs: undefined })).toEqual({ ...RETRY_POLICY_DEFAULTS, maxAttempts: 3 });
  });

  it('a maxDelayMs below the default base and floor lowers those defaults (only the ones not given)', () => {
    expect(resolveRetryPolicyOptions({ maxDelayMs: 200 })).toMatchObject({ maxDelayMs: 200, baseDelayMs: 200, minDelayMs: 100 });
    expect(resolveRetryPolicyOptions({ maxDelayMs: 50 })).toMatchObject({ maxDelayMs: 50, baseDelayMs: 50, minDelayMs: 50 });
    expect(() => resolveRetryPolicyOptions({ maxDelayMs: 50, baseDelayMs: 250 })).toThrow('retry.maxDelayMs');
    const policy = new RetryPolicy({ maxDelayMs: 200 }, { random: () => 1 });
    for (let i = 0; i < 5; i++) expect(policy.nextDelay()).toBeLessThanOrEqual(200);
  });

  const bad: [RetryPolicyOptions, string][] = [
    [{ maxAttempts: -1 }, 'maxAttempts'],
    [{ maxAttempts: 1.5 }, 'maxAttempts'],
    [{ maxAttempts: Number.NaN }, 'maxAttempts'],
    [{ maxAttempts: '3' as unknown as number }, 'maxAttempts'],
    [{ minDelayMs: -1 }, 'minDelayMs'],
    [{ baseDelayMs: Number.NaN }, 'baseDelayMs'],
    [{ baseDelayMs: -5 }, 'baseDelayMs'],
    [{ healthyAfterMs: -1 }, 'healthyAfterMs'],
    [{ healthyAfterMs: Number.POSITIVE_INFINITY }, 'healthyAfterMs'],
    [{ maxDelayMs: Number.POSITIVE_INFINITY }, 'maxDelayMs'],
    [{ baseDelayMs: 500, maxDelayMs: 100 }, 'maxDelayMs'],
    [{ minDelayMs: 500, baseDelayMs: 10, maxDelayMs: 100 }, 'maxDelayMs'],
  ];
  it.each(bad.map(([opts, field]) => [describeOpts(opts), opts, field] as const))('%s → TypeError naming %s', (_label, opts, field) => {
    expect(() => new RetryPolicy(opts)).toThrow(TypeError);
    expect(() => new RetryPolicy(opts)).toThrow(`retry.${field}`);
    expect(() => resolveRetryPolicyOptions(opts, 'reconnect')).toThrow(`reconnect.${field}`);
  });
});
