/**
 * Figures from test runs (timings, counts, heap deltas) go to a report file, not the console, so that `npm test`
 * stays quiet: `reports/test-figures.txt` (git-ignored), emptied at the start of each jest run by
 * `reportSetup.js` (jest's globalSetup). Jest workers append to it concurrently; one short line per write.
 */
import { appendFileSync, mkdirSync } from 'node:fs';

const DIR = new URL('../../reports/', import.meta.url);
export const REPORT_FILE = new URL('test-figures.txt', DIR);

/**
 * Appends `[name] line` to `reports/test-figures.txt` (creating the directory).
 *
 * @example
 * ```ts
 * report('leaks', `mocked transports: ${n} cycles; heap Δ ${delta.toFixed(2)} MB`);
 * ```
 */
export function report(name: string, line: string): void {
  mkdirSync(DIR, { recursive: true });
  appendFileSync(REPORT_FILE, `[${name}] ${line}\n`);
}
