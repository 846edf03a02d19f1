/**
 * `mcp-switchboard/adapters`, the parts under the tool converters: input-schema normalisation per API
 * (`normalizeInputSchema`), strict mode's nulls undone (`restoreToolArguments`) and model-facing names
 * (`assignToolNames`). The per-API output checks over real tool lists are in adapters.tools.test.ts.
 */
import { GEMINI_NAME_RULES, OPENAI_NAME_RULES } from '../../src/adapters/constraints.js';
import { assignToolNames, toolNameHash } from '../../src/adapters/names.js';
import { normalizeInputSchema, restoreToolArguments, type JsonSchema } from '../../src/adapters/schema.js';

const obj = (properties: JsonSchema, required: string[] = [], extra: JsonSchema = {}): JsonSchema => ({ type: 'object', properties, required, ...extra });

describe('normalizeInputSchema: $ref and structure (every dialect)', () => {
  const withRefs = {
    type: 'object',
    properties: {
      start: { $ref: '#/$defs/when' },
      end: { $ref: '#/$defs/when', description: 'When it ends' },
      who: { type: 'array', items: { $ref: '#/definitions/person' } },
      deep: { $ref: '#/properties/start' },
    },
    required: ['start'],
    $defs: { when: { type: 'string', format: 'date-time', description: 'A time' } },
    definitions: { person: { type: 'object', properties: { email: { type: 'string' } }, required: ['email'] } },
  };

  it.each(['json-schema', 'openai', 'openai-strict', 'gemini'] as const)('%s: inlines local $refs ($defs, definitions, any pointer) and drops the definitions', (dialect) => {
    const { schema, issues } = normalizeInputSchema(withRefs, dialect);
    expect(schema).toBeDefined();
    const text = JSON.stringify(schema);
    expect(text).not.toContain('$ref');
    expect(text).not.toContain('$defs');
    expect(text).not.toContain('definitions');
    const props = schema!.properties as Record<string, JsonSchema>;
    expect(props.end!.description).toBe('When it ends'); // the referring side's annotation wins
    expect(props.start!.description).toBe('A time');
    expect(issues.filter((i) => i.kind !== 'relaxed')).toEqual([]);
  });

  it('does not change its input', () => {
    const before = JSON.stringify(withRefs);
    for (const d of ['json-schema', 'openai', 'openai-strict', 'gemini'] as const) normalizeInputSchema(withRefs, d);
    expect(JSON.stringify(withRefs)).toBe(before);
  });

  it.each(['json-schema', 'openai', 'openai-strict', 'gemini'] as const)('%s: refuses recursion with a clear message and its path', (dialect) => {
    const tree = { type: 'object', properties: { root: { $ref: '#/$defs/node' } }, $defs: { node: { type: 'object', properties: { kids: { type: 'array', items: { $ref: '#/$defs/node' } } } } } };
    const { schema, issues } = normalizeInputSchema(tree, dialect);
    expect(schema).toBeUndefined();
    expect(issues).toEqual([
      { kind: 'unsupported', path: '/properties/root/properties/kids/items', message: expect.stringMatching(/recursive schema: \$ref '#\/\$defs\/node' refers to itself/) },
    ]);
  });

  it('refuses a $ref to the root itself, a remote $ref, an anchor and an unresolvable pointer', () => {
    const cases: [JsonSchema, RegExp][] = [
      [obj({ self: { $ref: '#' } }), /recursive schema/],
      [obj({ x: { $ref: 'https://example.com/s.json' } }), /not local/],
      [obj({ x: { $ref: '#anchor' } }), /anchor/],
      [obj({ x: { $ref: '#/$defs/missing' } }), /does not resolve/],
    ];
    for (const [schema, message] of cases) {
      const out = normalizeInputSchema(schema, 'json-schema');
      expect(out.schema).toBeUndefined();
      expect(out.issues[0]!.message).toMatch(message);
    }
  });

  it('a missing schema is an object without properties; the root gets type object', () => {
    expect(normalizeInputSchema(undefined, 'openai').schema).toEqual({ type: 'object', properties: {} });
    expect(normalizeInputSchema({ properties: { a: { type: 'string' } } }, 'json-schema').schema).toEqual({ type: 'object', properties: { a: { type: 'string' } } });
  });

  it('refuses a root anyOf/oneOf or a non-object root, and merges a root allOf when the meaning is kept', () => {
    expect(normalizeInputSchema({ anyOf: [obj({})] }, 'json-schema').issues[0]!.message).toMatch(/root schema may not use anyOf/);
    expect(normalizeInputSchema({ type: 'string' }, 'json-schema').issues[0]!.message).toMatch(/must be of type 'object'/);
    const merged = normalizeInputSchema({ allOf: [obj({ a: { type: 'string' } }, ['a']), { properties: { b: { type: 'boolean' } }, required: ['b'] }] }, 'json-schema');
    expect(merged.schema).toEqual({ type: 'object', properties: { a: { type: 'string' } , b: { type: 'boolean' } }, required: ['a', 'b'] });
    const clash = normalizeInputSchema({ allOf: [obj({ a: { type: 'string' } }), obj({ a: { type: 'number' } })] }, 'json-schema');
    expect(clash.issues[0]!.message).toMatch(/property 'a' is defined in two parts/);
    const closed = normalizeInputSchema({ allOf: [obj({ a: { type: 'string' } }, [], { additionalProperties: false }), obj({ b: { type: 'string' } })] }, 'json-schema');
    expect(closed.issues[0]!.message).toMatch(/additionalProperties cannot be merged/);
  });

  it('openai: every array gets items, OpenAPI nullable becomes a type array', () => {
    const { schema } = normalizeInputSchema(obj({ tags: { type: 'array' }, n: { type: 'number', nullable: true } }), 'openai');
    expect(schema!.properties).toEqual({ tags: { type: 'array', items: {} }, n: { type: ['number', 'null'] } });
  });
});

