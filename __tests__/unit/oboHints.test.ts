/**
 * Issue 16, item 4: an expired, mis-addressed, revoked or unconsented upstream token is told apart from a
 * bare `invalid_grant`, in the message and in `cause.hint`; `reason` stays `exchange_failed`.
 */
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { UnsecuredJWT } from 'jose';
import { MockAgent } from 'undici';
import { oboHint } from '../../src/auth/idpErrors.js';
import { createOboTokenResolver } from '../../src/auth/oboTokenResolver.js';
import type { OboRequest } from '../../src/auth/oboTypes.js';
import { OboError, type OboErrorCause } from '../../src/errors.js';
import { rejectionOf } from '../support/errors.js';

const ISSUER = 'https://idp.test';
let mock: MockAgent;
let sent: number;

beforeEach(() => {
  mock = new MockAgent();
  mock.disableNetConnect();
  sent = 0;
});
afterEach(async () => {
  await mock.close();
});

function idpAnswers(status: number, body: unknown): void {
  mock
    .get(ISSUER)
    .intercept({ path: '/token', method: 'POST' })
    .reply(() => {
      sent++;
      return { statusCode: status, data: JSON.stringify(body), responseOptions: { headers: { 'content-type': 'application/json' } } };
    });
}

function resolver(now = Date.now) {
  return createOboTokenResolver({ issuer: ISSUER, tokenEndpoint: `${ISSUER}/token`, clientId: 'runtime', clientSecret: 'secret', dispatcher: mock, retryDelayMs: 0, now });
}

function request(expSec = Math.floor(Date.now() / 1000) + 3600): OboRequest {
  return { user: { id: 'u1' }, assertion: new UnsecuredJWT({ sub: 'u1', exp: expSec }).encode(), scopes: ['api://files/.default'], serverName: 'files' };
}

const entra = (code: number, extra: Record<string, unknown> = {}) => ({
  error: 'invalid_grant',
  error_description: `AADSTS${code}: something went wrong. Trace ID: x`,
  error_codes: [code],
  ...extra,
});

describe('OBO errors say why the upstream token was refused', () => {
  it.each([
    [500133, 'expired', "the user's upstream token expired"],
    [50013, 'wrong_audience', 'wrong audience'],
    [500131, 'wrong_audience', 'wrong audience'],
    [65001, 'consent_required', 'consent is required'],
    [50173, 'revoked', 'revoked'],
    [70043, 'revoked', 'revoked'],
    [700082, 'revoked', 'revoked'],
  ] as const)('AADSTS%d → hint %s', async (code, hint, text) => {
    idpAnswers(400, entra(code));
    const err = await rejectionOf(resolver()(request()), OboError);
    expect(err.reason).toBe('exchange_failed');
    expect(err.retryable).toBe(false);
    expect((err.cause as OboErrorCause).hint).toBe(hint);
    expect(err.message).toContain(text);
    expect(err.message).toContain(`AADSTS${code}`);
    expect((err.toJSON().cause as OboErrorCause).hint).toBe(hint);
  });

  it('reads the AADSTS code from error_description when error_codes is absent, and suberror consent_required', () => {
    expect(oboHint({ status: 400, error: 'invalid_grant', error_description: 'AADSTS500133: Assertion is not within its valid time range.' })).toBe('expired');
    expect(oboHint({ status: 400, error: 'interaction_required', suberror: 'consent_required' })).toBe('consent_required');
    expect(oboHint({ status: 400, error: 'invalid_grant' })).toBeUndefined();
  });

  it('a garbage assertion refused without a reason keeps the plain invalid_grant message, with no hint', async () => {
    idpAnswers(400, { error: 'invalid_grant' });
    const err = await rejectionOf(resolver()({ ...request(), assertion: 'not-a-jwt' }), OboError);
    expect(err.message).toBe('OBO token exchange for server "files" failed: invalid_grant (HTTP 400)');
    expect((err.cause as OboErrorCause).hint).toBeUndefined();
  });

  it('an assertion already past its exp is not sent: "the user\'s upstream token expired"', async () => {
    idpAnswers(400, { error: 'invalid_grant' });
    const err = await rejectionOf(resolver()(request(Math.floor(Date.now() / 1000) - 60)), OboError);
    expect(sent).toBe(0);
    expect(err.reason).toBe('exchange_failed');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain("the user's upstream token expired");
    expect((err.cause as OboErrorCause).hint).toBe('expired');
  });

  it('an assertion that expired while the IdP answered a bare invalid_grant gets hint expired', async () => {
    const exp = Math.floor(Date.now() / 1000) + 10;
    let clock = Date.now();
    mock
      .get(ISSUER)
      .intercept({ path: '/token', method: 'POST' })
      .reply(() => {
        sent++;
        clock = (exp + 1) * 1000; // the assertion expires during the exchange
        return { statusCode: 400, data: JSON.stringify({ error: 'invalid_grant' }), responseOptions: { headers: { 'content-type': 'application/json' } } };
      });
    const err = await rejectionOf(resolver(() => clock)(request(exp)), OboError);
    expect(sent).toBe(1);
    expect((err.cause as OboErrorCause).hint).toBe('expired');
    expect(err.message).toContain("the user's upstream token expired");
  });
});
