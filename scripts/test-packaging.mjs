#!/usr/bin/env node
/**
 * Tests the package as a host app gets it: builds, packs (npm pack) into a temp dir, checks what the tarball
 * holds (dist for every subpath of package.json "exports"), installs it in a temp host app (npm install of the
 * tarball: its dependencies come from the registry or the npm cache), then
 *   0. imports every subpath (`mcp-switchboard`, `/config`, `/transport`, `/testing`) by name;
 *   1. imports `mcp-switchboard/testing` without the optional `ws` / `oidc-provider` installed: the import
 *      works and the helpers needing them fail naming the package and the install command;
 *   2. type-checks and runs the host test docs/examples/host-app/test/summarize.test.ts with the jest config
 *      of docs/examples/host-app (ts-jest, ESM, --experimental-vm-modules; jest, ts-jest, typescript and ws
 *      are linked from this repository's node_modules);
 *   3. runs the same test with the vitest config (vitest installed from the registry; skip with --no-vitest).
 *
 *   npm run test:packaging [-- --no-build] [-- --no-vitest] [-- --keep]
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = new Set(process.argv.slice(2));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const started = Date.now();
const tmp = mkdtempSync(join(tmpdir(), 'switchboard-pack-'));
let failures = 0;

function step(name) {
  console.log(`\n== ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}
function check(ok, what) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures++;
}
function run(cmd, argv, opts = {}) {
  return execFileSync(cmd, argv, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });
}
function runShown(cmd, argv, opts = {}) {
  try {
    execFileSync(cmd, argv, { stdio: 'inherit', ...opts });
    return true;
  } catch {
    return false;
  }
}
function files(dir, base = dir) {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p, base) : [p.slice(base.length + 1)];
  });
}

try {
  if (!args.has('--no-build')) {
    step('npm run build');
    run(npm, ['run', 'build']);
  }

  step('npm pack');
  const [packed] = JSON.parse(run(npm, ['pack', '--json', '--pack-destination', tmp]));
  const tarball = join(tmp, packed.filename);
  const list = packed.files.map((f) => f.path);
  console.log(`${packed.filename}: ${list.length} files, ${(packed.size / 1024).toFixed(0)} KiB`);
  check(list.includes('LICENSE'), 'ships LICENSE');
  check(list.includes('dist/index.js') && list.includes('dist/testing/index.d.ts'), 'ships dist (run the build first with --no-build)');
  const exportsMap = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).exports;
  const subpaths = Object.entries(exportsMap).filter(([, target]) => typeof target === 'object');
  for (const [subpath, target] of subpaths) {
    for (const file of [target.types, target.default]) check(list.includes(file.replace(/^\.\//, '')), `ships ${file} for "${subpath}"`);
  }
  check(!list.some((f) => f.endsWith('.map')), 'ships no source maps');
  for (const doc of ['getting-started', 'configuration', 'obo', 'oauth', 'operations', 'testing', 'adapters']) check(list.includes(`docs/${doc}.md`), `ships docs/${doc}.md`);
  const unpacked = join(tmp, 'unpacked');
  mkdirSync(unpacked);
  run('tar', ['-xzf', tarball, '-C', unpacked]);
  const pkgDir = join(unpacked, 'package');
  const mapRefs = files(join(pkgDir, 'dist')).filter((f) => /sourceMappingURL=/.test(readFileSync(join(pkgDir, 'dist', f), 'utf8')));
  check(mapRefs.length === 0, `no sourceMappingURL in dist${mapRefs.length ? `: ${mapRefs.slice(0, 3).join(', ')}` : ''}`);
  for (const md of list.filter((f) => f.endsWith('.md'))) {
    const text = readFileSync(join(pkgDir, md), 'utf8').replace(/^```[\s\S]*?^```$/gm, '');
    for (const m of text.matchAll(/\]\(([^)\s#]+)(#[^)\s]*)?\)/g)) {
      if (/^[a-z]+:/i.test(m[1])) continue;
      const target = join(dirname(md), m[1]);
      check(existsSync(join(pkgDir, target)), `${md} links to ${m[1]}, which is in the package`);
    }
  }

  step('install the tarball in a host app');
  const host = join(tmp, 'host');
  cpSync(join(ROOT, 'docs/examples/host-app'), host, { recursive: true });
  const withVitest = !args.has('--no-vitest');
  run(npm, ['install', '--no-audit', '--no-fund', '--prefer-offline', '--save-dev', tarball, ...(withVitest ? ['vitest'] : [])], { cwd: host });

  step('every subpath of package.json "exports" imports by name in the host app');
  for (const [subpath] of subpaths) {
    const name = subpath === '.' ? 'mcp-switchboard' : `mcp-switchboard/${subpath.slice(2)}`;
    let count = -1;
    try {
      count = Number(run(process.execPath, ['--input-type=module', '-e', `console.log(Object.keys(await import(${JSON.stringify(name)})).length)`], { cwd: host }).trim());
    } catch (err) {
      console.error(err.stderr?.toString?.() || err);
    }
    check(count > 0, `import('${name}') works (${count} exports)`);
  }

  step('mcp-switchboard/testing without ws / oidc-provider');
  const probe = `
    const kit = await import('mcp-switchboard/testing');
    const out = { resolvable: {} };
    for (const name of ['ws', 'oidc-provider']) out.resolvable[name] = await import(name).then(() => true, () => false);
    for (const [name, call] of [['ws', () => kit.startWebSocketMcpServer({ createServer: () => null })], ['oidc-provider', () => kit.startTestIdp()]]) {
      out[name] = await call().then(() => 'no error', (e) => ({ name: e.name, message: e.message }));
    }
    console.log(JSON.stringify(out));`;
  const out = JSON.parse(run(process.execPath, ['--input-type=module', '-e', probe], { cwd: host }).trim().split('\n').at(-1));
  for (const name of ['ws', 'oidc-provider']) {
    if (out.resolvable[name]) {
      console.log(`skip ${name}: installed in the host app as a dependency of another package`);
      continue;
    }
    check(
      out[name]?.name === 'MissingOptionalDependencyError' && out[name].message.includes(`npm install --save-dev ${name}`),
      `without ${name}: import works, use fails with: ${out[name]?.message ?? JSON.stringify(out[name])}`,
    );
  }

  step('host test with jest (docs/examples/host-app/jest.config.js)');
  for (const name of ['jest', 'ts-jest', 'typescript', 'ws', '@types/jest', '@types/node']) {
    const link = join(host, 'node_modules', name);
    if (existsSync(link)) continue;
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules', name), link, 'dir');
  }
  check(runShown(process.execPath, [join(host, 'node_modules/typescript/bin/tsc'), '--noEmit', '-p', 'tsconfig.json'], { cwd: host }), 'host test type-checks against the packed types');
  check(runShown(npm, ['test', '--silent'], { cwd: host }), 'host test passes under jest');

  if (withVitest) {
    step('host test with vitest (docs/examples/host-app/vitest.config.js)');
    check(runShown(npm, ['run', 'test:vitest', '--silent'], { cwd: host }), 'host test passes under vitest');
  }
} catch (err) {
  failures++;
  console.error(err.stderr?.toString?.() || err);
} finally {
  if (args.has('--keep')) console.log(`\nkept ${tmp}`);
  else rmSync(tmp, { recursive: true, force: true });
}
console.log(`\n${failures ? `${failures} check(s) failed` : 'packaging OK'} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.exitCode = failures ? 1 : 0;
