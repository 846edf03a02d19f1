/**
 * `mcp-switchboard tools` and `mcp-switchboard call`: list a server's tools or call one, through an
 * {@link MCPManager} built from a config file, as a given user (OBO included), for a host developer checking a
 * config.
 * @module
 */
import { resolve } from 'node:path';
import { createOboTokenResolver } from '../auth/oboTokenResolver.js';
import type { OboTokenResolver } from '../auth/oboTypes.js';
import { CONFIG_FILE_FORMATS, type ConfigFileFormat } from '../config/importers/index.js';
import { loadConfigFile } from '../config/loadConfigFile.js';
import { ConfigError, SwitchboardError } from '../errors.js';
import { MCPManager } from '../MCPManager.js';
import type { UserContext } from '../types.js';
import { UsageError, type FlagSpec, type ParsedArgs } from './args.js';
import { EXIT, type CliCommand, type CliIo } from './main.js';

const COMMON_FLAGS: readonly FlagSpec[] = [
  { name: 'server', short: 's', type: 'string', valueName: 'NAME', description: 'the server to use (required)' },
  { name: 'user', short: 'u', type: 'string', valueName: 'ID', description: 'act as this user id (needed for per-user servers)' },
  { name: 'tenant', type: 'string', valueName: 'ID', description: 'the user’s tenant id' },
  { name: 'email', type: 'string', valueName: 'EMAIL', description: 'the user’s e-mail, for {{user.email}}' },
  { name: 'var', type: 'string', valueName: 'NAME=VALUE[,NAME=VALUE]', description: 'values for {{var.NAME}} placeholders' },
  {
    name: 'upstream-token',
    type: 'string',
    valueName: 'TOKEN',
    description: 'the user’s upstream access token (OBO assertion); default $MCP_SWITCHBOARD_UPSTREAM_TOKEN',
  },
  { name: 'format', type: 'string', values: ['auto', ...CONFIG_FILE_FORMATS], valueName: 'FORMAT', description: 'config file format (default auto)' },
  { name: 'timeout-ms', type: 'string', valueName: 'MS', description: 'timeout of the request (default: the server’s)' },
  { name: 'json', type: 'boolean', description: 'print JSON' },
];

/**
 * OBO for the CLI comes from the environment, never from flags (a secret on a command line ends up in shell
 * history and process lists): MCP_SWITCHBOARD_OBO_ISSUER, _CLIENT_ID, _CLIENT_SECRET, _GRANT, _INSECURE.
 */
function resolverFromEnv(env: CliIo['env']): OboTokenResolver | undefined {
  const issuer = env.MCP_SWITCHBOARD_OBO_ISSUER;
  const clientId = env.MCP_SWITCHBOARD_OBO_CLIENT_ID;
  if (!issuer || !clientId) return undefined;
  const grant = env.MCP_SWITCHBOARD_OBO_GRANT;
  if (grant !== undefined && grant !== 'jwt-bearer' && grant !== 'token-exchange') {
    throw new UsageError(`MCP_SWITCHBOARD_OBO_GRANT must be jwt-bearer or token-exchange, got ${JSON.stringify(grant)}`);
  }
  return createOboTokenResolver({
    issuer,
    clientId,
    ...(env.MCP_SWITCHBOARD_OBO_CLIENT_SECRET ? { clientSecret: env.MCP_SWITCHBOARD_OBO_CLIENT_SECRET } : {}),
    ...(grant ? { grant } : {}),
    ...(env.MCP_SWITCHBOARD_OBO_INSECURE === '1' ? { allowInsecureRequests: true } : {}),
  });
}

