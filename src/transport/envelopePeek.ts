/**
 * Reading the envelope of a JSON-RPC message from its two ends, without parsing it: what a transport needs to
 * answer a message it drops for its size. Every MCP SDK writes the envelope members (`jsonrpc`, `id`, `method`)
 * either first (`{"jsonrpc":"2.0","id":7,"result":…}`) or last (`{"result":…,"id":7,"jsonrpc":"2.0"}`), so the
 * first and last {@link PEEK_BYTES} bytes are enough.
 * @module
 */

/**
 * How many bytes (or, for a message already decoded, characters) at each end of an over-size message are kept
 * and read for its envelope.
 *
 * @example
 * ```ts
 * const head = message.subarray(0, PEEK_BYTES).toString('utf8');
 * const tail = message.subarray(-PEEK_BYTES).toString('utf8');
 * ```
 */
export const PEEK_BYTES = 256;

/**
 * What the ends of a message tell: its top-level `id` (a string or a safe integer; `undefined` when neither end
 * shows one) and whether it comes from the server as a request or notification (a top-level `method`).
 *
 * @example
 * ```ts
 * const envelope: Envelope = { id: 7, fromServer: false };
 * ```
 */
export interface Envelope {
  /** The top-level `id`: a string or a safe integer; `undefined` when none is seen or it is anything else. */
  id: string | number | undefined;
  /** True when a top-level `method` is seen at either end: a request or notification, not a response. */
  fromServer: boolean;
}

/** A JSON string, escapes included. */
const STRING = String.raw`"(?:[^"\\]|\\.)*"`;
/** A JSON-RPC id as JSON text: a string or a number (checked after parsing: strings and safe integers only). */
const ID = String.raw`(${STRING}|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)`;
/** An id value right after its `:`, ended by `,` or `}`: a value cut by the end of the window does not match. */
const ID_VALUE = new RegExp(String.raw`\s*${ID}\s*[,}]`, 'y');
/** Envelope members that may follow `id` at the end of a message. */
const AFTER_ID = String.raw`(?:,\s*"(?:jsonrpc|method)"\s*:\s*${STRING}\s*){0,2}`;
/**
 * `…,"id": X}` closing the message, or followed only by `jsonrpc` / `method`: a nested `id` would be followed by
 * two `}`, and inside a string every `"` is escaped, so `[{,]"id"` is a key.
 */
const TAIL_ID = new RegExp(String.raw`[{,]\s*"id"\s*:\s*${ID}\s*${AFTER_ID}\}\s*$`);
/** `…,"method": "…"}` closing the message, or followed only by `jsonrpc` / `id`. */
const TAIL_METHOD = new RegExp(String.raw`[{,]\s*"method"\s*:\s*${STRING}\s*(?:,\s*"(?:jsonrpc|id)"\s*:\s*${ID}\s*){0,2}\}\s*$`);
const SPACE = /\s/;

/**
 * The envelope of a message from its first characters (`head`, which must start where the message starts) and
 * its last (`tail`, which may start anywhere). The head is walked member by member at the top level of the
 * object, so ids nested in `result` or `params` are ignored and `jsonrpc`, `id` and `method` may come in any
 * order; the tail is matched against the endings SDKs write. An id seen in the head wins over one in the tail.
 * A window cut inside a string, or inside a multi-byte character (read as U+FFFD), shows nothing wrong: a cut
 * value is not taken.
 *
 * @example
 * ```ts
 * peekEnvelope('{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"aaa', 'aaa"}]}}');
 * // → { id: 7, fromServer: false }
 * peekEnvelope('{"jsonrpc":"2.0","method":"notifications/message","params":{"data":"bbb', 'bbb"}}');
 * // → { id: undefined, fromServer: true }
 * ```
 */
export function peekEnvelope(head: string, tail: string): Envelope {
  const top = walkHead(head);
  let id = top.id;
  if (id === undefined) {
    const raw = TAIL_ID.exec(tail)?.[1];
    if (raw !== undefined) id = idOf(raw);
  }
  return { id, fromServer: top.method || TAIL_METHOD.test(tail) };
}

/**
 * The last `n` bytes of `prev` followed by `next`, for keeping the tail of a message that arrives in chunks. The
 * result never shares memory with `next` (chunks may be reused by their producer).
 *
 * @example
 * ```ts
 * let tail: Buffer = Buffer.alloc(0);
 * for (const chunk of chunks) tail = lastBytes(tail, chunk, PEEK_BYTES);
 * ```
 */
export function lastBytes(prev: Buffer, next: Buffer, n: number): Buffer {
  if (next.length >= n) return Buffer.from(next.subarray(next.length - n));
  const joined = Buffer.concat([prev, next]); // always a new buffer
  return joined.length > n ? joined.subarray(joined.length - n) : joined;
}

/** Walks the start of a JSON object: its first top-level `id` that is a valid id, and whether it has a `method`. */
function walkHead(text: string): { id: string | number | undefined; method: boolean } {
  let id: string | number | undefined;
  let method = false;
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
    else if (c === '"') {
      const start = i + 1;
      for (i = start; i < text.length && text[i] !== '"'; i++) if (text[i] === '\\') i++;
      if (i >= text.length) break; // the window ends inside a string
      if (depth !== 1) continue;
      let j = i + 1;
      while (j < text.length && SPACE.test(text[j]!)) j++;
      if (text[j] !== ':') continue; // a value, not a key
      const key = text.slice(start, i);
      if (key === 'method') method = true;
      else if (key === 'id' && id === undefined) {
        ID_VALUE.lastIndex = j + 1;
        const raw = ID_VALUE.exec(text)?.[1];
        if (raw !== undefined) id = idOf(raw);
      }
    }
  }
  return { id, method };
}

/** The id JSON text `raw` stands for, when it is a string or a safe integer. */
function idOf(raw: string): string | number | undefined {
  try {
    const v: unknown = JSON.parse(raw);
    return typeof v === 'string' || (typeof v === 'number' && Number.isSafeInteger(v)) ? v : undefined;
  } catch {
    return undefined;
  }
}
