#!/usr/bin/env node
/**
 * Runs the MCP conformance client suite (@modelcontextprotocol/conformance, pinned in devDependencies) against
 * conformance/client.mjs: every client scenario the CLI lists (26 in 0.1.16: core 18, backcompat 2, draft 3,
 * extensions 3), a few at a time, each through the CLI's own runner (`conformance client --scenario`).
 * Prints one line per scenario (with the failing checks and the client's error when it fails) and ends with
 * the line `N passed, M failed`; exit code 1 when M > 0.
 *
 * A scenario passes when the CLI's verdict does: no check FAILURE or WARNING, the client did not time out, and
 * it exited 0 (unless the scenario expects it to fail, e.g. auth/resource-mismatch).
 *
 *   npm run conformance                                  # builds, then runs everything
 *   node scripts/conformance.mjs [--scenario NAME]... [--jobs N] [--timeout MS] [--verbose] [--baseline]
 *
 *   --scenario NAME  only these scenarios (repeatable)
 *   --jobs N         scenarios run at once (default 4)
 *   --timeout MS     per-scenario client timeout given to the CLI (default 30000)
 *   --verbose        also print every non-passing check and the client's stderr tail
 *   --baseline       run conformance/baseline-client.mjs (a plain @modelcontextprotocol/sdk client) instead:
 *                    checks the harness itself scores 26/26 with a reference-style client
 *
 * The suite's test servers listen on every interface (`listen(0)`), so the run happens inside a loopback-only
 * network namespace: the script re-executes itself under `unshare -n` (as root, as in CI; otherwise
 * `unshare -r -n`, a user namespace) and brings `lo` up (`ip`, else a python3 ioctl). When that is
 * impossible it refuses rather than listen on the host's interfaces.
 *
 * Node 20 lacks `fs.globSync`, which the CLI imports: it runs with conformance/node20-shim.mjs preloaded.
 * Results (checks.json, the client's stdout/stderr, per scenario) go to a temp dir, printed at the end.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SELF = fileURLToPath(import.meta.url);
const SHIM = join(ROOT, 'conformance', 'node20-shim.mjs');
const CLI = join(ROOT, 'node_modules', '@modelcontextprotocol', 'conformance', 'dist', 'index.js');

const argv = process.argv.slice(2);
const inside = argv.includes('--inside');
const passArgs = argv.filter((a) => a !== '--inside');
const opts = parseArgs(passArgs);

function parseArgs(args) {
  const o = { scenarios: [], jobs: 4, timeout: 30_000, verbose: false, baseline: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const value = () => {
      if (i + 1 >= args.length) fail(`${a} needs a value`);
      return args[++i];
    };
    if (a === '--scenario') o.scenarios.push(value());
    else if (a === '--jobs') o.jobs = positive(a, value());
    else if (a === '--timeout') o.timeout = positive(a, value());
    else if (a === '--verbose') o.verbose = true;
    else if (a === '--baseline') o.baseline = true;
    else fail(`unknown argument ${a} (see the header of scripts/conformance.mjs)`);
  }
  return o;
}

function positive(name, v) {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) fail(`${name} must be a positive integer (got ${v})`);
  return n;
}

function fail(message) {
  console.error(`conformance: ${message}`);
  process.exit(1);
}

const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

// ---------------------------------------------------------------------------------------------------------
// Outside: re-execute inside a loopback-only network namespace.
// ---------------------------------------------------------------------------------------------------------

/** A shell command that brings `lo` up in the new namespace. */
function loUpCommand() {
  if (has('ip')) return 'ip link set lo up';
  if (has('python3')) {
    // SIOCGIFFLAGS / SIOCSIFFLAGS on "lo", OR-ing IFF_UP: what `ip link set lo up` does.
    const py = [
      'import fcntl,socket,struct',
      's=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)',
      "f=struct.unpack('16sH',fcntl.ioctl(s,0x8913,struct.pack('16sH',b'lo',0))[:18])[1]",
      "fcntl.ioctl(s,0x8914,struct.pack('16sH',b'lo',f|1))",
    ].join(';');
    return `python3 -c "${py}"`;
  }
  if (has('busybox')) return 'busybox ip link set lo up';
  return undefined;
}

