/**
 * Jest globalSetup: starts `reports/test-figures.txt` afresh for this run (see `report.ts`), so that the file
 * holds the figures of the last `npm test` only.
 */
import { mkdirSync, writeFileSync } from 'node:fs';

export default function reportSetup() {
  const dir = new URL('../../reports/', import.meta.url);
  mkdirSync(dir, { recursive: true });
  writeFileSync(new URL('test-figures.txt', dir), `# npm test figures, ${new Date().toISOString()}, node ${process.version}\n`);
}
