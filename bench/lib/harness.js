/**
 * The shape of benchmark results and the glue that lets each `*.bench.js` file run alone or under `run.js`.
 * @module
 */
import { pathToFileURL } from 'node:url';
import { fmt } from './measure.js';

/**
 * A target on a result: `of: 'ratio'` compares ours / baseline, `of: 'ours'` our figure itself (in `unit`).
 *
 * @typedef {{ of: 'ratio' | 'ours', op: '<=' | '>=', value: number }} Target
 */

/**
 * One line of the final table.
 *
 * @typedef {object} ResultRow
 * @property {string} benchmark What is compared, e.g. `callTool in memory, sequential`.
 * @property {number} ours Our figure.
 * @property {number} baseline The baseline's figure, measured in the same run.
 * @property {string} unit Unit of both figures, e.g. `ns/op`, `calls/s`, `bytes/conn`.
 * @property {string} baselineName What the baseline is, e.g. `raw SDK Client`.
 * @property {number} ratio `ours / baseline`.
 * @property {Target | undefined} target
 * @property {boolean | undefined} pass `undefined` when there is no target.
 * @property {string} [note]
 */

/**
 * Builds a result row: computes the ratio (ours / baseline) and whether the target is met.
 *
 * @param {{ benchmark: string, ours: number, baseline: number, unit: string, baselineName: string, target?: Target, note?: string }} r
 * @returns {ResultRow}
 * @example
 * ```js
 * row({ benchmark: 'callTool HTTP, sequential', ours: 812_000, baseline: 790_000, unit: 'ns/call',
 *       baselineName: 'raw SDK Client', target: { of: 'ratio', op: '<=', value: 1.05 } });
 * ```
 */
export function row(r) {
  const ratio = r.ours / r.baseline;
  let pass;
  if (r.target) {
    const v = r.target.of === 'ratio' ? ratio : r.ours;
    pass = Number.isFinite(v) && (r.target.op === '<=' ? v <= r.target.value : v >= r.target.value);
  }
  return { ...r, ratio, target: r.target, pass };
}

/**
 * A benchmark module's export.
 *
 * @typedef {object} Benchmark
 * @property {string} name Short id used by the CLI filter, e.g. `warm-lookup`.
 * @property {string} title One line saying what is measured.
 * @property {(log: (line: string) => void) => Promise<ResultRow[]>} run Runs it; `log` prints detail lines.
 */

/**
 * Renders a target for people, e.g. `ratio ≤ 1.2` or `≤ 10 µs/op`.
 *
 * @param {Target | undefined} t
 * @param {string} unit
 * @returns {string}
 * @example
 * ```js
 * describeTarget({ of: 'ratio', op: '<=', value: 1.2 }, 'ns/op'); // 'ratio ≤ 1.2'
 * ```
 */
export function describeTarget(t, unit) {
  if (!t) return '(info)';
  const op = t.op === '<=' ? '≤' : '≥';
  return t.of === 'ratio' ? `ratio ${op} ${t.value}` : `${op} ${fmt(t.value)} ${unit}`;
}

/**
 * Prints each kind of process warning once, with a count at exit. Under load, undici's fetch leaves one abort
 * listener per request on the SDK transport's long-lived signal until the request object is collected, so
 * `MaxListenersExceededWarning` fires for raw SDK clients and ours alike; a thousand copies would bury the
 * results. `run.js` starts benchmarks with `--no-warnings` so that this is the only output.
 */
function reportWarningsOnce() {
  const seen = new Map();
  process.on('warning', (w) => {
    const n = (seen.get(w.name) ?? 0) + 1;
    seen.set(w.name, n);
    if (n === 1) process.stderr.write(`  (warning) ${w.name}: ${w.message}\n`);
  });
  process.on('exit', () => {
    for (const [name, n] of seen) if (n > 1) process.stderr.write(`  (warning) ${name} seen ${n} times in all\n`);
  });
}

/**
 * Makes a `*.bench.js` file runnable on its own (`node --expose-gc bench/x.bench.js`): when the file is the
 * process's entry point, runs the benchmark, prints its rows and, under `run.js` (an IPC channel exists),
 * sends them to the parent.
 *
 * @param {string} moduleUrl `import.meta.url` of the benchmark file
 * @param {Benchmark} benchmark
 * @returns {void}
 * @example
 * ```js
 * export const benchmark = { name: 'obo-cache', title: '...', run };
 * runIfMain(import.meta.url, benchmark);
 * ```
 */
export function runIfMain(moduleUrl, benchmark) {
  if (!process.argv[1] || pathToFileURL(process.argv[1]).href !== moduleUrl) return;
  reportWarningsOnce();
  const log = (line) => process.stdout.write(`  ${line}\n`);
  benchmark
    .run(log)
    .then(async (rows) => {
      if (process.send) await new Promise((resolve) => process.send({ type: 'rows', rows }, resolve));
      else for (const r of rows) log(`${r.benchmark}: ours ${fmt(r.ours)} vs ${fmt(r.baseline)} ${r.unit} (ratio ${fmt(r.ratio)}) ${describeTarget(r.target, r.unit)} ${r.pass === false ? 'FAIL' : r.pass ? 'pass' : ''}`);
    })
    .catch(async (err) => {
      process.stderr.write(`${benchmark.name} failed: ${err?.stack ?? err}\n`);
      if (process.send) await new Promise((resolve) => process.send({ type: 'error', error: String(err?.message ?? err) }, resolve));
      process.exitCode = 1;
    })
    .finally(() => {
      // Anything still open here is a bug of the benchmark; do not let it hang the run.
      if (process.connected) process.disconnect();
    });
}
