/**
 * `mcp-switchboard demo`: runs the embedded demo scenario (see {@link runDemo}) and prints its report. It checks
 * first for the packages it needs that an installed `mcp-switchboard` does not bring (they are dev or optional
 * dependencies): `oidc-provider` is required, `@modelcontextprotocol/server-everything` optional.
 * @module
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { UsageError } from './args.js';
import { DEFAULT_DEMO_IDLE_MS, formatDemoReport, runDemo } from './demo.js';
import type { CliCommand } from './main.js';

/** Exit statuses (as `EXIT` in main.ts; not imported from it, since main.ts imports this module). */
const EXIT = { ok: 0, failure: 1 } as const;

/**
 * The command that installs every package the demo can use.
 *
 * @example
 * ```ts
 * console.error(`The demo needs oidc-provider. Install it with: ${DEMO_INSTALL_COMMAND}`);
 * ```
 */
export const DEMO_INSTALL_COMMAND = 'npm install oidc-provider ws @modelcontextprotocol/server-everything';

function positiveInt(flags: Record<string, string | boolean>, name: string, fallback: number): number {
  const raw = flags[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (typeof raw !== 'string' || !/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`--${name} takes a positive whole number, got ${JSON.stringify(raw)}`);
  }
  return n;
}

/** Whether a package can be found from this module, without loading it (works for ESM-only packages too). */
function isInstalledHere(name: string): boolean {
  const require = createRequire(import.meta.url);
  const dirs = require.resolve.paths(name) ?? [];
  return dirs.some((dir) => existsSync(join(dir, name, 'package.json')));
}

/**
 * Builds the `demo` command; `isInstalled` is how it checks for a package (replaceable in tests).
 *
 * @example
 * ```ts
 * const demo = createDemoCommand({ isInstalled: (name) => name !== 'oidc-provider' });
 * ```
 */
export function createDemoCommand(deps: { isInstalled?: (name: string) => boolean } = {}): CliCommand {
  const isInstalled = deps.isInstalled ?? isInstalledHere;
  return {
    name: 'demo',
    summary: 'run the embedded, offline demo: a test IdP, OBO and shared MCP servers, many simulated users',
    usage: 'demo [--users N] [--calls M] [--idle-ms MS] [--rounds R] [--json]',
    flags: [
      { name: 'users', type: 'string', valueName: 'N', description: 'simulated users (default 200)' },
      { name: 'calls', type: 'string', valueName: 'M', description: 'tool calls each user starts at once, per round (default 5)' },
      {
        name: 'idle-ms',
        type: 'string',
        valueName: 'MS',
        description: `idle timeout of user connections; the demo waits past it between cold rounds (default ${DEFAULT_DEMO_IDLE_MS})`,
      },
      { name: 'rounds', type: 'string', valueName: 'R', description: 'cold rounds, separated by the idle timeout (default 2); a warm round follows' },
      { name: 'json', type: 'boolean', description: 'print the report as JSON (no progress output)' },
    ],
    details: `Needs packages that an installed mcp-switchboard does not bring: oidc-provider (required) and
@modelcontextprotocol/server-everything (optional: without it, its share of the calls goes to the shared server).
Add them with: ${DEMO_INSTALL_COMMAND}
A progress bar is shown when stdout and stderr are a terminal (never with --json); otherwise progress lines go to stderr.`,
    positionals: { min: 0, max: 0 },
    async run({ flags }, io) {
      const options = {
        users: positiveInt(flags, 'users', 200),
        calls: positiveInt(flags, 'calls', 5),
        idleMs: positiveInt(flags, 'idle-ms', DEFAULT_DEMO_IDLE_MS),
        rounds: positiveInt(flags, 'rounds', 2),
      };
      if (!isInstalled('oidc-provider')) {
        io.stderr.write(
          'error: the demo needs the package "oidc-provider" (its test identity provider), which is not installed.\n' +
            `Add the demo's packages with: ${DEMO_INSTALL_COMMAND}\n`,
        );
        return EXIT.failure;
      }
      const everything = isInstalled('@modelcontextprotocol/server-everything');
      if (!everything) {
        io.stderr.write(
          'note: the optional package "@modelcontextprotocol/server-everything" is not installed, so the demo runs without its stdio server\n' +
            '      (its share of the calls goes to the shared HTTP server). Add it with: npm install @modelcontextprotocol/server-everything\n',
        );
      }
      const json = flags.json === true;
      const report = await runDemo({
        ...options,
        everything,
        progress: json ? 'none' : io.stdout.isTTY === true && io.stderr.isTTY === true ? 'bar' : 'lines',
        progressStream: io.stderr,
      });
      io.stdout.write(json ? `${JSON.stringify(report, null, 2)}\n` : formatDemoReport(report));
      return report.errors === 0 && report.mismatches === 0 ? EXIT.ok : EXIT.failure;
    },
  };
}

/**
 * The `demo` command. Exit status 0 when every call succeeded and no call was answered for another user, 1
 * otherwise or when a required package is missing.
 *
 * @example
 * ```sh
 * $ mcp-switchboard demo --users 500 --calls 10 --idle-ms 8000
 * $ mcp-switchboard demo --json > report.json
 * ```
 */
export const demoCommand: CliCommand = createDemoCommand();
