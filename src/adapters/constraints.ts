/**
 * The published limits of each LLM API that the tool converters follow: tool-name rules and the JSON Schema
 * keywords each API accepts. Each constant cites the page it comes from; when an API changes, this file is the
 * one place to update.
 * @module
 */

/**
 * The rules a model-facing tool name must follow for one API.
 *
 * @example
 * ```ts
 * const ok = OPENAI_NAME_RULES.pattern.test('files__read_file'); // true
 * ```
 */
export interface ToolNameRules {
  /** The whole-name pattern the API documents. */
  readonly pattern: RegExp;
  /** Maximum length, in characters. */
  readonly maxLength: number;
  /** One character that may appear anywhere in a name (others are replaced by `_`). */
  readonly char: RegExp;
  /** One character that may start a name (a name that would start otherwise gets a leading `_`). */
  readonly firstChar: RegExp;
  /** Where the rule is published. */
  readonly source: string;
}

/**
 * OpenAI function names (Chat Completions `tools[].function.name`, Responses function tools' `name`):
 * "a-z, A-Z, 0-9, or contain underscores and dashes, with a maximum length of 64".
 * Source: https://platform.openai.com/docs/api-reference/chat/create (tools → function → name).
 *
 * @example
 * ```ts
 * OPENAI_NAME_RULES.maxLength; // 64
 * ```
 */
export const OPENAI_NAME_RULES: ToolNameRules = {
  pattern: /^[a-zA-Z0-9_-]{1,64}$/,
  maxLength: 64,
  char: /[a-zA-Z0-9_-]/,
  firstChar: /[a-zA-Z0-9_-]/,
  source: 'https://platform.openai.com/docs/api-reference/chat/create',
};

/**
 * Anthropic Messages tool names: "Must match the regex `^[a-zA-Z0-9_-]{1,64}$`".
 * Source: https://platform.claude.com/docs/en/agents-and-tools/tool-use/define-tools (Specifying client tools).
 *
 * @example
 * ```ts
 * ANTHROPIC_NAME_RULES.pattern.test('files__read_file'); // true
 * ```
 */
export const ANTHROPIC_NAME_RULES: ToolNameRules = {
  pattern: /^[a-zA-Z0-9_-]{1,64}$/,
  maxLength: 64,
  char: /[a-zA-Z0-9_-]/,
  firstChar: /[a-zA-Z0-9_-]/,
  source: 'https://platform.claude.com/docs/en/agents-and-tools/tool-use/define-tools',
};

/**
 * Gemini `FunctionDeclaration.name`: "Must start with a letter or an underscore. Must be a-z, A-Z, 0-9, or
 * contain underscores, dots, colons and dashes, with a maximum length of 64."
 * Source: https://ai.google.dev/api/caching#FunctionDeclaration (and the `@google/genai` `FunctionDeclaration`
 * docs, which say the same).
 *
 * @example
 * ```ts
 * GEMINI_NAME_RULES.pattern.test('1st_tool'); // false: must start with a letter or `_`
 * ```
 */
export const GEMINI_NAME_RULES: ToolNameRules = {
  pattern: /^[a-zA-Z_][a-zA-Z0-9_.:-]{0,63}$/,
  maxLength: 64,
  char: /[a-zA-Z0-9_.:-]/,
  firstChar: /[a-zA-Z_]/,
  source: 'https://ai.google.dev/api/caching#FunctionDeclaration',
};

/**
 * Vercel AI SDK tool names: the SDK passes them on to whichever provider the host uses, so the names follow
 * every rule above at once: `^[a-zA-Z_][a-zA-Z0-9_-]{0,63}$`.
 *
 * @example
 * ```ts
 * AI_SDK_NAME_RULES.pattern.test('files__read_file'); // true
 * ```
 */
export const AI_SDK_NAME_RULES: ToolNameRules = {
  pattern: /^[a-zA-Z_][a-zA-Z0-9_-]{0,63}$/,
  maxLength: 64,
  char: /[a-zA-Z0-9_-]/,
  firstChar: /[a-zA-Z_]/,
  source: 'intersection of OPENAI_NAME_RULES, ANTHROPIC_NAME_RULES and GEMINI_NAME_RULES',
};

