#!/usr/bin/env node
// The client the MCP conformance suite (@modelcontextprotocol/conformance) runs, once per scenario:
//
//   MCP_CONFORMANCE_SCENARIO=<name> [MCP_CONFORMANCE_CONTEXT=<json>] node conformance/client.mjs <server-url>
//
// Every MCP and OAuth request goes through MCPManager from the built package, configured from the scenario
// and its context (see `plan()` below: one config per scenario, nothing else scenario-specific). The only
// hand-written step is the "browser": a call that rejects with `authorization_required` has its
// `authorizationUrl` fetched without following redirects, and the `Location` it redirects to (the callback
// URL with code and state) goes to `manager.completeAuthorization()`; then the call is retried.
//
// Run through `npm run conformance` (scripts/conformance.mjs), which builds first.
import { MCPManager, createOboTokenResolver } from '../dist/index.js';

const SERVER = 'conformance';
/** Per-user OAuth scenarios run as this user. */
const USER = { id: 'conformance-user' };
/** Any loopback URL: the "browser" below reads the redirect instead of following it, so nothing listens here. */
const REDIRECT_URI = 'http://127.0.0.1:33418/callback';
/**
 * The client ID metadata document URL the suite's CIMD scenarios expect as `client_id`
 * (auth/basic-cimd; auth/offline-access-scope also advertises CIMD). It never resolves: the suite's
 * authorization server takes it as is. A host sets it once, so it is set for every authorization-code
 * scenario: the library must use it only when the authorization server advertises
 * `client_id_metadata_document_supported`, and fall back to pre-registered credentials or dynamic
 * registration otherwise (the metadata scenarios check that registration happens).
 */
const CLIENT_METADATA_URL = 'https://conformance-test.local/client-metadata.json';
/**
 * How many consents the "browser" gives for one operation. Deliberately above the 3 that
 * auth/scope-retry-limit allows: the library, not this script, must stop a step-up loop.
 */
const MAX_CONSENTS = 10;
/** The manager's `oauth` option, the same in every OAuth scenario. */
const OAUTH_OPTIONS = { redirectUri: REDIRECT_URI, clientMetadataUrl: CLIENT_METADATA_URL };

const log = (...args) => console.error('[conformance-client]', ...args);

/** The tool calls each scenario's test server expects after `tools/list`. */
const TOOL_CALLS = {
  initialize: [],
  tools_call: [{ toolName: 'add_numbers', arguments: { a: 5, b: 3 } }],
  'elicitation-sep1034-client-defaults': [{ toolName: 'test_client_elicitation_defaults', arguments: {} }],
  'sse-retry': [{ toolName: 'test_reconnection', arguments: {} }],
};
/** Authorization-code scenarios: the protected test server exposes `test-tool`. */
const AUTH_TOOL_CALLS = [{ toolName: 'test-tool', arguments: {} }];

/**
 * Maps a scenario and its context to MCPManager options, the user the calls are made for, and the calls.
 * @returns {Promise<{ options: object, user?: object, calls: Array<{ toolName: string, arguments: object }> }>}
 */
async function plan(scenario, ctx, serverUrl) {
  const server = { type: 'streamable-http', url: serverUrl };

  if (scenario in TOOL_CALLS) {
    const options = { servers: { [SERVER]: server } };
    if (scenario === 'elicitation-sep1034-client-defaults') {
      // Accept with no content at all: the library must fill in the requested schema's defaults.
      options.onElicitation = async (request, { serverName }) => {
        log(`elicitation from ${serverName}: "${request.params?.message}"; accepting with {}`);
        return { action: 'accept', content: {} };
      };
    }
    return { options, calls: TOOL_CALLS[scenario] };
  }

  // Machine-to-machine: app-level server, no user, client credentials from the context. The manager's `oauth`
  // option is the same as in every OAuth scenario: a host that lets the package run OAuth sets it once.
  if (scenario === 'auth/client-credentials-basic') {
    const oauth = { grant: 'client_credentials', clientId: need(ctx, 'client_id'), clientSecret: need(ctx, 'client_secret') };
    return { options: { servers: { [SERVER]: { ...server, oauth } }, oauth: OAUTH_OPTIONS }, calls: AUTH_TOOL_CALLS };
  }
  if (scenario === 'auth/client-credentials-jwt') {
    // private_key_jwt: the context has a PKCS#8 PEM (EC P-256) and `signing_algorithm` (ES256).
    const oauth = {
      grant: 'client_credentials',
      clientId: need(ctx, 'client_id'),
      privateKey: need(ctx, 'private_key_pem'),
      ...(ctx.signing_algorithm ? { algorithm: ctx.signing_algorithm } : {}),
    };
    return { options: { servers: { [SERVER]: { ...server, oauth } }, oauth: OAUTH_OPTIONS }, calls: AUTH_TOOL_CALLS };
  }

  // Cross-app access (SEP-990, ID-JAG): the user's IdP ID token is the OBO assertion. The IdP exchanges it
  // (RFC 8693, no client auth, client_id in the body) for an ID-JAG, which the MCP server's authorization
  // server trades (RFC 7523 jwt-bearer, client_secret_basic) for the access token.
  // The resolver (`createOboTokenResolver({ grant: 'cross-app-access' })`) holds the IdP side (one IdP per host),
  // the server's `obo` block the MCP authorization server's client (registered per server), like the `oauth`
  // block of a pre-registered client.
  if (scenario === 'auth/cross-app-access-complete-flow') {
    const oboTokenResolver = createOboTokenResolver({
      grant: 'cross-app-access',
      issuer: need(ctx, 'idp_issuer'),
      tokenEndpoint: need(ctx, 'idp_token_endpoint'),
      clientId: need(ctx, 'idp_client_id'),
      allowInsecureRequests: true, // the suite's IdP and authorization server are plain-http loopback
    });
    const obo = { grant: 'cross-app-access', clientId: need(ctx, 'client_id'), clientSecret: need(ctx, 'client_secret') };
    return {
      options: { servers: { [SERVER]: { ...server, obo } }, oboTokenResolver },
      user: { ...USER, upstreamToken: need(ctx, 'idp_id_token') },
      calls: AUTH_TOOL_CALLS,
    };
  }

  if (scenario.startsWith('auth/')) {
    // Per-user authorization code + PKCE, run by the package. Pre-registered credentials when the context has them.
    const oauth = scenario === 'auth/pre-registration' ? { clientId: need(ctx, 'client_id'), clientSecret: need(ctx, 'client_secret') } : {};
    return {
      options: {
        servers: { [SERVER]: { ...server, oauth } },
        oauth: OAUTH_OPTIONS,
      },
      user: USER,
      calls: AUTH_TOOL_CALLS,
    };
  }

  throw new Error(`no plan for scenario ${scenario}`);
}

