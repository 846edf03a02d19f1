#!/usr/bin/env node
/**
 * Type-checks every TSDoc `@example` of src/: each ```ts block in a doc comment becomes a temp .ts module that
 * imports what it uses (from its own source file, `mcp-switchboard` or one of its subpaths, or a few
 * well-known packages) and declares, as `any`, the free names the snippet assumes (`manager`, `user`, …).
 * It is then compiled with the repository's compiler options; any error is reported with the source line of
 * the example. Exit code 1 when an example does not compile.
 *
 *   node scripts/check-tsdoc-examples.mjs            # check, print failures and a count
 *   node scripts/check-tsdoc-examples.mjs --list     # also list every example checked
 *   node scripts/check-tsdoc-examples.mjs --keep     # keep the temp dir (printed) for inspection
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SRC = join(ROOT, 'src');
const args = new Set(process.argv.slice(2));

/** Names examples use without importing, and where they come from (beyond the package's own exports). */
const WELL_KNOWN = {
  z: 'zod',
  McpServer: '@modelcontextprotocol/sdk/server/mcp.js',
  Client: '@modelcontextprotocol/sdk/client/index.js',
  InMemoryTransport: '@modelcontextprotocol/sdk/inMemory.js',
  StreamableHTTPClientTransport: '@modelcontextprotocol/sdk/client/streamableHttp.js',
  SSEClientTransport: '@modelcontextprotocol/sdk/client/sse.js',
  StdioClientTransport: '@modelcontextprotocol/sdk/client/stdio.js',
  CallToolResult: '@modelcontextprotocol/sdk/types.js',
  diagnosticsChannel: 'node:diagnostics_channel',
  createServer: 'node:http',
  IncomingMessage: 'node:http',
  ServerResponse: 'node:http',
  readFile: 'node:fs/promises',
  importPKCS8: 'jose',
  generateKeyPair: 'jose',
};
const DEFAULT_IMPORTS = new Set(['diagnosticsChannel']);

function sources(dir) {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') && !p.endsWith('.d.ts') ? [p] : [];
  });
}

/** Every ```ts block after an `@example` tag in a doc comment: its code and the line it starts on. */
function extract(file) {
  const text = readFileSync(file, 'utf8');
  const out = [];
  for (const c of text.matchAll(/\/\*\*[\s\S]*?\*\//g)) {
    const comment = c[0];
    const lines = comment.split('\n').map((l) => l.replace(/^\s*\/?\*+\/?\s?/, '').replace(/\s*\*\/$/, ''));
    const startLine = text.slice(0, c.index).split('\n').length;
    let inExample = false;
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      if (/^@example\b/.test(line)) inExample = true;
      else if (/^@\w+/.test(line)) inExample = false;
      if (!inExample || !/^```(ts|typescript)\s*$/.test(line.trim())) continue;
      const code = [];
      let j = i + 1;
      for (; j < lines.length && !/^```\s*$/.test(lines[j].trim()); j++) code.push(lines[j]);
      out.push({ file, line: startLine + i + 1, code: code.join('\n') });
      i = j;
    }
  }
  return out;
}

