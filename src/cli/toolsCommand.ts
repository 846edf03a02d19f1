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
import { requiresUserScopedConnection } from '../config/parse.js';
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
    name: 'upstream-token-stdin',
    type: 'boolean',
    description: 'read the user’s upstream access token (the token exchanged for OBO) from stdin; default $MCP_SWITCHBOARD_UPSTREAM_TOKEN',
  },
  {
    name: 'upstream-token',
    type: 'string',
    description: '',
    removed:
      'a token on the command line ends up in shell history and process lists; set MCP_SWITCHBOARD_UPSTREAM_TOKEN, or pipe the token in with --upstream-token-stdin',
  },
  { name: 'format', type: 'string', values: ['auto', ...CONFIG_FILE_FORMATS], valueName: 'FORMAT', description: 'config file format (default auto)' },
  { name: 'timeout-ms', type: 'string', valueName: 'MS', description: 'timeout of the request (default: the server’s)' },
  { name: 'json', type: 'boolean', description: 'print JSON' },
];

/**
 * The environment variables of `tools` and `call`, for help and docs/cli.md.
 *
 * @example
 * ```ts
 * process.stdout.write(`${OBO_ENV_HELP}\n`);
 * ```
 */
export const OBO_ENV_HELP = `environment (On-Behalf-Of, for a server with \`obo\` in its config; never from flags, so no secret
lands in shell history or process lists):
  MCP_SWITCHBOARD_OBO_ISSUER         issuer URL of the IdP that does the exchange (required for OBO),
                                     e.g. https://login.microsoftonline.com/<tenant-id>/v2.0
  MCP_SWITCHBOARD_OBO_CLIENT_ID      this app's client id at that IdP (required for OBO)
  MCP_SWITCHBOARD_OBO_CLIENT_SECRET  this app's client secret at that IdP (required for OBO)
  MCP_SWITCHBOARD_OBO_GRANT          jwt-bearer (default; Entra ID OBO) or token-exchange (RFC 8693)
  MCP_SWITCHBOARD_OBO_INSECURE       1 to allow a plain-http issuer (local test IdPs only)
  MCP_SWITCHBOARD_UPSTREAM_TOKEN     the user's access token to exchange; or pipe it in with --upstream-token-stdin
`;

/**
 * OBO for the CLI comes from the environment, never from flags (a secret on a command line ends up in shell
 * history and process lists): see {@link OBO_ENV_HELP}. Problems are worded in terms of those variables.
 */
