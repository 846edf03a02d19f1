/**
 * MCP tool input schemas (JSON Schema) normalised for one LLM API: local `$ref`s inlined, keywords the API
 * rejects removed or rewritten, `type` arrays and `nullable` translated, and OpenAI strict mode's rules applied.
 * Anything that cannot be carried over is reported as a {@link SchemaIssue}, never dropped silently.
 * @module
 */
import { GEMINI_SCHEMA_LIMITS, OPENAI_STRICT_LIMITS } from './constraints.js';

/**
 * A JSON Schema (or Gemini schema) object, as plain JSON.
 *
 * @example
 * ```ts
 * const schema: JsonSchema = { type: 'object', properties: { path: { type: 'string' } }, required: ['path'] };
 * ```
 */
export type JsonSchema = { [keyword: string]: unknown };

/**
 * The API a schema is normalised for:
 * - `json-schema`: JSON Schema for APIs that take it as is (Anthropic `input_schema`, the Vercel AI SDK):
 *   `$ref`s inlined, `$defs`/`$schema`/`$id` removed, OpenAPI `nullable` turned into a `type` array;
 * - `openai`: the same, plus what OpenAI's function `parameters` require (`properties` on the root object,
 *   `items` on every array);
 * - `openai-strict`: OpenAI Structured Outputs (see `OPENAI_STRICT_LIMITS`);
 * - `gemini`: Gemini's OpenAPI-subset `Schema` (see `GEMINI_SCHEMA_LIMITS`).
 *
 * @example
 * ```ts
 * const dialect: SchemaDialect = 'gemini';
 * ```
 */
export type SchemaDialect = 'json-schema' | 'openai' | 'openai-strict' | 'gemini';

/**
 * Something in a schema the target API cannot express:
 * - `relaxed`: a validation keyword the API does not accept was removed and its text appended to the
 *   `description` (the model still reads it and the MCP server still enforces it), e.g. Gemini and
 *   `format: "uri"`;
 * - `unsupported`: the schema cannot be expressed at all (recursion, a remote `$ref`, a value of any type for
 *   Gemini, …); no schema is returned;
 * - `not_strict`: only for `openai-strict`: the schema is fine, but not within strict mode's subset.
 *
 * @example
 * ```ts
 * const issue: SchemaIssue = { kind: 'relaxed', path: '/properties/url', message: "Gemini does not accept format 'uri'" };
 * ```
 */
export interface SchemaIssue {
  kind: 'relaxed' | 'unsupported' | 'not_strict';
  /** JSON Pointer into the tool's input schema as written (through `$ref`s as they are followed); `''` is the root. */
  path: string;
  message: string;
}

/**
 * A place in a tool's arguments: property names, and `null` for "every item of this array".
 *
 * @example
 * ```ts
 * const path: ArgumentPath = ['edits', null, 'dryRun']; // args.edits[i].dryRun
 * ```
 */
export type ArgumentPath = readonly (string | null)[];

/**
 * The result of {@link normalizeInputSchema}.
 *
 * @example
 * ```ts
 * const { schema, issues } = normalizeInputSchema(tool.inputSchema, 'gemini');
 * if (schema === undefined) console.warn(issues);
 * ```
 */
export interface NormalizedSchema {
  /** The schema for the API, or `undefined` when an issue of kind `unsupported` / `not_strict` prevents it. */
  schema: JsonSchema | undefined;
  issues: SchemaIssue[];
  /**
   * `openai-strict` only: optional properties made required-and-nullable, where the model's `null` means
   * "absent". Hand them to {@link restoreToolArguments} before calling the tool.
   */
  omitNulls: ArgumentPath[];
}

/** Thrown inside a conversion to stop it: the schema (or strict mode) cannot carry the schema. */
class Unrepresentable extends Error {
  constructor(
    readonly kind: 'unsupported' | 'not_strict',
    readonly path: string,
    message: string,
  ) {
    super(message);
  }
}