describe('normalizeInputSchema: OpenAI strict mode', () => {
  it('requires every property, optional ones as nullable, objects closed, and lists where null means absent', () => {
    const input = obj(
      {
        path: { type: 'string' },
        head: { type: 'number', description: 'first N lines' },
        mode: { type: 'string', enum: ['a', 'b'] },
        kind: { const: 'x' },
        edits: { type: 'array', items: obj({ oldText: { type: 'string' }, dryRun: { type: 'boolean' } }, ['oldText']) },
      },
      ['path', 'edits'],
    );
    const { schema, issues, omitNulls } = normalizeInputSchema(input, 'openai-strict');
    expect(issues).toEqual([]);
    expect(schema).toEqual({
      type: 'object',
      properties: {
        path: { type: 'string' },
        head: { type: ['number', 'null'], description: 'first N lines' },
        mode: { type: ['string', 'null'], enum: ['a', 'b', null] },
        kind: { enum: ['x', null] },
        edits: {
          type: 'array',
          items: { type: 'object', properties: { oldText: { type: 'string' }, dryRun: { type: ['boolean', 'null'] } }, required: ['oldText', 'dryRun'], additionalProperties: false },
        },
      },
      required: ['path', 'head', 'mode', 'kind', 'edits'],
      additionalProperties: false,
    });
    expect(omitNulls).toEqual([['head'], ['mode'], ['kind'], ['edits', null, 'dryRun']]);
  });

  it.each([
    ['an optional property that already accepts null', obj({ a: { type: ['string', 'null'] } }), /null cannot stand for "absent"/],
    ['a free-form map (additionalProperties schema)', obj({ env: { type: 'object', additionalProperties: { type: 'string' } } }, ['env']), /additionalProperties other than false/],
    ['patternProperties', obj({}, [], { patternProperties: { '^x-': { type: 'string' } } }), /'patternProperties' is not supported/],
    ['format uri', obj({ u: { type: 'string', format: 'uri' } }, ['u']), /format 'uri'/],
    ['minLength', obj({ u: { type: 'string', minLength: 1 } }, ['u']), /'minLength' is not supported/],
    ['oneOf', obj({ u: { oneOf: [{ type: 'string' }, { type: 'number' }] } }, ['u']), /'oneOf' is not supported/],
    ['a value of any type', obj({ u: {} }, ['u']), /without a type/],
    ['an optional property inside anyOf', obj({ u: { anyOf: [obj({ a: { type: 'string' } }), { type: 'string' }] } }, ['u']), /inside anyOf/],
    ['an object without properties', obj({ u: { type: 'object' } }, ['u']), /without properties/],
  ])('is not possible with %s', (_label, input, message) => {
    const { schema, issues } = normalizeInputSchema(input, 'openai-strict');
    expect(schema).toBeUndefined();
    expect(issues).toEqual([expect.objectContaining({ kind: 'not_strict', message: expect.stringMatching(message) })]);
  });

  it('keeps required anyOf branches, nested objects closed', () => {
    const { schema } = normalizeInputSchema(obj({ v: { anyOf: [{ type: 'string' }, obj({ c: { type: 'string' } }, ['c'])] } }, ['v']), 'openai-strict');
    expect(schema!.properties).toEqual({ v: { anyOf: [{ type: 'string' }, { type: 'object', properties: { c: { type: 'string' } }, required: ['c'], additionalProperties: false }] } });
  });

  it('refuses more than 10 levels of nesting', () => {
    let deep: JsonSchema = { type: 'string' };
    for (let i = 0; i < 11; i++) deep = obj({ x: deep }, ['x']);
    expect(normalizeInputSchema(deep, 'openai-strict').issues[0]!.message).toMatch(/nested more than 10 levels/);
  });
});

