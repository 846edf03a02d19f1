/**
 * Keeps the guides in docs/ honest:
 * - every field table marked `<!-- fields: schema:NAME -->` lists exactly the keys of the zod schema(s) it
 *   documents, with the right "Required" column; tables marked `<!-- fields: PATH#Interface -->` list exactly
 *   the members of that interface in the source (MCPManagerOptions and the other option bags);
 * - tables marked `<!-- values: PATH#Type -->` list exactly the string literals of that union type;
 * - every ```ts block in docs/*.md starts with `// docs/examples/NAME.ts` and its code is in that file
 *   (segments separated by a `// …` line must appear in order), so documented code is compiled code
 *   (`npm run lint` type-checks docs/examples). The example files import 'mcp-switchboard' and
 *   'mcp-switchboard/testing' as users write them: tsconfig.json's `paths` maps them to src/ for the type-check,
 *   and this suite maps them to src/ at run time (below);
 * - relative links between docs resolve, and every example file is shown somewhere;
 * - the example test suite in docs/examples/testing-host-app.ts runs here (imported below).
 */
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { z } from 'zod';
import { oauthSchema, oboSchema, sseSchema, stdioSchema, streamableHttpSchema, websocketSchema } from '../../src/config/schema.js';
import { ConfigError } from '../../src/errors.js';
import { parseServersConfig } from '../../src/config/parse.js';
import { DIAGNOSTICS_CHANNELS } from '../../src/events.js';
import { jest } from '@jest/globals';
import * as switchboard from '../../src/index.js';
import * as testKit from '../../src/testing/index.js';

// The guide's example tests, run as part of this suite, against the sources: the example imports the package
// by name, which resolves to the sources here (and in `npm run lint`, through tsconfig.json's `paths`).
jest.unstable_mockModule('mcp-switchboard', () => switchboard, { virtual: true });
jest.unstable_mockModule('mcp-switchboard/testing', () => testKit, { virtual: true });
await import('../../docs/examples/testing-host-app.js');

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DOCS = join(ROOT, 'docs');
const EXAMPLES = join(DOCS, 'examples');
const GUIDES = ['getting-started.md', 'configuration.md', 'obo.md', 'oauth.md', 'operations.md', 'testing.md', 'extending.md', 'adapters.md'];

const read = (path: string) => readFileSync(path, 'utf8');
const guideText = (name: string) => read(join(DOCS, name));

// ---- markdown parsing -----------------------------------------------------------------------------------

interface Table {
  /** The marker's argument, e.g. `schema:stdio` or `src/MCPManager.ts#MCPManagerOptions`. */
  target: string;
  kind: 'fields' | 'values';
  file: string;
  /** Data rows: the cells of each. */
  rows: string[][];
}

function splitRow(line: string): string[] {
  // Cells are separated by `|` not escaped as `\|`.
  return line
    .trim()
    .replace(/^\|/, '')
    .replace(/\|$/, '')
    .split(/(?<!\\)\|/)
    .map((c) => c.trim());
}

function markedTables(file: string): Table[] {
  const lines = guideText(file).split('\n');
  const tables: Table[] = [];
  lines.forEach((line, i) => {
    const m = /^<!--\s*(fields|values):\s*(\S+)\s*-->$/.exec(line.trim());
    if (!m) return;
    let j = i + 1;
    while (j < lines.length && lines[j]!.trim() === '') j++;
    const body: string[] = [];
    while (j < lines.length && lines[j]!.trim().startsWith('|')) body.push(lines[j++]!);
    // header, separator, rows
    tables.push({ kind: m[1] as Table['kind'], target: m[2]!, file, rows: body.slice(2).map(splitRow) });
  });
  return tables;
}

/** The name in the first cell: its first `code span`. */
function firstCellName(row: string[]): string {
  const m = /`([^`]+)`/.exec(row[0] ?? '');
  if (!m) throw new Error(`table row without a \`name\` in its first cell: ${row.join(' | ')}`);
  return m[1]!;
}

const ALL_TABLES = GUIDES.flatMap(markedTables);
const tablesFor = (target: string) => ALL_TABLES.filter((t) => t.target === target);
const namesOf = (t: Table) => t.rows.map(firstCellName);

function onlyTable(target: string): Table {
  const found = tablesFor(target);
  if (found.length !== 1) throw new Error(`expected exactly one table marked ${target}, found ${found.length}`);
  return found[0]!;
}

