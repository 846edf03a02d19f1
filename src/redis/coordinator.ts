/**
 * The Redis {@link Coordinator}: OAuth, flow, upstream-session and OBO stores, a fleet-wide lock with fencing
 * tokens, and an invalidation stream, on one Redis (7 or later) through node-redis 5.
 * @module
 */
import { createHash, randomBytes } from 'node:crypto';
import type { CoordinatorLock, Coordinator, InvalidationEvent, SharedTokenCache } from '../coordination.js';
import type { OboToken } from '../auth/oboTypes.js';
import type { UpstreamSession, UpstreamSessionStore } from '../auth/tokenStore.js';
import { SwitchboardError } from '../errors.js';
import type { OAuthClientKey, OAuthFlowStore, OAuthStore, OAuthTokenKey, PendingAuthorization, StoredOAuthTokens } from '../oauth/store.js';
import type { OAuthClientInformationMixed } from '@modelcontextprotocol/sdk/shared/auth.js';
import { decrypt, deriveKeys, encrypt, parseEncryptionKey } from './crypto.js';
import { RedisKeys } from './keys.js';

/**
 * Options of {@link createRedisCoordinator}. Give `url` (the coordinator opens and closes its connections) or
 * `client` (a node-redis 5 client the host already has; the coordinator never closes it), not both.
 *
 * @example
 * ```ts
 * const options: RedisCoordinatorOptions = {
 *   url: 'redis://:secret@redis.internal:6379',
 *   keyPrefix: 'chat-prod:mcp:',
 *   encryptionKey: process.env.MCP_REDIS_KEY!, // 32 bytes, base64 or hex: openssl rand -base64 32
 * };
 * ```
 */
export interface RedisCoordinatorOptions {
  /** A Redis URL (`redis://` or `rediss://`, with credentials and database as usual). Default: node-redis's `redis://localhost:6379`. */
  url?: string;
  /**
   * A node-redis 5 client (`createClient()` of the `redis` package) the host already has. The coordinator
   * connects it when it is not open yet, uses it for commands and a `duplicate()` of it for the blocking XREAD of
   * invalidations, and never
   * closes it (it closes the duplicate). Its own offline-queue and reconnect settings apply; commands still
   * fail after `commandTimeoutMs`.
   */
  client?: unknown;
  /** Prefix of every key (the invalidation stream's included); give each app (or environment) its own. Default `mcp-switchboard:`. */
  keyPrefix?: string;
  /**
   * The key that encrypts every value at rest (AES-256-GCM) and names token-bearing keys (HMAC): 32 bytes, as a
   * `Uint8Array` or a hex or base64 string. Replicas must share it; entries written under another key read as
   * absent (a changed key means users sign in and consent again).
   */
  encryptionKey: Uint8Array | string;
  /** How often a waiting {@link Coordinator.acquire} retries, in ms. Default 25. */
  lockPollMs?: number;
  /** Longest a command may take before it fails with a retryable error, in ms. Default 2 000. */
  commandTimeoutMs?: number;
  /** How long the first operations wait for the first connection, in ms. Default 2 000. */
  connectTimeoutMs?: number;
  /** Longest pause between reconnect attempts (exponential back-off up to it, forever), in ms. Default 2 000. */
  maxReconnectDelayMs?: number;
  /** Lifetime of stored OAuth tokens and upstream sessions without a write, in ms. Default 90 days. */
  retentionMs?: number;
  /**
   * Freshness window of invalidations, in ms (it also absorbs clock skew between replicas): an event stamped
   * earlier than this before the subscriber last read the stream (or later than this ahead of its clock) is
   * refused as a replay, and so is an event whose nonce it saw within the window. Default 60 000.
   */
  eventMaxAgeMs?: number;
}

/** The members of a node-redis 5 client the coordinator uses. */
interface NodeRedisClient {
  readonly isOpen: boolean;
  readonly isReady: boolean;
  connect(): Promise<unknown>;
  close(): Promise<unknown>;
  destroy(): void;
  duplicate(): NodeRedisClient;
  sendCommand(args: string[], options?: { timeout?: number }): Promise<unknown>;
  subscribe(channel: string, listener: (message: string, channel: string) => void): Promise<unknown>;
  unsubscribe(channel?: string): Promise<unknown>;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  off(event: string, listener: (...args: unknown[]) => void): unknown;
}

interface RedisModule {
  createClient(options: Record<string, unknown>): NodeRedisClient;
}

