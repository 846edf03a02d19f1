/**
 * Model-facing tool names: `<server><separator><tool>`, made legal for one API's name rules, shortened with a
 * stable hash when too long, and made unique by a rule that does not depend on the order tools arrive in.
 * @module
 */
import type { ToolNameRules } from './constraints.js';

/**
 * How names are built.
 *
 * @example
 * ```ts
 * const options: ToolNamingOptions = { namespace: true, separator: '__' }; // files + read_file → files__read_file
 * ```
 */
export interface ToolNamingOptions {
  /**
   * Prefix each tool name with its server's name and {@link ToolNamingOptions.separator}. Default `true`.
   * With `false`, tools of different servers that share a name are told apart by a hash suffix (see
   * {@link assignToolNames}).
   */
  namespace?: boolean;
  /** Between server and tool name. Default `'__'`. Characters the API does not allow become `_`. */
  separator?: string;
}

/**
 * One tool to name: its server and its MCP name.
 *
 * @example
 * ```ts
 * const tool: ToolNameRequest = { serverName: 'files', toolName: 'read_file' };
 * ```
 */
export interface ToolNameRequest {
  serverName: string;
  toolName: string;
}

/** FNV-1a, 32 bits, over the UTF-8 bytes: 8 hex digits, the same on every platform and run. */
function shortHash(text: string): string {
  let h = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

/**
 * The 8-hex-digit hash used in shortened and de-duplicated names (FNV-1a over the UTF-8 bytes of
 * `serverName + '\u0000' + toolName`).
 *
 * @example
 * ```ts
 * toolNameHash('files', 'read_file'); // the same 8 hex digits every time
 * ```
 */
export function toolNameHash(serverName: string, toolName: string): string {
  return shortHash(`${serverName}\u0000${toolName}`);
}

/** Replaces every character the rules do not allow by `_`, and gives a name that would start badly a `_`. */
function sanitize(raw: string, rules: ToolNameRules): string {
  let out = '';
  for (const ch of raw) out += rules.char.test(ch) ? ch : '_';
  if (out === '' || !rules.firstChar.test(out[0]!)) out = `_${out}`;
  return out;
}

/** `base` cut so that `base + suffix` fits `max` (names are ASCII once sanitized, so length is characters). */
function withSuffix(base: string, suffix: string, max: number): string {
  return base.slice(0, Math.max(0, max - suffix.length)) + suffix;
}

/**
 * Assigns each tool a model-facing name that matches `rules`, and returns them in the order given.
 *
 * The rule, applied to the whole set (so the result does not depend on server or tool order):
 * 1. the raw name is `server + separator + tool` (or `tool` with `namespace: false`); every character `rules`
 *    does not allow becomes `_`, and a name that may not start with its first character gets a leading `_`;
 * 2. a name longer than `rules.maxLength` keeps its first `maxLength - 9` characters and ends with `_` and
 *    {@link toolNameHash} of (server, tool);
 * 3. names are handed out first to tools whose raw name needed no change, then to the others, each group in
 *    (server, tool) order by code unit; a tool whose name is taken gets `_<hash>` instead (the name cut to fit),
 *    and if that is taken too (the same tool listed twice), `_2`, `_3`, ….
 *
 * @throws TypeError when `separator` is not a string.
 * @example
 * ```ts
 * const names = assignToolNames(
 *   [{ serverName: 'files', toolName: 'read_file' }, { serverName: 'tickets', toolName: 'read_file' }],
 *   OPENAI_NAME_RULES,
 *   { namespace: false },
 * );
 * // ['read_file', 'read_file_<8 hex digits>']: the first in (server, tool) order keeps the plain name
 * ```
 */
export function assignToolNames(tools: readonly ToolNameRequest[], rules: ToolNameRules, options: ToolNamingOptions = {}): string[] {
  const namespace = options.namespace ?? true;
  const separator = options.separator ?? '__';
  if (typeof separator !== 'string') throw new TypeError(`separator must be a string, got ${typeof separator}`);
  const candidates = tools.map(({ serverName, toolName }, index) => {
    const raw = namespace ? `${serverName}${separator}${toolName}` : toolName;
    const clean = sanitize(raw, rules);
    const hash = toolNameHash(serverName, toolName);
    const name = clean.length > rules.maxLength ? withSuffix(clean, `_${hash}`, rules.maxLength) : clean;
    return { index, serverName, toolName, name, hash, exact: name === raw };
  });
  const byCodeUnit = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  const order = [...candidates].sort(
    (a, b) => Number(b.exact) - Number(a.exact) || byCodeUnit(a.serverName, b.serverName) || byCodeUnit(a.toolName, b.toolName) || a.index - b.index,
  );
  const taken = new Set<string>();
  const result: string[] = new Array<string>(tools.length);
  for (const c of order) {
    let name = c.name;
    if (taken.has(name)) name = withSuffix(c.name, `_${c.hash}`, rules.maxLength);
    for (let n = 2; taken.has(name); n++) name = withSuffix(c.name, `_${c.hash}_${n}`, rules.maxLength);
    taken.add(name);
    result[c.index] = name;
  }
  return result;
}
