/**
 * Reading a config file: JSON (comments and trailing commas allowed, as in VS Code's files) or YAML, in this
 * package's own format or one of the imported ones, validated with `parseServersConfig`. Every problem is a
 * {@link ConfigError} whose issue paths point into the file as written; read and syntax errors have the path
 * `(file)` and the line and column in the message. Messages never quote values from the file (they may be secrets).
 * @module
 */
import { readFile } from 'node:fs/promises';
import { LineCounter, parseDocument, type YAMLError } from 'yaml';
import { ConfigError, type ConfigIssue } from '../errors.js';
import { CONFIG_FILE_FORMATS, CONFIG_FORMATS, detectConfigFormat, type ConfigFileFormat, type ConfigSyntax, type ImportWarning } from './importers/index.js';
import { parseServersConfig } from './parse.js';
import type { ServerConfig } from './schema.js';

/**
 * Options of {@link loadConfigFile} and {@link parseConfigText}.
 *
 * @example
 * ```ts
 * await loadConfigFile('servers.yaml', { format: 'librechat' } satisfies LoadConfigOptions);
 * ```
 */
export interface LoadConfigOptions {
  /** The file's format; `auto` (the default) recognises it, see `detectConfigFormat`. An explicit format always wins. */
  format?: ConfigFileFormat | 'auto';
}

/**
 * Options of {@link parseConfigText}.
 *
 * @example
 * ```ts
 * parseConfigText(text, { fileName: '.vscode/mcp.json' } satisfies ParseConfigTextOptions);
 * ```
 */
export interface ParseConfigTextOptions extends LoadConfigOptions {
  /** The file's name or path: its extension picks JSON or YAML, its base name helps recognise the format. */
  fileName?: string;
}

/**
 * A loaded, validated config file.
 *
 * @example
 * ```ts
 * const loaded: LoadedConfig = await loadConfigFile('librechat.yaml');
 * new MCPManager({ servers: loaded.servers });
 * ```
 */
export interface LoadedConfig {
  /** Validated server configs, by name. */
  servers: Record<string, ServerConfig>;
  /** The format the file was read as. */
  format: ConfigFileFormat;
  /** What was not imported as written, each with its path in the file. */
  warnings: ImportWarning[];
}

const MAX_PARSE_ISSUES = 10;

/**
 * Reads, recognises, imports and validates a config file. Throws {@link ConfigError}: path `(file)` when the
 * file cannot be read or parsed (with line and column), `(root)` when its format is not recognised, and otherwise
 * paths into the file such as `mcpServers.github.url`.
 *
 * @example
 * ```ts
 * import { MCPManager } from 'mcp-switchboard';
 * import { loadConfigFile } from 'mcp-switchboard/config';
 * const { servers, format, warnings } = await loadConfigFile('./librechat.yaml');
 * for (const w of warnings) console.warn(`${w.path}: ${w.message}`);
 * const manager = new MCPManager({ servers });
 * ```
 */
export async function loadConfigFile(path: string, opts: LoadConfigOptions = {}): Promise<LoadedConfig> {
  checkFormat(opts.format);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError([{ path: '(file)', message: `cannot read ${path}${code ? ` (${code})` : ''}` }], { cause: err });
  }
  return parseConfigText(text, { ...opts, fileName: path });
}

/**
 * Like {@link loadConfigFile}, for text already in memory.
 *
 * @example
 * ```ts
 * const { servers } = parseConfigText('{ "mcpServers": { "files": { "command": "npx" } } }', { fileName: 'claude_desktop_config.json' });
 * ```
 */
export function parseConfigText(text: string, opts: ParseConfigTextOptions = {}): LoadedConfig {
  checkFormat(opts.format);
  const source = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const syntax = syntaxOf(opts.fileName, source);
  const doc = parseSyntax(source, syntax);
  if (doc === null || doc === undefined) throw new ConfigError([{ path: '(root)', message: 'the file is empty' }]);
  const format = opts.format && opts.format !== 'auto' ? opts.format : detectConfigFormat(doc.value, { syntax, fileName: opts.fileName });
  if (!format) {
    throw new ConfigError([
      { path: '(root)', message: 'not a recognised config: expected `servers` (switchboard, VS Code) or `mcpServers` (LibreChat, Claude Desktop); pass the format explicitly' },
    ]);
  }
  const info = CONFIG_FORMATS[format];
  const imported = info.import(doc.value);
  let servers: Record<string, ServerConfig>;
  try {
    servers = parseServersConfig(imported.servers);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const names = Object.keys(imported.servers).sort((a, b) => b.length - a.length);
    throw new ConfigError(err.issues.map((i) => ({ path: sourcePath(i.path, names, info.root, info.aliases), message: i.message })));
  }
  return { servers, format, warnings: [...doc.warnings, ...imported.warnings] };
}