function need(ctx, field) {
  if (typeof ctx[field] !== 'string' || !ctx[field]) throw new Error(`MCP_CONFORMANCE_CONTEXT has no ${field}`);
  return ctx[field];
}

/** Runs `op`; on `authorization_required`, plays the browser and the callback route, then runs it again. */
async function withConsent(manager, user, what, op) {
  for (let consents = 0; ; consents++) {
    try {
      return await op();
    } catch (err) {
      if (err?.code !== 'authorization_required' || consents >= MAX_CONSENTS) throw err;
      const authorizationUrl = new URL(err.authorizationUrl);
      log(`${what}: authorization required for ${err.serverName}; consent #${consents + 1} at ${authorizationUrl.origin}${authorizationUrl.pathname}`);
      const res = await fetch(authorizationUrl, { redirect: 'manual' });
      await res.body?.cancel();
      const location = res.headers.get('location');
      if (!location) throw new Error(`authorization endpoint answered ${res.status} without a Location header`);
      // The callback route knows the session's user: the flow must be bound to the user who started it.
      const done = await manager.completeAuthorization(new URL(location, authorizationUrl).href, user ? { user } : {});
      log(`${what}: authorized ${done?.serverName} for ${done?.userId}`);
    }
  }
}

/** One line: scripts/conformance.mjs quotes it as the reason. */
function describe(err) {
  const cause = err?.cause ? ` (cause: ${err.cause?.code ? `[${err.cause.code}] ` : ''}${err.cause?.message ?? err.cause})` : '';
  return `${err?.name ?? 'Error'}${err?.code ? ` [${err.code}]` : ''}: ${String(err?.message ?? err).replace(/\s*\n\s*/g, ' | ')}${cause}`;
}

async function main() {
  const serverUrl = process.argv.at(-1);
  const scenario = process.env.MCP_CONFORMANCE_SCENARIO;
  if (!scenario || !serverUrl || !/^https?:\/\//.test(serverUrl)) {
    console.error('usage: MCP_CONFORMANCE_SCENARIO=<scenario> [MCP_CONFORMANCE_CONTEXT=<json>] node conformance/client.mjs <server-url>');
    process.exit(2);
  }
  const ctx = process.env.MCP_CONFORMANCE_CONTEXT ? JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT) : {};
  let manager, user, calls;
  try {
    let options;
    ({ options, user, calls } = await plan(scenario, ctx, serverUrl));
    manager = new MCPManager(options);
  } catch (err) {
    // Marked apart from a call failing: scripts/conformance.mjs counts it as a failure even in scenarios where
    // the client is expected to give up (auth/resource-mismatch, auth/scope-retry-limit).
    log(`setup failed: ${describe(err)}`);
    console.error(err?.stack ?? err);
    process.exit(3);
  }
  const who = user ? { user, serverName: SERVER } : { serverName: SERVER };
  try {
    const tools = await withConsent(manager, user, 'listTools', () => manager.listTools(who));
    log(`tools: ${tools.map((t) => t.name).join(', ') || '(none)'}`);
    for (const call of calls) {
      const result = await withConsent(manager, user, call.toolName, () => manager.callTool({ ...who, ...call }));
      log(`${call.toolName}: ${JSON.stringify(result.content ?? result).slice(0, 200)}`);
    }
  } finally {
    await manager.close();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    log(`failed: ${describe(err)}`);
    console.error(err?.stack ?? err);
    process.exit(1);
  },
);
