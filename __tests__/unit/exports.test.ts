/**
 * Pins the public surface of every entry point in package.json "exports" (the root, `./config`,
 * `./transport`, `./testing`), name by name:
 * - the runtime names (`Object.keys(await import(entry))`, sorted), and
 * - the compiler's view (scripts/list-exports.mjs: every exported name, value or type-only, and which ones are
 *   `@deprecated`),
 * each compared with the committed snapshot in __snapshots__/exports.test.ts.snap. Any change to the surface is
 * a visible diff there: review it, then `npm test -- __tests__/unit/exports.test.ts -u` and commit the snapshot.
 * A missing snapshot fails (it is never written silently, with or without `--ci`).
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as api from '../../src/index.js';
import * as testing from '../../src/testing/index.js';

const ROOT = process.cwd();
const SNAPSHOT_FILE = join(ROOT, '__tests__/unit/__snapshots__/exports.test.ts.snap');
/** The committed snapshot as it was before this run (jest writes new entries only after the tests ran). */
const COMMITTED = existsSync(SNAPSHOT_FILE) ? readFileSync(SNAPSHOT_FILE, 'utf8') : '';

/** package.json "exports" subpath → source entry point (dist/x/index.js → src/x/index.ts). */
const ENTRIES: [string, string][] = Object.entries(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).exports as Record<string, unknown>)
  .filter((e): e is [string, { default: string }] => typeof e[1] === 'object' && e[1] !== null && 'default' in e[1])
  .map(([subpath, target]) => [subpath, join(ROOT, target.default.replace(/^\.\/dist\//, 'src/').replace(/\.js$/, '.ts'))]);

/**
 * Fails when the snapshot named `name` is not committed (outside `--ci`, jest would write it and pass), except
 * under `-u`, which is how the snapshot is made.
 */
function expectCommitted(name: string): void {
  const updating = (expect.getState().snapshotState as unknown as { _updateSnapshot?: string } | undefined)?._updateSnapshot === 'all';
  if (!updating) expect([name, COMMITTED.includes(`exports[\`${name} 1\`]`)]).toEqual([name, true]);
}

interface Surface {
  values: string[];
  types: string[];
  deprecated: string[];
}

describe('public surface', () => {
  let compiled: Record<string, Surface>;
  beforeAll(async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [join(ROOT, 'scripts/list-exports.mjs')], { cwd: ROOT, timeout: 60_000 });
    compiled = JSON.parse(stdout) as Record<string, Surface>;
  }, 60_000);

  it('has exactly the entry points root, ./config, ./transport, ./testing, ./adapters and ./redis', () => {
    expect(ENTRIES.map(([subpath]) => subpath)).toEqual(['.', './config', './transport', './testing', './adapters', './redis']);
  });

  describe.each(ENTRIES)('entry point %s', (subpath, file) => {
    it('runtime export names', async () => {
      const name = `public surface entry point ${subpath} runtime export names`;
      expectCommitted(name);
      const mod = (await import(file)) as Record<string, unknown>;
      expect('default' in mod).toBe(false);
      expect(Object.keys(mod).sort()).toMatchSnapshot();
    });

    it('compiled export list (values, types, deprecated)', async () => {
      expectCommitted(`public surface entry point ${subpath} compiled export list (values, types, deprecated)`);
      const surface = compiled[subpath]!;
      expect(surface).toMatchSnapshot();
      // What the compiler calls a value is exactly what exists at run time.
      const mod = (await import(file)) as Record<string, unknown>;
      expect(surface.values).toEqual(Object.keys(mod).sort());
    });
  });

  it('keeps every deprecated root name importable from the subpath that replaces it', async () => {
    const subpaths = await Promise.all(ENTRIES.filter(([s]) => s !== '.').map(async ([, file]) => (await import(file)) as Record<string, unknown>));
    for (const name of compiled['.']!.deprecated) {
      const root = (api as Record<string, unknown>)[name];
      if (root === undefined) continue; // a type-only alias (OboExchangeInfo)
      expect([name, subpaths.some((m) => m[name] === root)]).toEqual([name, true]);
    }
  });

  it('does not export internals from the root', () => {
    for (const name of ['publishDiagnostics', 'isStale', 'resolveServerConfig', 'sameSession', 'normalizeScopes', 'AppConnectionPool', 'CircuitBreaker', 'silentLogger']) {
      expect([name, name in api]).toEqual([name, false]);
    }
  });

  it('keeps the error hierarchy: one base class', () => {
    for (const E of [api.ConfigError, api.OboError, api.BearerError, api.UpstreamTokenError]) {
      expect(E.prototype).toBeInstanceOf(api.SwitchboardError);
    }
    const e = new api.OboError('untrusted', 'x');
    expect(e).toMatchObject({ reason: 'untrusted', retryable: false, code: 'obo_untrusted', name: 'OboError' });
    const b = new api.BearerError('insufficient_scope', 'need Files.Read', { scope: 'Files.Read' });
    expect(b).toMatchObject({ httpStatus: 403, wwwAuthenticate: 'Bearer error="insufficient_scope", error_description="need Files.Read", scope="Files.Read"' });
    expect(new api.BearerError('missing_token', 'no token').wwwAuthenticate).toBe('Bearer');
  });

  it('exports the test kit from the testing subpath', () => {
    for (const name of ['startTestMcpServer', 'startTestIdp', 'startWebSocketMcpServer', 'createInMemoryPair']) {
      expect(typeof (testing as Record<string, unknown>)[name]).toBe('function');
    }
  });

  it('keeps the contract classes classes', () => {
    for (const C of [api.MCPManager, api.UserConnectionManager, api.MCPConnectionFactory, api.MCPConnection, api.SwitchboardError, api.ConfigError, api.OboError, api.BearerError, api.UpstreamTokenError]) {
      expect(String(C)).toMatch(/^class /);
    }
  });
});
