/**
 * The order jest starts test files in when it has no timings of earlier runs (every CI run starts from a fresh
 * clone): the slowest files first, so that the two workers finish together instead of one of them starting a
 * 10 s file last. Jest's default without timings is largest file first, which puts short, heavy files
 * (cli-commands, credential-day) at the end. With timings (a warm local cache) jest's own order is kept.
 */
const Sequencer = require('@jest/test-sequencer').default;

/** Files measured as the slowest (2 cores, 2026-11-30), slowest first; a file missing here only loses its place. */
const SLOWEST = [
  'integration/cli-commands.test.ts',
  'integration/real-servers.test.ts',
  'integration/credential-day.test.ts',
  'hardening/hostile-input.test.ts',
  'hardening/isolation.test.ts',
  'integration/oauth-attacks.test.ts',
  'integration/obo.test.ts',
  'hardening/faults.test.ts',
  'hardening/leaks.test.ts',
  'hardening/burst.test.ts',
  'integration/coordinator-attacks.test.ts',
  'integration/stdio-process-group.test.ts',
  'unit/exports.test.ts',
  'unit/packaging-optional-deps.test.ts',
];

class SlowestFirst extends Sequencer {
  sort(tests) {
    const timed = tests.some((t) => this._getCache(t)[t.path]?.[1] > 0);
    if (timed) return super.sort(tests);
    const rank = (t) => {
      const i = SLOWEST.findIndex((name) => t.path.endsWith(name));
      return i < 0 ? SLOWEST.length : i;
    };
    // Then integration and hardening before unit (they wait on servers), each largest first.
    const group = (t) => (/__tests__[\\/]unit[\\/]/.test(t.path) ? 1 : 0);
    return [...tests].sort((a, b) => rank(a) - rank(b) || group(a) - group(b) || (b.context?.hasteFS?.getSize(b.path) ?? 0) - (a.context?.hasteFS?.getSize(a.path) ?? 0));
  }
}

module.exports = SlowestFirst;