/** Keywords that only annotate (no validation meaning): dropped where an API does not take them. */
const ANNOTATIONS = new Set([
  'title',
  'description',
  'default',
  'examples',
  'example',
  'deprecated',
  'readOnly',
  'writeOnly',
  '$comment',
  '$schema',
  '$id',
  '$anchor',
  'contentEncoding',
  'contentMediaType',
  'markdownDescription',
]);
/** Keywords whose value is a map of name → schema. */
const SCHEMA_MAPS = ['properties', 'patternProperties', 'dependentSchemas', '$defs', 'definitions'];
/** Keywords whose value is one schema. */
const SCHEMA_ONE = ['additionalProperties', 'items', 'not', 'if', 'then', 'else', 'contains', 'propertyNames', 'unevaluatedProperties', 'unevaluatedItems', 'additionalItems'];
/** Keywords whose value is a list of schemas. */
const SCHEMA_LISTS = ['anyOf', 'oneOf', 'allOf', 'prefixItems'];
/** Past this many schema nodes after inlining, `$ref`s are taken to blow the schema up (a DAG of refs). */
const MAX_NODES = 10_000;
/**
 * Past this many levels of nesting (or `$ref`s followed in a row), a schema is `unsupported`: no API takes one
 * that deep, and walking it further would risk the stack.
 */
const MAX_SCHEMA_DEPTH = 64;

