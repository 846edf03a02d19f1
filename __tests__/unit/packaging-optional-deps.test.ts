/**
 * `mcp-switchboard/testing` imports without its optional packages (`ws`, `oidc-provider`) installed, and the
 * helper that needs one fails with an error naming the package and the install command.
 *
 * The package is laid out as an install would (node_modules/mcp-switchboard with package.json and a dist/
 * transpiled from src/, so no build is needed) in a temp dir whose node_modules links every dependency of this
 * repository except `ws` and `oidc-provider`; a child node process imports the subpath by name from there.
 * `npm run test:packaging` does the same with the packed tarball (scripts/test-packaging.mjs).
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

const ROOT = process.cwd();
const OPTIONAL = ['ws', 'oidc-provider'];

/**
 * Transpiles src/ to <pkg>/dist (no type-check; in a child process, where typescript loads in a fraction of
 * the time it takes in jest's VM).
 */
const TRANSPILE = `
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
const [root, pkg] = process.argv.slice(1);
const { default: ts } = await import(join(root, 'node_modules/typescript/lib/typescript.js'));
const sources = (dir) => readdirSync(dir).flatMap((f) => {
  const p = join(dir, f);
  return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
});
for (const file of sources(join(root, 'src'))) {
  const out = join(pkg, 'dist', relative(join(root, 'src'), file)).replace(/\\.ts$/, '.js');
  mkdirSync(dirname(out), { recursive: true });
  const { outputText } = ts.transpileModule(readFileSync(file, 'utf8'), {
    fileName: file,
    compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022, isolatedModules: true },
  });
  writeFileSync(out, outputText);
}
`;

/** A temp dir with node_modules/mcp-switchboard (transpiled src/) and every dependency but the optional ones. */
async function layOut(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-noopt-'));
  const pkg = join(dir, 'node_modules', 'mcp-switchboard');
  mkdirSync(pkg, { recursive: true });
  cpSync(join(ROOT, 'package.json'), join(pkg, 'package.json'));
  await run(process.execPath, ['--input-type=module', '-e', TRANSPILE, ROOT, pkg], { timeout: 30_000 });
  for (const name of readdirSync(join(ROOT, 'node_modules'))) {
    if (name.startsWith('.') || name === 'mcp-switchboard' || OPTIONAL.includes(name)) continue;
    symlinkSync(join(ROOT, 'node_modules', name), join(dir, 'node_modules', name), 'dir');
  }
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'host', private: true, type: 'module' }));
  return dir;
}

const PROBE = `
const out = {};
for (const name of ${JSON.stringify(OPTIONAL)}) {
  out[name] = await import(name).then(() => 'resolvable', (e) => e.code);
}
const kit = await import('mcp-switchboard/testing');
out.exports = Object.keys(kit).sort();
// The other subpaths load without the optional packages too.
out.subpaths = {};
for (const name of ['mcp-switchboard', 'mcp-switchboard/config', 'mcp-switchboard/transport']) {
  out.subpaths[name] = await import(name).then((m) => Object.keys(m).length > 0, (e) => e.code ?? e.message);
}
const attempt = async (f) => {
  try { await f(); return 'no error'; } catch (e) {
    return { name: e.name, message: e.message, packageName: e.packageName, isKitError: e instanceof kit.MissingOptionalDependencyError };
  }
};
out.ws = { resolution: out.ws, error: await attempt(() => kit.startWebSocketMcpServer({ createServer: () => { throw new Error('not reached'); } })) };
out.oidc = { resolution: out['oidc-provider'], error: await attempt(() => kit.startTestIdp()) };
const pair = kit.createInMemoryPair;
out.inMemory = typeof pair;
console.log(JSON.stringify(out));
`;

describe('mcp-switchboard/testing without its optional packages', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await layOut();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('imports, and the helpers needing ws / oidc-provider fail naming the package and the install command', async () => {
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', PROBE], { cwd: dir, timeout: 20_000 });
    const out = JSON.parse(stdout.trim().split('\n').at(-1)!);
    // The packages really are missing there: resolution fails.
    expect(out.ws.resolution).toBe('ERR_MODULE_NOT_FOUND');
    expect(out.oidc.resolution).toBe('ERR_MODULE_NOT_FOUND');
    expect(out.exports).toEqual(expect.arrayContaining(['startWebSocketMcpServer', 'startTestIdp', 'startTestMcpServer', 'createInMemoryPair']));
    expect(out.inMemory).toBe('function');
    expect(out.subpaths).toEqual({ 'mcp-switchboard': true, 'mcp-switchboard/config': true, 'mcp-switchboard/transport': true });
    expect(out.ws.error).toEqual({
      name: 'MissingOptionalDependencyError',
      packageName: 'ws',
      isKitError: true,
      message: expect.stringContaining('npm install --save-dev ws'),
    });
    expect(out.ws.error.message).toContain('startWebSocketMcpServer');
    expect(out.oidc.error).toEqual({
      name: 'MissingOptionalDependencyError',
      packageName: 'oidc-provider',
      isKitError: true,
      message: expect.stringContaining('npm install --save-dev oidc-provider'),
    });
  });
});
