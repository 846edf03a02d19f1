/**
 * The SSRF guard: which addresses and host names a request may go to. Pure functions here; the undici
 * dispatcher that applies them at connect time lives in `httpClient.ts`, the per-URL check in `authFetch.ts`.
 * @module
 */
import { isIP } from 'node:net';
import type { LookupAddress, LookupAllOptions, LookupOptions } from 'node:dns';
import { SwitchboardError } from '../errors.js';

/**
 * Where requests of a guarded server may go.
 *
 * @example
 * ```ts
 * const ssrf: SsrfOptions = { allowHosts: ['mcp.internal.example', '*.tools.example'], blockPrivate: true };
 * const client = new HttpClient({ userSsrf: ssrf });
 * ```
 */
export interface SsrfOptions {
  /** Hosts always allowed (exact host names or '*.suffix'), checked before address rules. */
  allowHosts?: string[];
  /**
   * Block private (10/8, 172.16/12, 192.168/16, fc00::/7), loopback (127/8, ::1), link-local (169.254/16 incl.
   * 169.254.169.254 metadata, fe80::/10), CGNAT 100.64/10, 0.0.0.0/8, unspecified, IPv4-mapped IPv6 of those.
   * Default true when SSRF guard is on.
   */
  blockPrivate?: boolean;
}

/**
 * Why an address is not public; see {@link classifyAddress}.
 *
 * @example
 * ```ts
 * const kind: AddressClass | undefined = classifyAddress('10.0.0.1'); // 'private'
 * ```
 */
export type AddressClass =
  | 'unspecified'
  | 'this-network'
  | 'loopback'
  | 'private'
  | 'shared'
  | 'link-local'
  | 'unique-local'
  | 'multicast'
  | 'reserved';

interface Range {
  bytes: number[];
  prefix: number;
  kind: AddressClass;
}

function v4Range(cidr: string, kind: AddressClass): Range {
  const [ip, prefix] = cidr.split('/') as [string, string];
  return { bytes: ip.split('.').map(Number), prefix: Number(prefix), kind };
}

function v6Range(cidr: string, kind: AddressClass): Range {
  const [ip, prefix] = cidr.split('/') as [string, string];
  return { bytes: parseIPv6(ip)!, prefix: Number(prefix), kind };
}

// Most specific first does not matter: the ranges do not overlap.
const V4_RANGES: Range[] = [
  v4Range('0.0.0.0/8', 'this-network'),
  v4Range('10.0.0.0/8', 'private'),
  v4Range('100.64.0.0/10', 'shared'),
  v4Range('127.0.0.0/8', 'loopback'),
  v4Range('169.254.0.0/16', 'link-local'),
  v4Range('172.16.0.0/12', 'private'),
  v4Range('192.0.0.0/24', 'reserved'),
  v4Range('192.168.0.0/16', 'private'),
  v4Range('198.18.0.0/15', 'reserved'),
  v4Range('224.0.0.0/4', 'multicast'),
  v4Range('240.0.0.0/4', 'reserved'),
];

const V6_RANGES: Range[] = [
  v6Range('::/128', 'unspecified'),
  v6Range('::1/128', 'loopback'),
  v6Range('fc00::/7', 'unique-local'),
  v6Range('fe80::/10', 'link-local'),
  v6Range('fec0::/10', 'reserved'),
  v6Range('ff00::/8', 'multicast'),
];

function inRange(bytes: number[], range: Range): boolean {
  let bits = range.prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if (((bytes[i] ?? 0) & mask) !== ((range.bytes[i] ?? 0) & mask)) return false;
  }
  return true;
}

function parseIPv4(ip: string): number[] | undefined {
  if (isIP(ip) !== 4) return undefined;
  return ip.split('.').map(Number);
}

