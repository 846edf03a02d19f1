/**
 * The error-code unions are closed and complete:
 * - type level: an exhaustive `switch` with a `never` check over each union compiles (`npm run lint`), and each
 *   `Record<Union, true>` below must list every member and nothing else, or the file does not type-check;
 * - run time: every code a `new SwitchboardError('<code>'` / subclass constructor / `super('<code>'` in src/ uses
 *   is a member of the union (so a new code cannot be thrown without being added to it).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import {
  BearerError,
  ConfigError,
  OboError,
  SwitchboardError,
  UpstreamTokenError,
  type AuthorizationErrorCode,
  type BearerErrorCode,
  type CoreErrorCode,
  type OboErrorCode,
  type OboErrorHint,
  type OboErrorReason,
  type SwitchboardErrorCode,
  type UpstreamTokenErrorCode,
} from '../../src/index.js';

function assertNever(value: never): never {
  throw new Error(`unhandled code ${String(value)}`);
}

// ---- exhaustive switches: adding a member to a union without handling it here fails the type-check ----

function describeCore(code: CoreErrorCode): string {
  switch (code) {
    case 'config_invalid':
    case 'unknown_server':
    case 'user_required':
    case 'usage_error':
      return 'caller';
    case 'manager_closed':
    case 'connection_closed':
    case 'not_connected':
    case 'session_expired':
    case 'idp_closed':
      return 'closed';
    case 'connect_failed':
    case 'connect_timeout':
    case 'call_timeout':
    case 'aborted':
    case 'transport_error':
    case 'server_error':
    case 'limit_reached':
    case 'circuit_open':
    case 'ssrf_blocked':
    case 'too_large':
    case 'idp_request_failed':
      return 'runtime';
    default:
      return assertNever(code);
  }
}

function describeOboReason(reason: OboErrorReason): string {
  switch (reason) {
    case 'untrusted':
    case 'missing_upstream_token':
    case 'no_resolver':
    case 'exchange_failed':
    case 'empty_exchange_response':
    case 'rejected_by_server':
    case 'timeout':
    case 'aborted':
    case 'invalid_request':
      return reason;
    default:
      return assertNever(reason);
  }
}

function describeOboCode(code: OboErrorCode): string {
  switch (code) {
    case 'obo_untrusted':
    case 'obo_missing_upstream_token':
    case 'obo_no_resolver':
    case 'obo_exchange_failed':
    case 'obo_empty_exchange_response':
    case 'obo_rejected_by_server':
    case 'obo_timeout':
    case 'obo_aborted':
    case 'obo_invalid_request':
      return code;
    default:
      return assertNever(code);
  }
}

function describeOboHint(hint: OboErrorHint): string {
  switch (hint) {
    case 'expired':
    case 'wrong_audience':
    case 'revoked':
    case 'consent_required':
      return hint;
    default:
      return assertNever(hint);
  }
}

function describeBearer(code: BearerErrorCode): 401 | 403 {
  switch (code) {
    case 'insufficient_scope':
      return 403;
    case 'missing_token':
    case 'malformed':
    case 'invalid_signature':
    case 'expired':
    case 'not_yet_valid':
    case 'wrong_issuer':
    case 'wrong_audience':
    case 'missing_subject':
    case 'jwks_unavailable':
      return 401;
    default:
      return assertNever(code);
  }
}

function describeUpstream(code: UpstreamTokenErrorCode): string {
  switch (code) {
    case 'reauth_required':
    case 'refresh_failed':
      return code;
    default:
      return assertNever(code);
  }
}

/** The host app's view: one switch over `err.code` of any SwitchboardError, every family handled. */
function httpStatusOf(err: SwitchboardError): number {
  const code: SwitchboardErrorCode = err.code;
  if (code.startsWith('obo_')) return describeOboCode(code as OboErrorCode) === 'obo_untrusted' ? 403 : 502;
  switch (code) {
    case 'reauth_required':
    case 'refresh_failed':
      return describeUpstream(code) === 'reauth_required' ? 401 : 502;
    case 'missing_token':
    case 'malformed':
    case 'invalid_signature':
    case 'expired':
    case 'not_yet_valid':
    case 'wrong_issuer':
    case 'wrong_audience':
    case 'missing_subject':
    case 'insufficient_scope':
    case 'jwks_unavailable':
      return describeBearer(code);
    default:
      return describeCore(code as CoreErrorCode) === 'caller' ? 400 : 503;
  }
}

// ---- each union as a runtime list: a Record over the union must name every member, and only members ----

const CORE: Record<CoreErrorCode, true> = {
  config_invalid: true,
  unknown_server: true,
  user_required: true,
  manager_closed: true,
  connection_closed: true,
  connect_failed: true,
  connect_timeout: true,
  call_timeout: true,
  aborted: true,
  transport_error: true,
  server_error: true,
  limit_reached: true,
  circuit_open: true,
  ssrf_blocked: true,
  too_large: true,
  session_expired: true,
  not_connected: true,
  idp_request_failed: true,
  idp_closed: true,
  usage_error: true,
};
const OBO_REASONS: Record<OboErrorReason, true> = {
  untrusted: true,
  missing_upstream_token: true,
  no_resolver: true,
  exchange_failed: true,
  empty_exchange_response: true,
  rejected_by_server: true,
  timeout: true,
  aborted: true,
  invalid_request: true,
};
const BEARER: Record<BearerErrorCode, true> = {
  missing_token: true,
  malformed: true,
  invalid_signature: true,
  expired: true,
  not_yet_valid: true,
  wrong_issuer: true,
  wrong_audience: true,
  missing_subject: true,
  insufficient_scope: true,
  jwks_unavailable: true,
};
const UPSTREAM: Record<UpstreamTokenErrorCode, true> = { reauth_required: true, refresh_failed: true };
const AUTHORIZATION: Record<AuthorizationErrorCode, true> = {
  authorization_required: true,
  authorization_invalid_state: true,
  authorization_user_mismatch: true,
  authorization_issuer_mismatch: true,
  authorization_denied: true,
  authorization_failed: true,
  authorization_scope_limit: true,
};
const OBO_HINTS: Record<OboErrorHint, true> = { expired: true, wrong_audience: true, revoked: true, consent_required: true };