function parseVars(raw: string | boolean | undefined): Record<string, string> | undefined {
  if (typeof raw !== 'string') return undefined;
  const out: Record<string, string> = {};
  for (const pair of raw.split(',')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--var takes NAME=VALUE pairs, got ${JSON.stringify(pair)}`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

async function withManager<T>(args: ParsedArgs, io: CliIo, fn: (m: MCPManager, user: UserContext | undefined, server: string) => Promise<T>): Promise<T> {
  const server = args.flags.server;
  if (typeof server !== 'string') throw new UsageError('--server NAME is required');
  const file = resolve(io.cwd ?? process.cwd(), args.positionals[0]!);
  const { servers } = await loadConfigFile(file, { format: (args.flags.format as ConfigFileFormat | 'auto' | undefined) ?? 'auto' });
  if (!servers[server]) throw new UsageError(`no server ${JSON.stringify(server)} in ${args.positionals[0]}; it has: ${Object.keys(servers).join(', ') || 'none'}`);
  const upstream = typeof args.flags['upstream-token'] === 'string' ? args.flags['upstream-token'] : io.env.MCP_SWITCHBOARD_UPSTREAM_TOKEN;
  const vars = parseVars(args.flags.var);
  const user: UserContext | undefined =
    typeof args.flags.user === 'string'
      ? {
          id: args.flags.user,
          ...(typeof args.flags.tenant === 'string' ? { tenantId: args.flags.tenant } : {}),
          ...(typeof args.flags.email === 'string' ? { email: args.flags.email } : {}),
          ...(upstream ? { upstreamToken: upstream } : {}),
          ...(vars ? { vars } : {}),
        }
      : undefined;
  const resolver = resolverFromEnv(io.env);
  const manager = new MCPManager({ servers: { [server]: servers[server] }, ...(resolver ? { oboTokenResolver: resolver } : {}) });
  try {
    return await fn(manager, user, server);
  } finally {
    await manager.close();
  }
}

async function report(io: CliIo, run: () => Promise<number>): Promise<number> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof UsageError) throw err; // main() prints usage and exits 2
    if (err instanceof ConfigError) {
      for (const issue of err.issues) io.stderr.write(`${issue.path}: ${issue.message}\n`);
      return EXIT.usage;
    }
    if (err instanceof SwitchboardError) {
      io.stderr.write(`error [${err.code}${err.retryable ? ', retryable' : ''}]: ${err.message}\n`);
      return EXIT.failure;
    }
    throw err;
  }
}

function timeoutOf(args: ParsedArgs): number | undefined {
  const raw = args.flags['timeout-ms'];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (typeof raw !== 'string' || !Number.isSafeInteger(n) || n < 1) throw new UsageError(`--timeout-ms takes a positive whole number, got ${JSON.stringify(raw)}`);
  return n;
}

/**
 * The `tools` command: list a server's tools as a user.
 *
 * @example
 * ```sh
 * $ MCP_SWITCHBOARD_OBO_ISSUER=https://login.microsoftonline.com/<tid>/v2.0 MCP_SWITCHBOARD_OBO_CLIENT_ID=... \
 *   MCP_SWITCHBOARD_OBO_CLIENT_SECRET=... mcp-switchboard tools librechat.yaml --server graph --user me --upstream-token "$TOKEN"
 * ```
 */
export const toolsCommand: CliCommand = {
  name: 'tools',
  summary: 'list the tools of one server from a config file, as a user (OBO included)',
  usage: 'tools <file> --server NAME [--user ID] [--upstream-token T] [--json]',
  flags: COMMON_FLAGS,
  positionals: { min: 1, max: 1 },
  run: (args, io) =>
    report(io, () =>
      withManager(args, io, async (m, user, serverName) => {
        const timeoutMs = timeoutOf(args);
        const tools = await m.listTools({ ...(user ? { user } : {}), serverName, ...(timeoutMs ? { signal: AbortSignal.timeout(timeoutMs) } : {}) });
        if (args.flags.json === true) io.stdout.write(`${JSON.stringify(tools, null, 2)}\n`);
        else for (const t of tools) io.stdout.write(`${t.name}${t.description ? `: ${t.description.split('\n')[0]}` : ''}\n`);
        return EXIT.ok;
      }),
    ),
};

/**
 * The `call` command: call one tool as a user and print its result. Exit status 1 when the tool reports an error.
 *
 * @example
 * ```sh
 * $ mcp-switchboard call servers.json --server everything --tool echo --args '{"message":"hi"}'
 * ```
 */
export const callCommand: CliCommand = {
  name: 'call',
  summary: 'call one tool of one server from a config file, as a user (OBO included)',
  usage: 'call <file> --server NAME --tool T [--args JSON] [--user ID] [--upstream-token T] [--json]',
  flags: [
    ...COMMON_FLAGS,
    { name: 'tool', short: 't', type: 'string', valueName: 'T', description: 'the tool to call (required)' },
    { name: 'args', short: 'a', type: 'string', valueName: 'JSON', description: 'the tool’s arguments as a JSON object' },
  ],
  positionals: { min: 1, max: 1 },
  run: (args, io) =>
    report(io, () => {
      const toolName = args.flags.tool;
      if (typeof toolName !== 'string') throw new UsageError('--tool T is required');
      let toolArgs: Record<string, unknown> | undefined;
      if (typeof args.flags.args === 'string') {
        try {
          toolArgs = JSON.parse(args.flags.args) as Record<string, unknown>;
        } catch {
          throw new UsageError('--args must be valid JSON');
        }
        if (!toolArgs || typeof toolArgs !== 'object' || Array.isArray(toolArgs)) throw new UsageError('--args must be a JSON object');
      }
      return withManager(args, io, async (m, user, serverName) => {
        const timeoutMs = timeoutOf(args);
        const result = await m.callTool({
          ...(user ? { user } : {}),
          serverName,
          toolName,
          ...(toolArgs ? { arguments: toolArgs } : {}),
          ...(timeoutMs ? { timeoutMs } : {}),
        });
        if (args.flags.json === true) io.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
        else {
          for (const c of result.content ?? []) io.stdout.write(c.type === 'text' ? `${c.text}\n` : `[${c.type}]\n`);
        }
        return result.isError ? EXIT.failure : EXIT.ok;
      });
    }),
};