const DAY_MS = 24 * 3600 * 1000;
const FENCE_TTL_MS = 30 * DAY_MS;
/** Entries the invalidation stream keeps (approximately: `XADD MAXLEN ~`). */
const STREAM_MAXLEN = 10_000;
/** How long one XREAD blocks before it returns empty (and the subscriber notes it is still reading). */
const BLOCK_MS = 5_000;
/** Events one XREAD returns at most. */
const READ_COUNT = 100;
/** Nonces remembered (within the freshness window), and servers whose last config version is remembered. */
const NONCE_CAP = 20_000;
const VERSION_CAP = 10_000;

/**
 * The next fleet-wide config version of a server: above the last one, and at least Redis's clock in µs, so that
 * versions keep increasing even after the counter is lost (an expired key, a Redis restarted without data). In
 * milliseconds two publishes within one ms across a lost counter got the same version and the later was refused;
 * Redis runs scripts one at a time, each longer than a µs. µs since 1970 (~1.8e15) stay below 2^53.
 */
const NEXT_VERSION = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local v = redis.call('INCR', KEYS[1])
if v < now then
  v = now
  redis.call('SET', KEYS[1], string.format('%d', v))
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return v`;

/** SET the lock only when free, with the next fencing token; 0 when held. */
const ACQUIRE = `if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local t = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('SET', KEYS[1], t, 'PX', ARGV[1])
return t`;
/** DEL the lock only when it still holds our token. */
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;
/** Replace (or delete) a session only when its stored hash (the first 64 characters) is the expected one. */
const COMPARE_AND_SET = `local cur = redis.call('GET', KEYS[1])
if not cur or string.sub(cur, 1, 64) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return 1`;

/** One client and whether it can take commands now: ready, known down (fail fast), or still connecting. */
class Link {
  lastError: unknown;
  #waiters = new Set<() => void>();
  readonly #onReady = () => {
    this.lastError = undefined;
    this.#wake();
  };
  readonly #onError = (err: unknown) => {
    this.lastError = err ?? new Error('connection error');
    this.#wake();
  };

  constructor(
    readonly client: NodeRedisClient,
    readonly owned: boolean,
  ) {
    client.on('ready', this.#onReady);
    client.on('error', this.#onError);
  }

  #wake(): void {
    for (const w of this.#waiters) w();
    this.#waiters.clear();
  }

  /** Resolves when the client can take a command; waits only while it has never failed since its last `ready`. */
  async usable(timeoutMs: number, label: string): Promise<void> {
    if (this.client.isReady) return;
    if (this.lastError === undefined) {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.#waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, timeoutMs);
        timer.unref?.();
        this.#waiters.add(done);
      });
    }
    if (!this.client.isReady) throw unreachable(label, this.lastError);
  }

  /** Waits (without a bound) for the first `ready`; false when `stop` says to give up. */
  async ready(stop: () => boolean): Promise<boolean> {
    while (!this.client.isReady && !stop()) await new Promise<void>((resolve) => this.#waiters.add(resolve));
    return this.client.isReady && !stop();
  }

  detach(): void {
    this.client.off('ready', this.#onReady);
    this.client.off('error', this.#onError);
    // A client of ours may still report a socket error while closing: never an unhandled 'error' event.
    if (this.owned) this.client.on('error', () => {});
    this.#wake();
  }
}

function unreachable(label: string, cause: unknown): SwitchboardError {
  return new SwitchboardError('connect_failed', `Redis (${label}) is unreachable; retry later`, { retryable: true, cause });
}

/** Maps a client error: a Redis error reply is the server's answer; anything else means Redis cannot be reached. */
function mapError(err: unknown, label: string): SwitchboardError {
  if (err instanceof SwitchboardError) return err;
  const name = (err as { constructor?: { name?: string } } | null)?.constructor?.name;
  if (name === 'ErrorReply' || name === 'SimpleError' || name === 'BlobError') {
    return new SwitchboardError('server_error', `Redis (${label}) refused a command: ${String((err as Error).message).slice(0, 200)}`, { cause: err });
  }
  return unreachable(label, err);
}

function asString(reply: unknown): string | undefined {
  if (typeof reply === 'string') return reply;
  if (reply instanceof Uint8Array) return Buffer.from(reply).toString('utf8');
  return undefined;
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw new TypeError(`createRedisCoordinator: "${name}" must be a positive number of ms`);
  return value;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref?.());
}

/** Loads `redis` on first use; a missing package fails naming it. */
async function importRedis(): Promise<RedisModule> {
  // A variable specifier: bundlers and type-checkers leave it alone, and nothing loads it before this call.
  const specifier: string = 'redis';
  try {
    return (await import(specifier)) as RedisModule;
  } catch (err) {
    const e = err as { code?: unknown; message?: unknown } | null;
    if (e && (e.code === 'ERR_MODULE_NOT_FOUND' || e.code === 'MODULE_NOT_FOUND') && /['"]redis['"]/.test(String(e.message))) {
      throw new SwitchboardError('config_invalid', 'createRedisCoordinator needs the optional package "redis" (node-redis 5), which is not installed. Install it with: npm install redis@5', { cause: err });
    }
    throw err;
  }
}

/** A host name and port for messages: never the URL's user name or password. */
function labelOf(url: string | undefined, client: unknown): string {
  if (client !== undefined) return "the host's client";
  if (url === undefined) return 'localhost:6379';
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TypeError('createRedisCoordinator: "url" must be a redis:// or rediss:// URL');
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new TypeError('createRedisCoordinator: "url" must be a redis:// or rediss:// URL');
  return `${u.hostname}:${u.port || '6379'}`;
}

/** Copies what the wire may carry of an invalidation; `undefined` when it is malformed. */
function validEvent(value: unknown): InvalidationEvent | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  const str = (x: unknown): x is string => typeof x === 'string' && x.length > 0;
  const tenant = v.tenantId === undefined ? {} : str(v.tenantId) ? { tenantId: v.tenantId } : undefined;
  // The publisher's stamp (which replica, which of its config changes) travels with config changes.
  const stamp = { ...(str(v.origin) ? { origin: v.origin } : {}), ...(Number.isSafeInteger(v.seq) ? { seq: v.seq as number } : {}) };
  switch (v.kind) {
    case 'disconnectUser':
      return str(v.userId) && tenant ? { kind: 'disconnectUser', userId: v.userId, ...tenant } : undefined;
    case 'revokeAuthorization':
      return str(v.userId) && str(v.serverName) && tenant ? { kind: 'revokeAuthorization', userId: v.userId, ...tenant, serverName: v.serverName } : undefined;
    case 'upsertServer':
      return str(v.serverName) && 'config' in v ? { kind: 'upsertServer', serverName: v.serverName, config: v.config, ...stamp } : undefined;
    case 'removeServer':
      return str(v.serverName) ? { kind: 'removeServer', serverName: v.serverName, ...stamp } : undefined;
    case 'dropOboToken':
      return str(v.key) && v.key.length <= 128 ? { kind: 'dropOboToken', key: v.key, ...(str(v.origin) ? { origin: v.origin } : {}) } : undefined;
    default:
      return undefined;
  }
}

/** Orders two stream ids (`<ms>-<seq>`). */
function compareIds(a: string, b: string): number {
  const [am = '0', as = '0'] = a.split('-');
  const [bm = '0', bs = '0'] = b.split('-');
  const d = BigInt(am) - BigInt(bm) || BigInt(as) - BigInt(bs);
  return d < 0n ? -1 : d > 0n ? 1 : 0;
}

/** `[id, m]` of each entry of an XRANGE/XREVRANGE reply (RESP2 or RESP3); entries without an `m` field give `undefined`. */
function streamEntries(reply: unknown): [string, string | undefined][] {
  if (!Array.isArray(reply)) return [];
  const out: [string, string | undefined][] = [];
  for (const entry of reply) {
    if (!Array.isArray(entry)) continue;
    const id = asString(entry[0]);
    if (id === undefined || !/^\d+-\d+$/.test(id)) continue;
    const fields: unknown = entry[1];
    let m: string | undefined;
    if (Array.isArray(fields)) {
      for (let i = 0; i + 1 < fields.length; i += 2) if (asString(fields[i]) === 'm') m = asString(fields[i + 1]);
    } else if (fields instanceof Map) {
      m = asString(fields.get('m'));
    } else if (typeof fields === 'object' && fields !== null) {
      m = asString((fields as Record<string, unknown>).m);
    }
    out.push([id, m]);
  }
  return out;
}

/** The entries of the one stream of an XREAD reply (RESP2: `[[key, entries]]`; RESP3: a map); none on a timeout. */
function xreadEntries(reply: unknown): [string, string | undefined][] {
  if (reply === null || reply === undefined) return [];
  if (Array.isArray(reply)) return streamEntries(Array.isArray(reply[0]) ? reply[0][1] : undefined);
  if (reply instanceof Map) return streamEntries([...reply.values()][0]);
  if (typeof reply === 'object') return streamEntries(Object.values(reply as Record<string, unknown>)[0]);
  return [];
}

/** What an invalidation carries on the stream, encrypted: its freshness (`ts`, `nonce`) and a config change's fleet-wide `version`. */
interface EventBody {
  v: 2;
  ts: number;
  nonce: string;
  version?: number;
  event: InvalidationEvent;
}

class RedisCoordinator implements Coordinator {
  readonly oauthStore: OAuthStore;
  readonly oauthFlowStore: OAuthFlowStore;
  readonly upstreamSessions: UpstreamSessionStore;
  readonly oboTokens: SharedTokenCache;

  readonly #keys: RedisKeys;
  readonly #enc: Buffer;
  readonly #label: string;
  readonly #lockPollMs: number;
  readonly #commandTimeoutMs: number;
  readonly #connectTimeoutMs: number;
  readonly #retentionMs: number;
  readonly #link: Promise<Link>;
  readonly #eventMaxAgeMs: number;
  #sub: Promise<void> | undefined;
  /** The subscriber once created, so that close() can stop it while it still waits for its first connection. */
  #subLink: Link | undefined;
  /** Nonces of the events read within the freshness window → their `ts` (oldest first). */
  readonly #nonces = new Map<string, number>();
  /** The last config version delivered per server (least recently changed first). */
  readonly #versions = new Map<string, number>();
  readonly #listeners = new Set<(event: InvalidationEvent) => void>();
  readonly #shas = new Map<string, string>();
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(opts: RedisCoordinatorOptions) {
    if (typeof opts !== 'object' || opts === null) throw new TypeError('createRedisCoordinator: options are required');
    if (opts.url !== undefined && opts.client !== undefined) throw new TypeError('createRedisCoordinator: give "url" or "client", not both');
    if (opts.client !== undefined && (typeof opts.client !== 'object' || opts.client === null || typeof (opts.client as NodeRedisClient).sendCommand !== 'function')) {
      throw new TypeError('createRedisCoordinator: "client" must be a node-redis 5 client (createClient() of the "redis" package)');
    }
    const prefix = opts.keyPrefix ?? 'mcp-switchboard:';
    if (typeof prefix !== 'string') throw new TypeError('createRedisCoordinator: "keyPrefix" must be a string');
    const keys = deriveKeys(parseEncryptionKey(opts.encryptionKey));
    this.#keys = new RedisKeys(prefix, keys.mac);
    this.#enc = keys.enc;
    this.#label = labelOf(opts.url, opts.client);
    this.#lockPollMs = positive('lockPollMs', opts.lockPollMs, 25);
    this.#commandTimeoutMs = positive('commandTimeoutMs', opts.commandTimeoutMs, 2000);
    const connectTimeoutMs = positive('connectTimeoutMs', opts.connectTimeoutMs, 2000);
    this.#connectTimeoutMs = connectTimeoutMs;
    const maxDelay = positive('maxReconnectDelayMs', opts.maxReconnectDelayMs, 2000);
    this.#retentionMs = Math.ceil(positive('retentionMs', opts.retentionMs, 90 * DAY_MS));
    this.#eventMaxAgeMs = positive('eventMaxAgeMs', opts.eventMaxAgeMs, 60_000);

    this.#link = (async () => {
      let link: Link;
      if (opts.client !== undefined) {
        link = new Link(opts.client as NodeRedisClient, false);
      } else {
        const redis = await importRedis();
        const client = redis.createClient({
          ...(opts.url === undefined ? {} : { url: opts.url }),
          // Fail fast while disconnected instead of queueing commands until Redis returns.
          disableOfflineQueue: true,
          socket: {
            connectTimeout: connectTimeoutMs,
            // Never give up (a closed client would need a restart): exponential back-off with jitter, bounded.
            reconnectStrategy: (retries: number) => Math.min(50 * 2 ** Math.min(retries, 16), maxDelay) + Math.floor(Math.random() * 50),
          },
        });
        link = new Link(client, true);
      }
      if (this.#closed) {
        link.detach();
        throw new SwitchboardError('connection_closed', 'the Redis coordinator is closed');
      }
      if (!link.client.isOpen) link.client.connect().catch(() => {}); // failures arrive as 'error' events; it keeps retrying
      return link;
    })();
    this.#link.catch(() => {}); // surfaced by the operations

    const self = this;
    this.oauthStore = {
      async getTokens(key: OAuthTokenKey) {
        return self.#getJson<StoredOAuthTokens>(self.#keys.oauthTokens(key));
      },
      async setTokens(key: OAuthTokenKey, tokens: StoredOAuthTokens) {
        const k = self.#keys.oauthTokens(key);
        await self.#cmd(['SET', k, self.#seal(tokens, k), 'PX', String(self.#retentionMs)]);
      },
      async deleteTokens(key: OAuthTokenKey) {
        await self.#cmd(['DEL', self.#keys.oauthTokens(key)]);
      },
      async getClient(key: OAuthClientKey) {
        return self.#getJson<OAuthClientInformationMixed>(self.#keys.oauthClient(key));
      },
      async setClient(key: OAuthClientKey, client: OAuthClientInformationMixed) {
        const k = self.#keys.oauthClient(key);
        await self.#cmd(['SET', k, self.#seal(client, k)]);
      },
      async deleteClient(key: OAuthClientKey) {
        await self.#cmd(['DEL', self.#keys.oauthClient(key)]);
      },
    };

    this.oauthFlowStore = {
      async put(state: string, flow: PendingAuthorization) {
        const k = self.#keys.oauthFlow(state);
        const ms = Math.ceil(flow.expiresAt - Date.now());
        if (!(ms > 0)) {
          await self.#cmd(['DEL', k]);
          return;
        }
        await self.#cmd(['SET', k, self.#seal(flow, k), 'PX', String(ms)]);
      },
      async take(state: string) {
        const k = self.#keys.oauthFlow(state);
        const flow = self.#open<PendingAuthorization>(asString(await self.#cmd(['GETDEL', k])), k);
        return flow && flow.expiresAt > Date.now() ? flow : undefined;
      },
      async has(state: string) {
        return Number(await self.#cmd(['EXISTS', self.#keys.oauthFlow(state)])) > 0;
      },
    };

    this.upstreamSessions = {
      async get(key: string) {
        const k = self.#keys.upstreamSession(key);
        const raw = asString(await self.#cmd(['GET', k]));
        return raw === undefined ? undefined : self.#open<UpstreamSession>(raw.slice(65), k);
      },
      async set(key: string, session: UpstreamSession) {
        const k = self.#keys.upstreamSession(key);
        await self.#cmd(['SET', k, self.#sessionValue(session, k), 'PX', String(self.#retentionMs)]);
      },
      async delete(key: string) {
        await self.#cmd(['DEL', self.#keys.upstreamSession(key)]);
      },
      async compareAndSet(key: string, expected: UpstreamSession, next: UpstreamSession | undefined) {
        const k = self.#keys.upstreamSession(key);
        const reply = await self.#eval(COMPARE_AND_SET, [k], [
          self.#keys.sessionHash(expected.accessToken, expected.refreshToken),
          next ? self.#sessionValue(next, k) : '',
          String(self.#retentionMs),
        ]);
        return Number(reply) === 1;
      },
    };

    this.oboTokens = {
      async get(key: string) {
        const k = self.#keys.oboToken(key);
        const raw = asString(await self.#cmd(['GET', k]));
        // `<16-digit expiresAt>.<envelope>` (the stamp lets `set` keep the newer token without decrypting).
        const entry = self.#open<{ accessToken: string; expiresAt?: number; staleAt: number }>(raw !== undefined && /^\d{16}\./.test(raw) ? raw.slice(17) : raw, k);
        if (!entry || !(entry.staleAt > Date.now())) return undefined;
        return { accessToken: entry.accessToken, ...(entry.expiresAt === undefined ? {} : { expiresAt: entry.expiresAt }) };
      },
      async set(key: string, token: OboToken, staleAt: number) {
        const ms = Math.ceil(staleAt - Date.now());
        if (!(ms > 0)) return;
        const k = self.#keys.oboToken(key);
        const entry = { accessToken: token.accessToken, ...(token.expiresAt === undefined ? {} : { expiresAt: token.expiresAt }), staleAt };
        const exp = token.expiresAt === undefined ? 0 : Math.min(Math.max(Math.floor(token.expiresAt), 0), 9_999_999_999_999_999);
        const stamp = String(exp).padStart(16, '0');
        // Keeps the newer token: a live entry whose token expires at the same time or later is not replaced.
        const SET_IF_NEWER = `local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 17, 17) == '.' and string.sub(cur, 1, 16) >= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1`;
        await self.#eval(SET_IF_NEWER, [k], [stamp, `${stamp}.${self.#seal(entry, k)}`, String(ms)]);
      },
      async delete(key: string) {
        await self.#cmd(['DEL', self.#keys.oboToken(key)]);
      },
    };
  }

  async acquire(key: string, opts: { ttlMs: number; waitMs: number }): Promise<CoordinatorLock | undefined> {
    const { ttlMs: ttl, waitMs } = opts ?? ({} as { ttlMs?: number; waitMs?: number });
    if (typeof ttl !== 'number' || !(ttl > 0) || !Number.isFinite(ttl)) throw new TypeError('acquire: "ttlMs" must be a positive number of ms');
    if (typeof waitMs !== 'number' || !(waitMs >= 0)) throw new TypeError('acquire: "waitMs" must be a number of ms, 0 or more');
    const ttlMs = Math.ceil(ttl);
    const lockKey = this.#keys.lock(key);
    const fenceKey = this.#keys.fence(key);
    const deadline = Date.now() + waitMs;
    for (;;) {
      const token = Number(await this.#eval(ACQUIRE, [lockKey, fenceKey], [String(ttlMs), String(FENCE_TTL_MS)]));
      if (token > 0) {
        let released = false;
        return {
          token,
          release: async () => {
            if (released) return;
            released = true;
            const until = Date.now() + ttlMs;
            const attempt = () => this.#eval(RELEASE, [lockKey], [String(token)]);
            await attempt().catch(() => {
              // Redis unreachable: the lock would block this key's other holders until it expires (ttlMs, seconds).
              // Released again in the background as soon as Redis answers (a compare-and-delete of our token: safe
              // however late), until it would have expired anyway.
              void this.#releaseLater(attempt, until);
            });
          },
        };
      }
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await sleep(Math.min(this.#lockPollMs, left));
    }
  }

  /** Retries a release with a growing pause (100 ms to 2 s) until it succeeds, `until` passes, or the coordinator closes. */
  async #releaseLater(attempt: () => Promise<unknown>, until: number): Promise<void> {
    for (let pause = 100; Date.now() + pause < until && !this.#closed; pause = Math.min(pause * 2, 2_000)) {
      await sleep(pause);
      if (await attempt().then(() => true, () => false)) return;
    }
  }

  async publish(event: InvalidationEvent): Promise<void> {
    const valid = validEvent(event);
    if (!valid) throw new TypeError('publish: not an InvalidationEvent');
    const stream = this.#keys.invalidationStream;
    let version: number | undefined;
    if (valid.kind === 'upsertServer' || valid.kind === 'removeServer') {
      version = Number(await this.#eval(NEXT_VERSION, [this.#keys.configVersion(valid.serverName)], [String(FENCE_TTL_MS)]));
    }
    const body: EventBody = { v: 2, ts: Date.now(), nonce: randomBytes(16).toString('base64url'), ...(version === undefined ? {} : { version }), event: valid };
    await this.#cmd(['XADD', stream, 'MAXLEN', '~', String(STREAM_MAXLEN), '*', 'm', encrypt(this.#enc, JSON.stringify(body), stream)]);
  }

  subscribe(listener: (event: InvalidationEvent) => void): () => void {
    if (typeof listener !== 'function') throw new TypeError('subscribe: listener must be a function');
    this.#listeners.add(listener);
    if (!this.#closed) this.#sub ??= this.#readStream().catch(() => {});
    return () => {
      this.#listeners.delete(listener);
    };
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#closing ??= (async () => {
      // Destroyed, not closed gracefully: a pending blocking XREAD would hold a graceful close for seconds.
      if (this.#subLink) await shut(this.#subLink, true);
      await this.#sub;
      const link = await this.#link.catch(() => undefined);
      if (link) await shut(link);
      this.#listeners.clear();
      this.#nonces.clear();
      this.#versions.clear();
    })();
    return this.#closing;
  }

  /**
   * Reads the invalidation stream on a duplicate connection, from where it started (the stream's end then), with
   * a blocking XREAD; after a reconnect it resumes from the last entry it read, so no event is missed while the
   * connection was down (as long as the stream still holds it).
   */
  async #readStream(): Promise<void> {
    const main = await this.#link;
    if (this.#closed) return;
    const sub = new Link(main.client.duplicate(), true);
    this.#subLink = sub;
    sub.client.connect().catch(() => {}); // failures arrive as 'error' events; it keeps retrying
    const stream = this.#keys.invalidationStream;
    let cursor: string | undefined;
    /** When the last XREAD returned (or the cursor was set): events since then minus the window are fresh. */
    let contact = 0;
    while (!this.#closed) {
      if (!(await sub.ready(() => this.#closed))) break;
      try {
        // The stream's last entry: where a first start begins; one before the cursor means the stream was
        // recreated (Redis restarted without its data, a failover): read it again from its start.
        const [last] = streamEntries(await sub.client.sendCommand(['XREVRANGE', stream, '+', '-', 'COUNT', '1'], { timeout: this.#commandTimeoutMs }));
        if (cursor === undefined) {
          cursor = last?.[0] ?? '0-0';
          contact = Date.now();
        } else if (last === undefined || compareIds(last[0], cursor) < 0) {
          cursor = '0-0';
        }
        for (;;) {
          const reply = await sub.client.sendCommand(['XREAD', 'COUNT', String(READ_COUNT), 'BLOCK', String(BLOCK_MS), 'STREAMS', stream, cursor]);
          const horizon = contact - this.#eventMaxAgeMs;
          const entries = xreadEntries(reply);
          // Caught up: later reads judge freshness from now on (a full batch of a catch-up keeps the old horizon).
          if (entries.length < READ_COUNT) contact = Date.now();
          for (const [id, message] of entries) {
            cursor = id;
            if (this.#closed) return;
            if (message !== undefined) this.#deliver(message, stream, horizon);
          }
          if (this.#closed) return;
        }
      } catch {
        if (this.#closed) break;
        // A dropped connection waits in ready(); a refused command (e.g. the key is not a stream) retries slowly.
        await sleep(sub.client.isReady ? Math.max(this.#lockPollMs, 250) : this.#lockPollMs);
      }
    }
  }

  /** Decrypts, checks and delivers one event; refuses the stale (before `horizon`), the replayed and the out-of-order. */
  #deliver(message: string, stream: string, horizon: number): void {
    let body: Partial<EventBody>;
    let event: InvalidationEvent | undefined;
    try {
      body = JSON.parse(decrypt(this.#enc, message, stream)) as Partial<EventBody>;
      event = body.v === 2 ? validEvent(body.event) : undefined;
    } catch {
      return; // malformed, or published with another key: ignored
    }
    if (!event) return;
    const { ts, nonce, version } = body;
    const now = Date.now();
    if (typeof ts !== 'number' || !Number.isFinite(ts) || ts < horizon || ts > now + this.#eventMaxAgeMs) return;
    if (typeof nonce !== 'string' || nonce.length < 16 || nonce.length > 64 || this.#nonces.has(nonce)) return;
    this.#nonces.set(nonce, ts);
    // Forget what the window refuses anyway (the horizon only moves forward), and the oldest beyond the cap.
    for (const [n, t] of this.#nonces) {
      if (t >= horizon && this.#nonces.size <= NONCE_CAP) break;
      this.#nonces.delete(n);
    }
    if (event.kind === 'upsertServer' || event.kind === 'removeServer') {
      // A config change applies only above the last version delivered for its server: neither a replay nor two
      // replicas' changes arriving out of order roll a server back.
      if (typeof version !== 'number' || !Number.isSafeInteger(version)) return;
      const last = this.#versions.get(event.serverName);
      if (last !== undefined && version <= last) return;
      this.#versions.delete(event.serverName);
      this.#versions.set(event.serverName, version);
      if (this.#versions.size > VERSION_CAP) this.#versions.delete(this.#versions.keys().next().value as string);
    }
    for (const listener of [...this.#listeners]) {
      try {
        const r = listener(event) as unknown;
        if (r && typeof (r as Promise<unknown>).then === 'function') (r as Promise<unknown>).catch(() => {});
      } catch {
        // one listener's failure does not keep the event from the others
      }
    }
  }

  async #cmd(args: string[]): Promise<unknown> {
    if (this.#closed) throw new SwitchboardError('connection_closed', 'the Redis coordinator is closed');
    const link = await this.#link;
    await link.usable(this.#connectTimeoutMs, this.#label);
    try {
      return await link.client.sendCommand(args, { timeout: this.#commandTimeoutMs });
    } catch (err) {
      throw mapError(err, this.#label);
    }
  }

  async #eval(script: string, keys: string[], args: string[]): Promise<unknown> {
    let sha = this.#shas.get(script);
    if (!sha) this.#shas.set(script, (sha = createHash('sha1').update(script).digest('hex')));
    try {
      return await this.#cmd(['EVALSHA', sha, String(keys.length), ...keys, ...args]);
    } catch (err) {
      if (!(err instanceof SwitchboardError && err.code === 'server_error' && /NOSCRIPT/.test(err.message))) throw err;
      return this.#cmd(['EVAL', script, String(keys.length), ...keys, ...args]);
    }
  }

  #seal(value: unknown, key: string): string {
    return encrypt(this.#enc, JSON.stringify(value), key);
  }

  /** Decrypts and parses; `undefined` when absent or unreadable (another key, another Redis key, tampered). */
  #open<T>(raw: string | undefined, key: string): T | undefined {
    if (raw === undefined) return undefined;
    try {
      return JSON.parse(decrypt(this.#enc, raw, key)) as T;
    } catch {
      return undefined;
    }
  }

  async #getJson<T>(key: string): Promise<T | undefined> {
    return this.#open<T>(asString(await this.#cmd(['GET', key])), key);
  }

  /** `<64 hex HMAC of the tokens>.<envelope>`: the compare-and-set script compares the hash without decrypting. */
  #sessionValue(s: UpstreamSession, key: string): string {
    const session = { accessToken: s.accessToken, ...(s.refreshToken === undefined ? {} : { refreshToken: s.refreshToken }), expiresAt: s.expiresAt };
    return `${this.#keys.sessionHash(s.accessToken, s.refreshToken)}.${this.#seal(session, key)}`;
  }
}

async function shut(link: Link, force = false): Promise<void> {
  link.detach();
  if (!link.owned) return;
  const client = link.client;
  try {
    if (client.isReady && !force) await client.close();
    else if (client.isOpen) client.destroy();
  } catch {
    try {
      client.destroy();
    } catch {
      // already closed
    }
  }
}

/**
 * Creates the {@link Coordinator} of several replicas on one Redis (7 or later): pass it as the `coordinator`
 * option of `MCPManager`, `createUpstreamTokenProvider` and `createOboTokenResolver`.
 *
 * Uses node-redis 5 (the `redis` package, an optional peer dependency: `npm install redis@5`), chosen as the
 * client Redis Inc. maintains, in TypeScript, with RESP3 and automatic re-subscription. It is loaded when this
 * function runs, never by the package's other entry points.
 *
 * - Every value is encrypted (AES-256-GCM, a random IV, the Redis key as associated data); every key holding a
 *   user, a `state` or a token hash is an HMAC of it under `keyPrefix`. A Redis dump reveals no usable token.
 *   An entry this `encryptionKey` cannot decrypt reads as absent.
 * - `oauthFlowStore.take` is one `GETDEL`; `upstreamSessions.compareAndSet` and the locks are Lua scripts.
 * - `acquire` polls every `lockPollMs`; a lock's fencing token is an `INCR` per key; a dead holder's lock expires
 *   after `ttlMs`; `release()` never rejects (when Redis is unreachable the lock simply expires).
 * - Invalidations travel, encrypted, on the Redis stream `<keyPrefix>invalidate` (`XADD MAXLEN ~ 10000`), which
 *   every subscribed coordinator, the publisher's included, reads with a blocking `XREAD` on a connection of its
 *   own. After a reconnect it resumes from the last entry it read, so an event published meanwhile still arrives
 *   (unless 10 000 newer ones pushed it out). Malformed messages are ignored.
 * - Every event carries, encrypted, its publication time and a random nonce: an event older than `eventMaxAgeMs`
 *   (counted from when the subscriber last read the stream, so a catch-up after an outage still applies) or one
 *   whose nonce was already seen is refused. `upsertServer` and `removeServer` also carry a fleet-wide version
 *   per server (a Redis counter, never below Redis's clock in µs); a coordinator delivers one only when its
 *   version is above the last it delivered for that server, so a replayed or late config change never rolls a
 *   server back, and all replicas settle on the same latest change.
 * - `publish` rejects (retryable) while Redis is unreachable; an event published while a subscriber's own
 *   connection is down reaches it when that connection is back.
 * - While Redis cannot be reached, operations reject at once with a retryable `SwitchboardError`
 *   (`connect_failed`); the connection is retried forever (back-off up to `maxReconnectDelayMs`) and operations
 *   work again as soon as Redis is back.
 *
 * @example
 * ```ts
 * import { createRedisCoordinator } from 'mcp-switchboard/redis';
 * import { MCPManager } from 'mcp-switchboard';
 *
 * const coordinator = createRedisCoordinator({ url: process.env.REDIS_URL, encryptionKey: process.env.MCP_REDIS_KEY! });
 * const manager = new MCPManager({ servers, coordinator });
 * process.on('SIGTERM', async () => {
 *   await manager.close();
 *   await coordinator.close();
 * });
 * ```
 */
export function createRedisCoordinator(options: RedisCoordinatorOptions): Coordinator {
  return new RedisCoordinator(options);
}
