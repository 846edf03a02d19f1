/**
 * Importer for VS Code's `.vscode/mcp.json` (`{ "servers": {...}, "inputs": [...] }`).
 *
 * Mapped: `type` (`stdio`, `sse`; `http` → `streamable-http`, without VS Code's fallback to SSE), `command`,
 * `args`, `env`, `cwd`, `url`, `headers`. `${input:ID}` → `{{var.ID}}`, and each `promptString` / `pickString`
 * input a server uses is declared in its `customUserVars` (its `description` becomes the title), so every user
 * supplies their own value. `${env:NAME}` → `${NAME}`. Other VS Code variables (`${workspaceFolder}`,
 * `${userHome}`...) have no equivalent and are reported. `envFile`, `dev`, `sandbox` / `sandboxEnabled` (this
 * package does not sandbox servers) and unknown fields are reported as warnings with their paths.
 * @module
 */
import { ConfigError } from '../../errors.js';
import { isPlainObject, mapRecord, mapStrings, setOwn, type ImportResult, type ImportWarning } from './common.js';

const VARIABLE = /\$\{([^{}]*)\}/g;

const FIELD_NOTES: Record<string, string> = {
  envFile: 'not imported: load the file into the environment of the host and use ${NAME} in `env`',
  dev: 'not imported: VS Code development mode (watch / debug)',
  sandboxEnabled: 'not imported: servers are NOT sandboxed by this package; sandbox the process yourself if needed',
  sandbox: 'not imported: servers are NOT sandboxed by this package; sandbox the process yourself if needed',
};

interface InputDef {
  title: string;
  description?: string;
}

/**
 * Converts a parsed `.vscode/mcp.json` into this package's raw server configs.
 * Throws {@link ConfigError} only when there is no `servers` object.
 *
 * @example
 * ```ts
 * import { importVsCode, parseServersConfig } from 'mcp-switchboard/config';
 * const { servers } = importVsCode({
 *   inputs: [{ type: 'promptString', id: 'gh-token', description: 'GitHub token', password: true }],
 *   servers: { github: { type: 'http', url: 'https://api.githubcopilot.com/mcp/', headers: { Authorization: 'Bearer ${input:gh-token}' } } },
 * });
 * // servers.github.headers.Authorization === 'Bearer {{var.gh-token}}', declared in servers.github.customUserVars
 * ```
 */
export function importVsCode(doc: unknown): ImportResult {
  if (!isPlainObject(doc)) throw new ConfigError([{ path: '(root)', message: 'an mcp.json document must be a JSON object' }]);
  const block = doc.servers;
  if (!isPlainObject(block)) {
    throw new ConfigError([{ path: 'servers', message: block === undefined ? 'is missing' : 'must be an object of server name → config' }]);
  }
  const warnings: ImportWarning[] = [];
  for (const key of Object.keys(doc)) {
    if (key !== 'servers' && key !== 'inputs' && key !== '$schema') warnings.push({ path: key, message: 'not imported: unknown top-level field' });
  }
  const inputs = importInputs(doc.inputs, warnings);
  const servers: Record<string, unknown> = {};
  for (const [name, entry] of Object.entries(block)) {
    setOwn(servers, name, isPlainObject(entry) ? importServer(entry, `servers.${name}`, inputs, warnings) : entry);
  }
  return { servers, warnings };
}

function importInputs(value: unknown, warnings: ImportWarning[]): Map<string, InputDef> {
  const out = new Map<string, InputDef>();
  if (value === undefined) return out;
  if (!Array.isArray(value)) {
    warnings.push({ path: 'inputs', message: 'not imported: must be an array' });
    return out;
  }
  value.forEach((input: unknown, i) => {
    const path = `inputs.${i}`;
    if (!isPlainObject(input) || typeof input.id !== 'string' || input.id === '') {
      warnings.push({ path, message: 'not imported: an input needs a string `id`' });
      return;
    }
    if (input.type !== 'promptString' && input.type !== 'pickString') {
      warnings.push({ path: `${path}.type`, message: `not imported: input type ${JSON.stringify(input.type)} has no equivalent (promptString and pickString become customUserVars)` });
      return;
    }
    const description = typeof input.description === 'string' && input.description !== '' ? input.description : undefined;
    out.set(input.id, { title: description ?? input.id });
    for (const key of Object.keys(input)) {
      if (key === 'id' || key === 'type' || key === 'description') continue;
      const message =
        key === 'password' ? 'not imported: UI hint (treat every variable value as a secret)'
        : key === 'default' ? 'not imported: variables have no default; the user must supply a value'
        : key === 'options' ? 'not imported: the allowed values are not enforced'
        : 'not imported: unknown input field';
      warnings.push({ path: `${path}.${key}`, message });
    }
  });
  return out;
}

function importServer(entry: Record<string, unknown>, base: string, inputs: Map<string, InputDef>, warnings: ImportWarning[]): Record<string, unknown> {
  const used = new Set<string>();
  const conv = (s: string, path: string) => rewrite(s, path, used, warnings);
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(entry)) {
    const path = `${base}.${key}`;
    switch (key) {
      case 'type':
        out.type = value === 'http' ? 'streamable-http' : value;
        break;
      case 'command':
      case 'cwd':
      case 'url':
      case 'args':
        out[key] = mapStrings(value, path, conv);
        break;
      case 'env':
      case 'headers':
        out[key] = mapRecord(value, path, conv);
        break;
      default:
        warnings.push({ path, message: FIELD_NOTES[key] ?? 'not imported: unknown VS Code server field' });
    }
  }
  const vars: Record<string, unknown> = {};
  // An input that is not declared stays undeclared: validation then reports `{{var.ID}}` at its path.
  for (const id of used) {
    const def = inputs.get(id);
    if (def) setOwn(vars, id, def);
  }
  if (Object.keys(vars).length > 0) out.customUserVars = vars;
  return out;
}

function rewrite(value: string, path: string, used: Set<string>, warnings: ImportWarning[]): string {
  return value.replace(VARIABLE, (raw: string, inner: string) => {
    if (inner.startsWith('input:')) {
      const id = inner.slice('input:'.length);
      used.add(id);
      return `{{var.${id}}}`;
    }
    if (inner.startsWith('env:')) return `\${${inner.slice('env:'.length)}}`;
    warnings.push({
      path,
      message: /^[A-Za-z_][A-Za-z0-9_]*$/.test(inner)
        ? `VS Code variable ${raw} has no equivalent; it is kept as an environment placeholder, so set ${inner} in the environment or edit the value`
        : `VS Code variable ${raw} has no equivalent`,
    });
    return raw;
  });
}
