/**
 * Importer for Claude Desktop's `claude_desktop_config.json` (`{ "mcpServers": { name: { command, args, env } } }`).
 *
 * The same `mcpServers` JSON shape is used by other clients with remote servers (`type`, `url`, `headers`), so
 * those fields are mapped too. Claude Desktop passes values literally; here `${NAME}` and `{{...}}` are
 * placeholders, so a value containing them gets a warning. `disabled: true` servers are skipped with a warning;
 * other fields (e.g. `autoApprove`) are reported, never dropped silently. Top-level app settings are not server
 * configs and are ignored.
 * @module
 */
import { ConfigError } from '../../errors.js';
import { isPlainObject, mapRecord, mapStrings, setOwn, type ImportResult, type ImportWarning } from './common.js';

const COPIED = new Set(['type', 'command', 'args', 'env', 'cwd', 'url', 'headers']);

/**
 * Converts a parsed `claude_desktop_config.json` into this package's raw server configs.
 * Throws {@link ConfigError} only when there is no `mcpServers` object.
 *
 * @example
 * ```ts
 * import { importClaudeDesktop, parseServersConfig } from 'mcp-switchboard/config';
 * const { servers, warnings } = importClaudeDesktop({
 *   mcpServers: { files: { command: 'npx', args: ['-y', '@modelcontextprotocol/server-filesystem', '/tmp'] } },
 * });
 * parseServersConfig(servers).files.type; // 'stdio'
 * ```
 */
export function importClaudeDesktop(doc: unknown): ImportResult {
  if (!isPlainObject(doc)) throw new ConfigError([{ path: '(root)', message: 'a Claude Desktop config must be a JSON object' }]);
  const block = doc.mcpServers;
  if (!isPlainObject(block)) {
    throw new ConfigError([{ path: 'mcpServers', message: block === undefined ? 'is missing' : 'must be an object of server name → config' }]);
  }
  const warnings: ImportWarning[] = [];
  const servers: Record<string, unknown> = {};
  for (const [name, entry] of Object.entries(block)) {
    const base = `mcpServers.${name}`;
    if (!isPlainObject(entry)) {
      setOwn(servers, name, entry);
      continue;
    }
    if (entry.disabled === true) {
      warnings.push({ path: `${base}.disabled`, message: 'server is disabled: not imported' });
      continue;
    }
    const literal = (s: string, path: string) => {
      if (/\$\{|\{\{/.test(s)) {
        warnings.push({ path, message: 'Claude Desktop passes this value literally; here ${NAME} and {{...}} are placeholders resolved at connect time' });
      }
      return s;
    };
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(entry)) {
      const path = `${base}.${key}`;
      if (key === 'env' || key === 'headers') out[key] = mapRecord(value, path, literal);
      else if (COPIED.has(key)) out[key] = mapStrings(value, path, literal);
      else if (key !== 'disabled') warnings.push({ path, message: 'not imported: no equivalent field' });
    }
    setOwn(servers, name, out);
  }
  return { servers, warnings };
}
