/**
 * Pieces of the request path that need no server: the event framing of the response watch, and the undici
 * timers of HttpClient's dispatchers.
 */
import { HttpClient } from '../../src/transport/httpClient.js';
import { nextBoundary, seamAfter } from '../../src/transport/interceptors/eventFrames.js';
import { composeStages, type OutgoingRequest, type RequestInterceptor } from '../../src/transport/requestPath.js';

/**
 * The options an undici dispatcher was made with, found under its `Symbol(options)` (and those of the Agent a
 * proxy agent wraps). undici has no public getter for them; a live test of a 300 s timer would need a 300 s test,
 * and the timer values cannot be lowered from outside HttpClient, so the options themselves are checked.
 */
function timersOf(dispatcher: object): { bodyTimeout?: unknown; headersTimeout?: unknown }[] {
  const found: { bodyTimeout?: unknown; headersTimeout?: unknown }[] = [];
  const seen = new Set<object>();
  const walk = (o: object, depth: number) => {
    if (seen.has(o) || depth > 3) return;
    seen.add(o);
    for (const sym of Object.getOwnPropertySymbols(o)) {
      const v = (o as Record<symbol, unknown>)[sym];
      if (!v || typeof v !== 'object') continue;
      if (sym.description === 'options' && ('bodyTimeout' in v || 'headersTimeout' in v)) found.push(v as never);
      else if (/agent/i.test(sym.description ?? '')) walk(v, depth + 1);
    }
  };
  walk(dispatcher, 0);
  return found;
}

describe('HttpClient dispatchers carry no 300 s undici timer', () => {
  it.each([
    ['plain Agent', {}, {}],
    ['guarded Agent', {}, { source: 'user' as const }],
    ['ProxyAgent', {}, { proxy: 'http://127.0.0.1:9' }],
    ['EnvHttpProxyAgent', { proxy: 'env' as const }, {}],
  ])('%s: bodyTimeout and headersTimeout are 0', async (_name, opts, config) => {
    const http = new HttpClient(opts);
    try {
      const { dispatcher } = http.forConfig(config);
      const timers = timersOf(dispatcher);
      expect(timers.length).toBeGreaterThan(0);
      for (const t of timers) expect(t).toMatchObject({ bodyTimeout: 0, headersTimeout: 0 });
    } finally {
      await http.close();
    }
  });
});

describe('event framing', () => {
  const none = Buffer.alloc(0);
  it.each([
    ['data: 1\n\ndata: 2', 9],
    ['data: 1\r\n\r\ndata: 2', 11],
    ['data: 1\r\rdata: 2', 9],
    ['data: 1\ndata: 2', -1],
  ])('%j → first boundary ends at %d', (text, end) => {
    expect(nextBoundary(Buffer.from(text), 0, none)).toBe(end);
  });

  it('finds a boundary split between two chunks', () => {
    const first = Buffer.from('data: 1\r\n\r');
    const seam = seamAfter(none, first);
    expect(nextBoundary(Buffer.from('\ndata: 2'), 0, seam)).toBe(1);
    expect(nextBoundary(Buffer.from('\ndata: 2'), 0, seamAfter(none, Buffer.from('data: 1\n')))).toBe(1);
  });
});

describe('composeStages', () => {
  it('runs interceptors in order, skipping absent ones', async () => {
    const seen: string[] = [];
    const tag =
      (name: string): RequestInterceptor =>
      (next) =>
      (req) => {
        seen.push(name);
        return next(req);
      };
    const stage = composeStages(async () => new Response('ok'), [tag('a'), undefined, tag('b')]);
    await stage({} as OutgoingRequest);
    expect(seen).toEqual(['a', 'b']);
  });
});