const isObject = (v: unknown): v is JsonSchema => typeof v === 'object' && v !== null && !Array.isArray(v);
const escape = (segment: string) => segment.replace(/~/g, '~0').replace(/\//g, '~1');
const at = (path: string, ...segments: (string | number)[]) => path + segments.map((s) => `/${escape(String(s))}`).join('');
const has = (o: object, key: string) => Object.hasOwn(o, key);
/**
 * Sets an own, enumerable property, whatever its name: `o[key] = v` would set the prototype for `__proto__`.
 * Every key that comes from a schema is set with it.
 */
function put(o: JsonSchema, key: string, value: unknown): void {
  Object.defineProperty(o, key, { value, writable: true, enumerable: true, configurable: true });
}

/** The walk's state: the root (for `$ref`), the issues found, the strict-mode null paths, a node budget. */
interface Walk {
  readonly root: JsonSchema;
  readonly issues: SchemaIssue[];
  readonly omitNulls: ArgumentPath[];
  nodes: number;
  strictProperties: number;
  strictEnumValues: number;
}

/** Where a node sits: its schema path, the `$ref`s followed to reach it (for recursion), its argument path. */
interface Place {
  path: string;
  refs: readonly string[];
  /** The arguments this node validates; `undefined` inside `anyOf`/`oneOf`, where it is ambiguous. */
  args: ArgumentPath | undefined;
  depth: number;
}

/** Resolves a local JSON Pointer `$ref` (`#`, `#/$defs/x`, `#/definitions/x`, any `#/…` pointer). */
function resolvePointer(root: JsonSchema, ref: string, path: string): unknown {
  if (!ref.startsWith('#')) throw new Unrepresentable('unsupported', path, `$ref '${ref}' is not local to the schema (only '#…' references are inlined)`);
  if (ref !== '#' && !ref.startsWith('#/')) throw new Unrepresentable('unsupported', path, `$ref '${ref}' names an anchor; only JSON Pointer references are inlined`);
  let node: unknown = root;
  for (const raw of ref.slice(2).split('/').filter((s, i, all) => !(all.length === 1 && s === ''))) {
    const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    node = Array.isArray(node) ? (/^(0|[1-9]\d*)$/.test(key) ? node[Number(key)] : undefined) : isObject(node) && has(node, key) ? node[key] : undefined;
    if (node === undefined) throw new Unrepresentable('unsupported', path, `$ref '${ref}' does not resolve`);
  }
  return node;
}

/**
 * Follows `$ref` (repeatedly) and returns the schema it leads to, with the referring node's other keywords laid
 * over it. A keyword on both sides is only allowed for annotations (the referring side wins): anything else
 * would need `allOf` semantics.
 */
function deref(w: Walk, input: unknown, place: Place): { node: JsonSchema; refs: readonly string[] } {
  if (++w.nodes > MAX_NODES) throw new Unrepresentable('unsupported', place.path, `the schema has more than ${MAX_NODES} nodes once its $refs are inlined`);
  if (place.depth > MAX_SCHEMA_DEPTH) throw new Unrepresentable('unsupported', place.path, `the schema is nested more than ${MAX_SCHEMA_DEPTH} levels deep`);
  let node = toSchemaObject(input, place.path);
  let refs = place.refs;
  let hops = 0;
  while (typeof node.$ref === 'string') {
    const ref = node.$ref;
    if (++hops > MAX_SCHEMA_DEPTH) throw new Unrepresentable('unsupported', place.path, `more than ${MAX_SCHEMA_DEPTH} $refs in a row`);
    if (refs.includes(ref)) {
      throw new Unrepresentable('unsupported', place.path, `recursive schema: $ref '${ref}' refers to itself (through ${[...refs.slice(refs.indexOf(ref)), ref].join(' → ')}); a recursive schema cannot be inlined`);
    }
    refs = [...refs, ref];
    const target = toSchemaObject(resolvePointer(w.root, ref, place.path), place.path);
    const { $ref: _ref, ...siblings } = node;
    const merged: JsonSchema = { ...target };
    for (const [key, value] of Object.entries(siblings)) {
      if (has(target, key) && !ANNOTATIONS.has(key) && key !== '$defs' && key !== 'definitions') {
        throw new Unrepresentable('unsupported', place.path, `'${key}' next to $ref '${ref}' that also has '${key}': both apply, which cannot be inlined`);
      }
      put(merged, key, value);
    }
    node = merged;
  }
  if (typeof node.$ref !== 'undefined') throw new Unrepresentable('unsupported', place.path, '$ref must be a string');
  for (const key of ['$dynamicRef', '$recursiveRef']) {
    if (has(node, key)) throw new Unrepresentable('unsupported', place.path, `${key} is not supported (dynamic references cannot be inlined)`);
  }
  return { node, refs };
}

function toSchemaObject(input: unknown, path: string): JsonSchema {
  if (input === true) return {};
  if (input === false) throw new Unrepresentable('unsupported', path, 'a `false` schema (no value is valid) cannot be declared');
  if (!isObject(input)) throw new Unrepresentable('unsupported', path, `not a schema object (${Array.isArray(input) ? 'array' : typeof input})`);
  return input;
}

/**
 * Merges `allOf` into its parent when that keeps the meaning exactly: every part's keywords are disjoint from
 * the others', except `properties` (merged when no property is in two parts) and `required` (united), and no part
 * has `additionalProperties` (which would see only its own `properties`). Otherwise `unsupported`.
 */
function mergeAllOf(w: Walk, node: JsonSchema, place: Place): { node: JsonSchema; refs: readonly string[] } {
  let refs = place.refs;
  if (node.allOf === undefined) return { node, refs };
  if (!Array.isArray(node.allOf)) throw new Unrepresentable('unsupported', place.path, `'allOf' must be an array`);
  const { allOf, ...rest } = node;
  const parts: { schema: JsonSchema; path: string }[] = [{ schema: rest, path: place.path }];
  allOf.forEach((part, i) => {
    const partPlace = { ...place, path: at(place.path, 'allOf', i), refs: place.refs, depth: place.depth + 1 };
    const resolved = deref(w, part, partPlace);
    const inner = mergeAllOf(w, resolved.node, { ...partPlace, refs: resolved.refs });
    if (inner.refs.length > refs.length) refs = inner.refs;
    parts.push({ schema: inner.node, path: partPlace.path });
  });
  // additionalProperties sees only the properties of its own part; merged, it would see every part's.
  const objectParts = parts.filter((p) => has(p.schema, 'properties') || has(p.schema, 'additionalProperties') || has(p.schema, 'patternProperties'));
  const withAdditional = objectParts.find((p) => has(p.schema, 'additionalProperties') || has(p.schema, 'patternProperties'));
  if (withAdditional && objectParts.length > 1) {
    throw new Unrepresentable('unsupported', withAdditional.path, 'allOf: a part with additionalProperties cannot be merged with other parts that have properties');
  }
  let merged: JsonSchema = {};
  for (const part of parts) merged = mergeTwo(merged, part.schema, part.path);
  return { node: merged, refs };
}

function mergeTwo(a: JsonSchema, b: JsonSchema, path: string): JsonSchema {
  const out: JsonSchema = { ...a };
  for (const [key, value] of Object.entries(b)) {
    if (!has(out, key)) {
      put(out, key, value);
    } else if (key === 'properties' && isObject(out.properties) && isObject(value)) {
      const clash = Object.keys(value).find((p) => has(out.properties as JsonSchema, p));
      if (clash !== undefined) throw new Unrepresentable('unsupported', path, `allOf: property '${clash}' is defined in two parts; merging them is not supported`);
      out.properties = { ...out.properties, ...value };
    } else if (key === 'required' && Array.isArray(out.required) && Array.isArray(value)) {
      out.required = [...new Set([...(out.required as unknown[]), ...value])];
    } else if (ANNOTATIONS.has(key) || key === '$defs' || key === 'definitions' || JSON.stringify(out[key]) === JSON.stringify(value)) {
      // Annotations: the outer one stays; identical values: nothing to merge.
    } else {
      throw new Unrepresentable('unsupported', path, `allOf: '${key}' appears in two parts with different values; merging them is not supported`);
    }
  }
  return out;
}

/** The JSON types a node's `type` names (`undefined` when it has none). */
function typesOf(node: JsonSchema, path: string): string[] | undefined {
  const t = node.type;
  if (t === undefined) return undefined;
  const list = Array.isArray(t) ? t : [t];
  if (list.length === 0 || !list.every((x) => typeof x === 'string')) throw new Unrepresentable('unsupported', path, `'type' must be a string or a non-empty array of strings`);
  return [...new Set(list as string[])];
}

/** The `type` keyword for a list of types: a string for one, an array for several. */
const typeValue = (types: string[]) => (types.length === 1 ? types[0]! : types);

// ---- JSON Schema dialects (json-schema, openai) ---------------------------------------------------------

const DROP_JSON = new Set(['$schema', '$id', '$defs', 'definitions', 'nullable']);

function toJsonSchema(w: Walk, input: unknown, place: Place, dialect: 'json-schema' | 'openai'): JsonSchema {
  const { node, refs } = deref(w, input, place);
  const here = { ...place, refs };
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(node)) {
    if (DROP_JSON.has(key)) continue;
    if (SCHEMA_MAPS.includes(key) && isObject(value)) {
      put(out, key, Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toJsonSchema(w, v, { ...here, path: at(place.path, key, k), depth: place.depth + 1 }, dialect)])));
    } else if (SCHEMA_ONE.includes(key) && (isObject(value) || typeof value === 'boolean')) {
      put(out, key, typeof value === 'boolean' ? value : toJsonSchema(w, value, { ...here, path: at(place.path, key), depth: place.depth + 1 }, dialect));
    } else if ((SCHEMA_LISTS.includes(key) || key === 'items') && Array.isArray(value)) {
      put(out, key, value.map((v, i) => toJsonSchema(w, v, { ...here, path: at(place.path, key, i), depth: place.depth + 1 }, dialect)));
    } else {
      put(out, key, value);
    }
  }
  // OpenAPI's `nullable: true` (some servers send it) is `null` added to the type in JSON Schema.
  if (node.nullable === true) {
    const types = typesOf(node, place.path);
    if (types && !types.includes('null')) out.type = [...types, 'null'];
    else if (!types && Array.isArray(out.anyOf)) out.anyOf = [...out.anyOf, { type: 'null' }];
    if (Array.isArray(out.enum) && !out.enum.includes(null)) out.enum = [...out.enum, null];
  }
  // OpenAI rejects an array schema without `items` ("array schema missing items"); `{}` means the same.
  if (dialect === 'openai' && typesOf(node, place.path)?.includes('array') && out.items === undefined && out.prefixItems === undefined) out.items = {};
  return out;
}

