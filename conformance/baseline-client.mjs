#!/usr/bin/env node
// Baseline for the harness: the same scenarios as conformance/client.mjs, with a plain
// @modelcontextprotocol/sdk Client and the SDK's auth module (auth(), its OAuthClientProvider contract and the
// client-credentials providers of auth-extensions), no mcp-switchboard at all. `node scripts/conformance.mjs
// --baseline` runs it: it should score every scenario, which shows a failure of client.mjs is the library's,
// not the harness's. Cross-app access has no SDK provider, so it is a few plain fetches (RFC 8693 then 7523).
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { auth, extractWWWAuthenticateParams, UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { ClientCredentialsProvider, PrivateKeyJwtProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';

const REDIRECT_URI = 'http://127.0.0.1:33418/callback';
const CLIENT_METADATA_URL = 'https://conformance-test.local/client-metadata.json';
const log = (...args) => console.error('[baseline-client]', ...args);

/** An in-memory OAuthClientProvider whose "browser" reads the authorization redirect instead of following it. */
class Provider {
  #client;
  #tokens;
  #verifier;
  code;
  constructor({ clientMetadataUrl, client } = {}) {
    this.clientMetadataUrl = clientMetadataUrl;
    this.#client = client;
  }
  get redirectUrl() {
    return REDIRECT_URI;
  }
  get clientMetadata() {
    return {
      client_name: 'switchboard-baseline',
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
    };
  }
  clientInformation() {
    return this.#client;
  }
  saveClientInformation(info) {
    this.#client = info;
  }
  tokens() {
    return this.#tokens;
  }
  saveTokens(tokens) {
    this.#tokens = tokens;
  }
  saveCodeVerifier(v) {
    this.#verifier = v;
  }
  codeVerifier() {
    return this.#verifier;
  }
  async redirectToAuthorization(url) {
    const res = await fetch(url, { redirect: 'manual' });
    await res.body?.cancel();
    const location = res.headers.get('location');
    if (!location) throw new Error(`authorization endpoint answered ${res.status} without Location`);
    this.code = new URL(location).searchParams.get('code') ?? undefined;
  }
}

/** fetch that authorizes on 401/403 (at most `maxAuth` times per request) and retries. */
function oauthFetch(provider, serverUrl, maxAuth = 1) {
  return async (input, init) => {
    const send = async () => {
      const headers = new Headers(init?.headers);
      const tokens = provider.tokens();
      if (tokens) headers.set('Authorization', `Bearer ${tokens.access_token}`);
      return fetch(input, { ...init, headers });
    };
    let res = await send();
    for (let i = 0; i < maxAuth && (res.status === 401 || res.status === 403); i++) {
      const { resourceMetadataUrl, scope } = extractWWWAuthenticateParams(res);
      let result = await auth(provider, { serverUrl, resourceMetadataUrl, scope });
      if (result === 'REDIRECT') {
        result = await auth(provider, { serverUrl, resourceMetadataUrl, scope, authorizationCode: provider.code });
      }
      if (result !== 'AUTHORIZED') throw new UnauthorizedError(`authorization ended with ${result}`);
      res = await send();
    }
    if (res.status === 401 || res.status === 403) throw new UnauthorizedError(`still ${res.status} after authorizing`);
    return res;
  };
}

async function session(serverUrl, transportOptions, capabilities, setup) {
  const client = new Client({ name: 'switchboard-baseline', version: '1.0.0' }, { capabilities });
  setup?.(client);
  const transport = new StreamableHTTPClientTransport(new URL(serverUrl), transportOptions);
  await client.connect(transport);
  return client;
}

async function run(scenario, ctx, serverUrl) {
  let client;
  let calls = [{ name: 'test-tool', arguments: {} }];
  if (scenario === 'initialize') {
    client = await session(serverUrl, {}, {});
    calls = [];
  } else if (scenario === 'tools_call') {
    client = await session(serverUrl, {}, {});
    calls = [{ name: 'add_numbers', arguments: { a: 5, b: 3 } }];
  } else if (scenario === 'sse-retry') {
    client = await session(serverUrl, {}, {});
    calls = [{ name: 'test_reconnection', arguments: {} }];
  } else if (scenario === 'elicitation-sep1034-client-defaults') {
    client = await session(serverUrl, {}, { elicitation: { form: { applyDefaults: true } } }, (c) =>
      c.setRequestHandler(ElicitRequestSchema, async () => ({ action: 'accept', content: {} })),
    );
    calls = [{ name: 'test_client_elicitation_defaults', arguments: {} }];
  } else if (scenario === 'auth/client-credentials-basic') {
    const authProvider = new ClientCredentialsProvider({ clientId: ctx.client_id, clientSecret: ctx.client_secret });
    client = await session(serverUrl, { authProvider }, {});
  } else if (scenario === 'auth/client-credentials-jwt') {
    const authProvider = new PrivateKeyJwtProvider({ clientId: ctx.client_id, privateKey: ctx.private_key_pem, algorithm: ctx.signing_algorithm ?? 'ES256' });
    client = await session(serverUrl, { authProvider }, {});
  } else if (scenario === 'auth/cross-app-access-complete-flow') {
    const token = await crossAppAccess(ctx, serverUrl);
    client = await session(serverUrl, { requestInit: { headers: { Authorization: `Bearer ${token}` } } }, {});
  } else if (scenario.startsWith('auth/')) {
    const client_ = scenario === 'auth/pre-registration' ? { client_id: ctx.client_id, client_secret: ctx.client_secret, redirect_uris: [REDIRECT_URI] } : undefined;
    const provider = new Provider({ clientMetadataUrl: CLIENT_METADATA_URL, client: client_ });
    client = await session(serverUrl, { fetch: oauthFetch(provider, serverUrl) }, {});
  } else {
    throw new Error(`no baseline for ${scenario}`);
  }
  try {
    await client.listTools();
    for (const call of calls) log(call.name, JSON.stringify((await client.callTool(call)).content).slice(0, 200));
  } finally {
    await client.close();
  }
}

/** SEP-990 by hand: PRM → AS metadata → RFC 8693 at the IdP (ID token → ID-JAG) → RFC 7523 at the AS. */
async function crossAppAccess(ctx, serverUrl) {
  const json = async (res) => {
    if (!res.ok) throw new Error(`${res.url}: ${res.status} ${await res.text()}`);
    return res.json();
  };
  const u = new URL(serverUrl);
  const prm = await json(await fetch(new URL(`/.well-known/oauth-protected-resource${u.pathname}`, u)));
  const as = await json(await fetch(new URL('/.well-known/oauth-authorization-server', prm.authorization_servers[0])));
  const jag = await json(
    await fetch(ctx.idp_token_endpoint, {
      method: 'POST',
      body: new URLSearchParams({
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        requested_token_type: 'urn:ietf:params:oauth:token-type:id-jag',
        audience: as.issuer,
        resource: prm.resource,
        subject_token: ctx.idp_id_token,
        subject_token_type: 'urn:ietf:params:oauth:token-type:id_token',
        client_id: ctx.idp_client_id,
      }),
    }),
  );
  const basic = Buffer.from(`${encodeURIComponent(ctx.client_id)}:${encodeURIComponent(ctx.client_secret)}`).toString('base64');
  const tok = await json(
    await fetch(as.token_endpoint, {
      method: 'POST',
      headers: { Authorization: `Basic ${basic}` },
      body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: jag.access_token }),
    }),
  );
  return tok.access_token;
}

const serverUrl = process.argv.at(-1);
const scenario = process.env.MCP_CONFORMANCE_SCENARIO;
const ctx = process.env.MCP_CONFORMANCE_CONTEXT ? JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT) : {};
run(scenario, ctx, serverUrl).then(
  () => process.exit(0),
  (err) => {
    log(`failed: ${err?.stack ?? err}`);
    process.exit(1);
  },
);
