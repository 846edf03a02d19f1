/**
 * `mcp-switchboard/adapters` tool converters over real tool lists (server-everything, server-filesystem, captured
 * in __tests__/fixtures/adapters/) and hand-written schemas: each API's output is checked by a small validator
 * of that API's published rules, written down here with their sources (independently of src/adapters/
 * constraints.ts, so a wrong constant there is caught). No network, no API keys.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AdapterError } from '../../src/adapters/errors.js';
import { restoreToolArguments, type JsonSchema } from '../../src/adapters/schema.js';
import {
  toAISDKTools,
  toAnthropicTools,
  toGeminiTools,
  toOpenAIChatTools,
  toOpenAIResponsesTools,
  type McpToolDefinition,
  type ToolNameEntry,
  type ToolsByServer,
} from '../../src/adapters/tools.js';
import { SwitchboardError } from '../../src/errors.js';

const FIXTURES = join(process.cwd(), '__tests__/fixtures/adapters');
const load = (file: string) => (JSON.parse(readFileSync(join(FIXTURES, file), 'utf8')) as { tools: McpToolDefinition[] }).tools;
const everything = load('server-everything.tools.json');
const filesystem = load('server-filesystem.tools.json');
const handWritten = load('hand-written.tools.json');
const ALL: ToolsByServer = { everything, filesystem, handwritten: handWritten };
const FIXTURE_SETS: [string, ToolsByServer][] = [
  ['server-everything', { everything }],
  ['server-filesystem', { filesystem }],
  ['hand-written', { handwritten: handWritten }],
  ['all three together', ALL],
  ['all three, not namespaced', ALL],
];

// ---- the APIs' published rules ---------------------------------------------------------------------------

/**
 * OpenAI function name: "Must be a-z, A-Z, 0-9, or contain underscores and dashes, with a maximum length of 64."
 * https://platform.openai.com/docs/api-reference/chat/create (tools[].function.name)
 */
const OPENAI_NAME = /^[a-zA-Z0-9_-]{1,64}$/;
/** Anthropic: "name: Must match the regex ^[a-zA-Z0-9_-]{1,64}$." https://platform.claude.com/docs/en/agents-and-tools/tool-use/define-tools */
const ANTHROPIC_NAME = /^[a-zA-Z0-9_-]{1,64}$/;
/**
 * Gemini FunctionDeclaration.name: "Must start with a letter or an underscore. Must be a-z, A-Z, 0-9, or contain
 * underscores, dots, colons and dashes, with a maximum length of 64." https://ai.google.dev/api/caching#FunctionDeclaration
 */
const GEMINI_NAME = /^[a-zA-Z_][a-zA-Z0-9_.:-]{0,63}$/;

/**
 * OpenAI Structured Outputs, supported schemas: https://platform.openai.com/docs/guides/structured-outputs#supported-schemas
 * "Supported types: String, Number, Boolean, Integer, Object, Array, Enum, anyOf"; strings: pattern, format
 * (date-time, time, date, duration, email, hostname, ipv4, ipv6, uuid); numbers: multipleOf, maximum,
 * exclusiveMaximum, minimum, exclusiveMinimum; arrays: minItems, maxItems. "Root objects must not be anyOf and
 * must be an object." "All fields must be required." "additionalProperties: false must always be set in
 * objects." Up to 5000 object properties, up to 10 levels of nesting, up to 1000 enum values.
 */
const STRICT = {
  keywords: new Set(['type', 'properties', 'required', 'additionalProperties', 'items', 'enum', 'const', 'anyOf', 'description', 'pattern', 'format', 'multipleOf', 'maximum', 'exclusiveMaximum', 'minimum', 'exclusiveMinimum', 'minItems', 'maxItems']),
  types: new Set(['string', 'number', 'boolean', 'integer', 'object', 'array', 'null']),
  formats: new Set(['date-time', 'time', 'date', 'duration', 'email', 'hostname', 'ipv4', 'ipv6', 'uuid']),
  maxDepth: 10,
  maxProperties: 5000,
  maxEnumValues: 1000,
};