describe('normalizeInputSchema: Gemini', () => {
  it('translates type arrays, nullable, anyOf with null, const and several types', () => {
    const { schema, issues } = normalizeInputSchema(
      obj({
        a: { type: ['string', 'null'] },
        b: { anyOf: [{ type: 'string', enum: ['open', 'closed'] }, { type: 'null' }] },
        c: { const: 'fast' },
        d: { type: ['string', 'integer'], minimum: 1, maxLength: 4 },
        e: { type: 'string', format: 'date-time' },
        f: obj({ g: { type: 'boolean' } }, ['g'], { additionalProperties: false }),
      }),
      'gemini',
    );
    expect(issues).toEqual([]);
    expect(schema).toEqual({
      type: 'OBJECT',
      required: [],
      properties: {
        a: { type: 'STRING', nullable: true },
        b: { type: 'STRING', enum: ['open', 'closed'], nullable: true },
        c: { type: 'STRING', enum: ['fast'] },
        d: { anyOf: [{ type: 'STRING', maxLength: 4 }, { type: 'INTEGER', minimum: 1 }] },
        e: { type: 'STRING', format: 'date-time' },
        f: { type: 'OBJECT', properties: { g: { type: 'BOOLEAN' } }, required: ['g'] },
      },
    });
  });

  it('moves keywords Gemini rejects into the description and reports them as relaxed', () => {
    const { schema, issues } = normalizeInputSchema(
      obj({
        url: { type: 'string', format: 'uri', description: 'Where' },
        n: { type: 'number', exclusiveMinimum: 0 },
        p: { type: 'integer', enum: [1, 2, 3] },
        pick: { oneOf: [{ type: 'string' }, { type: 'number' }] },
      }),
      'gemini',
    );
    const props = schema!.properties as Record<string, JsonSchema>;
    expect(props.url).toEqual({ type: 'STRING', description: 'Where (format: "uri")' });
    expect(props.n).toEqual({ type: 'NUMBER', description: '(exclusiveMinimum: 0)' });
    expect(props.p).toEqual({ type: 'INTEGER', description: '(enum: [1,2,3])' });
    expect(props.pick).toEqual({ anyOf: [{ type: 'STRING' }, { type: 'NUMBER' }] });
    expect(issues.map((i) => [i.kind, i.path])).toEqual([
      ['relaxed', '/properties/url/format'],
      ['relaxed', '/properties/n/exclusiveMinimum'],
      ['relaxed', '/properties/p/enum'],
      ['relaxed', '/properties/pick/oneOf'],
    ]);
  });

  it.each([
    ['a value of any type', obj({ x: {} }), /without a type/],
    ['an array without items', obj({ x: { type: 'array' } }), /array without items/],
    ['a tuple', obj({ x: { type: 'array', prefixItems: [{ type: 'string' }] } }), /tuples/],
    ["type 'null' alone", obj({ x: { type: 'null' } }), /type 'null' alone/],
  ])('cannot declare %s', (_label, input, message) => {
    const { schema, issues } = normalizeInputSchema(input, 'gemini');
    expect(schema).toBeUndefined();
    expect(issues.at(-1)).toEqual(expect.objectContaining({ kind: 'unsupported', message: expect.stringMatching(message) }));
  });
});

describe('restoreToolArguments', () => {
  it('removes nulls at the given paths (through arrays), leaves other values and the input alone', () => {
    const args = { path: '/a', head: null, tail: 0, edits: [{ oldText: 'x', dryRun: null }, { oldText: 'y', dryRun: true }], other: null };
    const out = restoreToolArguments(args, [['head'], ['tail'], ['edits', null, 'dryRun'], ['missing', 'deep']]);
    expect(out).toEqual({ path: '/a', tail: 0, edits: [{ oldText: 'x' }, { oldText: 'y', dryRun: true }], other: null });
    expect(args.head).toBeNull();
    expect(restoreToolArguments(args, undefined)).toBe(args);
  });
});