/** The package's entry points, by import name (package.json "exports"), as their sources. */
const SUBPATHS = Object.fromEntries(
  Object.entries(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).exports)
    .filter(([, target]) => typeof target === 'object' && target.default)
    .map(([subpath, target]) => [join('mcp-switchboard', subpath).replace(/\\/g, '/'), join(ROOT, target.default.replace(/^\.\/dist\//, 'src/').replace(/\.js$/, '.ts'))]),
);
const tsconfig = ts.getParsedCommandLineOfConfigFile(join(ROOT, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} });
const work = mkdtempSync(join(tmpdir(), 'tsdoc-examples-'));
symlinkSync(join(ROOT, 'node_modules'), join(work, 'node_modules'), 'dir');
writeFileSync(join(work, 'package.json'), JSON.stringify({ type: 'module' }));
const options = {
  ...tsconfig.options,
  noEmit: true,
  declaration: false,
  sourceMap: false,
  rootDir: undefined,
  outDir: undefined,
  types: ['node', 'jest'],
  typeRoots: [join(ROOT, 'node_modules/@types')],
  paths: Object.fromEntries(Object.entries(SUBPATHS).map(([name, file]) => [name, [file]])),
  noUnusedLocals: false,
};

const examples = sources(SRC).flatMap(extract);
examples.forEach((e, i) => (e.path = join(work, `example-${String(i).padStart(4, '0')}.ts`)));

/** The module names a file exports, by the checker. */
function exportsOf(program, file) {
  const sf = program.getSourceFile(file);
  const sym = sf && program.getTypeChecker().getSymbolAtLocation(sf);
  return new Set(sym ? program.getTypeChecker().getExportsOfModule(sym).map((s) => s.name) : []);
}

function render(example, header) {
  // A snippet with a top-level `return` is a function body: wrapped in one (its imports stay outside).
  const lines = example.code.split('\n');
  const imports = example.wrap ? lines.filter((l) => /^import\s/.test(l)) : [];
  const body = example.wrap ? lines.filter((l) => !/^import\s/.test(l)) : lines;
  const code = example.wrap ? [...imports, 'export async function example(): Promise<unknown> {', ...body, '}'] : body;
  return `${header}\nexport {};\n// ${relative(ROOT, example.file)}:${example.line}\n${code.join('\n')}\n`;
}
const HEADER_MARK = '// ---- end of generated header';

/** Packages examples show that are not dependencies of this repository. */
const SHIMS = join(work, 'shims.d.ts');
writeFileSync(SHIMS, ["declare module 'pino' {", '  const pino: any;', '  export default pino;', '}', "declare module 'express';", ''].join('\n'));

function compile(files, oldProgram) {
  const host = ts.createCompilerHost(options);
  const read = host.readFile.bind(host);
  host.readFile = (f) => (files.has(f) ? files.get(f) : read(f));
  const exists = host.fileExists.bind(host);
  host.fileExists = (f) => files.has(f) || exists(f);
  const rootNames = [...files.keys(), SHIMS, ...Object.values(SUBPATHS)];
  return ts.createProgram({ rootNames, options, host, oldProgram });
}

// Passes: first nothing imported; the names each example is missing are imported or declared, and the
// examples recompiled, until no example misses a name it did not miss before (a snippet with a top-level
// `return` is wrapped in a function once that error shows, which can reveal more missing names).
let files = new Map(examples.map((e) => [e.path, render(e, HEADER_MARK)]));
let program = compile(files);
// A name an example does not import comes from the first entry point that has it (the root first).
const entryExports = Object.entries(SUBPATHS).map(([name, file]) => [name, exportsOf(program, file)]);
const MISSING = new Set([2304, 2552, 2582, 2503, 2693, 18004]);
for (const e of examples) e.missing = new Set();
for (let pass = 0; pass < 4; pass++) {
  let changed = false;
  for (const e of examples) {
    const diags = ts.getPreEmitDiagnostics(program, program.getSourceFile(e.path));
    if (!e.wrap && diags.some((d) => d.code === 1108)) changed = e.wrap = true;
    for (const d of diags) {
      if (!MISSING.has(d.code) || d.start === undefined) continue;
      const name = d.file.text.slice(d.start, d.start + d.length);
      if (!e.missing.has(name)) changed = e.missing.add(name) && true;
    }
  }
  if (!changed) break;
  files = new Map(examples.map((e) => [e.path, render(e, headerFor(e, program))]));
  program = compile(files, program);
}

function headerFor(e, program) {
  const own = exportsOf(program, e.file);
  const imports = new Map();
  const add = (from, name) => imports.set(from, [...(imports.get(from) ?? []), name]);
  const declared = [];
  for (const name of e.missing) {
    if (own.has(name)) add(e.file.replace(/\.ts$/, '.js'), name);
    else if (entryExports.some(([, names]) => names.has(name))) add(entryExports.find(([, names]) => names.has(name))[0], name);
    else if (WELL_KNOWN[name]) add(WELL_KNOWN[name], name);
    else declared.push(name);
  }
  e.declared = declared;
  return [
    ...[...imports].map(([from, names]) =>
      names.length === 1 && DEFAULT_IMPORTS.has(names[0]) ? `import ${names[0]} from '${from}';` : `import { ${names.join(', ')} } from '${from}';`,
    ),
    // A free name is a value and a type: `declare const x: any` and `type x = any` may share a name.
    ...declared.map((n) => `declare const ${n}: any; type ${n} = any;`),
    HEADER_MARK,
  ].join('\n');
}

// Pass 2: with imports and declarations; every remaining error is the example's, except implicitly `any`
// parameters: a callback passed to a name the snippet assumes (declared `any`) has no contextual type.
const IGNORED = new Set([7006, 7031]);
const failures = [];
for (const e of examples) {
  const diags = ts
    .getPreEmitDiagnostics(program, program.getSourceFile(e.path))
    .filter((d) => d.file?.fileName === e.path && !IGNORED.has(d.code));
  if (diags.length === 0) continue;
  const text = files.get(e.path);
  const codeStart = text.slice(0, text.indexOf(`// ${relative(ROOT, e.file)}:${e.line}`)).split('\n').length; // 1-based line of the marker
  failures.push(
    `${relative(ROOT, e.file)}:${e.line}\n` +
      diags
        .map((d) => {
          const { line } = d.file.getLineAndCharacterOfPosition(d.start ?? 0);
          const srcLine = e.line + (line + 1 - codeStart);
          return `  line ${srcLine}: TS${d.code} ${ts.flattenDiagnosticMessageText(d.messageText, '\n    ')}`;
        })
        .join('\n'),
  );
}

if (args.has('--list')) for (const e of examples) console.log(`${relative(ROOT, e.file)}:${e.line}${e.declared.length ? ` (assumes ${e.declared.join(', ')})` : ''}`);
for (const f of failures) console.error(f);
console.log(`${examples.length} TSDoc examples checked, ${failures.length} failing to compile.`);
if (args.has('--keep')) {
  for (const [path, text] of files) writeFileSync(path, text);
  console.log(`examples kept in ${work}`);
} else rmSync(work, { recursive: true, force: true });
process.exitCode = failures.length ? 1 : 0;