function resolverFromEnv(env: CliIo['env']): OboTokenResolver | undefined {
  const issuer = env.MCP_SWITCHBOARD_OBO_ISSUER;
  const clientId = env.MCP_SWITCHBOARD_OBO_CLIENT_ID;
  const clientSecret = env.MCP_SWITCHBOARD_OBO_CLIENT_SECRET;
  if (!issuer && !clientId) return undefined;
  if (!issuer) throw new EnvError('MCP_SWITCHBOARD_OBO_CLIENT_ID is set but MCP_SWITCHBOARD_OBO_ISSUER is not: set both for On-Behalf-Of');
  if (!clientId) throw new EnvError('MCP_SWITCHBOARD_OBO_ISSUER is set but MCP_SWITCHBOARD_OBO_CLIENT_ID is not: set both for On-Behalf-Of');
  if (!clientSecret) throw new EnvError('MCP_SWITCHBOARD_OBO_CLIENT_SECRET is not set: On-Behalf-Of needs this app\'s client secret at the IdP');
  const grant = env.MCP_SWITCHBOARD_OBO_GRANT;
  if (grant !== undefined && grant !== '' && grant !== 'jwt-bearer' && grant !== 'token-exchange') {
    throw new EnvError(`MCP_SWITCHBOARD_OBO_GRANT must be jwt-bearer or token-exchange, got ${JSON.stringify(grant)}`);
  }
  const insecure = env.MCP_SWITCHBOARD_OBO_INSECURE;
  if (insecure !== undefined && insecure !== '' && insecure !== '0' && insecure !== '1') {
    throw new EnvError(`MCP_SWITCHBOARD_OBO_INSECURE must be 1 or 0, got ${JSON.stringify(insecure)}`);
  }
  if (/^http:/i.test(issuer) && insecure !== '1') {
    throw new EnvError('MCP_SWITCHBOARD_OBO_ISSUER is a plain-http URL: use https, or set MCP_SWITCHBOARD_OBO_INSECURE=1 for a local test IdP');
  }
  try {
    return createOboTokenResolver({
      issuer,
      clientId,
      clientSecret,
      ...(grant ? { grant } : {}),
      ...(insecure === '1' ? { allowInsecureRequests: true } : {}),
    });
  } catch (err) {
    throw new EnvError(`the MCP_SWITCHBOARD_OBO_* settings are not usable: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** A problem with the environment variables: printed as `error: …`, exit 2, with a pointer to the help. */
class EnvError extends Error {}

function parseVars(raw: string | boolean | undefined): Record<string, string> | undefined {
  if (typeof raw !== 'string') return undefined;
  const out: Record<string, string> = {};
  for (const pair of raw.split(',')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--var takes NAME=VALUE pairs, got a value without "=" (${pair.length} characters)`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

async function readStdin(io: CliIo): Promise<string> {
  if (!io.stdin) return '';
  const decoder = new TextDecoder();
  let text = '';
  for await (const chunk of io.stdin) text += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
  return text + decoder.decode();
}

async function upstreamTokenOf(args: ParsedArgs, io: CliIo): Promise<string | undefined> {
  if (args.flags['upstream-token-stdin'] !== true) return io.env.MCP_SWITCHBOARD_UPSTREAM_TOKEN || undefined;
  const token = (await readStdin(io)).trim();
  if (!token) throw new UsageError('--upstream-token-stdin: stdin was empty; pipe the token in, e.g. `printenv TOKEN | mcp-switchboard …`');
  if (/\s/.test(token)) throw new UsageError('--upstream-token-stdin: stdin must hold one token and nothing else');
  return token;
}

async function withManager<T>(args: ParsedArgs, io: CliIo, fn: (m: MCPManager, user: UserContext | undefined, server: string) => Promise<T>): Promise<T> {
  const server = args.flags.server;
  if (typeof server !== 'string') throw new UsageError('--server NAME is required');
  const file = resolve(io.cwd ?? process.cwd(), args.positionals[0]!);
  const { servers } = await loadConfigFile(file, { format: (args.flags.format as ConfigFileFormat | 'auto' | undefined) ?? 'auto' });
  const config = servers[server];
  if (!config) throw new UsageError(`no server ${JSON.stringify(server)} in ${args.positionals[0]}; it has: ${Object.keys(servers).join(', ') || 'none'}`);
  const upstream = await upstreamTokenOf(args, io);
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
  const obo = 'obo' in config && config.obo !== undefined;
  if (obo && !resolver) {
    throw new EnvError(
      `server ${JSON.stringify(server)} uses On-Behalf-Of (\`obo\` in its config): set MCP_SWITCHBOARD_OBO_ISSUER, MCP_SWITCHBOARD_OBO_CLIENT_ID and MCP_SWITCHBOARD_OBO_CLIENT_SECRET`,
    );
  }
  if (requiresUserScopedConnection(config) && !user) {
    throw new UsageError(`server ${JSON.stringify(server)} connects per user${obo ? ' (On-Behalf-Of)' : ''}: pass --user ID`);
  }
  if (obo && !upstream) {
    throw new EnvError(
      `server ${JSON.stringify(server)} uses On-Behalf-Of, which exchanges the user's own access token: set MCP_SWITCHBOARD_UPSTREAM_TOKEN, or pipe the token in with --upstream-token-stdin`,
    );
  }
  const manager = new MCPManager({ servers: { [server]: config }, ...(resolver ? { oboTokenResolver: resolver } : {}) });
  try {
    return await fn(manager, user, server);
  } finally {
    await manager.close();
  }
}

/** Hints that translate a library error into the CLI's terms (environment variables, not API options). */
function hintFor(err: SwitchboardError): string {
  if (err.code === 'obo_exchange_failed' || err.code === 'idp_request_failed') {
    return ' (the IdP refused or could not be reached: check MCP_SWITCHBOARD_OBO_ISSUER, MCP_SWITCHBOARD_OBO_CLIENT_ID, MCP_SWITCHBOARD_OBO_CLIENT_SECRET and MCP_SWITCHBOARD_OBO_GRANT, and that MCP_SWITCHBOARD_UPSTREAM_TOKEN is a current token of this user)';
  }
  if (err.code === 'obo_missing_upstream_token') return ' (set MCP_SWITCHBOARD_UPSTREAM_TOKEN, or pipe the token in with --upstream-token-stdin)';
  if (err.code.startsWith('obo_')) return ' (On-Behalf-Of settings come from MCP_SWITCHBOARD_OBO_*; see `mcp-switchboard help tools`)';
  return '';
}

async function report(io: CliIo, run: () => Promise<number>): Promise<number> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof UsageError) throw err; // main() prints usage and exits 2
    if (err instanceof EnvError) {
      io.stderr.write(`error: ${err.message}\nsee \`mcp-switchboard help tools\` for the environment variables\n`);
      return EXIT.usage;
    }
    if (err instanceof ConfigError) {
      for (const issue of err.issues) io.stderr.write(`${issue.path}: ${issue.message}\n`);
      return EXIT.usage;
    }
    if (err instanceof SwitchboardError) {
      io.stderr.write(`error [${err.code}${err.retryable ? ', retryable' : ''}]: ${err.message}${hintFor(err)}\n`);
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
 *   MCP_SWITCHBOARD_OBO_CLIENT_SECRET=... MCP_SWITCHBOARD_UPSTREAM_TOKEN="$TOKEN" \\
 *   mcp-switchboard tools librechat.yaml --server graph --user me
 * ```
 */
export const toolsCommand: CliCommand = {
  name: 'tools',
  summary: 'list the tools of one server from a config file, as a user (OBO included)',
  usage: 'tools <file> --server NAME [--user ID] [--upstream-token-stdin] [--json]',
  flags: COMMON_FLAGS,
  details: OBO_ENV_HELP,
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
  usage: 'call <file> --server NAME --tool T [--args JSON] [--user ID] [--upstream-token-stdin] [--json]',
  details: OBO_ENV_HELP,
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