describe('assignToolNames', () => {
  const req = (serverName: string, toolName: string) => ({ serverName, toolName });

  it('namespaces with the separator and replaces characters the API does not allow', () => {
    expect(assignToolNames([req('files', 'read_file'), req('my server', 'search.files/v2')], OPENAI_NAME_RULES)).toEqual(['files__read_file', 'my_server__search_files_v2']);
    expect(assignToolNames([req('files', 'read_file')], OPENAI_NAME_RULES, { separator: '-' })).toEqual(['files-read_file']);
    expect(assignToolNames([req('files', 'read.file')], GEMINI_NAME_RULES, { separator: '.' })).toEqual(['files.read.file']);
    expect(assignToolNames([req('1files', 'x')], GEMINI_NAME_RULES)).toEqual(['_1files__x']); // a letter or _ first
  });

  it('shortens long names to the limit with a stable hash suffix', () => {
    const long1 = 'a_tool_whose_name_is_definitely_longer_than_sixty_four_characters_number_one';
    const long2 = long1.replace(/one$/, 'two');
    const names = assignToolNames([req('srv', long1), req('srv', long2)], OPENAI_NAME_RULES);
    for (const n of names) expect(n).toMatch(/^[a-zA-Z0-9_-]{1,64}$/);
    expect(names[0]).toBe(`srv__${long1}`.slice(0, 55) + `_${toolNameHash('srv', long1)}`);
    expect(names[0]).not.toBe(names[1]);
    expect(assignToolNames([req('srv', long1), req('srv', long2)], OPENAI_NAME_RULES)).toEqual(names);
  });

  it('resolves collisions by one rule, whatever order the tools come in', () => {
    const tools = [req('b', 'x'), req('a', 'x'), req('c', 'a_b'), req('c', 'a.b')];
    const forward = assignToolNames(tools, OPENAI_NAME_RULES, { namespace: false });
    expect(forward).toEqual([
      `x_${toolNameHash('b', 'x')}`,
      'x', // server 'a' sorts first
      'a_b', // already legal: keeps its name, before 'a.b' (sanitised to a_b) can take it
      `a_b_${toolNameHash('c', 'a.b')}`,
    ]);
    const reversed = assignToolNames([...tools].reverse(), OPENAI_NAME_RULES, { namespace: false }).reverse();
    expect(reversed).toEqual(forward);
  });

  it('tells apart the same tool listed twice by a counter', () => {
    expect(assignToolNames([req('c', 'a.b'), req('c', 'a.b'), req('c', 'a.b')], OPENAI_NAME_RULES, { namespace: false })).toEqual([
      'a_b',
      `a_b_${toolNameHash('c', 'a.b')}`,
      `a_b_${toolNameHash('c', 'a.b')}_2`,
    ]);
  });

  it('rejects a separator that is not a string', () => {
    expect(() => assignToolNames([], OPENAI_NAME_RULES, { separator: 1 as unknown as string })).toThrow(TypeError);
  });
});

