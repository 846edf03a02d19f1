/**
 * A small command-line argument parser: `--name value`, `--name=value`, `-x`, boolean flags and `--`.
 * Each command declares its flags; anything undeclared is a {@link UsageError}, never silently ignored.
 * @module
 */
import { SwitchboardError } from '../errors.js';

/**
 * One flag a command accepts.
 *
 * @example
 * ```ts
 * const server: FlagSpec = { name: 'server', short: 's', type: 'string', valueName: 'NAME', description: 'server to use' };
 * ```
 */
export interface FlagSpec {
  /** Long name, used as `--name`. */
  name: string;
  /** `string` flags take a value; `boolean` flags do not. */
  type: 'string' | 'boolean';
  /** One-letter alias, used as `-x`. */
  short?: string;
  /** The allowed values of a string flag. */
  values?: readonly string[];
  /** Placeholder for the value in help text, e.g. `FILE`. */
  valueName?: string;
  /** One line for the help text. */
  description: string;
  /**
   * Set for a flag that no longer exists: passing it is a {@link UsageError} with this text (which should name the
   * replacement), and help leaves it out. Its value, if any, is never echoed.
   */
  removed?: string;
}

/**
 * Parsed arguments of one command.
 *
 * @example
 * ```ts
 * const args: ParsedArgs = parseArgs(['cfg.yaml', '--server', 'graph'], specs);
 * args.flags.server; // 'graph'
 * ```
 */
export interface ParsedArgs {
  /** Arguments that are not flags, in order. */
  positionals: string[];
  /** Flag values by long name: a string for string flags, `true` for boolean flags given. */
  flags: Record<string, string | boolean>;
}

/**
 * Wrong command-line usage (unknown command or flag, missing value, wrong number of arguments).
 * The CLI prints the message and exits with status 2.
 *
 * @example
 * ```ts
 * try {
 *   parseArgs(['--nope'], []);
 * } catch (err) {
 *   if (err instanceof UsageError) console.error((err as UsageError).message); // unknown option --nope
 * }
 * ```
 */
export class UsageError extends SwitchboardError {
  constructor(message: string) {
    super('usage_error', message);
  }
}

/**
 * Parses `argv` (without the command name) against the flags a command declares.
 *
 * @example
 * ```ts
 * const { positionals, flags } = parseArgs(['cfg.yaml', '--format=librechat'], [
 *   { name: 'format', type: 'string', values: ['auto', 'librechat'], description: 'File format' },
 * ]);
 * // positionals: ['cfg.yaml'], flags: { format: 'librechat' }
 * ```
 */
export function parseArgs(argv: readonly string[], specs: readonly FlagSpec[]): ParsedArgs {
  const positionals: string[] = [];
  const flags: Record<string, string | boolean> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positionals.push(arg);
      continue;
    }
    const long = arg.startsWith('--');
    const eq = long ? arg.indexOf('=') : -1;
    const key = long ? arg.slice(2, eq < 0 ? undefined : eq) : arg.slice(1);
    const spec = specs.find((s) => (long ? s.name === key : s.short === key));
    // Named as typed for a long option; a short one only by its first letter (`-tSECRET` must not echo a value).
    if (!spec) throw new UsageError(`unknown option ${long ? `--${key.slice(0, 40)}` : `-${key.slice(0, 1)}`}`);
    if (spec.removed !== undefined) throw new UsageError(`option --${spec.name} was removed: ${spec.removed}`);
    if (spec.name in flags) throw new UsageError(`option --${spec.name} is given twice`);
    if (spec.type === 'boolean') {
      if (eq >= 0) throw new UsageError(`option --${spec.name} takes no value`);
      flags[spec.name] = true;
      continue;
    }
    let value: string | undefined;
    if (eq >= 0) value = arg.slice(eq + 1);
    else {
      value = argv[i + 1];
      if (value === undefined || value.startsWith('--')) throw new UsageError(`option --${spec.name} needs a value`);
      i++;
    }
    if (spec.values && !spec.values.includes(value)) {
      throw new UsageError(`option --${spec.name} must be one of ${spec.values.join(', ')}`);
    }
    flags[spec.name] = value;
  }
  return { positionals, flags };
}