/** 16 bytes of an IPv6 address (zone id dropped, embedded dotted IPv4 allowed), or undefined. */
function parseIPv6(ip: string): number[] | undefined {
  const bare = ip.replace(/%.*$/, '');
  if (isIP(bare) !== 6) return undefined;
  let text = bare;
  const tail: number[] = [];
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const v4 = parseIPv4(dotted[1]!)!;
    tail.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
    text = text.slice(0, -dotted[1]!.length);
    if (text.endsWith(':') && !text.endsWith('::')) text = text.slice(0, -1);
  }
  const [head, rest] = text.includes('::') ? (text.split('::') as [string, string]) : [text, undefined];
  const parse = (s: string) => (s ? s.split(':').map((h) => parseInt(h, 16)) : []);
  const left = parse(head);
  const right = rest === undefined ? [] : parse(rest);
  const missing = 8 - left.length - right.length - tail.length;
  const hextets = [...left, ...new Array<number>(rest === undefined ? 0 : missing).fill(0), ...right, ...tail];
  if (hextets.length !== 8) return undefined;
  return hextets.flatMap((h) => [h >> 8, h & 0xff]);
}

/** The IPv4 address carried in an IPv4-mapped (::ffff:0:0/96), IPv4-compatible (::/96) or NAT64 (64:ff9b::/96) IPv6 address. */
function embeddedIPv4(bytes: number[]): number[] | undefined {
  const first10Zero = bytes.slice(0, 10).every((b) => b === 0);
  if (first10Zero && bytes[10] === 0xff && bytes[11] === 0xff) return bytes.slice(12);
  // Deprecated IPv4-compatible form; `::` and `::1` are not of it.
  if (first10Zero && bytes[10] === 0 && bytes[11] === 0 && bytes.slice(12, 15).some((b) => b !== 0)) return bytes.slice(12);
  const nat64 = [0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0];
  if (nat64.every((b, i) => bytes[i] === b)) return bytes.slice(12);
  return undefined;
}

/**
 * Classifies a literal IP address: `undefined` for a public (globally routable) address, otherwise why it is
 * not public. IPv4-mapped, IPv4-compatible and NAT64 IPv6 addresses are judged by the IPv4 address they carry.
 * Throws a `TypeError` for a string that is not an IP address.
 *
 * @example
 * ```ts
 * classifyAddress('169.254.169.254'); // 'link-local' (cloud metadata)
 * classifyAddress('::ffff:127.0.0.1'); // 'loopback'
 * classifyAddress('93.184.215.14');    // undefined: public
 * ```
 */
export function classifyAddress(ip: string): AddressClass | undefined {
  const unbracketed = stripBrackets(ip);
  const v4 = parseIPv4(unbracketed);
  if (v4) return V4_RANGES.find((r) => inRange(v4, r))?.kind;
  const v6 = parseIPv6(unbracketed);
  if (!v6) throw new TypeError(`not an IP address: ${JSON.stringify(ip)}`);
  const carried = embeddedIPv4(v6);
  if (carried) return V4_RANGES.find((r) => inRange(carried, r))?.kind;
  return V6_RANGES.find((r) => inRange(v6, r))?.kind;
}

function stripBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

function normaliseHost(host: string): string {
  return stripBrackets(host.trim().toLowerCase()).replace(/\.$/, '');
}

/**
 * Whether `host` is listed in `allowHosts`: an exact (case-insensitive) name or IP, or a `*.suffix` entry,
 * which matches every subdomain of `suffix` but not `suffix` itself.
 *
 * @example
 * ```ts
 * isHostAllowed('a.tools.example', ['*.tools.example']); // true
 * isHostAllowed('tools.example', ['*.tools.example']);   // false
 * ```
 */
export function isHostAllowed(host: string, allowHosts: readonly string[] | undefined): boolean {
  if (!allowHosts?.length) return false;
  const name = normaliseHost(host);
  return allowHosts.some((entry) => {
    const pattern = normaliseHost(entry);
    if (pattern.startsWith('*.')) return name.endsWith(pattern.slice(1)) && name.length > pattern.length - 1;
    return name === pattern;
  });
}

function blocked(host: string, reason: string): SwitchboardError {
  // The fix is named: configs users add (and per-call serverConfig) are guarded by HttpClient's userSsrf, the
  // operator's by its ssrf option; allowHosts lets a host through.
  return new SwitchboardError(
    'ssrf_blocked',
    `Request to ${host} blocked by the SSRF guard: ${reason} (servers users add, and per-call serverConfig, follow HttpClient's userSsrf option; allowHosts lets a host through)`,
  );
}

