/**
 * An in-memory `CliIo` for running the CLI's `main` in-process.
 */
import type { CliIo } from '../../src/cli/main.js';

/** A `CliIo` with no environment that keeps what is written; `extra` sets `env` or `cwd`. */
export function capturedIo(extra: Partial<Pick<CliIo, 'env' | 'cwd'>> = {}): CliIo & { out: () => string; err: () => string } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    stdout: { write: (s: string) => out.push(s) },
    stderr: { write: (s: string) => err.push(s) },
    env: {},
    ...extra,
    out: () => out.join(''),
    err: () => err.join(''),
  };
}