const ALL_CODES = new Set<string>([
  ...Object.keys(CORE),
  ...Object.keys(OBO_REASONS).map((r) => `obo_${r}`),
  ...Object.keys(BEARER),
  ...Object.keys(UPSTREAM),
  ...Object.keys(AUTHORIZATION),
]);

// The codes a subclass can carry are its own union's, no more (type level).
const _configCode: 'config_invalid' = new ConfigError([]).code;
const _oboCode: OboErrorCode = new OboError('untrusted', 'x').code;
const _bearerCode: BearerErrorCode = new BearerError('expired', 'x').code;
const _upstreamCode: UpstreamTokenErrorCode = new UpstreamTokenError('refresh_failed', 'x').code;
// @ts-expect-error: a code outside the union does not compile
new SwitchboardError('made_up_code', 'x');
// @ts-expect-error: nor does a reason outside OboErrorReason
new OboError('made_up_reason', 'x');

// ---- the codes src/ actually uses ----------------------------------------------------------------------

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** Every string-literal code passed to an error constructor in src/ (doc comments included: they must be real codes too). */
function codesUsedInSrc(): { file: string; family: string; code: string }[] {
  const found: { file: string; family: string; code: string }[] = [];
  const CONSTRUCTOR = /new\s+(SwitchboardError|OboError|BearerError|UpstreamTokenError|AuthorizationError)\(\s*'([a-z_]+)'/g;
  const SUPER = /class\s+\w+\s+extends\s+SwitchboardError\b[\s\S]*?super\(\s*'([a-z_]+)'/g;
  for (const file of sources(join(process.cwd(), 'src'))) {
    const text = readFileSync(file, 'utf8');
    const rel = relative(process.cwd(), file);
    for (const m of text.matchAll(CONSTRUCTOR)) found.push({ file: rel, family: m[1]!, code: m[2]! });
    for (const m of text.matchAll(SUPER)) found.push({ file: rel, family: 'SwitchboardError', code: m[1]! });
  }
  return found;
}

describe('error codes', () => {
  it('every exhaustive switch handles every member', () => {
    expect(Object.keys(CORE).map((c) => describeCore(c as CoreErrorCode)).length).toBe(Object.keys(CORE).length);
    for (const r of Object.keys(OBO_REASONS) as OboErrorReason[]) expect(describeOboCode(`obo_${describeOboReason(r)}` as OboErrorCode)).toBe(`obo_${r}`);
    for (const h of Object.keys(OBO_HINTS) as OboErrorHint[]) expect(describeOboHint(h)).toBe(h);
    expect(describeBearer('insufficient_scope')).toBe(403);
    expect(describeUpstream('refresh_failed')).toBe('refresh_failed');
    expect(httpStatusOf(new OboError('untrusted', 'x'))).toBe(403);
    expect(httpStatusOf(new BearerError('expired', 'x'))).toBe(401);
    expect(httpStatusOf(new UpstreamTokenError('reauth_required', 'x'))).toBe(401);
    expect(httpStatusOf(new SwitchboardError('unknown_server', 'x'))).toBe(400);
    expect(httpStatusOf(new SwitchboardError('connect_failed', 'x'))).toBe(503);
    expect([_configCode, _oboCode, _bearerCode, _upstreamCode]).toEqual(['config_invalid', 'obo_untrusted', 'expired', 'refresh_failed']);
  });

  it('every code src/ throws is in its union', () => {
    const used = codesUsedInSrc();
    expect(used.length).toBeGreaterThan(80);
    const unionOf: Record<string, Set<string>> = {
      SwitchboardError: ALL_CODES,
      OboError: new Set(Object.keys(OBO_REASONS)),
      BearerError: new Set(Object.keys(BEARER)),
      UpstreamTokenError: new Set(Object.keys(UPSTREAM)),
      AuthorizationError: new Set(Object.keys(AUTHORIZATION)),
    };
    const unknown = used.filter((u) => !unionOf[u.family]!.has(u.code)).map((u) => `${u.file}: new ${u.family}('${u.code}'`);
    expect(unknown).toEqual([]);
  });

  it('every core code is used somewhere in src/ (no stale member)', () => {
    const used = new Set(codesUsedInSrc().filter((u) => u.family === 'SwitchboardError').map((u) => u.code));
    // config_invalid is ConfigError's (its constructor passes it); session_expired is set by the connection layer.
    const text = sources(join(process.cwd(), 'src')).map((f) => readFileSync(f, 'utf8')).join('\n');
    const stale = Object.keys(CORE).filter((c) => !used.has(c) && !text.includes(`'${c}'`));
    expect(stale).toEqual([]);
  });
});
