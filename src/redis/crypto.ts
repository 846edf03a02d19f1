/**
 * Encryption at rest for the Redis coordinator: AES-256-GCM (node:crypto) with a random 12-byte IV, the
 * 16-byte auth tag and the Redis key as associated data, in a versioned envelope; and the HMAC that turns
 * token-bearing names into opaque key names. Both subkeys are derived (HKDF-SHA256) from the host's key.
 * @module
 * @internal
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';

/** The envelope's version prefix: `v1.` + base64url(iv ‖ ciphertext ‖ tag). */
const V1 = 'v1.';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * The keys derived from the host's `encryptionKey`: one encrypts, the other names keys.
 *
 * @example
 * ```ts
 * const keys = deriveKeys(parseEncryptionKey(process.env.MCP_KEY!));
 * ```
 * @internal
 */
export interface DerivedKeys {
  /** The AES-256-GCM key. */
  readonly enc: Buffer;
  /** The HMAC-SHA256 key for key names and compare-and-set hashes. */
  readonly mac: Buffer;
}

/**
 * Reads the host's key: a 32-byte `Uint8Array`, or a string holding 32 bytes as hex (64 digits) or base64
 * (standard or URL-safe). Anything else throws a `TypeError` naming `encryptionKey`.
 *
 * @example
 * ```ts
 * const key = parseEncryptionKey('0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef');
 * ```
 * @internal
 */
export function parseEncryptionKey(value: unknown): Buffer {
  const fail = (): never => {
    throw new TypeError('createRedisCoordinator: "encryptionKey" must be 32 bytes: a Uint8Array of 32 bytes, or a hex or base64 string of 32 bytes (e.g. `openssl rand -base64 32`)');
  };
  if (value instanceof Uint8Array) return value.length === 32 ? Buffer.from(value) : fail();
  if (typeof value !== 'string') return fail();
  const s = value.trim();
  if (/^[0-9a-fA-F]{64}$/.test(s)) return Buffer.from(s, 'hex');
  if (/^[A-Za-z0-9+/_-]{43}={0,1}$/.test(s)) {
    const buf = Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (buf.length === 32) return buf;
  }
  return fail();
}

/**
 * Derives the encryption and naming subkeys (HKDF-SHA256, distinct `info` labels).
 *
 * @example
 * ```ts
 * const { enc, mac } = deriveKeys(parseEncryptionKey(key));
 * ```
 * @internal
 */
export function deriveKeys(master: Buffer): DerivedKeys {
  const derive = (info: string) => Buffer.from(hkdfSync('sha256', master, Buffer.alloc(0), info, 32));
  return { enc: derive('mcp-switchboard/redis aes-256-gcm v1'), mac: derive('mcp-switchboard/redis hmac-sha256 v1') };
}

/**
 * HMAC-SHA256 of `value`, hex: what a key name or a compare-and-set hash holds instead of a token.
 *
 * @example
 * ```ts
 * const name = hmacHex(keys.mac, 'obo', cacheKey);
 * ```
 * @internal
 */
export function hmacHex(mac: Buffer, domain: string, value: string): string {
  return createHmac('sha256', mac).update(domain).update('\0').update(value).digest('hex');
}

/**
 * Encrypts `plaintext` bound to `aad` (the Redis key it is stored under, so a value moved to another key does
 * not decrypt).
 *
 * @example
 * ```ts
 * const stored = encrypt(keys.enc, JSON.stringify(tokens), redisKey);
 * ```
 * @internal
 */
export function encrypt(enc: Buffer, plaintext: string, aad: string): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', enc, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return V1 + Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
}

/**
 * Decrypts an envelope from {@link encrypt}; throws when it is malformed, of an unknown version, encrypted
 * with another key, or stored under another Redis key.
 *
 * @example
 * ```ts
 * const json = decrypt(keys.enc, stored, redisKey);
 * ```
 * @internal
 */
export function decrypt(enc: Buffer, envelope: string, aad: string): string {
  if (!envelope.startsWith(V1)) throw new Error('unknown envelope version');
  const raw = Buffer.from(envelope.slice(V1.length), 'base64url');
  if (raw.length < IV_BYTES + TAG_BYTES) throw new Error('truncated envelope');
  const decipher = createDecipheriv('aes-256-gcm', enc, raw.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
  decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
  return Buffer.concat([decipher.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES)), decipher.final()]).toString('utf8');
}