describe('normalizeInputSchema: hostile schemas (review regressions)', () => {
  const DIALECTS = ['json-schema', 'openai', 'openai-strict', 'gemini'] as const;
  const deep = (levels: number): JsonSchema => {
    let s: JsonSchema = { type: 'string' };
    for (let i = 0; i < levels; i++) s = { type: 'object', properties: { p: s } };
    return s;
  };

  it.each(DIALECTS)('%s: a schema nested thousands of levels deep is unsupported, not a RangeError', (dialect) => {
    const { schema, issues } = normalizeInputSchema(deep(5000), dialect);
    expect(schema).toBeUndefined();
    expect(issues).toContainEqual(expect.objectContaining({ kind: expect.stringMatching(/unsupported|not_strict/) }));
  });

  it('the depth limit is 64 levels, also through nested allOf and chains of $refs', () => {
    expect(normalizeInputSchema(deep(60), 'json-schema').schema).toBeDefined();
    const tooDeep = normalizeInputSchema(deep(70), 'json-schema');
    expect(tooDeep.schema).toBeUndefined();
    expect(tooDeep.issues[0]).toMatchObject({ kind: 'unsupported', message: expect.stringContaining('more than 64 levels') });
    let allOf: JsonSchema = { type: 'object', properties: { a: { type: 'string' } } };
    for (let i = 0; i < 5000; i++) allOf = { allOf: [allOf] };
    expect(normalizeInputSchema({ type: 'object', properties: { x: allOf } }, 'gemini').schema).toBeUndefined();
    const $defs: JsonSchema = { d0: { type: 'string' } };
    for (let i = 1; i <= 100; i++) $defs[`d${i}`] = { $ref: `#/$defs/d${i - 1}` };
    const chain = normalizeInputSchema({ type: 'object', properties: { x: { $ref: '#/$defs/d100' } }, $defs }, 'json-schema');
    expect(chain.schema).toBeUndefined();
    expect(chain.issues[0]!.message).toContain('$refs in a row');
  });

  it('a value nested too deep to serialise (in a keyword that is not walked) is unsupported, not a throw', () => {
    let value: unknown = 1;
    for (let i = 0; i < 20_000; i++) value = [value];
    // oneOf → anyOf with a relaxed note; `not` is dropped into the description as JSON for Gemini.
    const { schema, issues } = normalizeInputSchema({ type: 'object', properties: { a: { type: 'string', not: { const: value } } } }, 'gemini');
    expect(schema).toBeUndefined();
    expect(issues.at(-1)).toMatchObject({ kind: 'unsupported', message: expect.stringContaining('nested too deeply') });
  });

  const hostileNames = '{"type":"object","properties":{"__proto__":{"type":"string"},"constructor":{"type":"number"},"toString":{"type":"boolean"},"ok":{"type":"string"}},"required":["__proto__","constructor"]}';
  it.each(DIALECTS)('%s: properties named __proto__, constructor, toString are kept as own keys, exactly', (dialect) => {
    const { schema, issues } = normalizeInputSchema(JSON.parse(hostileNames), dialect);
    expect(issues).toEqual([]);
    const roundTrip = JSON.parse(JSON.stringify(schema)) as { properties: JsonSchema; required: string[] };
    expect(Object.keys(roundTrip.properties)).toEqual(['__proto__', 'constructor', 'toString', 'ok']);
    expect(Object.getPrototypeOf(schema!.properties)).toBe(Object.prototype);
    for (const name of roundTrip.required) expect(Object.keys(roundTrip.properties)).toContain(name);
    if (dialect === 'openai-strict') expect(roundTrip.required).toEqual(['__proto__', 'constructor', 'toString', 'ok']);
  });

  it('__proto__ as a keyword next to a $ref and as a property merged from allOf stays an own key', () => {
    const viaRef = normalizeInputSchema(JSON.parse('{"type":"object","properties":{"a":{"$ref":"#/$defs/s","__proto__":{"x":1}}},"$defs":{"s":{"type":"string"}}}'), 'json-schema');
    const a = (viaRef.schema!.properties as JsonSchema).a as JsonSchema;
    expect(Object.getPrototypeOf(a)).toBe(Object.prototype);
    expect(JSON.parse(JSON.stringify(a))).toEqual(JSON.parse('{"type":"string","__proto__":{"x":1}}'));
    const merged = normalizeInputSchema(JSON.parse('{"allOf":[{"type":"object","properties":{"__proto__":{"type":"string"}}},{"properties":{"b":{"type":"string"}},"required":["__proto__"]}]}'), 'gemini');
    expect(Object.keys(JSON.parse(JSON.stringify(merged.schema)).properties)).toEqual(['__proto__', 'b']);
    expect(merged.schema!.required).toEqual(['__proto__']);
  });

  it('inherited names never count: required toString, $ref #/__proto__, type constructor', () => {
    const required = { type: 'object', properties: { a: { type: 'string' } }, required: ['toString'] };
    expect(normalizeInputSchema(required, 'gemini').schema!.required ?? []).toEqual([]);
    expect(normalizeInputSchema(required, 'openai-strict')).toMatchObject({ schema: undefined, issues: [{ kind: 'not_strict', message: expect.stringContaining("'toString' is not in properties") }] });
    for (const ref of ['#/__proto__', '#/constructor', '#/properties/toString', '#/required/length']) {
      const { schema, issues } = normalizeInputSchema({ type: 'object', properties: { a: { type: 'string' }, b: { $ref: ref } }, required: ['a'] }, 'json-schema');
      expect(schema).toBeUndefined();
      expect(issues[0]!.message).toContain('does not resolve');
    }
    expect(normalizeInputSchema({ type: 'object', properties: { a: { type: 'constructor' } } }, 'gemini').issues[0]).toMatchObject({ kind: 'unsupported', message: "unknown type 'constructor'" });
    const multi = normalizeInputSchema({ type: 'object', properties: { a: { type: ['string', 'number'], constructor: 1 } } }, 'gemini');
    expect(multi.schema).toBeDefined();
  });
});
