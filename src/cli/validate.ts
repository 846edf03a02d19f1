/**
 * `mcp-switchboard validate <file>`: load a config file (any supported format), print what it holds and what was
 * not imported, or print each problem as `path: message` on its own line and exit with status 2.
 * @module
 */
import { resolve } from 'node:path';
import { CONFIG_FILE_FORMATS, type ConfigFileFormat } from '../config/importers/index.js';
import { loadConfigFile } from '../config/loadConfigFile.js';
import { requiresUserScopedConnection } from '../config/parse.js';
import { ConfigError } from '../errors.js';
import type { CliCommand } from './main.js';

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
 * ```
 */
export const validateCommand: CliCommand = {
  name: 'validate',
  summary: 'check a config file: switchboard, librechat.yaml, claude_desktop_config.json or .vscode/mcp.json',
  usage: 'validate <file> [--format FORMAT]',
  flags: [
    {
      name: 'format',
      type: 'string',
      values: ['auto', ...CONFIG_FILE_FORMATS],
      valueName: 'FORMAT',
      description: `file format: auto (default), ${CONFIG_FILE_FORMATS.join(', ')}`,
    },
  ],
  positionals: { min: 1, max: 1 },
  async run({ positionals, flags }, io) {
    const file = resolve(io.cwd ?? process.cwd(), positionals[0]!);
    const format = (flags.format as ConfigFileFormat | 'auto' | undefined) ?? 'auto';
    try {
      const { servers, format: detected, warnings } = await loadConfigFile(file, { format });
      const names = Object.keys(servers);
      io.stdout.write(`ok: ${names.length} server${names.length === 1 ? '' : 's'} (${detected})\n`);
      for (const name of names) {
        const config = servers[name]!;
        io.stdout.write(`  ${name}: ${config.type}${requiresUserScopedConnection(config) ? ', per-user' : ''}\n`);
      }
      for (const w of warnings) io.stdout.write(`warning: ${w.path}: ${w.message}\n`);
      return 0;
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      for (const issue of err.issues) io.stderr.write(`${issue.path}: ${issue.message}\n`);
      return 2;
    }
  },
};