// ---- source parsing ---------------------------------------------------------------------------------------

/** Members of an exported interface (and of interfaces it extends in the same file). */
function interfaceMembers(path: string, name: string): string[] {
  const src = read(join(ROOT, path));
  const head = new RegExp(`export interface ${name}(?:<[^>]*>)?(?:\\s+extends\\s+([\\w, ]+))?\\s*\\{`).exec(src);
  if (!head) throw new Error(`interface ${name} not found in ${path}`);
  let depth = 1;
  let i = head.index + head[0].length;
  const start = i;
  for (; depth > 0 && i < src.length; i++) {
    if (src[i] === '{') depth++;
    else if (src[i] === '}') depth--;
  }
  const body = src.slice(start, i - 1);
  const own = [...body.matchAll(/^ {2}(?:readonly )?([A-Za-z_$][\w$]*)\??\s*[:(<]/gm)].map((m) => m[1]!);
  const inherited = (head[1] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s && new RegExp(`export interface ${s}\\b`).test(src))
    .flatMap((s) => interfaceMembers(path, s));
  return [...new Set([...inherited, ...own])];
}

/** The string literals of an exported union type alias. */
function unionValues(path: string, name: string): string[] {
  const src = read(join(ROOT, path));
  const m = new RegExp(`export type ${name}\\s*=([\\s\\S]*?);`).exec(src);
  if (!m) throw new Error(`type ${name} not found in ${path}`);
  return [...m[1]!.matchAll(/'([^']+)'/g)].map((x) => x[1]!);
}

// ---- (a) the configuration reference against the zod schemas ---------------------------------------------

type Shape = Record<string, z.ZodType>;
const keys = (shape: Shape) => Object.keys(shape).sort();
const sorted = (names: string[]) => [...names].sort();

const TRANSPORTS: Record<string, Shape> = {
  stdio: stdioSchema.shape,
  sse: sseSchema.shape,
  'streamable-http': streamableHttpSchema.shape,
  websocket: websocketSchema.shape,
};
/** Fields every transport has, `type` aside: the common table. */
const COMMON = Object.keys(stdioSchema.shape).filter((k) => k !== 'type' && Object.values(TRANSPORTS).every((s) => k in s));
/** The transport table documenting each type. */
const TABLE_OF: Record<string, string> = { stdio: 'schema:stdio', sse: 'schema:http', 'streamable-http': 'schema:http', websocket: 'schema:websocket' };

function customUserVarsEntryShape(): Shape {
  // customUserVars: optional(record(name, strictObject({ title, description })))
  const record = (stdioSchema.shape.customUserVars as unknown as { unwrap(): { valueType: { shape: Shape } } }).unwrap();
  return record.valueType.shape;
}

/** Whether a zod field is required: it refuses `undefined`. */
const isRequired = (schema: z.ZodType) => !schema.safeParse(undefined).success;

function requiredColumn(table: Table): Map<string, string> {
  return new Map(table.rows.map((r) => [firstCellName(r), (r[2] ?? '').toLowerCase()]));
}

describe('docs/configuration.md matches the config schemas', () => {
  it('documents the common fields, and only those', () => {
    expect(sorted(namesOf(onlyTable('schema:common')))).toEqual(sorted(COMMON));
  });

  it.each(Object.keys(TRANSPORTS))('documents every %s field, and no field the schema lacks', (type) => {
    const documented = [...namesOf(onlyTable(TABLE_OF[type]!)), ...namesOf(onlyTable('schema:common'))];
    expect(sorted(documented)).toEqual(keys(TRANSPORTS[type]!));
  });

  it.each([
    ['schema:obo', oboSchema.shape as Shape],
    ['schema:oauth', oauthSchema.shape as Shape],
    ['schema:customUserVars', customUserVarsEntryShape()],
  ])('%s lists exactly the schema keys', (target, shape) => {
    expect(sorted(namesOf(onlyTable(target)))).toEqual(keys(shape));
  });

  it.each([
    ['schema:common', stdioSchema.shape as Shape],
    ['schema:stdio', stdioSchema.shape as Shape],
    ['schema:http', streamableHttpSchema.shape as Shape],
    ['schema:websocket', websocketSchema.shape as Shape],
    ['schema:obo', oboSchema.shape as Shape],
    ['schema:oauth', oauthSchema.shape as Shape],
    ['schema:customUserVars', customUserVarsEntryShape()],
  ])('%s says which fields are required', (target, shape) => {
    for (const [name, required] of requiredColumn(onlyTable(target))) {
      if (name === 'type') continue; // required by the schema, but inferred when absent
      expect([name, required]).toEqual([name, isRequired(shape[name]!) ? 'yes' : 'no']);
    }
  });

  it('shows ConfigError output that the parser really produces', () => {
    const block = /<!-- output: config-error -->\s*```text\n([\s\S]*?)```/.exec(guideText('configuration.md'));
    expect(block).not.toBeNull();
    let error: unknown;
    try {
      parseServersConfig({
        files: { url: 'ftp://files.example.com/mcp', header: { 'X-Team': 'blue' } },
        github: { url: 'https://api.example.com/mcp/', headers: { Authorization: 'Bearer {{var.GITHUB_PAT}}' } },
        live: { url: 'wss://live.example.com/mcp', obo: { scopes: 'api://live/.default' } },
        local: { command: 'local-mcp', timeoutMs: 0 },
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toBe(block![1]!.trimEnd());
  });
});

// ---- (b) option bags, events, unions against the source ----------------------------------------------------

describe('documented interfaces and unions match the source', () => {
  const fieldTables = ALL_TABLES.filter((t) => t.kind === 'fields' && !t.target.startsWith('schema:'));
  const valueTables = ALL_TABLES.filter((t) => t.kind === 'values');

  it('documents MCPManagerOptions (parsed from src/MCPManager.ts), field for field', () => {
    const documented = namesOf(onlyTable('src/MCPManager.ts#MCPManagerOptions'));
    const source = interfaceMembers('src/MCPManager.ts', 'MCPManagerOptions');
    expect(source).toEqual(expect.arrayContaining(['servers', 'oboTokenResolver', 'idleTimeoutMs', 'connectionFactory']));
    expect(sorted(documented)).toEqual(sorted(source));
  });

  it('has the interface tables the guides promise', () => {
    const targets = fieldTables.map((t) => t.target);
    expect(targets).toEqual(
      expect.arrayContaining([
        'src/MCPManager.ts#MCPManagerOptions',
        'src/auth/oboTokenResolver.ts#OboTokenResolverOptions',
        'src/auth/bearerVerifier.ts#BearerVerifierOptions',
        'src/auth/upstreamToken.ts#UpstreamTokenProviderOptions',
        'src/pool/CircuitBreaker.ts#CircuitBreakerOptions',
        'src/transport/httpClient.ts#HttpClientOptions',
        'src/events.ts#ConnectEvent',
        'src/events.ts#DisconnectEvent',
        'src/events.ts#EvictEvent',
        'src/events.ts#OboExchangeEvent',
        'src/events.ts#ErrorEvent',
      ]),
    );
    expect(valueTables.map((t) => t.target)).toEqual(
      expect.arrayContaining([
        'src/errors.ts#CoreErrorCode',
        'src/errors.ts#OboErrorReason',
        'src/errors.ts#BearerErrorCode',
        'src/events.ts#EvictReason',
      ]),
    );
  });

  it.each(fieldTables.map((t) => [`${t.file}: ${t.target}`, t] as const))('%s lists every member, and only those', (_label, table) => {
    const [path, name] = table.target.split('#') as [string, string];
    expect(sorted(namesOf(table))).toEqual(sorted(interfaceMembers(path, name)));
  });

  it.each(valueTables.map((t) => [`${t.file}: ${t.target}`, t] as const))('%s lists every value, and only those', (_label, table) => {
    const [path, name] = table.target.split('#') as [string, string];
    expect(sorted(namesOf(table))).toEqual(sorted(unionValues(path, name)));
  });

  it('names every diagnostics_channel', () => {
    const ops = guideText('operations.md');
    for (const channel of Object.values(DIAGNOSTICS_CHANNELS)) expect(ops).toContain(`\`${channel}\``);
  });
});

// ---- (c) code in the guides is code in docs/examples ------------------------------------------------------

interface CodeBlock {
  file: string;
  line: number;
  lang: string;
  code: string;
}

function codeBlocks(file: string): CodeBlock[] {
  const out: CodeBlock[] = [];
  const re = /^```(\w*)\n([\s\S]*?)^```$/gm;
  const text = guideText(file);
  for (const m of text.matchAll(re)) {
    out.push({ file, line: text.slice(0, m.index).split('\n').length, lang: m[1]!, code: m[2]! });
  }
  return out;
}

const EXCERPT_SEPARATOR = /^\s*\/\/ …\s*$/;

function trimBlankLines(lines: string[]): string[] {
  let a = 0;
  let b = lines.length;
  while (a < b && lines[a]!.trim() === '') a++;
  while (b > a && lines[b - 1]!.trim() === '') b--;
  return lines.slice(a, b);
}

const TS_BLOCKS = GUIDES.flatMap(codeBlocks).filter((b) => b.lang === 'ts' || b.lang === 'typescript');

describe('code in the guides is compiled example code', () => {
  it('has TypeScript examples in the guides', () => {
    expect(TS_BLOCKS.length).toBeGreaterThan(10);
  });

  it.each(TS_BLOCKS.map((b) => [`${b.file}:${b.line}`, b] as const))('%s is an excerpt of its example file', (_where, block) => {
    const [first, ...rest] = block.code.split('\n');
    const m = /^\/\/ (docs\/examples\/[\w-]+\.ts)$/.exec(first ?? '');
    if (!m) throw new Error(`a \`\`\`ts block must start with "// docs/examples/<file>.ts", got: ${first}`);
    const path = join(ROOT, m[1]!);
    expect(existsSync(path)).toBe(true);
    const source = read(path);
    const segments: string[][] = [[]];
    for (const line of rest) {
      if (EXCERPT_SEPARATOR.test(line)) segments.push([]);
      else segments.at(-1)!.push(line);
    }
    let from = 0;
    for (const segment of segments) {
      const text = trimBlankLines(segment).join('\n');
      if (text === '') continue;
      const at = source.indexOf(text, from);
      if (at < 0) throw new Error(`${block.file}:${block.line}: this part is not in ${m[1]} (in order):\n${text}`);
      from = at + text.length;
    }
  });

  it('shows every example file somewhere in the guides', () => {
    const shown = new Set(TS_BLOCKS.map((b) => /^\/\/ docs\/examples\/([\w-]+\.ts)/.exec(b.code)?.[1]));
    const files = readdirSync(EXAMPLES).filter((f) => f.endsWith('.ts'));
    expect(files.length).toBeGreaterThanOrEqual(3);
    for (const f of files) expect([f, shown.has(f)]).toEqual([f, true]);
  });

  it('opens and closes every code fence on a line of its own', () => {
    for (const file of GUIDES) {
      const stray = guideText(file)
        .split('\n')
        .filter((line) => line.includes('```') && !/^```\w*$/.test(line));
      expect([file, stray]).toEqual([file, []]);
    }
  });

  it('links only to files that exist', () => {
    for (const file of GUIDES) {
      const text = guideText(file).replace(/^```[\s\S]*?^```$/gm, '');
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1]!;
        if (/^[a-z]+:/i.test(target) || target.startsWith('#')) continue;
        const path = join(DOCS, target.replace(/#.*$/, ''));
        expect([file, target, existsSync(path)]).toEqual([file, target, true]);
      }
    }
  });

  it('links to headings that exist', () => {
    const slug = (h: string) =>
      h
        .trim()
        .toLowerCase()
        .replace(/[`*_]/g, '')
        .replace(/[^\p{L}\p{N} -]/gu, '')
        .replace(/ /g, '-');
    const headings = (f: string) => [...guideText(f).replace(/^```[\s\S]*?^```$/gm, '').matchAll(/^#{1,6} (.+)$/gm)].map((m) => m[1]!);
    const anchors = new Map(GUIDES.map((f) => [f, new Map(headings(f).map((h) => [slug(h), h]))]));
    for (const file of GUIDES) {
      const text = guideText(file).replace(/^```[\s\S]*?^```$/gm, '');
      for (const m of text.matchAll(/\]\(([\w.-]*\.md)?#([^)\s]+)\)/g)) {
        const target = m[1] ?? file;
        const heading = anchors.get(target)?.get(m[2]!);
        expect([file, `${target}#${m[2]}`, heading !== undefined]).toEqual([file, `${target}#${m[2]}`, true]);
        // GitHub and TypeDoc make different anchors from code spans and punctuation: link plain headings only.
        expect([file, heading, /^[\p{L}\p{N} -]+$/u.test(heading!)]).toEqual([file, heading, true]);
      }
    }
  });
});
