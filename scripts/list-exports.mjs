#!/usr/bin/env node
/**
 * Lists the public surface of every entry point in package.json "exports", as the TypeScript compiler sees the
 * sources: each exported name with its kind (`value` when it exists at runtime, `type` when it is only a type;
 * a class or an enum is a value), sorted, plus the names marked `@deprecated`.
 *
 *   node scripts/list-exports.mjs            JSON: { "<subpath>": { values: [...], types: [...], deprecated: [...] } }
 *   node scripts/list-exports.mjs --table    one line per name, for reading
 *
 * `__tests__/unit/exports.test.ts` runs it and compares the result with its committed snapshot, so any change to
 * the surface is a visible diff.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ts = createRequire(join(ROOT, 'package.json'))('typescript');

/** package.json "exports" subpath → its source file (dist/x/index.js → src/x/index.ts). */
function entryPoints() {
  const { exports } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const out = {};
  for (const [subpath, target] of Object.entries(exports)) {
    if (typeof target !== 'object' || !target.default) continue;
    out[subpath] = join(ROOT, target.default.replace(/^\.\/dist\//, 'src/').replace(/\.js$/, '.ts'));
  }
  return out;
}

const entries = entryPoints();
const program = ts.createProgram(Object.values(entries), {
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  strict: true,
  skipLibCheck: true,
  noEmit: true,
  types: ['node'],
});
const checker = program.getTypeChecker();

function isDeprecated(symbol) {
  const tagged = (s) => s.getJsDocTags(checker).some((t) => t.name === 'deprecated');
  if (tagged(symbol)) return true;
  // `export { x as y }` with a TSDoc comment on the export specifier.
  return (symbol.declarations ?? []).some((d) => ts.getJSDocDeprecatedTag(d) !== undefined);
}

const result = {};
for (const [subpath, file] of Object.entries(entries)) {
  const source = program.getSourceFile(file);
  if (!source) throw new Error(`${subpath}: ${file} is not in the program`);
  const moduleSymbol = checker.getSymbolAtLocation(source);
  const values = [];
  const types = [];
  const deprecated = [];
  for (const symbol of moduleSymbol ? checker.getExportsOfModule(moduleSymbol) : []) {
    const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
    (target.flags & ts.SymbolFlags.Value ? values : types).push(symbol.name);
    if (isDeprecated(symbol) || (target !== symbol && isDeprecated(target))) deprecated.push(symbol.name);
  }
  result[subpath] = { values: values.sort(), types: types.sort(), deprecated: deprecated.sort() };
}

if (process.argv.includes('--table')) {
  for (const [subpath, { values, types, deprecated }] of Object.entries(result)) {
    console.log(`\n${subpath}: ${values.length} values, ${types.length} types, ${deprecated.length} deprecated`);
    for (const name of values) console.log(`  value ${name}${deprecated.includes(name) ? '  (deprecated)' : ''}`);
    for (const name of types) console.log(`  type  ${name}${deprecated.includes(name) ? '  (deprecated)' : ''}`);
  }
} else {
  console.log(JSON.stringify(result, null, 2));
}
