/**
 * `npm run bench`: runs every benchmark (or those whose name or file contains the CLI argument), each in its own
 * Node process started with `--expose-gc`, then prints one table (ours, baseline measured in the same run,
 * ratio, target, pass/FAIL) and writes `bench/results.json`. Always exits 0 when the benchmarks ran: they
 * inform, they do not gate. Needs `npm run build` first (the `bench` script does it).
 *
 * Usage: `node bench/run.js [name-substring]`, e.g. `node bench/run.js call-tool`.
 * @module
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { describeTarget } from './lib/harness.js';
import { fmt } from './lib/measure.js';

/** The benchmarks, in run order: name (for the filter), file and what it measures. */
const BENCHMARKS = [
  { name: 'warm-lookup', file: 'warmLookup.bench.js', title: 'warm getConnection / acquire: 100,000 vs 10 tracked user connections (fake transports)' },
  { name: 'call-tool', file: 'callTool.bench.js', title: 'callTool through MCPManager vs raw SDK Client.callTool (in memory, streamable HTTP)' },
  { name: 'idle-heap', file: 'idleHeap.bench.js', title: 'heap per idle user connection vs raw SDK Client + StreamableHTTPClientTransport' },
  { name: 'peers', file: 'peers.bench.js', title: 'many users with rotating bearers: MCPManager + OBO vs @langchain/mcp-adapters vs raw SDK' },
  { name: 'obo-cache', file: 'oboCache.bench.js', title: 'OBO resolver cache hit vs a Map.get of a precomputed key' },
  { name: 'replicas', file: 'replicas.bench.js', title: 'several replicas on a Redis coordinator: IdP requests per user per token lifetime; warm-call cost' },
];

/** A benchmark that runs longer than this is stopped and reported as failed. */
const BENCH_TIME_LIMIT_MS = 6 * 60_000;

const here = (p) => fileURLToPath(new URL(p, import.meta.url));

/** Runs one benchmark file in a child process; resolves with its rows or an error string. */
async function runOne(b) {
  const child = fork(here(`./${b.file}`), [], { execArgv: ['--expose-gc', '--no-warnings'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let rows;
  let error;
  child.on('message', (m) => {
    if (m?.type === 'rows') rows = m.rows;
    else if (m?.type === 'error') error = m.error;
  });
  const limit = setTimeout(() => {
    error = `stopped after ${BENCH_TIME_LIMIT_MS / 1000} s`;
    child.kill('SIGKILL');
  }, BENCH_TIME_LIMIT_MS);
  const [code, signal] = await once(child, 'exit');
  clearTimeout(limit);
  if (!rows && !error) error = `exited (${signal ?? code}) without results`;
  return { rows: rows ?? [], error };
}

function pad(s, n, right = false) {
  s = String(s);
  return right ? s.padStart(n) : s.padEnd(n);
}

/** The final table, one line per row, columns sized to fit. */
function table(results) {
  const header = ['benchmark', 'ours', 'baseline', 'unit', 'ratio', 'target', 'result'];
  const lines = results.map((r) => [
    r.benchmark,
    fmt(r.ours),
    fmt(r.baseline),
    r.unit,
    fmt(r.ratio),
    describeTarget(r.target, r.unit),
    r.pass === undefined ? 'info' : r.pass ? 'pass' : 'FAIL',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const numeric = new Set([1, 2, 4]);
  const fmtLine = (cells) => `| ${cells.map((c, i) => pad(c, widths[i], numeric.has(i))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (numeric.has(i) ? `${'-'.repeat(w + 1)}:` : `${'-'.repeat(w + 2)}`)).join('|')}|`;
  return [fmtLine(header), rule, ...lines.map(fmtLine)].join('\n');
}

async function main() {
  if (!existsSync(here('../dist/index.js'))) {
    process.stderr.write('dist/ is missing: run `npm run build` first (or `npm run bench`, which builds).\n');
    process.exitCode = 1;
    return;
  }
  const filter = process.argv[2];
  const selected = filter ? BENCHMARKS.filter((b) => b.name.includes(filter) || b.file.includes(filter)) : BENCHMARKS;
  if (selected.length === 0) {
    process.stderr.write(`no benchmark matches "${filter}"; names: ${BENCHMARKS.map((b) => b.name).join(', ')}\n`);
    process.exitCode = 1;
    return;
  }
  const env = {
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    date: new Date().toISOString(),
  };
  process.stdout.write(`mcp-switchboard benchmarks: Node ${env.node}, ${env.platform}, ${env.cpus} CPUs (${env.cpuModel})\n`);
  const started = Date.now();
  const results = [];
  const errors = [];
  for (const b of selected) {
    process.stdout.write(`\n== ${b.name}: ${b.title}\n`);
    const t0 = Date.now();
    const { rows, error } = await runOne(b);
    process.stdout.write(`   (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
    results.push(...rows.map((r) => ({ ...r, bench: b.name })));
    if (error) {
      errors.push({ bench: b.name, error });
      process.stdout.write(`   FAIL: ${b.name} did not complete: ${error}\n`);
    }
  }
  process.stdout.write(`\n${table(results)}\n`);
  const failed = results.filter((r) => r.pass === false);
  process.stdout.write(
    `\n${results.length} results, ${failed.length} below target${errors.length ? `, ${errors.length} benchmark(s) did not complete` : ''}; ` +
      `ratio = ours / baseline; total ${((Date.now() - started) / 1000).toFixed(0)} s\n`,
  );
  for (const r of failed) process.stdout.write(`FAIL: ${r.benchmark}: ratio ${fmt(r.ratio)}, target ${describeTarget(r.target, r.unit)}\n`);
  for (const e of errors) process.stdout.write(`FAIL: ${e.bench} did not complete: ${e.error}\n`);
  writeFileSync(here('./results.json'), `${JSON.stringify({ env, durationMs: Date.now() - started, results, errors }, null, 2)}\n`);
  process.stdout.write('results written to bench/results.json\n');
}

await main();
