/**
 * Agent-runtime adapters: MCP tools as OpenAI, Anthropic, Gemini and AI SDK tools, and the models' tool calls
 * and their results back. Import from `mcp-switchboard/adapters`.
 * @module mcp-switchboard/adapters
 */
export {};
export * from './results.js';
export * from './dispatch.js';
export { AdapterError } from './errors.js';
export type { AdapterErrorCode, AdapterErrorOptions } from './errors.js';
export { toOpenAIChatTools, toOpenAIResponsesTools, toAnthropicTools, toGeminiTools, toAISDKTools } from './tools.js';
export type {
  AISDKTool,
  AISDKToolCallOptions,
  AISDKToolOptions,
  AdapterWarning,
  AnthropicTool,
  GeminiFunctionDeclaration,
  GeminiTool,
  GeminiToolsResult,
  McpToolDefinition,
  OpenAIChatTool,
  OpenAIResponsesTool,
  OpenAIToolOptions,
  ToolAdapterOptions,
  ToolNameEntry,
  ToolsByServer,
  ToolsResult,
} from './tools.js';
export { assignToolNames, toolNameHash } from './names.js';
export type { ToolNameRequest, ToolNamingOptions } from './names.js';
export { normalizeInputSchema, restoreToolArguments } from './schema.js';
export type { ArgumentPath, JsonSchema, NormalizedSchema, SchemaDialect, SchemaIssue } from './schema.js';
export { AI_SDK_NAME_RULES, ANTHROPIC_NAME_RULES, GEMINI_NAME_RULES, GEMINI_SCHEMA_LIMITS, OPENAI_NAME_RULES, OPENAI_STRICT_LIMITS } from './constraints.js';
export type { ToolNameRules } from './constraints.js';
