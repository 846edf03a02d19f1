/**
 * Server configs beyond parsing them: the zod schemas, placeholders and their resolution, config fingerprints,
 * config files and the importers of other clients' formats (LibreChat, Claude Desktop, VS Code).
 * Import from `mcp-switchboard/config`; a host app that only passes `servers` to `MCPManager` needs none of it
 * (`parseServersConfig`, `parseServerConfig`, `ConfigError` and the `ServerConfig` types are also at the root).
 *
 * @example
 * ```ts
 * import { loadConfigFile } from 'mcp-switchboard/config';
 * const { servers, warnings } = await loadConfigFile('./librechat.yaml');
 * ```
 * @module mcp-switchboard/config
 */
export { ConfigError } from '../errors.js';
export type { ConfigIssue } from '../errors.js';
export { TRANSPORT_TYPES, SCHEMAS, oauthSchema, oboSchema, sseSchema, stdioSchema, streamableHttpSchema, websocketSchema } from './schema.js';
export type {
  HttpServerConfig,
  OboConfig,
  ServerConfig,
  SseServerConfig,
  StdioServerConfig,
  StreamableHttpServerConfig,
  TransportType,
  WebSocketServerConfig,
} from './schema.js';
export { parseServerConfig, parseServersConfig, requiresUserScopedConnection, resolveConfigPlaceholders, updatedAtMs } from './parse.js';
export type { ResolveConfigPlaceholdersOptions } from './parse.js';
export { USER_PLACEHOLDER_FIELDS, findPlaceholders, hasUserPlaceholder, resolvePlaceholderString, resolvePlaceholders } from './placeholders.js';
export type { PlaceholderContext, PlaceholderRef, PlaceholderTarget } from './placeholders.js';
export { configFingerprint } from './fingerprint.js';
export { loadConfigFile, parseConfigText } from './loadConfigFile.js';
export type { LoadConfigOptions, LoadedConfig, ParseConfigTextOptions } from './loadConfigFile.js';
export { CONFIG_FILE_FORMATS, ImportError, detectConfigFormat, importClaudeDesktop, importLibreChat, importSwitchboard, importVsCode } from './importers/index.js';
export type { ConfigFileFormat, ConfigSyntax, DetectHints, ImportResult, ImportWarning } from './importers/index.js';