function reexecIsolated() {
  if (process.platform !== 'linux') {
    fail('refusing to run: the suite\'s test servers listen on every interface and only Linux network namespaces (unshare -n) keep them on loopback here');
  }
  if (!has('unshare')) fail('refusing to run: `unshare` (util-linux) is missing; the test servers would listen on every interface. Install util-linux.');
  const loUp = loUpCommand();
  if (!loUp) fail('refusing to run: cannot bring up lo in the namespace: install iproute2 (`apt-get install -y iproute2`) or python3');
  const isRoot = process.getuid?.() === 0;
  const unshareArgs = isRoot ? ['-n'] : ['-r', '-n']; // non-root: a user namespace (maps us to root in it) makes -n possible
  const script = `${loUp} && exec "$0" "$@"`;
  const r = spawnSync('unshare', [...unshareArgs, 'sh', '-c', script, process.execPath, SELF, '--inside', ...passArgs], {
    stdio: 'inherit',
    cwd: ROOT,
  });
  if (r.error) fail(`refusing to run: unshare failed (${r.error.message})`);
  if (r.status === null) fail(`refusing to run: unshare ${unshareArgs.join(' ')} was killed by ${r.signal}`);
  // unshare itself failing (no CAP_SYS_ADMIN, user namespaces disabled) prints its reason and exits 1.
  process.exit(r.status);
}

/** Inside the namespace: nothing but `lo`, and `lo` up. */
function assertIsolated() {
  const ifaces = networkInterfaces();
  const names = Object.keys(ifaces);
  const others = names.filter((n) => n !== 'lo');
  if (others.length) fail(`refusing to run: network interfaces other than lo are present (${others.join(', ')})`);
  if (!ifaces.lo?.some((a) => a.address === '127.0.0.1')) fail('refusing to run: lo has no 127.0.0.1 (is it up?)');
}

// ---------------------------------------------------------------------------------------------------------
// Inside: list, run, report.
// ---------------------------------------------------------------------------------------------------------

function cli(args, extra = {}) {
  return spawn(process.execPath, ['--import', SHIM, CLI, ...args], { cwd: ROOT, ...extra });
}

/** `conformance list --client`: name → spec versions, e.g. ['2025-11-25'], ['draft'], ['extension']. */
function listScenarios() {
  const r = spawnSync(process.execPath, ['--import', SHIM, CLI, 'list', '--client'], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) fail(`\`conformance list --client\` failed:\n${r.stderr || r.stdout}`);
  const scenarios = [];
  for (const line of r.stdout.split('\n')) {
    const m = /^\s+- (\S+)(?: \[([^\]]*)\])?\s*$/.exec(line);
    if (m) scenarios.push({ name: m[1], versions: m[2] ? m[2].split(',') : [] });
  }
  if (!scenarios.length) fail(`\`conformance list --client\` listed nothing:\n${r.stdout}`);
  return scenarios;
}

/** The CLI's suites, from spec versions: extension → extensions, draft → draft, 2025-03-26 only → backcompat, else core. */
function suiteOf(versions) {
  if (versions.includes('extension')) return 'extensions';
  if (versions.includes('draft')) return 'draft';
  if (versions.length && versions.every((v) => v === '2025-03-26')) return 'backcompat';
  return 'core';
}

/** Scenarios that measure time, so run alone rather than beside the others. */
const TIMED = new Set(['sse-retry']);

function findFiles(dir, name) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true })
    .map(String)
    .filter((p) => p.endsWith(name))
    .map((p) => join(dir, p));
}

