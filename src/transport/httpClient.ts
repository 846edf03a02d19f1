/**
 * The shared undici dispatchers: one keep-alive agent, SSRF-guarded agents that check the resolved address at
 * connect time, and proxy agents. One `HttpClient` per manager; every connection borrows its dispatchers.
 * @module
 */
import { lookup as dnsLookup } from 'node:dns';
import { isIP } from 'node:net';
import { Agent, buildConnector, EnvHttpProxyAgent, ProxyAgent, type Dispatcher } from 'undici';
import { SwitchboardError } from '../errors.js';
import { checkAddress, createGuardedLookup, isHostAllowed, type LookupFunction, type SsrfOptions } from './ssrf.js';

export type { SsrfOptions } from './ssrf.js';

/**
 * Options of {@link HttpClient}.
 *
 * No transport-level timer sits below a call's deadline: every Agent, ProxyAgent and EnvHttpProxyAgent is made
 * with `headersTimeout: 0` and `bodyTimeout: 0` (undici's defaults of 300 s would cut long tool calls); the
 * call deadlines (`timeoutMs`, `initTimeoutMs`) are the only timers of a request. `connectTimeoutMs` still bounds
 * opening a socket.
 *
 * @example
 * ```ts
 * const http = new HttpClient({ proxy: 'env', userSsrf: { blockPrivate: true, allowHosts: ['*.corp.example'] } });
 * ```
 */
export interface HttpClientOptions {
  /** SSRF guard for ALL servers (admin configs too). Default: off for admin configs, ON for configs with source:'user'. Pass an object to turn it on for all. */
  ssrf?: SsrfOptions | false;
  /** SSRF options used for source:'user' configs (default { blockPrivate: true }). */
  userSsrf?: SsrfOptions;
  /** Proxy: a URL string, 'env' (HTTPS_PROXY/HTTP_PROXY/NO_PROXY read when the HttpClient is constructed, via undici EnvHttpProxyAgent), or false (default false). A server config's own `proxy` field wins. */
  proxy?: string | 'env' | false;
  /** DNS lookup used by the guarded dispatcher (tests inject one; default node:dns lookup). */
  lookup?: typeof import('node:dns').lookup | LookupFunction;
  /** How long an idle keep-alive socket is kept, in ms (default 4 000, undici's default). */
  keepAliveTimeoutMs?: number;
  /** Maximum sockets per origin (default: unlimited, undici's default). */
  connections?: number;
  /** Timeout of establishing one socket (TCP + TLS), in ms (default 10 000). */
  connectTimeoutMs?: number;
}

// Every dispatcher is created with undici's `headersTimeout` and `bodyTimeout` at 0 (off): their 300 s defaults
// would cut a long tool call below its configured deadline (over SSE as a retryable loss, so a retry would run
// the tool twice; over streamable HTTP silently). The call deadlines of `MCPConnection` are the only timers of a
// request; the connect timeout above stays.

/**
 * What {@link HttpClient.forConfig} needs of a server config (a whole `ServerConfig` fits).
 *
 * @example
 * ```ts
 * const cfg: HttpClientConfig = { source: 'user', proxy: 'http://proxy.corp:3128' };
 * ```
 */
export interface HttpClientConfig {
  /** `user`: written by an end user, so guarded by `userSsrf` whatever `ssrf` says. */
  source?: 'config' | 'user';
  /** The server's own proxy URL; wins over {@link HttpClientOptions.proxy}. */
  proxy?: string;
}

/**
 * The dispatcher and SSRF rules one server config uses.
 *
 * @example
 * ```ts
 * const { dispatcher, ssrf }: HttpClientRoute = http.forConfig(config);
 * const fetch = createAuthFetch({ dispatcher, ssrf });
 * ```
 */
export interface HttpClientRoute {
  /** Pass to undici `fetch` (via {@link createAuthFetch}) or to the WebSocket transport. */
  dispatcher: Dispatcher;
  /** The SSRF rules in force (pass to `createAuthFetch`); absent when the guard is off for this config. */
  ssrf?: SsrfOptions;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/** Environment proxy settings, read once in the constructor (never at import). */
interface EnvProxy {
  httpProxy?: string;
  httpsProxy?: string;
  noProxy?: string;
}

/**
 * Owns the shared undici dispatchers (keep-alive Agent; a guarded Agent whose `connect` hook checks the
 * RESOLVED address so DNS tricks don't bypass it; ProxyAgents per proxy URL). Dispatchers are created on
 * first use and shared by every connection that needs the same one.
 *
 * With a proxy, the proxy resolves target names, so the connect-time check cannot see the target's address:
 * only the URL host check of {@link createAuthFetch} (literal IPs, `localhost`, `allowHosts`) applies.
 *
 * @example
 * ```ts
 * const http = new HttpClient({ proxy: 'env' });
 * const { dispatcher, ssrf } = http.forConfig({ source: 'user' });
 * const fetch = createAuthFetch({ dispatcher, ssrf, headers: { 'X-Team': 'blue' } });
 * // …
 * await http.close();
 * ```
 */
export class HttpClient {
  readonly #opts: HttpClientOptions;
  readonly #env: EnvProxy | undefined;
  readonly #dispatchers = new Map<string, Dispatcher>();
  #closing: Promise<void> | undefined;

