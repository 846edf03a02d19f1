/**
 * `mcp-switchboard validate <file>`: load a config file (any supported format), print what it holds and what was
 * not imported, or print each problem as `path: message` on its own line and exit with status 2. Warnings are
 * printed either way. `--json` prints a machine-readable result, `--print` the normalised config.
 * @module
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { CONFIG_FILE_FORMATS, CONFIG_FORMATS, detectConfigFormat, ImportError, type ConfigFileFormat, type ImportWarning } from '../config/importers/index.js';
import { loadConfigFile } from '../config/loadConfigFile.js';
import { requiresUserScopedConnection } from '../config/parse.js';
import type { ServerConfig } from '../config/schema.js';
import { ConfigError, type ConfigIssue } from '../errors.js';
import type { CliCommand } from './main.js';

/**
 * What `validate --json` prints.
 *
 * @example
 * ```ts
 * const result = JSON.parse(stdout) as ValidateResult;
 * if (!result.ok) for (const e of result.errors) console.error(`${e.path}: ${e.message}`);
 * ```
 */
export interface ValidateResult {
  /** True when the file is valid (warnings allowed). */
  ok: boolean;
  /** The file, as an absolute path. */
  file: string;
  /** The format it was read as, when known. */
  format?: ConfigFileFormat;
  /** Each server: its transport and whether it connects once per user. Empty when invalid. */
  servers: Record<string, { type: string; perUser: boolean }>;
  /** Problems that make the file invalid, each with its path in the file. */
  errors: ConfigIssue[];
  /** What was not imported as written, each with its path in the file. */
  warnings: ImportWarning[];
  /** With `--print`: the normalised config, `{ servers }` in this package's own format. */
  config?: { servers: Record<string, ServerConfig> };
}

/**
 * The warnings of a file that failed validation: the loader drops them with the error, so import it again,
 * best effort (a file that cannot be parsed here has none to show).
 */
async function warningsOf(file: string, format: ConfigFileFormat | 'auto', err: ConfigError): Promise<{ warnings: ImportWarning[]; format?: ConfigFileFormat }> {
  const fromError = err instanceof ImportError ? err.warnings : undefined;
  if (err.issues.some((i) => i.path === '(file)' || i.path === '(root)')) return { warnings: fromError ?? [] };
  try {
    const text = await readFile(file, 'utf8');
    const syntax = /\.jsonc?$/i.test(file) ? 'json' : 'yaml';
    const doc: unknown = parseYaml(text.replace(/^\uFEFF/, ''), { merge: syntax === 'yaml', maxAliasCount: 100 });
    const detected = format === 'auto' ? detectConfigFormat(doc, { syntax, fileName: file }) : format;
    if (!detected) return { warnings: fromError ?? [] };
    if (fromError) return { warnings: fromError, format: detected };
    try {
      return { warnings: CONFIG_FORMATS[detected].import(doc).warnings, format: detected };
    } catch (importErr) {
      return { warnings: importErr instanceof ImportError ? importErr.warnings : [], format: detected };
    }
  } catch {
    return { warnings: fromError ?? [] };
  }
}

/**
 * The `validate` command. Exit status: 0 valid (warnings allowed), 2 invalid or unreadable.
 *
 * @example
 * ```sh
 * $ mcp-switchboard validate librechat.yaml
 * ok: 2 servers (librechat)
 *   filesystem: stdio, per-user
 *   search: sse
 * warning: mcpServers.filesystem.iconPath: not imported: display icon of the LibreChat UI
 * $ mcp-switchboard validate librechat.yaml --print > servers.json   # the normalised config
 * $ mcp-switchboard validate librechat.yaml --json | jq .errors
 * ```
 */
export const validateCommand: CliCommand = {
  name: 'validate',
  summary: 'check a config file: switchboard, librechat.yaml, claude_desktop_config.json or .vscode/mcp.json',
  usage: 'validate <file> [--format FORMAT] [--json] [--print]',
  flags: [
    {
      name: 'format',
      type: 'string',
      values: ['auto', ...CONFIG_FILE_FORMATS],
      valueName: 'FORMAT',
      description: `file format: auto (default), ${CONFIG_FILE_FORMATS.join(', ')}`,
    },
    { name: 'json', type: 'boolean', description: 'print the result as JSON: { ok, file, format, servers, errors: [{ path, message }], warnings }' },
    { name: 'print', type: 'boolean', description: 'print the normalised config ({ servers } in this package\'s format) as JSON on stdout' },
  ],
  details: `Errors and warnings are printed as \`path: message\`, the path pointing into the file as written (e.g.
mcpServers.github.timeout). Errors make the file invalid (exit 2); warnings name what was not imported and are
always printed, also next to errors. With --print, the summary and warnings go to stderr so stdout is only JSON.`,
  positionals: { min: 1, max: 1 },
  async run({ positionals, flags }, io) {
    const file = resolve(io.cwd ?? process.cwd(), positionals[0]!);
    const format = (flags.format as ConfigFileFormat | 'auto' | undefined) ?? 'auto';
    const json = flags.json === true;
    const print = flags.print === true;
    let result: ValidateResult;
    try {
      const loaded = await loadConfigFile(file, { format });
      const servers: ValidateResult['servers'] = {};
      for (const [name, config] of Object.entries(loaded.servers)) servers[name] = { type: config.type, perUser: requiresUserScopedConnection(config) };
      result = { ok: true, file, format: loaded.format, servers, errors: [], warnings: loaded.warnings, ...(print ? { config: { servers: loaded.servers } } : {}) };
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      const { warnings, format: known } = await warningsOf(file, format, err);
      result = { ok: false, file, ...(known ? { format: known } : {}), servers: {}, errors: err.issues, warnings };
    }
    if (json) {
      io.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      return result.ok ? 0 : 2;
    }
    const warningLines = result.warnings.map((w) => `warning: ${w.path}: ${w.message}\n`);
    if (!result.ok) {
      for (const issue of result.errors) io.stderr.write(`${issue.path}: ${issue.message}\n`);
      for (const line of warningLines) io.stderr.write(line);
      return 2;
    }
    const names = Object.keys(result.servers);
    const summary = [`ok: ${names.length} server${names.length === 1 ? '' : 's'} (${result.format})\n`];
    for (const name of names) summary.push(`  ${name}: ${result.servers[name]!.type}${result.servers[name]!.perUser ? ', per-user' : ''}\n`);
    if (print) {
      io.stdout.write(`${JSON.stringify(result.config, null, 2)}\n`);
      for (const line of [...summary, ...warningLines]) io.stderr.write(line);
    } else {
      for (const line of [...summary, ...warningLines]) io.stdout.write(line);
    }
    return 0;
  },
};