function runScenario(name, outDir, clientCommand) {
  return new Promise((resolvePromise) => {
    const args = ['client', '--command', clientCommand, '--scenario', name, '--timeout', String(opts.timeout), '-o', outDir];
    const child = cli(args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const started = Date.now();
    child.on('close', (code, signal) => {
      const checksFile = findFiles(outDir, 'checks.json')[0];
      const checks = checksFile ? JSON.parse(readFileSync(checksFile, 'utf8')) : undefined;
      const clientStderr = checksFile ? readFileSync(join(dirname(checksFile), 'stderr.txt'), 'utf8') : '';
      // The CLI accepts any non-zero client exit in scenarios where the client should give up; a client that
      // could not even be configured (options or config refused) has not given up, it has not run.
      const setupFailed = /\[conformance-client\] setup failed:/.test(clientStderr);
      resolvePromise({ name, passed: code === 0 && !setupFailed, code, signal, checks, clientStderr, runnerOutput: out, ms: Date.now() - started, dir: checksFile ? dirname(checksFile) : outDir });
    });
  });
}

/** Why a scenario failed, in one line: the failing/warning checks, then the client's own error or the CLI's. */
function reasons(r) {
  const parts = [];
  for (const c of r.checks ?? []) {
    if (c.status === 'FAILURE' || c.status === 'WARNING') {
      const msg = c.errorMessage && c.errorMessage !== c.description ? `${c.description}: ${c.errorMessage}` : c.description;
      parts.push(`${c.status === 'WARNING' ? 'WARN ' : ''}${c.id}: ${msg}`);
    }
  }
  const clientError = r.clientStderr.split('\n').find((l) => /\[conformance-client\] (setup )?failed:/.test(l));
  if (clientError) parts.unshift(`client ${clientError.includes('setup failed') ? 'setup ' : ''}error: ${clientError.replace(/^.*failed:\s*/, '').slice(0, 300)}`);
  if (/CLIENT TIMED OUT/.test(r.runnerOutput)) parts.push(`client timed out after ${opts.timeout} ms`);
  if (!r.checks) parts.push(`runner: ${r.runnerOutput.trim().split('\n').slice(-3).join(' | ').slice(0, 300)}`);
  if (!parts.length) parts.push(`CLI verdict failed (exit ${r.code}${r.signal ? `, ${r.signal}` : ''})`);
  return [...new Set(parts)];
}

async function runAll() {
  assertIsolated();
  if (!existsSync(CLI)) fail('@modelcontextprotocol/conformance is not installed: run npm install');
  const clientFile = join(ROOT, 'conformance', opts.baseline ? 'baseline-client.mjs' : 'client.mjs');
  if (!opts.baseline && !existsSync(join(ROOT, 'dist', 'index.js'))) fail('dist/index.js is missing: run `npm run build` (npm run conformance does)');
  // The CLI splits --command on spaces and runs it through a shell, appending the server URL.
  if (/\s/.test(process.execPath + clientFile)) fail(`paths with spaces are not supported by the conformance CLI's --command: ${process.execPath} ${clientFile}`);
  const clientCommand = `${process.execPath} ${clientFile}`;

  let scenarios = listScenarios();
  if (opts.scenarios.length) {
    const known = new Set(scenarios.map((s) => s.name));
    for (const s of opts.scenarios) if (!known.has(s)) fail(`unknown scenario ${s}; known: ${[...known].join(', ')}`);
    scenarios = scenarios.filter((s) => opts.scenarios.includes(s.name));
  }
  const suites = {};
  for (const s of scenarios) suites[suiteOf(s.versions)] = (suites[suiteOf(s.versions)] ?? 0) + 1;
  const tmp = mkdtempSync(join(tmpdir(), 'switchboard-conformance-'));
  console.log(
    `conformance ${JSON.parse(readFileSync(join(dirname(CLI), '..', 'package.json'), 'utf8')).version}: ${scenarios.length} client scenarios (${Object.entries(suites)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}) against ${opts.baseline ? 'the plain-SDK baseline client' : 'conformance/client.mjs (MCPManager)'}, ${opts.jobs} at a time`,
  );

  const results = new Array(scenarios.length);
  const run = async (i) => {
    const s = scenarios[i];
    results[i] = { ...(await runScenario(s.name, join(tmp, s.name.replace(/\//g, '__')), clientCommand)), suite: suiteOf(s.versions) };
  };
  // Timed scenarios run alone, after the others: sse-retry measures the reconnect delay against a 450–700 ms window.
  const pooled = scenarios.map((_, i) => i).filter((i) => !TIMED.has(scenarios[i].name));
  const alone = scenarios.map((_, i) => i).filter((i) => TIMED.has(scenarios[i].name));
  let next = 0;
  const worker = async () => {
    while (next < pooled.length) await run(pooled[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(opts.jobs, pooled.length) }, worker));
  for (const i of alone) await run(i);

  const width = Math.max(...scenarios.map((s) => s.name.length));
  for (const r of results) {
    const head = `${r.passed ? 'PASS' : 'FAIL'}  ${r.suite.padEnd(10)} ${r.name.padEnd(width)}  ${(r.ms / 1000).toFixed(1).padStart(5)} s`;
    const why = r.passed ? [] : reasons(r);
    const shown = opts.verbose ? why : why.slice(0, 3).concat(why.length > 3 ? [`(+${why.length - 3} more; --verbose)`] : []);
    console.log(r.passed ? head : `${head}  ${shown.join(' ; ')}`);
    if (opts.verbose && !r.passed) {
      console.log(`        results: ${r.dir}`);
      const tail = r.clientStderr.trim().split('\n').slice(-8);
      if (tail.length && tail[0]) console.log(tail.map((l) => `        | ${l}`).join('\n'));
    }
  }
  const passed = results.filter((r) => r.passed).length;
  const failed = results.length - passed;
  console.log(`results: ${tmp}`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed > 0 ? 1 : 0);
}

if (inside) await runAll();
else reexecIsolated();
