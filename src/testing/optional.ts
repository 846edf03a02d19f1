/**
 * Lazy loading of the test kit's optional packages (`ws`, `oidc-provider`): importing
 * `mcp-switchboard/testing` never needs them; the helper that uses one imports it on first use and, when it is
 * not installed, fails with an error naming the package and the command that installs it.
 * @module
 */

/**
 * Thrown (as the rejection of the helper that needs it) when an optional package of the test kit is not
 * installed. `packageName` is the missing package; the message carries the `npm install` command.
 *
 * @example
 * ```ts
 * try {
 *   await startWebSocketMcpServer({ createServer: makeServer });
 * } catch (err) {
 *   if (err instanceof MissingOptionalDependencyError) console.error(err.message); // … npm install --save-dev ws
 * }
 * ```
 */
export class MissingOptionalDependencyError extends Error {
  /** The package that is not installed, e.g. `ws`. */
  readonly packageName: string;
  /** The helper that needs it, e.g. `startWebSocketMcpServer`. */
  readonly feature: string;

  constructor(packageName: string, feature: string, cause?: unknown) {
    super(
      `${feature} needs the optional package "${packageName}", which is not installed. ` +
        `Install it with: npm install --save-dev ${packageName}`,
      { cause },
    );
    this.name = 'MissingOptionalDependencyError';
    this.packageName = packageName;
    this.feature = feature;
  }
}

/** Whether `err` says that `packageName` itself (not something it imports) cannot be found. */
function isMissing(err: unknown, packageName: string): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  if (!e || (e.code !== 'ERR_MODULE_NOT_FOUND' && e.code !== 'MODULE_NOT_FOUND')) return false;
  const message = String(e.message);
  // Node: Cannot find package 'ws' imported from …; jest: Cannot find module 'ws' from …
  return message.includes(`'${packageName}'`) || message.includes(`"${packageName}"`);
}

/**
 * Imports an optional package on first use.
 *
 * @example
 * ```ts
 * const ws = await importOptional<typeof import('ws')>('ws', 'startWebSocketMcpServer');
 * ```
 * @internal
 */
export async function importOptional<T>(packageName: string, feature: string): Promise<T> {
  // A variable specifier: bundlers and type-checkers leave it alone, and nothing loads it before this call.
  const specifier: string = packageName;
  try {
    return (await import(specifier)) as T;
  } catch (err) {
    if (isMissing(err, packageName)) throw new MissingOptionalDependencyError(packageName, feature, err);
    throw err;
  }
}
