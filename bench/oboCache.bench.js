/**
 * Benchmark 5: what an OBO resolver cache hit costs, to back "a cache hit costs microseconds".
 *
 * `createOboTokenResolver` against the test IdP (in a child process): one real exchange fills the cache, then
 * the same request is resolved again and again. The baseline is the floor any promise-returning cache has: an
 * async function returning `Map.get` of a precomputed key, awaited in the same loop.
 * @module
 */
import { createOboTokenResolver } from '../dist/index.js';
import { fmt, interleave, timeSequential } from './lib/measure.js';
import { row, runIfMain } from './lib/harness.js';
import { startServerProcess } from './lib/serverProcess.js';

const OPS = 20_000;
const REPS = 5;

/**
 * Runs benchmark 5 and returns its rows.
 *
 * @param {(line: string) => void} log
 * @returns {Promise<import('./lib/harness.js').ResultRow[]>}
 * @example
 * ```js
 * const rows = await run(console.log);
 * ```
 */
async function run(log) {
  const srv = await startServerProcess({ idp: true });
  try {
    const { issuer, client, downstreamAudience } = srv.info;
    let exchanges = 0;
    const resolver = createOboTokenResolver({
      issuer,
      clientId: client.clientId,
      clientSecret: client.clientSecret,
      allowInsecureRequests: true,
      onExchange: (e) => void (e.cacheHit ? 0 : exchanges++),
    });
    const [assertion] = await srv.mint([{ sub: 'user-1', audience: 'runtime' }]);
    const req = { user: { id: 'user-1' }, assertion, scopes: [`${downstreamAudience}/.default`], serverName: 'svc' };
    const first = await resolver(req);
    if (!first.accessToken || first.cacheHit) throw new Error('the first resolve should have exchanged');

    const key = `user-1\u0000${req.scopes[0]}\u0000svc`;
    const map = new Map([[key, first]]);
    const mapGet = async () => map.get(key);
    const hit = async () => {
      const t = await resolver(req);
      if (t.accessToken !== first.accessToken) throw new Error('cache hit returned another token');
    };
    const { medians } = await interleave({ ours: () => timeSequential(hit, OPS), baseline: () => timeSequential(mapGet, OPS) }, { reps: REPS, warmup: 1 });
    const idpExchanges = (await srv.stats()).idpExchanges;
    log(`cache hit ${fmt(medians.ours / 1000)} µs, awaited Map.get ${fmt(medians.baseline / 1000)} µs; IdP exchanges: ${idpExchanges} (1 expected)`);
    if (idpExchanges !== 1 || exchanges !== 1) throw new Error(`expected exactly one exchange, IdP saw ${idpExchanges}`);
    return [
      row({
        benchmark: 'OBO resolver cache hit',
        ours: medians.ours / 1000,
        baseline: medians.baseline / 1000,
        unit: 'µs/op',
        baselineName: 'awaited Map.get of a precomputed key',
        target: { of: 'ours', op: '<=', value: 10 },
      }),
    ];
  } finally {
    await srv.close();
  }
}

/**
 * This benchmark, for `run.js` (which runs it in its own process) or for a direct run.
 *
 * @type {import('./lib/harness.js').Benchmark}
 * @example
 * ```sh
 * node bench/run.js obo-cache                      # through the runner, with the table
 * node --expose-gc bench/oboCache.bench.js     # alone
 * ```
 */
export const benchmark = {
  name: 'obo-cache',
  title: 'OBO resolver cache hit vs an awaited Map.get of a precomputed key',
  run,
};

runIfMain(import.meta.url, benchmark);
