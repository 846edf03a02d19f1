/**
 * Where our per-call time goes on the warm in-memory path (`MCPManager.callTool` → pool acquire →
 * `MCPConnection.callTool` fast path), next to the raw SDK `Client.callTool` in the same process. Not a
 * benchmark (`run.js` does not run it): a profiling aid.
 *
 * It warms both up, then runs `calls` 50-way calls of each in alternating rounds under the V8 sampling profiler
 * (started and stopped around the measured rounds only, so start-up and module loading are left out), writes
 * the profile, and prints CPU µs per call of each side and the self time per call of every function of
 * `dist/` (our code) that shows up. Open the `.cpuprofile` in Chrome DevTools (Performance) for the rest.
 *
 * Usage: `npm run build && node bench/profileCallTool.js [calls=100000] [out=<tmpdir>/callTool.cpuprofile]`
 * @module
 */
import { realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Session } from 'node:inspector/promises';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { MCPConnectionFactory, MCPManager } from '../dist/index.js';
import { createInMemoryPair, createInMemoryServerFactory } from '../dist/testing/index.js';
import { fmt, median, throughput } from './lib/measure.js';

const CONCURRENCY = 50;
const ROUNDS = 10;
const ECHO = { text: 'hello' };
const DIST = `${realpathSync(fileURLToPath(new URL('../dist/', import.meta.url)))}/`;

function echoServer() {
  const server = new McpServer({ name: 'bench-echo', version: '1.0.0' });
  server.registerTool('echo', { description: 'Returns its text', inputSchema: { text: z.string() } }, async ({ text }) => ({
    content: [{ type: 'text', text }],
  }));
  return server;
}

/** What a sampled frame is: our code, the SDK, zod, GC, or the rest (Node internals, V8). */
function category(callFrame, path) {
  if (path.startsWith(DIST)) return 'ours (dist/)';
  if (path.includes('/node_modules/@modelcontextprotocol/sdk/')) return 'MCP SDK';
  if (path.includes('/node_modules/zod/')) return 'zod';
  if (callFrame.functionName === '(garbage collector)') return 'garbage collector';
  if (callFrame.functionName === '(idle)') return 'idle';
  return 'Node, V8, microtasks';
}

/**
 * Splits a V8 CPU profile by side (the sample's time falls in a round of `ours` or of `raw`): µs per call of
 * each category, and self time per call of each function of `dist/` during our rounds.
 */
function analyse(profile, windows, callsPerSide) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const frames = new Map();
  for (const n of profile.nodes) {
    const { url } = n.callFrame;
    const path = url.startsWith('file://') ? fileURLToPath(url) : url;
    frames.set(n.id, { path, cat: category(n.callFrame, path) });
  }
  const perSide = { ours: new Map(), raw: new Map() };
  const perFn = new Map();
  let t = profile.startTime;
  let w = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    t += dt;
    while (w < windows.length && t > windows[w].end) w++;
    const win = windows[w];
    if (!win || t < win.start) return;
    const { path, cat } = frames.get(id);
    perSide[win.side].set(cat, (perSide[win.side].get(cat) ?? 0) + dt);
    if (win.side === 'ours' && cat === 'ours (dist/)') {
      const { functionName, lineNumber } = byId.get(id).callFrame;
      const key = `${functionName || '(anonymous)'} (${path.slice(DIST.length)}:${lineNumber + 1})`;
      perFn.set(key, (perFn.get(key) ?? 0) + dt);
    }
  });
  const cats = [...new Set([...perSide.ours.keys(), ...perSide.raw.keys()])].filter((c) => c !== 'idle');
  const per = (side, cat) => (perSide[side].get(cat) ?? 0) / callsPerSide;
  cats.sort((a, b) => per('ours', b) - per('ours', a));
  return {
    categories: cats.map((c) => [c, per('ours', c), per('raw', c)]),
    functions: [...perFn].sort((a, b) => b[1] - a[1]).map(([k, us]) => [k, us / callsPerSide]),
  };
}

const nowUs = () => Number(process.hrtime.bigint() / 1000n);

async function main() {
  const calls = Number(process.argv[2] ?? 100_000);
  const out = process.argv[3] ?? join(tmpdir(), 'callTool.cpuprofile');
  const perRound = Math.ceil(calls / ROUNDS);
  const servers = createInMemoryServerFactory(echoServer);
  const factory = new MCPConnectionFactory({ createTransport: servers.createTransport });
  const manager = new MCPManager({ servers: { mem: { command: 'in-memory-echo' } }, connectionFactory: factory });
  const pair = await createInMemoryPair(echoServer());
  const raw = new Client({ name: 'raw-sdk-baseline', version: '1.0.0' });
  await raw.connect(pair.clientTransport);
  const args = { serverName: 'mem', toolName: 'echo', arguments: ECHO };
  const rawArgs = { name: 'echo', arguments: ECHO };
  const sides = { ours: () => manager.callTool(args), raw: () => raw.callTool(rawArgs) };
  const session = new Session();
  try {
    for (const fn of Object.values(sides)) await throughput(fn, 20_000, CONCURRENCY);
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 100 });
    await session.post('Profiler.start');
    const cps = { ours: [], raw: [] };
    const cpu = { ours: [], raw: [] };
    const windows = [];
    for (let r = 0; r < ROUNDS; r++) {
      for (const side of r % 2 ? ['raw', 'ours'] : ['ours', 'raw']) {
        const c0 = process.cpuUsage();
        const start = nowUs();
        cps[side].push(await throughput(sides[side], perRound, CONCURRENCY));
        windows.push({ side, start, end: nowUs() });
        const c = process.cpuUsage(c0);
        cpu[side].push((c.user + c.system) / perRound);
      }
    }
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(out, JSON.stringify(profile));
    const measured = perRound * ROUNDS; // calls of each side
    process.stdout.write(
      `${ROUNDS} alternating rounds of ${fmt(perRound)} calls, ${CONCURRENCY}-way, medians:\n` +
        `  ours ${fmt(median(cps.ours))} calls/s, ${fmt(median(cpu.ours))} µs CPU/call; raw SDK ${fmt(median(cps.raw))} calls/s, ${fmt(median(cpu.raw))} µs CPU/call; ` +
        `ratio ${fmt(median(cps.ours) / median(cps.raw))}\n`,
    );
    const { categories, functions } = analyse(profile, windows, measured);
    process.stdout.write('sampled time per call, by what ran (µs):     ours      raw   ours - raw\n');
    for (const [cat, o, r] of categories) process.stdout.write(`  ${cat.padEnd(40)} ${o.toFixed(2).padStart(7)}  ${r.toFixed(2).padStart(7)}  ${(o - r).toFixed(2).padStart(7)}\n`);
    const sum = (i) => categories.reduce((a, c) => a + c[i], 0);
    process.stdout.write(`  ${'all (idle excluded)'.padEnd(40)} ${sum(1).toFixed(2).padStart(7)}  ${sum(2).toFixed(2).padStart(7)}  ${(sum(1) - sum(2)).toFixed(2).padStart(7)}\n`);
    process.stdout.write('our functions, self time per call (µs):\n');
    for (const [fn, us] of functions.slice(0, 15)) process.stdout.write(`  ${us.toFixed(2).padStart(6)}  ${fn}\n`);
    process.stdout.write(`profile written to ${out}\n`);
  } finally {
    session.disconnect();
    await raw.close();
    await pair.close();
    await manager.close();
    await factory.close();
    await servers.close();
  }
}

await main();