/**
 * OpenAI Structured Outputs (`strict: true` function tools): the JSON Schema subset and limits.
 * Source: https://platform.openai.com/docs/guides/structured-outputs#supported-schemas
 * - root: `type: "object"`, not `anyOf`; every object `additionalProperties: false` and every property in
 *   `required` (optional fields are expressed as a union with `null`);
 * - supported: `type`, `properties`, `required`, `additionalProperties`, `items`, `enum`, `const`, `anyOf`,
 *   `description`; strings `pattern`, `format` (the formats below); numbers `multipleOf`, `maximum`,
 *   `exclusiveMaximum`, `minimum`, `exclusiveMinimum`; arrays `minItems`, `maxItems`;
 * - not supported: `allOf`, `not`, `if`/`then`/`else`, `dependentRequired`, `dependentSchemas`,
 *   `patternProperties`, … (anything not listed above is treated as unsupported here);
 * - limits: 5,000 object properties in all, 10 levels of nesting, 1,000 enum values in all.
 *
 * @example
 * ```ts
 * OPENAI_STRICT_LIMITS.formats.has('uri'); // false: a `format: "uri"` tool is sent non-strict
 * ```
 */
export const OPENAI_STRICT_LIMITS = {
  keywords: new Set([
    'type',
    'properties',
    'required',
    'additionalProperties',
    'items',
    'enum',
    'const',
    'anyOf',
    'description',
    'pattern',
    'format',
    'multipleOf',
    'maximum',
    'exclusiveMaximum',
    'minimum',
    'exclusiveMinimum',
    'minItems',
    'maxItems',
  ]) as ReadonlySet<string>,
  formats: new Set(['date-time', 'time', 'date', 'duration', 'email', 'hostname', 'ipv4', 'ipv6', 'uuid']) as ReadonlySet<string>,
  maxProperties: 5000,
  maxDepth: 10,
  maxEnumValues: 1000,
  source: 'https://platform.openai.com/docs/guides/structured-outputs#supported-schemas',
} as const;

/**
 * Gemini `Schema` (the `parameters` of a `FunctionDeclaration`): "a select subset of an OpenAPI 3.0 schema
 * object". Its fields, and the values its `type` and `format` take.
 * Source: https://ai.google.dev/api/caching#Schema
 * - fields: `type`, `format`, `title`, `description`, `nullable`, `enum` (strings), `maxItems`, `minItems`,
 *   `properties`, `required`, `minProperties`, `maxProperties`, `minLength`, `maxLength`, `pattern`, `example`,
 *   `anyOf`, `propertyOrdering`, `default`, `items`, `minimum`, `maximum`;
 * - `type`: `STRING`, `NUMBER`, `INTEGER`, `BOOLEAN`, `ARRAY`, `OBJECT` (no `null`: `nullable: true` instead);
 * - `format`: "for NUMBER type: float, double; for INTEGER type: int32, int64; for STRING type: enum,
 *   date-time" (the Gemini Developer API rejects other string formats).
 *
 * @example
 * ```ts
 * GEMINI_SCHEMA_LIMITS.fields.has('additionalProperties'); // false
 * ```
 */
export const GEMINI_SCHEMA_LIMITS = {
  fields: new Set([
    'type',
    'format',
    'title',
    'description',
    'nullable',
    'enum',
    'maxItems',
    'minItems',
    'properties',
    'required',
    'minProperties',
    'maxProperties',
    'minLength',
    'maxLength',
    'pattern',
    'example',
    'anyOf',
    'propertyOrdering',
    'default',
    'items',
    'minimum',
    'maximum',
  ]) as ReadonlySet<string>,
  types: new Set(['STRING', 'NUMBER', 'INTEGER', 'BOOLEAN', 'ARRAY', 'OBJECT']) as ReadonlySet<string>,
  formats: {
    STRING: new Set(['enum', 'date-time']) as ReadonlySet<string>,
    NUMBER: new Set(['float', 'double']) as ReadonlySet<string>,
    INTEGER: new Set(['int32', 'int64']) as ReadonlySet<string>,
  } as Readonly<Record<string, ReadonlySet<string>>>,
  source: 'https://ai.google.dev/api/caching#Schema',
} as const;
