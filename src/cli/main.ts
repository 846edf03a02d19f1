#!/usr/bin/env node
/**
 * The `mcp-switchboard` command. {@link main} is a plain async function (arguments and streams in, exit status
 * out) so it can be tested in-process; only when this module is the program being run does it touch
 * `process.exit`. Commands live in one table: add a {@link CliCommand} to `COMMANDS` to add a subcommand.
 * @module
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs, UsageError, type FlagSpec, type ParsedArgs } from './args.js';
import { demoCommand } from './demoCommand.js';
import { callCommand, toolsCommand } from './toolsCommand.js';
import { validateCommand } from './validate.js';

/**
 * Where a command reads its environment and writes its output.
 *
 * @example
 * ```ts
 * const io: CliIo = { stdout: process.stdout, stderr: process.stderr, env: process.env };
 * ```
 */
export interface CliIo {
  /** Results. `isTTY` is true when it is a terminal (live progress is shown only then). */
  stdout: { write(chunk: string): unknown; isTTY?: boolean };
  /** Problems and diagnostics. */
  stderr: { write(chunk: string): unknown; isTTY?: boolean };
  /** Standard input, for secrets that must not be flags (`--upstream-token-stdin`); absent means empty. */
  stdin?: AsyncIterable<string | Uint8Array>;
  /** Environment variables (for `${NAME}` placeholders and credentials); never read at import. */
  env: Readonly<Record<string, string | undefined>>;
  /** Directory relative paths are resolved against; defaults to `process.cwd()`. */
  cwd?: string;
}

/**
 * One subcommand of the CLI.
 *
 * @example
 * ```ts
 * const hello: CliCommand = {
 *   name: 'hello', summary: 'say hello', usage: 'hello <name>', flags: [], positionals: { min: 1, max: 1 },
 *   async run({ positionals }, io) { io.stdout.write(`hello ${positionals[0]}\n`); return EXIT.ok; },
 * };
 * ```
 */
export interface CliCommand {
  /** The word that selects it, e.g. `validate`. */
  name: string;
  /** One line for the command list. */
  summary: string;
  /** Usage line without the program name, e.g. `validate <file> [--format FORMAT]`. */
  usage: string;
  /** More help text, printed after the options (environment variables, examples). */
  details?: string;
  /** The flags it accepts (`--help` is added to every command). */
  flags: readonly FlagSpec[];
  /** How many positional arguments it takes. */
  positionals: { min: number; max: number };
  /** Runs it; resolves to the exit status. Throw {@link UsageError} for wrong usage (exit 2). */
  run(args: ParsedArgs, io: CliIo): Promise<number>;
}

/**
 * Exit statuses: 0 success, 1 failure at run time, 2 wrong usage or invalid input.
 *
 * @example
 * ```ts
 * return ok ? EXIT.ok : EXIT.failure;
 * ```
 */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

const PROGRAM = 'mcp-switchboard';
const HELP_FLAG: FlagSpec = { name: 'help', short: 'h', type: 'boolean', description: 'show help for this command' };

/**
 * The command table. `help` is built in.
 *
 * @example
 * ```ts
 * COMMANDS.map((c) => c.name); // ['demo', 'validate', 'tools', 'call']
 * ```
 */
export const COMMANDS: readonly CliCommand[] = [demoCommand, validateCommand, toolsCommand, callCommand];

/**
 * Runs the CLI with `argv` (without `node` and the script path) and resolves to the exit status.
 *
 * @example
 * ```ts
 * const out: string[] = [];
 * const status = await main(['validate', 'librechat.yaml'], {
 *   stdout: { write: (s) => out.push(s) }, stderr: process.stderr, env: process.env,
 * });
 * ```
 */
export async function main(argv: readonly string[], io: CliIo, commands: readonly CliCommand[] = COMMANDS): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    io.stderr.write(overview(commands));
    return EXIT.usage;
  }
  if (name === 'help' || name === '--help' || name === '-h') {
    const topic = name === 'help' ? rest[0] : undefined;
    if (topic === undefined) {
      io.stdout.write(overview(commands));
      return EXIT.ok;
    }
    const command = commands.find((c) => c.name === topic);
    if (!command) return usageError(io, `unknown command ${JSON.stringify(topic)}`);
    io.stdout.write(commandHelp(command));
    return EXIT.ok;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) return usageError(io, `unknown command ${JSON.stringify(name)}`);
  try {
    const args = parseArgs(rest, [...command.flags, HELP_FLAG]);
    if (args.flags.help === true) {
      io.stdout.write(commandHelp(command));
      return EXIT.ok;
    }
    const { min, max } = command.positionals;
    const n = args.positionals.length;
    if (n < min || n > max) {
      throw new UsageError(min === max ? `${command.name} takes ${min} argument${min === 1 ? '' : 's'}, got ${n}` : `${command.name} takes ${min} to ${max} arguments, got ${n}`);
    }
    return await command.run(args, io);
  } catch (err) {
    if (err instanceof UsageError) return usageError(io, err.message, command);
    io.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT.failure;
  }
}

function usageError(io: CliIo, message: string, command?: CliCommand): number {
  io.stderr.write(`${PROGRAM}: ${message}\n`);
  io.stderr.write(command ? `usage: ${PROGRAM} ${command.usage}\n` : `run \`${PROGRAM} help\` for the list of commands\n`);
  return EXIT.usage;
}

function overview(commands: readonly CliCommand[]): string {
  const width = Math.max(4, ...commands.map((c) => c.name.length));
  const lines = [`usage: ${PROGRAM} <command> [options]`, '', 'commands:'];
  for (const c of commands) lines.push(`  ${c.name.padEnd(width)}  ${c.summary}`);
  lines.push(`  ${'help'.padEnd(width)}  show help, or \`help <command>\` for one command`, '');
  return lines.join('\n');
}

function commandHelp(command: CliCommand): string {
  const lines = [`usage: ${PROGRAM} ${command.usage}`, '', command.summary];
  const flags = [...command.flags, HELP_FLAG].filter((f) => f.removed === undefined);
  const label = (f: FlagSpec) => `${f.short ? `-${f.short}, ` : ''}--${f.name}${f.type === 'string' ? ` ${f.valueName ?? 'VALUE'}` : ''}`;
  const width = Math.max(...flags.map((f) => label(f).length));
  lines.push('', 'options:');
  for (const f of flags) lines.push(`  ${label(f).padEnd(width)}  ${f.description}`);
  if (command.details) lines.push('', command.details.trimEnd());
  lines.push('');
  return lines.join('\n');
}

/** True when this module is the program being run (`node dist/cli/main.js`, or the `mcp-switchboard` bin link). */
function isRunDirectly(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isRunDirectly()) {
  void main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env }).then((status) => {
    // Exit once stdout has drained, so piped output is complete even if a command left a handle open.
    process.exitCode = status;
    process.stdout.write('', () => process.exit(status));
  });
}
