/**
 * Every export of src/ has TSDoc, and every exported function, class, constant, interface and type alias has
 * an `@example`: typedoc only checks that something is documented, not that it shows how to use it.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

const EXPORT = /(\/\*\*(?:(?!\*\/)[\s\S])*\*\/\s*)?export\s+(?:declare\s+)?(?:abstract\s+)?(async\s+function|function|class|const|interface|type|enum)\s+([A-Za-z0-9_$]+)/g;

describe('TSDoc on every export', () => {
  const found: { file: string; kind: string; name: string; doc: string | undefined }[] = [];
  for (const file of sources(join(process.cwd(), 'src'))) {
    for (const m of readFileSync(file, 'utf8').matchAll(EXPORT)) found.push({ file, kind: m[2]!, name: m[3]!, doc: m[1] });
  }

  it('finds the exports', () => {
    expect(found.length).toBeGreaterThan(100);
  });

  it('documents every export', () => {
    expect(found.filter((e) => !e.doc).map((e) => `${e.file}: ${e.name}`)).toEqual([]);
  });

  it('gives every exported function, class and constant an @example', () => {
    const missing = found.filter((e) => /function|class|const/.test(e.kind) && !/@example/.test(e.doc ?? ''));
    expect(missing.map((e) => `${e.file}: ${e.name}`)).toEqual([]);
  });

  it('gives every exported interface and type alias an @example', () => {
    const types = found.filter((e) => e.kind === 'interface' || e.kind === 'type');
    expect(types.length).toBeGreaterThan(50);
    const missing = types.filter((e) => !/@example/.test(e.doc ?? ''));
    expect(missing.map((e) => `${e.file}: ${e.name}`)).toEqual([]);
  });
});
