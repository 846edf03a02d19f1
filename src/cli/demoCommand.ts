/**
 * `mcp-switchboard demo`: runs the embedded demo scenario (see {@link runDemo}) and prints its report.
 * @module
 */
import { UsageError } from './args.js';
import { formatDemoReport, runDemo } from './demo.js';
import { EXIT, type CliCommand } from './main.js';

function positiveInt(flags: Record<string, string | boolean>, name: string, fallback: number): number {
  const raw = flags[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (typeof raw !== 'string' || !/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`--${name} takes a positive whole number, got ${JSON.stringify(raw)}`);
  }
  return n;
}

/**
 * The `demo` command. Exit status 0 when every call succeeded and no call was answered for another user, 1
 * otherwise.
 *
 * @example
 * ```sh
 * $ mcp-switchboard demo --users 500 --calls 10 --idle-ms 200
 * $ mcp-switchboard demo --json > report.json
 * ```
 */
export const demoCommand: CliCommand = {
  name: 'demo',
  summary: 'run the embedded, offline demo: a test IdP, OBO and shared MCP servers, many simulated users',
  usage: 'demo [--users N] [--calls M] [--idle-ms MS] [--rounds R] [--json]',
  flags: [
    { name: 'users', type: 'string', valueName: 'N', description: 'simulated users (default 200)' },
    { name: 'calls', type: 'string', valueName: 'M', description: 'concurrent tool calls per user per round (default 5)' },
    { name: 'idle-ms', type: 'string', valueName: 'MS', description: 'idle timeout of user connections (default 1000)' },
    { name: 'rounds', type: 'string', valueName: 'R', description: 'rounds of calls, separated by the idle timeout (default 2)' },
    { name: 'json', type: 'boolean', description: 'print the report as JSON' },
  ],
  positionals: { min: 0, max: 0 },
  async run({ flags }, io) {
    const report = await runDemo({
      users: positiveInt(flags, 'users', 200),
      calls: positiveInt(flags, 'calls', 5),
      idleMs: positiveInt(flags, 'idle-ms', 1000),
      rounds: positiveInt(flags, 'rounds', 2),
      progressStream: io.stderr as NodeJS.WriteStream,
    });
    io.stdout.write(flags.json === true ? `${JSON.stringify(report, null, 2)}\n` : formatDemoReport(report));
    return report.errors === 0 && report.mismatches === 0 ? EXIT.ok : EXIT.failure;
  },
};