/**
 * Gemini Schema ("a select subset of an OpenAPI 3.0 schema object"): https://ai.google.dev/api/caching#Schema
 * Fields: type, format, title, description, nullable, enum, maxItems, minItems, properties, required,
 * minProperties, maxProperties, minLength, maxLength, pattern, example, anyOf, propertyOrdering, default, items,
 * minimum, maximum. Type: STRING, NUMBER, INTEGER, BOOLEAN, ARRAY, OBJECT. enum: string values. format: "for
 * NUMBER type: float, double; for INTEGER type: int32, int64; for STRING type: enum, date-time".
 * FunctionDeclaration.parameters: "For function with no parameters, this can be left unset" (an OBJECT without
 * properties is rejected).
 */
const GEMINI = {
  fields: new Set(['type', 'format', 'title', 'description', 'nullable', 'enum', 'maxItems', 'minItems', 'properties', 'required', 'minProperties', 'maxProperties', 'minLength', 'maxLength', 'pattern', 'example', 'anyOf', 'propertyOrdering', 'default', 'items', 'minimum', 'maximum']),
  types: new Set(['STRING', 'NUMBER', 'INTEGER', 'BOOLEAN', 'ARRAY', 'OBJECT']),
  formats: { STRING: ['enum', 'date-time'], NUMBER: ['float', 'double'], INTEGER: ['int32', 'int64'] } as Record<string, string[]>,
};

// ---- validators: each returns the list of violations (empty = valid) --------------------------------------

type Problems = string[];
const isObj = (v: unknown): v is JsonSchema => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Rules every JSON-Schema API here shares: no $ref left, root an object (not a combinator). */
function checkJsonSchemaRoot(schema: JsonSchema, where: string, p: Problems): void {
  if (schema.type !== 'object') p.push(`${where}: root type is ${JSON.stringify(schema.type)}, not 'object'`);
  for (const k of ['anyOf', 'oneOf', 'allOf']) if (k in schema) p.push(`${where}: root has ${k}`);
  if (JSON.stringify(schema).includes('"$ref"')) p.push(`${where}: a $ref is left`);
}

/** OpenAI (non-strict) also rejects "object schema missing properties" at the root and "array schema missing items". */
function checkOpenAISchema(schema: JsonSchema, where: string, p: Problems): void {
  checkJsonSchemaRoot(schema, where, p);
  if (!isObj(schema.properties)) p.push(`${where}: root object without properties`);
  const walk = (s: unknown, at: string) => {
    if (!isObj(s)) return;
    const types = Array.isArray(s.type) ? s.type : [s.type];
    if (types.includes('array') && s.items === undefined) p.push(`${at}: array without items`);
    for (const [k, v] of Object.entries(s)) {
      if (k === 'properties' && isObj(v)) for (const [n, sub] of Object.entries(v)) walk(sub, `${at}/properties/${n}`);
      else if (Array.isArray(v)) v.forEach((sub, i) => walk(sub, `${at}/${k}/${i}`));
      else if (isObj(v) && k !== 'default' && k !== 'const') walk(v, `${at}/${k}`);
    }
  };
  walk(schema, where);
}

