/**
 * What `npm pack` puts in the package (from `files` in package.json, without building: `npm pack --dry-run`):
 * the LICENSE, the guides the README links to, and no source maps (the build emits none: src/ is not shipped).
 * And the runner configs docs/testing.md shows are the files `npm run test:packaging` installs and runs.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { promisify } from 'node:util';

const ROOT = process.cwd();
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

describe('the packed package', () => {
  let files: string[];
  beforeAll(async () => {
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    const { stdout } = await promisify(execFile)(npm, ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, timeout: 30_000 });
    files = (JSON.parse(stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
  });

  it('ships the MIT LICENSE that package.json names', () => {
    expect(JSON.parse(read('package.json')).license).toBe('MIT');
    expect(files).toContain('LICENSE');
    expect(read('LICENSE')).toMatch(/^MIT License\n\nCopyright \(c\) mcp-switchboard contributors\n/);
  });

  it('ships no source maps, and the build emits none', () => {
    expect(files.filter((f) => f.endsWith('.map'))).toEqual([]);
    const build = JSON.parse(read('tsconfig.build.json')).compilerOptions;
    expect([build.sourceMap, build.declarationMap ?? false]).toEqual([false, false]);
  });

  it('ships every file the README and the guides link to', () => {
    const docs = files.filter((f) => f.endsWith('.md'));
    expect(docs).toEqual(expect.arrayContaining(['README.md', 'docs/getting-started.md', 'docs/testing.md']));
    for (const md of docs) {
      const text = read(md).replace(/^```[\s\S]*?^```$/gm, '');
      for (const m of text.matchAll(/\]\(([^)\s#]+)(?:#[^)\s]*)?\)/g)) {
        if (/^[a-z]+:/i.test(m[1]!)) continue;
        const target = normalize(join(dirname(md), m[1]!));
        expect([md, m[1], existsSync(join(ROOT, target)) && files.includes(target)]).toEqual([md, m[1], true]);
      }
    }
  });
});

describe('the test runner configs in docs/testing.md', () => {
  it.each(['jest.config.js', 'vitest.config.js', 'package.json', 'tsconfig.json'])('shows docs/examples/host-app/%s as it is', (file) => {
    expect(read('docs/testing.md')).toContain(read(`docs/examples/host-app/${file}`));
  });
});
