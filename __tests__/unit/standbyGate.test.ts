/**
 * The standby gate's floor on resumed response streams (`Last-Event-ID` GETs): a rate bound (one per floor delay,
 * counted from the previous resumption), not a delay added to the server's own `retry` wait, which the SDK has
 * already honoured before it sends the GET (SEP-1699: the reconnection must come when the server said).
 */
import { jest } from '@jest/globals';
import type { Dispatcher } from 'undici';
import { RetryPolicy } from '../../src/connection/retryPolicy.js';
import { composeStages, type OutgoingRequest } from '../../src/transport/requestPath.js';
import { standbyGate } from '../../src/transport/interceptors/standbyGate.js';
import { silentLogger } from '../../src/types.js';

const FLOOR_MS = 60_000;

function setup() {
  const sent: number[] = [];
  const last = async () => {
    sent.push(Date.now());
    return new Response('', { status: 200, headers: { 'content-type': 'text/event-stream' } });
  };
  const policy = new RetryPolicy({ minDelayMs: FLOOR_MS, baseDelayMs: FLOOR_MS, maxDelayMs: FLOOR_MS, maxAttempts: 5 });
  const stage = composeStages(last, [standbyGate({ policy, enabled: true, logger: silentLogger, serverName: 'svc' })]);
  const dispatcher = {} as Dispatcher; // never used: the last stage answers itself
  const resume = (): OutgoingRequest => ({
    url: new URL('http://127.0.0.1:9/mcp'),
    method: 'GET',
    headers: { 'last-event-id': 'e-1' },
    body: undefined,
    redirect: 'manual',
    forceRefresh: false,
    crossOrigin: false,
    dispatcher,
  });
  return { sent, stage, resume };
}

describe('standbyGate: resumed response streams', () => {
  beforeEach(() => jest.useFakeTimers({ now: 1_000_000 }));
  afterEach(() => jest.useRealTimers());

  it('sends the first resumption at once: the server’s retry wait was the SDK’s, the floor adds nothing to it', async () => {
    const { sent, stage, resume } = setup();
    await stage(resume());
    expect(sent).toEqual([1_000_000]);
  });

  it('holds a resumption that follows another within the floor until the floor has passed since the previous one', async () => {
    const { sent, stage, resume } = setup();
    await stage(resume());
    await jest.advanceTimersByTimeAsync(FLOOR_MS / 4);
    let done = false;
    const second = stage(resume()).then(() => (done = true));
    await jest.advanceTimersByTimeAsync(FLOOR_MS / 2);
    expect(done).toBe(false);
    await jest.advanceTimersByTimeAsync(FLOOR_MS / 4);
    await second;
    expect(sent).toEqual([1_000_000, 1_000_000 + FLOOR_MS]);
  });

  it('sends a resumption that comes a floor or more after the previous one at once', async () => {
    const { sent, stage, resume } = setup();
    await stage(resume());
    await jest.advanceTimersByTimeAsync(FLOOR_MS);
    await stage(resume());
    expect(sent).toEqual([1_000_000, 1_000_000 + FLOOR_MS]);
  });
});
