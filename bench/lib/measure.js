/**
 * Measuring helpers shared by the benchmarks: medians, timed loops, interleaved repetitions, settled heap.
 * @module
 */
import { setImmediate as nextTurn } from 'node:timers/promises';

/**
 * The median of a list of numbers (the mean of the two middle ones for an even length).
 *
 * @param {number[]} xs
 * @returns {number}
 * @example
 * ```js
 * median([3, 1, 2]); // 2
 * ```
 */
export function median(xs) {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/**
 * Nanoseconds since an arbitrary origin, as a number (monotonic).
 *
 * @returns {number}
 * @example
 * ```js
 * const t0 = nowNs(); work(); const ns = nowNs() - t0;
 * ```
 */
export function nowNs() {
  return Number(process.hrtime.bigint());
}

/**
 * Awaits `fn()` `n` times in a row and returns the mean time of one call in nanoseconds.
 *
 * @param {() => unknown} fn
 * @param {number} n
 * @returns {Promise<number>} ns per call
 * @example
 * ```js
 * const ns = await timeSequential(() => client.callTool({ name: 'echo', arguments: { text: 'x' } }), 500);
 * ```
 */
export async function timeSequential(fn, n) {
  const t0 = nowNs();
  for (let i = 0; i < n; i++) await fn();
  return (nowNs() - t0) / n;
}

/**
 * Runs `total` calls of `fn` with `concurrency` workers (each awaits its previous call) and returns calls per
 * second over the whole batch.
 *
 * @param {() => Promise<unknown>} fn
 * @param {number} total
 * @param {number} concurrency
 * @returns {Promise<number>} calls per second
 * @example
 * ```js
 * const cps = await throughput(() => manager.callTool({ serverName: 'mem', toolName: 'echo' }), 2000, 50);
 * ```
 */
export async function throughput(fn, total, concurrency) {
  let started = 0;
  const worker = async () => {
    while (started < total) {
      started++;
      await fn();
    }
  };
  const t0 = nowNs();
  await Promise.all(Array.from({ length: concurrency }, worker));
  return total / ((nowNs() - t0) / 1e9);
}

/**
 * Runs several measurements in alternation for `reps` rounds (after `warmup` unrecorded rounds) and returns the
 * median of each. Alternating keeps drift (JIT, GC, a busy neighbour) from favouring one side.
 *
 * @template {string} K
 * @param {Record<K, () => Promise<number>>} measures each returns one sample
 * @param {{ reps: number, warmup?: number, onRound?: (round: number, samples: Record<K, number>) => void }} opts
 * @returns {Promise<{ medians: Record<K, number>, samples: Record<K, number[]> }>}
 * @example
 * ```js
 * const { medians } = await interleave({ ours: () => timeSequential(a, 1e4), baseline: () => timeSequential(b, 1e4) }, { reps: 5, warmup: 1 });
 * ```
 */
export async function interleave(measures, opts) {
  const keys = Object.keys(measures);
  const samples = Object.fromEntries(keys.map((k) => [k, []]));
  const rounds = (opts.warmup ?? 1) + opts.reps;
  for (let r = 0; r < rounds; r++) {
    // Swap the order every round so neither side always runs first.
    const order = r % 2 ? [...keys].reverse() : keys;
    const round = {};
    for (const k of order) round[k] = await measures[k]();
    if (r >= (opts.warmup ?? 1)) {
      for (const k of keys) samples[k].push(round[k]);
      opts.onRound?.(r - (opts.warmup ?? 1), round);
    }
  }
  return { medians: Object.fromEntries(keys.map((k) => [k, median(samples[k])])), samples };
}

/**
 * `heapUsed` after full garbage collections (needs `node --expose-gc`; `npm run bench` runs each benchmark so).
 * Collects until two readings in a row agree within 0.5 %, at most 6 rounds, yielding to the event loop between
 * rounds so that finalizers and closed sockets settle.
 *
 * @returns {Promise<number>} bytes
 * @example
 * ```js
 * const before = await settledHeapUsed(); openThings(); const perThing = ((await settledHeapUsed()) - before) / n;
 * ```
 */
export async function settledHeapUsed() {
  const gc = globalThis.gc;
  if (typeof gc !== 'function') throw new Error('heap measurements need node --expose-gc (run them through `npm run bench`)');
  let last = Infinity;
  for (let i = 0; i < 6; i++) {
    gc();
    await nextTurn();
    await nextTurn();
    const now = process.memoryUsage().heapUsed;
    if (Math.abs(now - last) <= 0.005 * now) return now;
    last = now;
  }
  return last;
}

/**
 * Formats a number for the table: at most 3 significant decimals, thousands separated.
 *
 * @param {number} n
 * @returns {string}
 * @example
 * ```js
 * fmt(1234.5678); // '1,235'
 * fmt(1.23456);   // '1.23'
 * ```
 */
export function fmt(n) {
  if (!Number.isFinite(n)) return String(n);
  const abs = Math.abs(n);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}