function checkStrict(schema: JsonSchema, where: string, p: Problems): void {
  checkJsonSchemaRoot(schema, where, p);
  let properties = 0;
  let enumValues = 0;
  const walk = (s: unknown, at: string, depth: number) => {
    if (!isObj(s)) return void p.push(`${at}: not a schema object`);
    if (depth > STRICT.maxDepth) p.push(`${at}: deeper than ${STRICT.maxDepth}`);
    for (const k of Object.keys(s)) if (!STRICT.keywords.has(k)) p.push(`${at}: keyword '${k}' not supported in strict mode`);
    const types = s.type === undefined ? [] : Array.isArray(s.type) ? s.type : [s.type];
    for (const t of types) if (!STRICT.types.has(t as string)) p.push(`${at}: type ${String(t)}`);
    if (types.length === 0 && !('enum' in s) && !('const' in s) && !('anyOf' in s)) p.push(`${at}: no type`);
    if (s.format !== undefined && !STRICT.formats.has(s.format as string)) p.push(`${at}: format ${String(s.format)}`);
    if (Array.isArray(s.enum)) enumValues += s.enum.length;
    if (types.includes('object')) {
      if (s.additionalProperties !== false) p.push(`${at}: object without additionalProperties: false`);
      const keys = Object.keys(isObj(s.properties) ? s.properties : {});
      properties += keys.length;
      const required = Array.isArray(s.required) ? (s.required as string[]) : [];
      if (keys.length !== required.length || !keys.every((k) => required.includes(k))) p.push(`${at}: not every property is required`);
      for (const k of keys) walk((s.properties as JsonSchema)[k], `${at}/properties/${k}`, depth + 1);
    }
    if (types.includes('array')) walk(s.items, `${at}/items`, depth + 1);
    if (Array.isArray(s.anyOf)) s.anyOf.forEach((b, i) => walk(b, `${at}/anyOf/${i}`, depth + 1));
  };
  walk(schema, where, 0);
  if (properties > STRICT.maxProperties) p.push(`${where}: ${properties} properties`);
  if (enumValues > STRICT.maxEnumValues) p.push(`${where}: ${enumValues} enum values`);
}

function checkGeminiSchema(schema: JsonSchema, where: string, p: Problems): void {
  if (schema.type !== 'OBJECT') p.push(`${where}: parameters type ${String(schema.type)}, not OBJECT`);
  if (!isObj(schema.properties) || Object.keys(schema.properties).length === 0) p.push(`${where}: parameters without properties (leave parameters unset)`);
  const walk = (s: unknown, at: string) => {
    if (!isObj(s)) return void p.push(`${at}: not a schema object`);
    for (const k of Object.keys(s)) if (!GEMINI.fields.has(k)) p.push(`${at}: field '${k}' is not in Gemini's Schema`);
    if (s.type === undefined && !Array.isArray(s.anyOf)) p.push(`${at}: no type`);
    if (s.type !== undefined && !GEMINI.types.has(s.type as string)) p.push(`${at}: type ${JSON.stringify(s.type)}`);
    if (s.enum !== undefined && !(Array.isArray(s.enum) && s.enum.every((v) => typeof v === 'string'))) p.push(`${at}: enum of non-strings`);
    if (s.format !== undefined && !(GEMINI.formats[s.type as string] ?? []).includes(s.format as string)) p.push(`${at}: format ${String(s.format)} for ${String(s.type)}`);
    if (s.nullable !== undefined && typeof s.nullable !== 'boolean') p.push(`${at}: nullable not boolean`);
    if (s.type === 'ARRAY') {
      if (s.items === undefined) p.push(`${at}: ARRAY without items`);
      else walk(s.items, `${at}/items`);
    }
    if (isObj(s.properties)) for (const [n, sub] of Object.entries(s.properties)) walk(sub, `${at}/properties/${n}`);
    if (Array.isArray(s.required)) for (const r of s.required) if (!isObj(s.properties) || !(String(r) in s.properties)) p.push(`${at}: required '${String(r)}' is not a property`);
    if (Array.isArray(s.anyOf)) s.anyOf.forEach((b, i) => walk(b, `${at}/anyOf/${i}`));
  };
  walk(schema, where);
}

/** The `names` map leads back to each tool exactly once, and only to tools that exist. */
function checkNames(names: Map<string, ToolNameEntry>, emitted: string[], servers: ToolsByServer, p: Problems): void {
  if (names.size !== emitted.length) p.push(`names has ${names.size} entries for ${emitted.length} tools`);
  for (const n of emitted) if (!names.has(n)) p.push(`tool ${n} is not in names`);
  for (const [n, { serverName, toolName }] of names) {
    const list = servers[serverName];
    const tools = Array.isArray(list) ? list : (list as { tools: McpToolDefinition[] } | undefined)?.tools;
    if (!tools?.some((t) => t.name === toolName)) p.push(`${n} → ${serverName}/${toolName}, which does not exist`);
  }
}

