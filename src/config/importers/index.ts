/**
 * Config file formats, their importers, and how a format is recognised.
 *
 * Detection rule (an explicit format always wins):
 * 1. A top-level `mcpServers` in a YAML file → `librechat` (the only YAML format using that key);
 *    in a JSON file → `claude-desktop`.
 * 2. A top-level `servers` with a top-level `inputs`, or in a file named `mcp.json`, or using VS Code's
 *    `${input:...}` / `${env:...}` variables → `vscode`.
 * 3. A top-level `servers` otherwise → `switchboard` (this package's own format).
 * 4. Anything else is not recognised: pass the format explicitly.
 * @module
 */
import { ConfigError } from '../../errors.js';
import { importClaudeDesktop } from './claudeDesktop.js';
import { isPlainObject, type ImportResult, type ImportWarning } from './common.js';
import { importLibreChat, LIBRECHAT_FIELD_ALIASES } from './librechat.js';
import { importVsCode } from './vscode.js';

export type { ImportResult, ImportWarning } from './common.js';
export { ImportError } from './common.js';
export { importLibreChat, LIBRECHAT_FIELD_ALIASES } from './librechat.js';
export { importClaudeDesktop } from './claudeDesktop.js';
export { importVsCode } from './vscode.js';

/**
 * The config file formats this package reads. `switchboard` is its own: `{ servers: { name: config } }`.
 *
 * @example
 * ```ts
 * CONFIG_FILE_FORMATS.includes(format); // validate a --format value
 * ```
 */
export const CONFIG_FILE_FORMATS = ['switchboard', 'librechat', 'claude-desktop', 'vscode'] as const;
/**
 * One of {@link CONFIG_FILE_FORMATS}.
 *
 * @example
 * ```ts
 * const format: ConfigFileFormat = 'librechat';
 * ```
 */
export type ConfigFileFormat = (typeof CONFIG_FILE_FORMATS)[number];

/**
 * The surface syntax of a config file.
 *
 * @example
 * ```ts
 * detectConfigFormat(doc, { syntax: 'yaml' satisfies ConfigSyntax });
 * ```
 */
export type ConfigSyntax = 'json' | 'yaml';

/**
 * What {@link detectConfigFormat} may use besides the document itself.
 *
 * @example
 * ```ts
 * const hints: DetectHints = { syntax: 'json', fileName: '.vscode/mcp.json' };
 * ```
 */
export interface DetectHints {
  /** The syntax the file was parsed as. */
  syntax: ConfigSyntax;
  /** The file's name or path (only its base name is used). */
  fileName?: string;
}

/**
 * Recognises the format of a parsed config document (see the module comment for the rule), or returns
 * `undefined` when it is none of them.
 *
 * @example
 * ```ts
 * detectConfigFormat({ version: '1.2.8', mcpServers: {} }, { syntax: 'yaml' }); // 'librechat'
 * detectConfigFormat({ mcpServers: {} }, { syntax: 'json' });                   // 'claude-desktop'
 * detectConfigFormat({ servers: {} }, { syntax: 'json', fileName: '.vscode/mcp.json' }); // 'vscode'
 * detectConfigFormat({ servers: {} }, { syntax: 'yaml' });                      // 'switchboard'
 * ```
 */
export function detectConfigFormat(doc: unknown, hints: DetectHints): ConfigFileFormat | undefined {
  if (!isPlainObject(doc)) return undefined;
  if ('mcpServers' in doc) return hints.syntax === 'yaml' ? 'librechat' : 'claude-desktop';
  if (!('servers' in doc)) return undefined;
  const base = hints.fileName?.split(/[\\/]/).pop()?.toLowerCase();
  if ('inputs' in doc || base === 'mcp.json' || usesVsCodeVariables(doc.servers)) return 'vscode';
  return 'switchboard';
}

function usesVsCodeVariables(value: unknown): boolean {
  if (typeof value === 'string') return /\$\{(input|env):/.test(value);
  if (Array.isArray(value)) return value.some(usesVsCodeVariables);
  if (isPlainObject(value)) return Object.values(value).some(usesVsCodeVariables);
  return false;
}

/**
 * Reads this package's own format, `{ servers: { name: config } }`: the servers pass through unchanged (validation
 * comes next); other top-level fields are reported, `$schema` excepted.
 *
 * @example
 * ```ts
 * importSwitchboard({ servers: { files: { command: 'npx', args: ['-y', '@modelcontextprotocol/server-filesystem', '/tmp'] } } });
 * ```
 */
export function importSwitchboard(doc: unknown): ImportResult {
  if (!isPlainObject(doc)) throw new ConfigError([{ path: '(root)', message: 'a config file must be an object with `servers`' }]);
  if (!isPlainObject(doc.servers)) {
    throw new ConfigError([{ path: 'servers', message: doc.servers === undefined ? 'is missing' : 'must be an object of server name → config' }]);
  }
  const warnings: ImportWarning[] = [];
  for (const key of Object.keys(doc)) {
    if (key !== 'servers' && key !== '$schema') warnings.push({ path: key, message: 'ignored: not part of the servers config' });
  }
  return { servers: { ...doc.servers }, warnings };
}

/**
 * How one format is read: its importer, where its servers live, and renamed fields (ours → theirs).
 *
 * @example
 * ```ts
 * const info: ConfigFormatInfo = CONFIG_FORMATS.librechat; // info.root === 'mcpServers'
 * ```
 */
export interface ConfigFormatInfo {
  /** Converts a parsed document into raw server configs. */
  import: (doc: unknown) => ImportResult;
  /** The top-level key holding the servers, used to prefix validation paths. */
  root: string;
  /** Field paths of this package (relative to one server) → the source field they were imported from. */
  aliases: Readonly<Record<string, string>>;
}

/**
 * Every format's {@link ConfigFormatInfo}.
 *
 * @example
 * ```ts
 * const { servers } = CONFIG_FORMATS['claude-desktop'].import(JSON.parse(text));
 * ```
 */
export const CONFIG_FORMATS: Readonly<Record<ConfigFileFormat, ConfigFormatInfo>> = {
  switchboard: { import: importSwitchboard, root: 'servers', aliases: {} },
  librechat: { import: importLibreChat, root: 'mcpServers', aliases: LIBRECHAT_FIELD_ALIASES },
  'claude-desktop': { import: importClaudeDesktop, root: 'mcpServers', aliases: {} },
  vscode: { import: importVsCode, root: 'servers', aliases: {} },
};