/**
 * Checks a URL's host before anything is sent: allowed hosts pass, literal IPs are classified, and
 * `localhost` names (RFC 6761: always loopback) are refused. Other names return `undefined` here: their
 * resolved addresses are checked at connect time by the guarded dispatcher (see {@link createGuardedLookup}).
 * Returns the error to throw, or `undefined` when the host may be used.
 *
 * @example
 * ```ts
 * const err = checkHost(new URL('http://169.254.169.254/latest').hostname, { blockPrivate: true });
 * if (err) throw err; // SwitchboardError code 'ssrf_blocked'
 * ```
 */
export function checkHost(host: string, ssrf: SsrfOptions): SwitchboardError | undefined {
  if (isHostAllowed(host, ssrf.allowHosts)) return undefined;
  if (ssrf.blockPrivate === false) return undefined;
  const name = normaliseHost(host);
  if (isIP(name)) return checkAddress(name, ssrf, host);
  if (name === 'localhost' || name.endsWith('.localhost')) return blocked(host, 'loopback name');
  return undefined;
}

/**
 * Checks one resolved (or literal) address. Returns the error to throw, or `undefined` when allowed.
 * `host` names the request's host in the error (the address itself is not secret, but the host is what
 * the operator configured).
 *
 * @example
 * ```ts
 * checkAddress('10.1.2.3', { blockPrivate: true }, 'evil.test'); // SwitchboardError('ssrf_blocked')
 * checkAddress('93.184.215.14', { blockPrivate: true });         // undefined
 * ```
 */
export function checkAddress(address: string, ssrf: SsrfOptions, host: string = address): SwitchboardError | undefined {
  if (ssrf.blockPrivate === false) return undefined;
  const kind = classifyAddress(address);
  return kind ? blocked(host, `${address} is a ${kind} address`) : undefined;
}

/**
 * The shape of `dns.lookup` as `net.connect` calls it.
 *
 * @example
 * ```ts
 * const fixed: LookupFunction = (_host, opts, cb) =>
 *   opts.all ? cb(null, [{ address: '127.0.0.1', family: 4 }]) : cb(null, '127.0.0.1', 4);
 * ```
 */
export type LookupFunction = (
  hostname: string,
  options: LookupOptions,
  callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
) => void;

/**
 * Wraps a `dns.lookup`-compatible function so that a name resolving to a blocked address fails the
 * connection before any socket is opened to it. Every resolved address must pass (a name answering with one
 * public and one private address is refused, so DNS rebinding cannot pick the private one). Allowed hosts
 * skip the address rules. Pass the result as `lookup` in socket options (undici `connect: { lookup }`).
 *
 * @example
 * ```ts
 * import { lookup } from 'node:dns';
 * const guardedLookup = createGuardedLookup({ blockPrivate: true }, lookup);
 * const agent = new Agent({ connect: { lookup: guardedLookup } });
 * ```
 */
export function createGuardedLookup(ssrf: SsrfOptions, lookup: LookupFunction): LookupFunction {
  return (hostname, options, callback) => {
    const opts: LookupOptions = typeof options === 'object' && options !== null ? options : {};
    // Always resolve all addresses, so every one can be checked, then answer in the shape asked for.
    lookup(hostname, { ...opts, all: true } as LookupAllOptions, (err, addresses) => {
      if (err) return callback(err, '');
      const list = (Array.isArray(addresses) ? addresses : [{ address: addresses, family: isIP(addresses) }]) as LookupAddress[];
      if (!isHostAllowed(hostname, ssrf.allowHosts)) {
        for (const { address } of list) {
          const problem = checkAddress(address, ssrf, hostname);
          if (problem) return callback(problem as unknown as NodeJS.ErrnoException, '');
        }
      }
      if ((opts as LookupAllOptions).all) return callback(null, list);
      const first = list[0];
      if (!first) return callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), '');
      return callback(null, first.address, first.family);
    });
  };
}
