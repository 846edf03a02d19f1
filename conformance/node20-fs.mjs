// `node:fs` plus `globSync`, served to @modelcontextprotocol/conformance on
// Node 20 by ./node20-shim.mjs. globSync comes from the `glob` package when it
// is installed (it is, through jest), else from `fs.readdirSync({ recursive })`
// filtered with `path.matchesGlob` (Node >= 20.17).
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

export * from 'node:fs';
export default fs;

let glob;
try {
  glob = createRequire(import.meta.url)('glob');
} catch {
  glob = undefined;
}

/** Subset of Node 22's `fs.globSync(pattern, { cwd })`: returns paths relative to cwd. */
export function globSync(pattern, options = {}) {
  const patterns = Array.isArray(pattern) ? pattern : [pattern];
  const cwd = options.cwd ? String(options.cwd) : process.cwd();
  if (glob?.globSync) return glob.globSync(patterns, { cwd, dot: true });
  const entries = fs.readdirSync(cwd, { recursive: true }).map(String);
  return entries.filter((entry) => patterns.some((p) => path.matchesGlob(entry, p)));
}