// ---- each API over each fixture --------------------------------------------------------------------------

describe.each(FIXTURE_SETS)('%s', (label, servers) => {
  const options = { namespace: !label.includes('not namespaced') };

  it('OpenAI Chat Completions: valid names and parameters; strict tools follow strict mode', () => {
    for (const strict of [false, 'auto'] as const) {
      const { tools, names } = toOpenAIChatTools(servers, { ...options, strict });
      const p: Problems = [];
      for (const t of tools) {
        if (t.type !== 'function') p.push(`${t.function.name}: type ${String(t.type)}`);
        if (!OPENAI_NAME.test(t.function.name)) p.push(`${t.function.name}: illegal name`);
        if (t.function.strict) checkStrict(t.function.parameters, t.function.name, p);
        else checkOpenAISchema(t.function.parameters, t.function.name, p);
        if (strict === false && 'strict' in t.function) p.push(`${t.function.name}: strict set with strict: false`);
      }
      checkNames(names, tools.map((t) => t.function.name), servers, p);
      expect(p).toEqual([]);
    }
  });

  it('OpenAI Responses: valid names, strict always present, strict schemas follow strict mode', () => {
    const { tools, names } = toOpenAIResponsesTools(servers, options);
    const p: Problems = [];
    for (const t of tools) {
      if (t.type !== 'function') p.push(`${t.name}: type`);
      if (!OPENAI_NAME.test(t.name)) p.push(`${t.name}: illegal name`);
      if (typeof t.strict !== 'boolean') p.push(`${t.name}: strict missing`);
      if (t.strict) checkStrict(t.parameters, t.name, p);
      else checkOpenAISchema(t.parameters, t.name, p);
    }
    checkNames(names, tools.map((t) => t.name), servers, p);
    expect(p).toEqual([]);
    expect(tools.some((t) => t.strict)).toBe(true);
  });

  it('Anthropic: valid names and an object input_schema', () => {
    const { tools, names } = toAnthropicTools(servers, options);
    const p: Problems = [];
    for (const t of tools) {
      if (!ANTHROPIC_NAME.test(t.name)) p.push(`${t.name}: illegal name`);
      checkJsonSchemaRoot(t.input_schema, t.name, p);
    }
    checkNames(names, tools.map((t) => t.name), servers, p);
    expect(p).toEqual([]);
  });

  it("Gemini: valid names, parameters in Gemini's Schema subset", () => {
    const { tools, functionDeclarations, names } = toGeminiTools(servers, options);
    expect(tools).toEqual([{ functionDeclarations }]);
    const p: Problems = [];
    for (const d of functionDeclarations) {
      if (!GEMINI_NAME.test(d.name)) p.push(`${d.name}: illegal name`);
      if (d.parameters !== undefined) checkGeminiSchema(d.parameters, d.name, p);
    }
    checkNames(names, functionDeclarations.map((d) => d.name), servers, p);
    expect(p).toEqual([]);
  });

  it('AI SDK: a tool set keyed by names legal everywhere, schemas through the injected jsonSchema', () => {
    const jsonSchema = (schema: JsonSchema) => ({ wrapped: schema });
    const { tools, names } = toAISDKTools(servers, { ...options, jsonSchema });
    const p: Problems = [];
    for (const [name, t] of Object.entries(tools)) {
      if (!OPENAI_NAME.test(name) || !ANTHROPIC_NAME.test(name) || !GEMINI_NAME.test(name)) p.push(`${name}: illegal for some provider`);
      checkOpenAISchema(t.inputSchema.wrapped, name, p);
      if ('execute' in t) p.push(`${name}: execute without an execute option`);
    }
    checkNames(names, Object.keys(tools), servers, p);
    expect(p).toEqual([]);
  });
});