function checkFormat(format: unknown): void {
  if (format === undefined || format === 'auto' || (CONFIG_FILE_FORMATS as readonly unknown[]).includes(format)) return;
  throw new TypeError(`unknown config format ${JSON.stringify(format)}; expected auto, ${CONFIG_FILE_FORMATS.join(', ')}`);
}

/** Maps a validation path (`name.field`) to where the operator wrote it (`root.name.sourceField`). */
function sourcePath(path: string, namesLongestFirst: string[], root: string, aliases: Readonly<Record<string, string>>): string {
  if (path === '(root)') return root;
  const name = namesLongestFirst.find((n) => path === n || path.startsWith(`${n}.`));
  if (name === undefined) return `${root}.${path}`;
  const rest = path.slice(name.length + 1);
  if (!rest) return `${root}.${name}`;
  const alias = Object.keys(aliases)
    .filter((k) => rest === k || rest.startsWith(`${k}.`))
    .sort((a, b) => b.length - a.length)[0];
  const field = alias === undefined ? rest : aliases[alias] + rest.slice(alias.length);
  return `${root}.${name}.${field}`;
}

/** JSON for `.json` / `.jsonc` files, YAML for `.yaml` / `.yml`; otherwise JSON when the text starts like JSON. */
function syntaxOf(fileName: string | undefined, text: string): ConfigSyntax {
  const ext = /\.([A-Za-z]+)$/.exec(fileName ?? '')?.[1]?.toLowerCase();
  if (ext === 'json' || ext === 'jsonc') return 'json';
  if (ext === 'yaml' || ext === 'yml') return 'yaml';
  return /^\s*[{[/]/.test(text) ? 'json' : 'yaml';
}

/**
 * Parses JSON (through the YAML parser's JSON schema, after blanking comments so positions stay right) or YAML
 * 1.2 (with `<<` merge keys, duplicate keys refused, aliases bounded). Returns `null` for an empty document.
 */
function parseSyntax(text: string, syntax: ConfigSyntax): { value: unknown; warnings: ImportWarning[] } | null {
  const lineCounter = new LineCounter();
  const doc = parseDocument(syntax === 'json' ? blankJsonComments(text) : text, {
    schema: syntax === 'json' ? 'json' : 'core',
    merge: syntax === 'yaml',
    uniqueKeys: true,
    prettyErrors: false,
    lineCounter,
  });
  const where = (e: YAMLError) => {
    const { line, col } = lineCounter.linePos(e.pos[0]);
    return `line ${line}, column ${col}: ${safeMessage(e.message)}`;
  };
  if (doc.errors.length > 0) {
    const issues: ConfigIssue[] = doc.errors.slice(0, MAX_PARSE_ISSUES).map((e) => ({ path: '(file)', message: `${syntax.toUpperCase()} ${where(e)}` }));
    throw new ConfigError(issues);
  }
  if (doc.contents === null) return null;
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ConfigError([{ path: '(file)', message: safeMessage(err instanceof Error ? err.message : 'cannot be read') }]);
  }
  return { value, warnings: doc.warnings.map((w) => ({ path: '(file)', message: where(w) })) };
}

/** Parser messages may quote the offending text, which may be a secret; keep the explanation, not the text. */
function safeMessage(message: string): string {
  return message.split('\n')[0]!.replace(/"[^"\n]*"|'[^'\n]*'/g, '(value)');
}

/** Replaces `//` and `/* *\/` comments outside strings with spaces (newlines kept), so line/column stay exact. */
function blankJsonComments(text: string): string {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '"') {
      const start = i++;
      while (i < text.length && text[i] !== '"' && text[i] !== '\n') i += text[i] === '\\' ? 2 : 1;
      i++;
      out.push(text.slice(start, i));
    } else if (c === '/' && text[i + 1] === '/') {
      while (i < text.length && text[i] !== '\n') {
        out.push(text[i] === '\r' ? '\r' : ' ');
        i++;
      }
    } else if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      const stop = end < 0 ? text.length : end + 2;
      out.push(text.slice(i, stop).replace(/[^\r\n]/g, ' '));
      i = stop;
    } else {
      out.push(c);
      i++;
    }
  }
  return out.join('');
}