// ---- OpenAI strict mode --------------------------------------------------------------------------------

const notStrict = (path: string, message: string) => new Unrepresentable('not_strict', path, message);

/** Whether a strict-mode schema already lets `null` through (then `null` cannot also mean "absent"). */
function acceptsNull(s: JsonSchema): boolean {
  const t = s.type;
  if (t === 'null' || (Array.isArray(t) && t.includes('null'))) return true;
  if (Array.isArray(s.enum) && s.enum.includes(null)) return true;
  if (has(s, 'const') && s.const === null) return true;
  return Array.isArray(s.anyOf) && s.anyOf.some((b) => isObject(b) && acceptsNull(b));
}

/** An optional property made required: `null` added to what it accepts. */
function withNull(s: JsonSchema): JsonSchema {
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
    const out: JsonSchema = { ...s, type: [...types, 'null'] };
    if (Array.isArray(s.enum)) out.enum = [...s.enum, null];
    if (has(s, 'const')) {
      delete out.const;
      out.enum = [s.const, null];
    }
    return out;
  }
  if (Array.isArray(s.anyOf)) return { ...s, anyOf: [...s.anyOf, { type: 'null' }] };
  if (Array.isArray(s.enum)) return { ...s, enum: [...s.enum, null] };
  if (has(s, 'const')) {
    const { const: value, ...rest } = s;
    return { ...rest, enum: [value, null] };
  }
  const { description, ...rest } = s;
  return { ...(description === undefined ? {} : { description }), anyOf: [rest, { type: 'null' }] };
}