describe('the validators themselves', () => {
  it('catch what each API rejects', () => {
    const p: Problems = [];
    checkStrict({ type: 'object', properties: { a: { type: 'string' }, b: { type: 'object', properties: {} } }, required: ['a'] }, 'strict', p);
    checkOpenAISchema({ type: 'object', properties: { t: { type: 'array' }, r: { $ref: '#/$defs/x' } } }, 'openai', p);
    checkGeminiSchema({ type: 'OBJECT', properties: { u: { type: 'STRING', format: 'uri' }, e: { type: 'INTEGER', enum: [1] }, x: { type: 'object', additionalProperties: false } } }, 'gemini', p);
    expect(p).toEqual([
      'strict: object without additionalProperties: false',
      'strict: not every property is required',
      'strict/properties/b: object without additionalProperties: false',
      'openai: a $ref is left',
      'openai/properties/t: array without items',
      'gemini/properties/u: format uri for STRING',
      'gemini/properties/e: enum of non-strings',
      "gemini/properties/x: field 'additionalProperties' is not in Gemini's Schema",
      'gemini/properties/x: type "object"',
    ]);
  });
});

// ---- behaviour -----------------------------------------------------------------------------------------

describe('tool converters', () => {
  it('the real servers convert for every API without a warning, except what Gemini and strict mode cannot say', () => {
    const real = { everything, filesystem };
    expect(toOpenAIChatTools(real).warnings).toEqual([]);
    expect(toAnthropicTools(real).warnings).toEqual([]);
    expect(toOpenAIResponsesTools(real).warnings).toEqual([]);
    const gemini = toGeminiTools(real);
    expect(gemini.warnings).toEqual([
      { serverName: 'everything', toolName: 'gzip-file-as-resource', path: '/properties/data/format', message: expect.stringContaining("format 'uri' is not one Gemini accepts") },
    ]);
    expect(gemini.functionDeclarations).toHaveLength(everything.length + filesystem.length);
    const responses = toOpenAIResponsesTools(real);
    expect(responses.tools.find((t) => t.name === 'everything__gzip-file-as-resource')!.strict).toBe(false); // format 'uri'
    expect(responses.tools.find((t) => t.name === 'filesystem__read_text_file')).toEqual({
      type: 'function',
      name: 'filesystem__read_text_file',
      description: expect.any(String),
      strict: true,
      parameters: {
        type: 'object',
        properties: {
          path: { type: 'string' },
          tail: { description: 'If provided, returns only the last N lines of the file', type: ['number', 'null'] },
          head: { description: 'If provided, returns only the first N lines of the file', type: ['number', 'null'] },
        },
        required: ['path', 'tail', 'head'],
        additionalProperties: false,
      },
    });
    expect(responses.names.get('filesystem__read_text_file')).toEqual({ serverName: 'filesystem', toolName: 'read_text_file', omitNulls: [['tail'], ['head']] });
  });

  it('names: namespaced by server, long names shortened, illegal characters replaced, the map leads back', () => {
    const { tools, names } = toAnthropicTools({ handwritten: handWritten });
    const byTool = new Map([...names].map(([model, e]) => [e.toolName, model]));
    expect(byTool.get('create_event')).toBe('handwritten__create_event');
    expect(byTool.get('search.files/v2')).toBe('handwritten__search_files_v2');
    const long = [...names].filter(([, e]) => e.toolName.startsWith('a_tool_whose_name')).map(([m]) => m);
    expect(long).toHaveLength(2);
    for (const m of long) expect(m).toHaveLength(64);
    expect(new Set(long).size).toBe(2);
    expect(tools.find((t) => t.name === 'handwritten__search_files_v2')!.description).toBe('Search files (v2)'); // title when no description
  });

  it('names do not depend on the order of servers or tools', () => {
    const a = toOpenAIChatTools({ everything, filesystem, handwritten: handWritten }, { namespace: false });
    const b = toOpenAIChatTools({ handwritten: [...handWritten].reverse(), filesystem: [...filesystem].reverse(), everything }, { namespace: false });
    expect(new Map([...b.names].sort())).toEqual(new Map([...a.names].sort()));
  });

  it('namespace: false resolves collisions between servers deterministically', () => {
    const { names } = toOpenAIChatTools({ one: [{ name: 'read' }], two: [{ name: 'read' }] }, { namespace: false });
    expect([...names.keys()]).toEqual(['read', expect.stringMatching(/^read_[0-9a-f]{8}$/)]);
    expect(names.get('read')).toEqual({ serverName: 'one', toolName: 'read' });
  });

  it("onUnsupported 'warn' leaves out what cannot be declared and keeps the rest, with warnings", () => {
    const { tools, warnings } = toAnthropicTools({ handwritten: handWritten });
    expect(tools.map((t) => t.name)).not.toContain('handwritten__save_tree');
    expect(warnings).toEqual([
      {
        serverName: 'handwritten',
        toolName: 'save_tree',
        path: '/properties/root/properties/children/items',
        message: expect.stringMatching(/^Anthropic: recursive schema.*; the tool was left out$/),
      },
    ]);
  });

  it("onUnsupported 'error' throws a typed AdapterError naming the tool and the place", () => {
    let error: unknown;
    try {
      toGeminiTools({ handwritten: handWritten }, { onUnsupported: 'error' });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(AdapterError);
    expect(error).toBeInstanceOf(SwitchboardError);
    expect(error).toMatchObject({ code: 'schema_unsupported', serverName: 'handwritten', toolName: 'create_event', path: '/properties/attendees/items/properties/email/format' });
    expect((error as Error).message).toBe("Tool 'create_event' of server 'handwritten': Gemini: format 'email' is not one Gemini accepts for this type: 'format' removed, kept in the description");
    expect((error as AdapterError).toJSON()).toMatchObject({ name: 'AdapterError', code: 'schema_unsupported', toolName: 'create_event' });
  });

  it('Gemini: hand-written schemas keep their meaning or are reported', () => {
    const { functionDeclarations, warnings } = toGeminiTools({ handwritten: handWritten });
    const decl = (n: string) => functionDeclarations.find((d) => d.name === `handwritten__${n}`);
    expect(decl('update_ticket')!.parameters!.properties).toEqual({
      id: { type: 'STRING' },
      assignee: { type: 'STRING', nullable: true },
      estimate: { type: 'NUMBER', nullable: true, description: '(exclusiveMinimum: 0)' },
      labels: { type: 'ARRAY', items: { type: 'STRING' }, description: '(uniqueItems: true)' },
      status: { type: 'STRING', enum: ['open', 'closed'], nullable: true },
    });
    expect(decl('create_event')!.parameters!.properties).toMatchObject({
      start: { type: 'STRING', format: 'date-time', description: 'An RFC 3339 time' },
      link: { type: 'STRING', description: '(format: "uri")' },
      attendees: { type: 'ARRAY', maxItems: 50, items: { type: 'OBJECT', properties: { email: { type: 'STRING', description: '(format: "email")' } }, required: ['email'] } },
    });
    expect(functionDeclarations.filter((d) => d.name.startsWith('handwritten__a_tool')).every((d) => d.parameters === undefined)).toBe(true);
    const left = new Set(warnings.filter((w) => w.message.endsWith('left out')).map((w) => w.toolName));
    expect([...left].sort()).toEqual(['save_tree', 'search.files/v2']); // recursion; a value of any type / array without items
    expect(warnings.some((w) => w.toolName === 'notify' && /oneOf/.test(w.message))).toBe(true);
  });

  it('OpenAI strict: true reports tools that cannot be strict and sends them non-strict', () => {
    const { tools, warnings } = toOpenAIResponsesTools({ handwritten: handWritten }, { strict: true });
    const setEnv = tools.find((t) => t.name === 'handwritten__set_env')!;
    expect(setEnv.strict).toBe(false);
    expect(setEnv.parameters).toEqual({ type: 'object', properties: { vars: { type: 'object', additionalProperties: { type: 'string' } } }, required: ['vars'] });
    expect(warnings).toContainEqual({
      serverName: 'handwritten',
      toolName: 'set_env',
      path: '/properties/vars',
      message: expect.stringMatching(/strict mode is not possible: additionalProperties.*; sent with strict: false$/),
    });
    expect(() => toOpenAIResponsesTools({ handwritten: handWritten }, { strict: true, onUnsupported: 'error' })).toThrow(AdapterError);
    // 'auto' falls back silently: only the tools that cannot be declared at all are warned about.
    expect(toOpenAIResponsesTools({ handwritten: handWritten }).warnings.map((w) => w.toolName)).toEqual(['save_tree']);
  });

  it("a strict tool's null arguments are undone with the names entry", () => {
    const { names } = toOpenAIResponsesTools({ filesystem });
    const entry = names.get('filesystem__read_text_file')!;
    expect(restoreToolArguments({ path: '/tmp/a', head: 5, tail: null }, entry.omitNulls)).toEqual({ path: '/tmp/a', head: 5 });
  });

  it('a tool without inputSchema has no arguments; Gemini leaves parameters unset', () => {
    const servers = { s: [{ name: 'ping' }] };
    expect(toOpenAIChatTools(servers).tools[0]!.function.parameters).toEqual({ type: 'object', properties: {} });
    expect(toAnthropicTools(servers).tools[0]!.input_schema).toEqual({ type: 'object', properties: {} });
    expect(toGeminiTools(servers).functionDeclarations).toEqual([{ name: 's__ping' }]);
    expect(toGeminiTools({}).tools).toEqual([]);
  });

  it('accepts a listTools() result as well as its tools array; rejects what is neither', () => {
    expect(toAnthropicTools({ s: { tools: [{ name: 'ping' }] } }).tools).toHaveLength(1);
    expect(() => toAnthropicTools({ s: 'nope' as unknown as McpToolDefinition[] })).toThrow(TypeError);
    expect(() => toAnthropicTools(null as unknown as ToolsByServer)).toThrow(TypeError);
    const { tools, warnings } = toAnthropicTools({ s: [{ name: '' }, { name: 'ok' }] });
    expect(tools.map((t) => t.name)).toEqual(['s__ok']);
    expect(warnings).toHaveLength(1);
  });

  it('AI SDK: execute calls back with the model-facing name, the arguments and the SDK options', async () => {
    const calls: unknown[] = [];
    const { tools, names } = toAISDKTools(
      { filesystem },
      {
        jsonSchema: (schema) => ({ jsonSchema: schema }),
        execute: async (name, args, options) => {
          calls.push([name, args, options.toolCallId]);
          return { ok: true };
        },
      },
    );
    const read = tools['filesystem__read_file']!;
    expect(read.description).toEqual(expect.any(String));
    expect(read.inputSchema.jsonSchema).toMatchObject({ type: 'object', required: ['path'] });
    await expect(read.execute!({ path: '/tmp/x' }, { toolCallId: 'call_1', messages: [] })).resolves.toEqual({ ok: true });
    expect(calls).toEqual([['filesystem__read_file', { path: '/tmp/x' }, 'call_1']]);
    expect(names.get('filesystem__read_file')).toEqual({ serverName: 'filesystem', toolName: 'read_file' });
    expect(() => toAISDKTools({ filesystem }, {} as never)).toThrow(/jsonSchema/);
  });
});

describe('tool converters: hostile schemas (review regressions)', () => {
  const deep = (levels: number): JsonSchema => {
    let s: JsonSchema = { type: 'string' };
    for (let i = 0; i < levels; i++) s = { type: 'object', properties: { p: s } };
    return s;
  };
  const converters = {
    chat: (s: ToolsByServer, o = {}) => toOpenAIChatTools(s, o),
    chatStrict: (s: ToolsByServer, o = {}) => toOpenAIChatTools(s, { strict: true, ...o }),
    responses: (s: ToolsByServer, o = {}) => toOpenAIResponsesTools(s, o),
    anthropic: (s: ToolsByServer, o = {}) => toAnthropicTools(s, o),
    gemini: (s: ToolsByServer, o = {}) => toGeminiTools(s, o),
    aisdk: (s: ToolsByServer, o = {}) => toAISDKTools(s, { jsonSchema: (x) => x, ...o }),
  };

  it.each(Object.keys(converters))('%s: a 5,000-level schema leaves that tool out with a warning; the other tools stay', (key) => {
    const convert = converters[key as keyof typeof converters];
    const servers: ToolsByServer = { good: [{ name: 'fine', inputSchema: { type: 'object', properties: { a: { type: 'string' } } } }], bad: [{ name: 'deep', inputSchema: deep(5000) }] };
    const { names, warnings } = convert(servers);
    expect([...names.keys()]).toEqual(['good__fine']);
    expect(warnings).toContainEqual(expect.objectContaining({ serverName: 'bad', toolName: 'deep', message: expect.stringContaining('left out') }));
    expect(() => convert(servers, { onUnsupported: 'error' })).toThrow(expect.objectContaining({ code: 'schema_unsupported', toolName: 'deep' }));
  });

  it('any other error while converting one tool is a warning naming it (an AdapterError with onUnsupported: error)', () => {
    const throwing = { get type(): string { throw new Error('secret detail'); } };
    const servers: ToolsByServer = { s: [{ name: 'first', inputSchema: {} }, { name: 'broken', inputSchema: throwing }, { name: 'last', inputSchema: {} }] };
    for (const convert of Object.values(converters)) {
      const { names, warnings } = convert(servers);
      expect([...names.keys()]).toEqual(['s__first', 's__last']);
      expect(warnings).toEqual([expect.objectContaining({ serverName: 's', toolName: 'broken', path: '', message: expect.stringContaining('could not be converted (Error)') })]);
      expect(JSON.stringify(warnings)).not.toContain('secret detail');
      expect(() => convert(servers, { onUnsupported: 'error' })).toThrow(AdapterError);
    }
    // The host's jsonSchema callback throwing for one tool costs that tool only.
    let calls = 0;
    const ai = toAISDKTools(servers, { jsonSchema: (x) => { if (++calls === 2) throw new RangeError('x'); return x; } });
    expect(Object.keys(ai.tools)).toHaveLength(1); // 'broken' left out by the getter, 'last' by the callback
    expect(ai.warnings.map((w) => w.toolName)).toEqual(['broken', 'last']);
    // A bad option is still a TypeError, not a per-tool warning.
    expect(() => toOpenAIResponsesTools(servers, { strict: 'yes' as never })).toThrow(TypeError);
  });

  it('OpenAI strict: a property named __proto__ (or constructor) is kept, and required lists only properties', () => {
    const schema = JSON.parse('{"type":"object","properties":{"__proto__":{"type":"string"},"constructor":{"type":"string"},"ok":{"type":"string"}},"required":["__proto__"]}');
    const tool = toOpenAIResponsesTools({ s: [{ name: 'p', inputSchema: schema }] }).tools[0]!;
    expect(tool.strict).toBe(true);
    const sent = JSON.parse(JSON.stringify(tool.parameters)) as { properties: JsonSchema; required: string[] };
    expect(Object.keys(sent.properties)).toEqual(['__proto__', 'constructor', 'ok']);
    expect(sent.required).toEqual(['__proto__', 'constructor', 'ok']);
  });

  it("toAISDKTools' TSDoc example returns text from execute, not the toModelOutput wrapper", () => {
    const source = readFileSync(join(process.cwd(), 'src/adapters/tools.ts'), 'utf8');
    const doc = source.slice(source.lastIndexOf('/**', source.indexOf('export function toAISDKTools')), source.indexOf('export function toAISDKTools'));
    expect(doc).not.toMatch(/return toAISDKToolResult\(/);
    expect(doc).toMatch(/return .*toolResultText\(result\)/);
  });
});
