/**
 * Clients of the test IdP (`startTestIdp`) as the auth modules take them.
 */
import { createOboTokenResolver, type OboTokenResolverOptions } from '../../src/auth/oboTokenResolver.js';
import type { TestIdp } from '../../src/testing/testIdp.js';

/** The test IdP's confidential client, over plain HTTP on loopback (hence `allowInsecureRequests`). */
export function testIdpClient(idp: TestIdp): Pick<OboTokenResolverOptions, 'issuer' | 'clientId' | 'clientSecret' | 'allowInsecureRequests'> {
  return { issuer: idp.issuer, clientId: idp.client.clientId, clientSecret: idp.client.clientSecret, allowInsecureRequests: true };
}

/** An OBO resolver for the test IdP's client that retries after 1 ms; `extra` adds or overrides options. */
export function testIdpResolver(idp: TestIdp, extra: Partial<OboTokenResolverOptions> = {}) {
  return createOboTokenResolver({ ...testIdpClient(idp), retryDelayMs: 1, ...extra });
}