function toStrict(w: Walk, input: unknown, place: Place): JsonSchema {
  if (place.depth > OPENAI_STRICT_LIMITS.maxDepth) throw notStrict(place.path, `nested more than ${OPENAI_STRICT_LIMITS.maxDepth} levels deep`);
  const first = deref(w, input, place);
  const { node, refs } = mergeAllOf(w, first.node, { ...place, refs: first.refs });
  const here = { ...place, refs };
  const isRoot = place.path === '';
  let types = typesOf(node, place.path);
  if (node.nullable === true) types = types ? [...new Set([...types, 'null'])] : types;
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === 'description') out.description = value;
    else if (key === 'nullable' || key === 'type' || key === 'properties' || key === 'required' || key === 'additionalProperties') continue;
    else if (key === 'enum') {
      if (!Array.isArray(value)) throw notStrict(place.path, `'enum' must be an array`);
      w.strictEnumValues += value.length;
      out.enum = node.nullable === true && !value.includes(null) ? [...value, null] : value;
    } else if (key === 'const') out.const = value;
    else if (key === 'anyOf') {
      if (isRoot) throw notStrict(place.path, 'the root schema may not be anyOf');
      if (!Array.isArray(value)) throw notStrict(place.path, `'anyOf' must be an array`);
      out.anyOf = value.map((v, i) => toStrict(w, v, { ...here, path: at(place.path, 'anyOf', i), args: undefined, depth: place.depth + 1 }));
    } else if (key === 'items') {
      if (!isObject(value) && value !== true) throw notStrict(place.path, 'tuple `items` (an array of schemas) is not supported in strict mode');
      out.items = toStrict(w, value, { ...here, path: at(place.path, 'items'), args: place.args && [...place.args, null], depth: place.depth + 1 });
    } else if (key === 'format') {
      if (typeof value !== 'string' || !OPENAI_STRICT_LIMITS.formats.has(value)) throw notStrict(place.path, `format '${String(value)}' is not supported in strict mode`);
      out.format = value;
    } else if (OPENAI_STRICT_LIMITS.keywords.has(key)) out[key] = value;
    else if (ANNOTATIONS.has(key) || key === '$defs' || key === 'definitions') continue;
    else throw notStrict(place.path, `'${key}' is not supported in strict mode`);
  }
  if (types === undefined && !has(out, 'enum') && !has(out, 'const') && !has(out, 'anyOf')) {
    if (!isRoot) throw notStrict(place.path, 'a schema without a type (any value) is not supported in strict mode');
    types = ['object'];
  }
  if (types !== undefined) out.type = typeValue(types);
  if (isRoot && typeValue(types ?? []) !== 'object') throw notStrict(place.path, "the root schema must be of type 'object'");
  if (types?.includes('object')) strictObject(w, node, out, here, isRoot);
  if (types?.includes('array') && out.items === undefined) throw notStrict(place.path, 'an array without items is not supported in strict mode');
  if (w.strictEnumValues > OPENAI_STRICT_LIMITS.maxEnumValues) throw notStrict(place.path, `more than ${OPENAI_STRICT_LIMITS.maxEnumValues} enum values in all`);
  return out;
}

/** Strict mode's object rules: known properties only, all of them required; optional ones become nullable. */
function strictObject(w: Walk, node: JsonSchema, out: JsonSchema, place: Place, isRoot: boolean): void {
  const additional = node.additionalProperties;
  if (additional !== undefined && additional !== false) throw notStrict(place.path, 'additionalProperties other than false (a map of free keys) is not supported in strict mode');
  if (node.properties === undefined && !isRoot) throw notStrict(place.path, 'an object without properties (any keys) is not supported in strict mode');
  const properties = node.properties ?? {};
  if (!isObject(properties)) throw notStrict(place.path, `'properties' must be an object`);
  const required = new Set(Array.isArray(node.required) ? (node.required as unknown[]) : []);
  for (const name of required) {
    if (typeof name !== 'string' || !has(properties, name)) throw notStrict(place.path, `required property '${String(name)}' is not in properties`);
  }
  w.strictProperties += Object.keys(properties).length;
  if (w.strictProperties > OPENAI_STRICT_LIMITS.maxProperties) throw notStrict(place.path, `more than ${OPENAI_STRICT_LIMITS.maxProperties} object properties in all`);
  const converted: JsonSchema = {};
  for (const [name, sub] of Object.entries(properties)) {
    const subPlace: Place = { ...place, path: at(place.path, 'properties', name), args: place.args && [...place.args, name], depth: place.depth + 1 };
    let schema = toStrict(w, sub, subPlace);
    if (!required.has(name)) {
      if (place.args === undefined) throw notStrict(subPlace.path, 'an optional property inside anyOf cannot be made required-and-nullable (which branch a null belongs to is ambiguous)');
      if (acceptsNull(schema)) throw notStrict(subPlace.path, 'an optional property that also accepts null: null cannot stand for "absent"');
      schema = withNull(schema);
      w.omitNulls.push(subPlace.args!);
    }
    put(converted, name, schema);
  }
  out.properties = converted;
  out.required = Object.keys(properties);
  out.additionalProperties = false;
}