  constructor(opts: HttpClientOptions = {}) {
    if (opts.proxy !== undefined && opts.proxy !== false && opts.proxy !== 'env') assertProxyUrl(opts.proxy);
    this.#opts = { ...opts };
    if (opts.proxy === 'env') {
      const env = process.env;
      this.#env = {
        httpProxy: env.http_proxy ?? env.HTTP_PROXY,
        httpsProxy: env.https_proxy ?? env.HTTPS_PROXY,
        noProxy: env.no_proxy ?? env.NO_PROXY,
      };
    }
  }

  /**
   * The dispatcher + SSRF check to use for one server config.
   *
   * @example
   * ```ts
   * const route = http.forConfig({ source: 'config', proxy: 'http://proxy.corp:3128' });
   * ```
   */
  forConfig(config: HttpClientConfig): HttpClientRoute {
    if (this.#closing) throw new SwitchboardError('connection_closed', 'HttpClient is closed');
    const ssrf = this.#ssrfFor(config);
    const proxy = config.proxy ?? this.#opts.proxy ?? false;
    if (proxy !== false && proxy !== 'env') {
      assertProxyUrl(proxy);
      return withSsrf(this.#get(`proxy:${proxy}`, () => new ProxyAgent({ uri: proxy, ...this.#agentOptions() })), ssrf);
    }
    const guardKey = ssrf ? `guarded:${JSON.stringify(ssrf)}` : 'plain';
    if (proxy === 'env') {
      // Hosts under NO_PROXY go direct through the guarded connector; proxied ones go to the proxy
      // (ProxyAgent ignores `connect`, so the proxy's own address is not refused for being private).
      return withSsrf(
        this.#get(`env:${guardKey}`, () => new EnvHttpProxyAgent({ ...this.#env, ...this.#agentOptions(ssrf) })),
        ssrf,
      );
    }
    return withSsrf(this.#get(guardKey, () => new Agent(this.#agentOptions(ssrf))), ssrf);
  }

  /** Closes every dispatcher, letting in-flight requests finish. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= Promise.all([...this.#dispatchers.values()].map((d) => d.close())).then(() => {
      this.#dispatchers.clear();
    });
    return this.#closing;
  }

  #ssrfFor(config: HttpClientConfig): SsrfOptions | undefined {
    if (config.source === 'user') return { blockPrivate: true, ...(this.#opts.userSsrf ?? {}) };
    const ssrf = this.#opts.ssrf;
    return ssrf ? { blockPrivate: true, ...ssrf } : undefined;
  }

  #get(key: string, create: () => Dispatcher): Dispatcher {
    let d = this.#dispatchers.get(key);
    if (!d) {
      d = create();
      this.#dispatchers.set(key, d);
    }
    return d;
  }

  #agentOptions(ssrf?: SsrfOptions): Agent.Options {
    const timeout = this.#opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const base: Agent.Options = {
      // Off: the call's own deadline is the only timer (see HttpClientOptions).
      headersTimeout: 0,
      bodyTimeout: 0,
      ...(this.#opts.keepAliveTimeoutMs === undefined ? {} : { keepAliveTimeout: this.#opts.keepAliveTimeoutMs }),
      ...(this.#opts.connections === undefined ? {} : { connections: this.#opts.connections }),
    };
    if (!ssrf) return { ...base, connect: { timeout } };
    return { ...base, connect: createGuardedConnector(ssrf, { timeout, lookup: (this.#opts.lookup ?? dnsLookup) as LookupFunction }) };
  }
}

function withSsrf(dispatcher: Dispatcher, ssrf: SsrfOptions | undefined): HttpClientRoute {
  return ssrf ? { dispatcher, ssrf } : { dispatcher };
}

function assertProxyUrl(proxy: string): void {
  let url: URL;
  try {
    url = new URL(proxy);
  } catch {
    throw new TypeError('proxy must be an http(s) URL, "env" or false');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError('proxy must be an http(s) URL, "env" or false');
}

/**
 * An undici connector that refuses blocked addresses before a socket is opened: literal IP hosts are checked
 * directly (`net.connect` does not call `lookup` for them), names through {@link createGuardedLookup}, so
 * the check is on the address actually connected to.
 *
 * @example
 * ```ts
 * import { lookup } from 'node:dns';
 * const agent = new Agent({ connect: createGuardedConnector({ blockPrivate: true }, { lookup, timeout: 10_000 }) });
 * ```
 */
export function createGuardedConnector(
  ssrf: SsrfOptions,
  opts: { lookup: LookupFunction; timeout?: number },
): buildConnector.connector {
  const connect = buildConnector({ timeout: opts.timeout ?? DEFAULT_CONNECT_TIMEOUT_MS, lookup: createGuardedLookup(ssrf, opts.lookup) } as buildConnector.BuildOptions);
  return (options, callback) => {
    const host = options.hostname.startsWith('[') ? options.hostname.slice(1, -1) : options.hostname;
    if (isIP(host) && !isHostAllowed(host, ssrf.allowHosts)) {
      const problem = checkAddress(host, ssrf);
      if (problem) {
        callback(problem, null);
        return;
      }
    }
    connect(options, callback);
  };
}
