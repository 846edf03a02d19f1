/**
 * One JSON Schema validator for every connection's SDK `Client`, instead of the ajv instance (~19 KB of heap)
 * each `Client` builds for itself. Compiled schemas (tool output schemas) are kept in a bounded LRU cache keyed
 * by the schema's JSON, so servers that list the same tools share one compiled validator, and a server that
 * lists ever-new schemas cannot grow it past its bound. Nothing is created at import: the default instance is
 * made on first use.
 * @module
 */
import { LRUCache } from 'lru-cache';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv';
import type { JsonSchemaType, JsonSchemaValidator, jsonSchemaValidator } from '@modelcontextprotocol/sdk/validation';

/** Default bound on compiled schemas kept by {@link createSchemaValidator}. */
const DEFAULT_MAX_SCHEMAS = 1_000;
/** A schema whose JSON is longer than this is compiled but not cached (it would hold its text as the key). */
const DEFAULT_MAX_CACHED_SCHEMA_CHARS = 64 * 1024;

/**
 * Options of {@link createSchemaValidator}.
 *
 * @example
 * ```ts
 * const opts: SchemaValidatorOptions = { maxSchemas: 200 };
 * ```
 */
export interface SchemaValidatorOptions {
  /** Most compiled schemas kept; the least recently used goes first (default 1 000). */
  maxSchemas?: number;
  /** Schemas whose JSON is longer than this many characters are compiled every time, not cached (default 65 536). */
  maxCachedSchemaChars?: number;
}

/** The part of ajv used to forget a schema once compiled (reached through the SDK's validator). */
interface AjvLike {
  removeSchema(schema: object): unknown;
  refs?: Record<string, unknown>;
  schemas?: Record<string, unknown>;
}

/**
 * Creates a JSON Schema validator to share between SDK `Client`s (their `jsonSchemaValidator` option): one
 * ajv compiler (the SDK's own `AjvJsonSchemaValidator`, same options and error messages as a `Client`'s
 * default), and an LRU cache of compiled schemas keyed by the schema's JSON, bounded by count.
 *
 * Each schema is compiled from a private copy and then removed from ajv's registry, so two servers whose
 * schemas share an `$id` but differ never get each other's validator. ajv's code generator still keeps every
 * schema it compiled: the compiler is replaced after `maxSchemas` compilations, so what is held is bounded by
 * the cache (whose validators span at most two compilers) and by the open clients' own tools, not by the
 * number of schemas ever seen. A schema that fails to compile throws, as with the SDK's default, and is not
 * cached.
 *
 * @example
 * ```ts
 * import { Client } from '@modelcontextprotocol/sdk/client/index.js';
 * const validator = createSchemaValidator({ maxSchemas: 500 });
 * const a = new Client({ name: 'a', version: '1.0.0' }, { capabilities: {}, jsonSchemaValidator: validator });
 * const b = new Client({ name: 'b', version: '1.0.0' }, { capabilities: {}, jsonSchemaValidator: validator });
 * ```
 */
export function createSchemaValidator(opts: SchemaValidatorOptions = {}): jsonSchemaValidator {
  const max = opts.maxSchemas ?? DEFAULT_MAX_SCHEMAS;
  const maxChars = opts.maxCachedSchemaChars ?? DEFAULT_MAX_CACHED_SCHEMA_CHARS;
  if (!Number.isInteger(max) || max < 1) throw new TypeError('createSchemaValidator: maxSchemas must be a whole number >= 1');
  if (!Number.isInteger(maxChars) || maxChars < 0) throw new TypeError('createSchemaValidator: maxCachedSchemaChars must be a whole number >= 0');
  const cache = new LRUCache<string, JsonSchemaValidator<unknown>>({ max });
  let compiler: AjvJsonSchemaValidator | undefined;
  let compiledByCompiler = 0;

  /** Compiles `schema` (a private copy, unless it has no JSON) and leaves nothing of it registered in ajv. */
  const compile = <T>(schema: JsonSchemaType, json: string | undefined): JsonSchemaValidator<T> => {
    // ajv keeps every schema it ever compiled in its code-generation scope, whatever removeSchema does: a
    // compiler is replaced after `max` compilations, so that it is freed once its validators leave the cache.
    if (!compiler || compiledByCompiler >= max) {
      compiler = new AjvJsonSchemaValidator();
      compiledByCompiler = 0;
    }
    compiledByCompiler++;
    const ajv = (compiler as unknown as { _ajv?: Partial<AjvLike> })._ajv;
    if (typeof ajv?.removeSchema !== 'function') {
      // An SDK whose validator no longer exposes its ajv: a compiler of its own per schema is still correct and
      // bounded (by the cache), only larger.
      return new AjvJsonSchemaValidator().getValidator<T>(schema);
    }
    // A schema with `$id`s registers them in ajv (nested absolute ones as well): note what was there before,
    // so that exactly what this compile added is removed (a built-in meta-schema id, say, is left alone).
    const before = json === undefined || json.includes('"$id"') ? new Set([...Object.keys(ajv.refs ?? {}), ...Object.keys(ajv.schemas ?? {})]) : undefined;
    try {
      return compiler.getValidator<T>(schema);
    } finally {
      if (typeof schema === 'object' && schema !== null) {
        const id = (schema as { $id?: unknown }).$id;
        const preexisting = before !== undefined && typeof id === 'string' && (before.has(id) || before.has(id.replace(/#$/, '')));
        if (!preexisting) ajv.removeSchema(schema);
        if (before && ajv.refs) for (const ref of Object.keys(ajv.refs)) if (!before.has(ref)) delete ajv.refs[ref];
      }
    }
  };

  return {
    getValidator<T>(schema: JsonSchemaType): JsonSchemaValidator<T> {
      let json: string | undefined;
      try {
        json = JSON.stringify(schema);
      } catch {
        json = undefined;
      }
      if (json === undefined) return compile<T>(schema, undefined);
      const hit = cache.get(json);
      if (hit) return hit as JsonSchemaValidator<T>;
      const validator = compile<T>(JSON.parse(json) as JsonSchemaType, json);
      if (json.length <= maxChars) cache.set(json, validator as JsonSchemaValidator<unknown>);
      return validator;
    },
  };
}

let defaultValidator: jsonSchemaValidator | undefined;

/**
 * The validator shared by every connection that is not given one: created by {@link createSchemaValidator}
 * (default bounds) on the first call, never at import; the same object on every later call.
 *
 * @example
 * ```ts
 * const client = new Client(clientInfo, { capabilities: {}, jsonSchemaValidator: defaultSchemaValidator() });
 * ```
 */
export function defaultSchemaValidator(): jsonSchemaValidator {
  defaultValidator ??= createSchemaValidator();
  return defaultValidator;
}