// ---- Gemini --------------------------------------------------------------------------------------------

const GEMINI_TYPES: Record<string, string> = { string: 'STRING', number: 'NUMBER', integer: 'INTEGER', boolean: 'BOOLEAN', array: 'ARRAY', object: 'OBJECT' };
/** Which type each type-specific keyword applies to (for splitting a multi-type schema into anyOf branches). */
const KEYWORD_TYPE: Record<string, string[]> = {
  format: ['string', 'number', 'integer'],
  minLength: ['string'],
  maxLength: ['string'],
  pattern: ['string'],
  minimum: ['number', 'integer'],
  maximum: ['number', 'integer'],
  exclusiveMinimum: ['number', 'integer'],
  exclusiveMaximum: ['number', 'integer'],
  multipleOf: ['number', 'integer'],
  items: ['array'],
  prefixItems: ['array'],
  minItems: ['array'],
  maxItems: ['array'],
  uniqueItems: ['array'],
  contains: ['array'],
  properties: ['object'],
  required: ['object'],
  additionalProperties: ['object'],
  patternProperties: ['object'],
  minProperties: ['object'],
  maxProperties: ['object'],
  propertyNames: ['object'],
};
const geminiType = (type: string): string | undefined => (has(GEMINI_TYPES, type) ? GEMINI_TYPES[type] : undefined);
/** Gemini fields copied as they are (their values are not schemas). */
const GEMINI_COPY = new Set(['title', 'description', 'default', 'minItems', 'maxItems', 'minProperties', 'maxProperties', 'minLength', 'maxLength', 'pattern', 'minimum', 'maximum', 'example', 'propertyOrdering']);

function relax(w: Walk, path: string, message: string): void {
  w.issues.push({ kind: 'relaxed', path, message });
}

function describe(value: unknown): string {
  const text = JSON.stringify(value);
  return text.length > 200 ? `${text.slice(0, 199)}…` : text;
}

