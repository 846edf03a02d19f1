// Preload with `node --import ./conformance/node20-shim.mjs …`.
//
// @modelcontextprotocol/conformance 0.1.16 does `import { globSync } from "fs"`
// (used only by its `tier-check` command, to find `**/checks.json` under an
// output dir). `fs.globSync` exists from Node 22; on Node 20 that named import
// fails at link time, before any code runs, so patching `fs` at runtime cannot
// help. This registers a resolve hook that, for imports of `fs`/`node:fs` made
// from inside the conformance package only, serves a wrapper module exporting
// everything from `node:fs` plus a `globSync`. On Node >= 22 it does nothing.
import fs from 'node:fs';
import { register } from 'node:module';

if (typeof fs.globSync !== 'function') {
  const hooks = `
    const WRAPPER = ${JSON.stringify(new URL('./node20-fs.mjs', import.meta.url).href)};
    export async function resolve(specifier, context, next) {
      if ((specifier === 'fs' || specifier === 'node:fs') &&
          context.parentURL && context.parentURL.includes('/node_modules/@modelcontextprotocol/conformance/')) {
        return { url: WRAPPER, shortCircuit: true };
      }
      return next(specifier, context);
    }`;
  register('data:text/javascript,' + encodeURIComponent(hooks), import.meta.url);
}