function toGemini(w: Walk, input: unknown, place: Place): JsonSchema {
  const first = deref(w, input, place);
  const merged = mergeAllOf(w, first.node, { ...place, refs: first.refs });
  const here = { ...place, refs: merged.refs };
  let node = merged.node;
  let nullable = node.nullable === true;
  let types = typesOf(node, place.path);
  if (types?.includes('null')) {
    nullable = true;
    types = types.filter((t) => t !== 'null');
    if (types.length === 0) throw new Unrepresentable('unsupported', place.path, "type 'null' alone cannot be declared for Gemini (it has no null type)");
  }
  // Several types: one anyOf branch per type, each with the keywords that apply to it.
  if (types && types.length > 1) {
    const { type: _type, nullable: _nullable, description, title, default: dflt, ...rest } = node;
    const branches = types.map((t) => ({ type: t, ...Object.fromEntries(Object.entries(rest).filter(([k]) => !has(KEYWORD_TYPE, k) || KEYWORD_TYPE[k]!.includes(t))) }));
    node = { ...(description === undefined ? {} : { description }), ...(title === undefined ? {} : { title }), ...(dflt === undefined ? {} : { default: dflt }), anyOf: branches };
    types = undefined;
  }
  const out: JsonSchema = {};
  const notes: string[] = [];
  const drop = (key: string, value: unknown, why: string) => {
    relax(w, at(place.path, key), `${why}: '${key}' removed, kept in the description`);
    notes.push(`${key}: ${describe(value)}`);
  };
  for (const [key, value] of Object.entries(node)) {
    if (key === 'type' || key === 'nullable' || key === '$defs' || key === 'definitions' || key === '$schema' || key === '$id') continue;
    if (GEMINI_COPY.has(key)) put(out, key, value);
    else if (key === 'enum' || key === 'const') {
      const values = key === 'enum' ? (Array.isArray(value) ? value : []) : [value];
      if (values.includes(null)) nullable = true;
      const rest = values.filter((v) => v !== null);
      if (rest.every((v) => typeof v === 'string')) out.enum = rest;
      else drop(key, value, 'Gemini enum values must be strings');
    } else if (key === 'format') {
      const gType = types?.length === 1 ? geminiType(types[0]!) : undefined;
      if (typeof value === 'string' && gType && GEMINI_SCHEMA_LIMITS.formats[gType]?.has(value)) out.format = value;
      else drop(key, value, `format '${String(value)}' is not one Gemini accepts for this type`);
    } else if (key === 'properties') {
      if (!isObject(value)) throw new Unrepresentable('unsupported', place.path, `'properties' must be an object`);
      out.properties = Object.fromEntries(
        Object.entries(value).map(([name, sub]) => [name, toGemini(w, sub, { ...here, path: at(place.path, 'properties', name), depth: place.depth + 1 })]),
      );
    } else if (key === 'required') {
      out.required = value;
    } else if (key === 'items') {
      if (!isObject(value) && value !== true) throw new Unrepresentable('unsupported', place.path, 'tuple `items` (an array of schemas) cannot be declared for Gemini');
      out.items = toGemini(w, value, { ...here, path: at(place.path, 'items'), depth: place.depth + 1 });
    } else if (key === 'anyOf' || key === 'oneOf') {
      if (!Array.isArray(value)) throw new Unrepresentable('unsupported', place.path, `'${key}' must be an array`);
      if (key === 'oneOf') relax(w, at(place.path, key), "oneOf sent as anyOf (Gemini has no oneOf; the 'exactly one' part is not expressed)");
      const branches: JsonSchema[] = [];
      value.forEach((b, i) => {
        const bPlace = { ...here, path: at(place.path, key, i), depth: place.depth + 1 };
        const resolved = deref(w, b, bPlace).node;
        if (resolved.type === 'null' && Object.keys(resolved).every((k) => k === 'type' || ANNOTATIONS.has(k))) nullable = true;
        else branches.push(toGemini(w, b, bPlace));
      });
      out.anyOf = [...((out.anyOf as JsonSchema[] | undefined) ?? []), ...branches];
    } else if (key === 'additionalProperties' && value === false) {
      // Gemini has no additionalProperties; the model is given the declared properties only, and the MCP
      // server still rejects others, so `false` is dropped without a note.
    } else if (key === 'examples') {
      if (Array.isArray(value) && value.length > 0 && out.example === undefined) out.example = value[0];
    } else if (ANNOTATIONS.has(key)) {
      continue;
    } else if (key === 'prefixItems') {
      throw new Unrepresentable('unsupported', place.path, 'tuples (prefixItems) cannot be declared for Gemini');
    } else {
      drop(key, value, 'not a field of Gemini\'s Schema');
    }
  }
  // A single anyOf branch is the schema itself.
  if (Array.isArray(out.anyOf) && out.anyOf.length === 1 && types === undefined) {
    const [only] = out.anyOf as JsonSchema[];
    delete out.anyOf;
    for (const [k, v] of Object.entries(only!)) if (!has(out, k)) put(out, k, v);
  }
  if (types === undefined && out.type === undefined && out.anyOf === undefined) {
    if (Array.isArray(out.enum)) types = ['string'];
    else if (out.properties !== undefined) types = ['object'];
    else throw new Unrepresentable('unsupported', place.path, 'a schema without a type (any value) cannot be declared for Gemini');
  }
  if (types !== undefined) {
    const gType = geminiType(types[0]!);
    if (gType === undefined) throw new Unrepresentable('unsupported', place.path, `unknown type '${types[0]}'`);
    out.type = gType;
    if (gType === 'ARRAY' && out.items === undefined) throw new Unrepresentable('unsupported', place.path, 'an array without items (of any type) cannot be declared for Gemini');
  }
  if (Array.isArray(out.required) && isObject(out.properties)) {
    const missing = (out.required as unknown[]).filter((r) => typeof r !== 'string' || !has(out.properties as JsonSchema, r));
    if (missing.length > 0) {
      out.required = (out.required as unknown[]).filter((r) => !missing.includes(r));
      drop('required', missing, 'required lists a property that is not declared');
    }
  }
  if (nullable) out.nullable = true;
  if (notes.length > 0) out.description = [typeof out.description === 'string' ? out.description : '', `(${notes.join('; ')})`].filter(Boolean).join(' ');
  return out;
}

// ---- entry points --------------------------------------------------------------------------------------

/**
 * Normalises an MCP tool's `inputSchema` for one API (see {@link SchemaDialect}). Pure: the input is not
 * changed.
 *
 * Common to every dialect: local `$ref`s (`#`, `#/$defs/…`, `#/definitions/…`, any `#/…` pointer) are inlined
 * and `$defs`/`definitions` removed; a `$ref` to itself or an ancestor is recursion, refused as `unsupported`;
 * a remote `$ref` or an anchor too. A missing schema is `{ type: 'object', properties: {} }`. The root must be
 * an object schema, not `anyOf`/`oneOf` (OpenAI, Anthropic and Gemini all require it); a root `allOf` is merged
 * when that keeps its meaning. A schema nested more than 64 levels deep (or with more than 64 `$ref`s in a row)
 * is `unsupported`. Property names are kept exactly, including ones such as `__proto__` or `constructor`.
 *
 * @example
 * ```ts
 * const { schema, issues, omitNulls } = normalizeInputSchema(
 *   { type: 'object', properties: { path: { type: 'string' }, head: { type: 'number' } }, required: ['path'] },
 *   'openai-strict',
 * );
 * // schema.properties.head: { type: ['number', 'null'] }, required: ['path', 'head'], additionalProperties: false
 * // omitNulls: [['head']]
 * ```
 */
export function normalizeInputSchema(inputSchema: unknown, dialect: SchemaDialect): NormalizedSchema {
  const source = inputSchema === undefined || inputSchema === null ? { type: 'object', properties: {} } : inputSchema;
  const w: Walk = { root: isObject(source) ? source : {}, issues: [], omitNulls: [], nodes: 0, strictProperties: 0, strictEnumValues: 0 };
  const place: Place = { path: '', refs: [], args: [], depth: 0 };
  try {
    const root = rootSchema(w, source, place);
    let schema: JsonSchema;
    if (dialect === 'openai-strict') schema = toStrict(w, root, place);
    else if (dialect === 'gemini') schema = toGemini(w, root, place);
    else schema = toJsonSchema(w, root, place, dialect);
    if (dialect === 'openai' && schema.properties === undefined) schema.properties = {};
    return { schema, issues: w.issues, omitNulls: w.omitNulls };
  } catch (err) {
    // A value nested deeper than the stack allows (e.g. in a `default`, which is not walked level by level).
    if (err instanceof RangeError) return { schema: undefined, issues: [...w.issues, { kind: 'unsupported', path: '', message: 'the schema is nested too deeply to convert' }], omitNulls: [] };
    if (!(err instanceof Unrepresentable)) throw err;
    return { schema: undefined, issues: [...w.issues, { kind: err.kind, path: err.path, message: err.message }], omitNulls: [] };
  }
}

/** The root as an object schema: `$ref` and `allOf` resolved, no `anyOf`/`oneOf`, `type` object (added if absent). */
function rootSchema(w: Walk, source: unknown, place: Place): JsonSchema {
  const first = deref(w, source, place);
  const { node } = mergeAllOf(w, first.node, { ...place, refs: first.refs });
  for (const key of ['anyOf', 'oneOf']) {
    if (has(node, key)) throw new Unrepresentable('unsupported', place.path, `the root schema may not use ${key} (the APIs take a single object schema)`);
  }
  const types = typesOf(node, place.path);
  if (types !== undefined && (types.length !== 1 || types[0] !== 'object')) {
    throw new Unrepresentable('unsupported', place.path, `the root schema must be of type 'object', not ${JSON.stringify(node.type)}`);
  }
  // $defs/definitions stay reachable from the original root (w.root) for the $refs below.
  return { ...node, type: 'object' };
}

/**
 * Undoes strict mode's "optional as nullable" for one tool call: removes each property at `omitNulls` whose
 * value is `null`, so the MCP server sees the property absent, as its schema expects. Returns a copy; `args` is
 * not changed. Paths that do not match the arguments' shape are ignored.
 *
 * @example
 * ```ts
 * restoreToolArguments({ path: '/a.txt', head: null }, [['head']]); // { path: '/a.txt' }
 * ```
 */
export function restoreToolArguments(args: Record<string, unknown>, omitNulls: readonly ArgumentPath[] | undefined): Record<string, unknown> {
  if (!omitNulls || omitNulls.length === 0) return args;
  const copy = structuredClone(args);
  const remove = (value: unknown, path: ArgumentPath, i: number): void => {
    const segment = path[i];
    if (segment === null) {
      if (Array.isArray(value)) for (const item of value) remove(item, path, i + 1);
      return;
    }
    if (segment === undefined || !isObject(value)) return;
    if (i === path.length - 1) {
      if (Object.hasOwn(value, segment) && value[segment] === null) delete value[segment];
    } else if (Object.hasOwn(value, segment)) remove(value[segment], path, i + 1);
  };
  for (const path of omitNulls) remove(copy, path, 0);
  return copy;
}
