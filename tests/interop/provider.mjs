#!/usr/bin/env node
// Test-only OpenID Provider for Tessera's interop tests: a real `oidc-provider` 9 on 127.0.0.1 that
// mints JWT access tokens (RS256, PS256, ES256, EdDSA, Ed25519), rotating refresh tokens, DPoP-bound tokens
// through its own code paths. Prints one JSON line on stdout once listening (see README.md), logs
// to stderr, and runs until SIGTERM/SIGINT (or until stdin closes, with --exit-with-stdin).
//
//   node provider.mjs [--port 0] [--resource http://127.0.0.1/api] [--private-key-jwt-jwks FILE]
//                     [--dpop-nonce] [--access-token-ttl 300] [--exit-with-stdin]
//
// Never use outside tests: every login is auto-approved as the account `alice`.
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

import { exportJWK, generateKeyPair } from 'jose';
import Provider, { errors } from 'oidc-provider';

// stdout carries only the ready line: oidc-provider prints its notices with console.info.
console.log = console.info = console.debug = console.error;

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.TESSERA_INTEROP_PORT ?? '0' },
    resource: { type: 'string', default: process.env.TESSERA_INTEROP_RESOURCE ?? 'http://127.0.0.1/api' },
    'private-key-jwt-jwks': { type: 'string', default: process.env.TESSERA_INTEROP_PKJWT_JWKS },
    'dpop-nonce': { type: 'boolean', default: process.env.TESSERA_INTEROP_DPOP_NONCE === '1' },
    'access-token-ttl': { type: 'string', default: process.env.TESSERA_INTEROP_AT_TTL ?? '300' },
    'exit-with-stdin': { type: 'boolean', default: process.env.TESSERA_INTEROP_EXIT_WITH_STDIN === '1' },
  },
  strict: true,
});

const ACCOUNT = 'alice';
const SCOPE = 'api:read api:write';
const REDIRECT_URI = 'http://127.0.0.1/cb';
const RESOURCE = new URL(args.resource).href.replace(/\/$/, '');
const AT_TTL = Number.parseInt(args['access-token-ttl'], 10);

// Resource indicators: one per signing alg, all with the audience RESOURCE, plus one whose audience
// differs (for wrong-audience tests). RESOURCE itself is the default (RS256).
const resources = new Map([
  [RESOURCE, { alg: 'RS256', audience: RESOURCE }],
  [`${RESOURCE}/rs256`, { alg: 'RS256', audience: RESOURCE }],
  [`${RESOURCE}/ps256`, { alg: 'PS256', audience: RESOURCE }],
  [`${RESOURCE}/es256`, { alg: 'ES256', audience: RESOURCE }],
  [`${RESOURCE}/eddsa`, { alg: 'EdDSA', audience: RESOURCE }],
  [`${RESOURCE}/ed25519`, { alg: 'Ed25519', audience: RESOURCE }],
  [`${RESOURCE}/other-audience`, { alg: 'RS256', audience: `${RESOURCE}/other-audience` }],
]);

const clients = {
  secret: {
    client_id: 'tessera-secret',
    client_secret: 'tessera-secret-value',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials', 'authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: [REDIRECT_URI],
  },
  public: {
    client_id: 'tessera-public',
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: [REDIRECT_URI],
  },
};
if (args['private-key-jwt-jwks']) {
  const jwks = JSON.parse(readFileSync(args['private-key-jwt-jwks'], 'utf8'));
  clients.privateKeyJwt = {
    client_id: 'tessera-private-key-jwt',
    token_endpoint_auth_method: 'private_key_jwt',
    jwks: Array.isArray(jwks.keys) ? jwks : { keys: [jwks] },
    grant_types: ['client_credentials', 'authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: [REDIRECT_URI],
  };
}

// Signing keys. Generation N has kids rsa-N-xxxx, ec-N-xxxx, okp-N-xxxx. The RSA key carries no `alg`
// (it signs RS256 and PS256) and the OKP key none either (EdDSA and Ed25519); the EC key carries
// `alg: ES256`, so a JWKS parser meets both shapes. Newest keys come first and are named explicitly
// as the signers.
let generation = 0;
let jwks = []; // private JWKs, newest first
let signers = {}; // alg -> kid

async function newKeyGeneration() {
  generation += 1;
  const tag = randomBytes(2).toString('hex');
  const make = async (alg, options, kid, extra) => {
    const { privateKey } = await generateKeyPair(alg, { extractable: true, ...options });
    return { ...(await exportJWK(privateKey)), kid, ...extra };
  };
  const rsa = await make('RS256', { modulusLength: 2048 }, `rsa-${generation}-${tag}`, {});
  const ec = await make('ES256', {}, `ec-${generation}-${tag}`, { alg: 'ES256', use: 'sig' });
  const okp = await make('Ed25519', {}, `okp-${generation}-${tag}`, {});
  return {
    keys: [rsa, ec, okp],
    signers: {
      RS256: rsa.kid, PS256: rsa.kid, ES256: ec.kid, EdDSA: okp.kid, Ed25519: okp.kid,
    },
  };
}

// oidc-provider's own memory adapter keeps one store per Provider instance; tokens, grants and
// sessions must outlive the Provider rebuilt by /test/rotate-keys, so all instances share this one.
const store = new Map(); // key -> { value, expiresAt }
const grantMembers = new Map(); // grantId -> Set of keys
class SharedMemoryAdapter {
  constructor(model) {
    this.model = model;
  }

  static get(key) {
    const entry = store.get(key);
    if (entry?.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
      store.delete(key);
      return undefined;
    }
    return entry?.value;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const expiresAt = expiresIn ? Date.now() + expiresIn * 1000 : undefined;
    store.set(this.key(id), { value: payload, expiresAt });
    if (payload.grantId) {
      if (!grantMembers.has(payload.grantId)) grantMembers.set(payload.grantId, new Set());
      grantMembers.get(payload.grantId).add(this.key(id));
    }
    if (payload.uid) store.set(`sessionUid:${payload.uid}`, { value: id, expiresAt });
    if (payload.userCode) store.set(`userCode:${payload.userCode}`, { value: id, expiresAt });
  }

  async find(id) {
    return SharedMemoryAdapter.get(this.key(id));
  }

  async findByUid(uid) {
    const id = SharedMemoryAdapter.get(`sessionUid:${uid}`);
    return id && this.find(id);
  }

  async findByUserCode(userCode) {
    const id = SharedMemoryAdapter.get(`userCode:${userCode}`);
    return id && this.find(id);
  }

  async consume(id) {
    const payload = await this.find(id);
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const key of grantMembers.get(grantId) ?? []) store.delete(key);
    grantMembers.delete(grantId);
  }
}

const cookieKey = randomBytes(32).toString('base64url');
const dpopNonceSecret = randomBytes(32);

function buildProvider(issuer) {
  const provider = new Provider(issuer, {
    adapter: SharedMemoryAdapter,
    clients: Object.values(clients),
    jwks: { keys: jwks },
    cookies: { keys: [cookieKey] },
    findAccount: (ctx, id) => ({ accountId: id, claims: () => ({ sub: id }) }),
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    clientBasedCORS: () => false,
    responseTypes: ['code'],
    rotateRefreshToken: true,
    issueRefreshToken: (ctx, client, code) => client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
    ttl: {
      AccessToken: (ctx, token) => token.resourceServer?.accessTokenTTL ?? AT_TTL,
      ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL ?? AT_TTL,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: 24 * 3600,
      Interaction: 600,
      Session: 24 * 3600,
      Grant: 24 * 3600,
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true, allowedPolicy: () => true },
      revocation: { enabled: true, allowedPolicy: () => true },
      dPoP: {
        enabled: true,
        nonceSecret: dpopNonceSecret,
        requireNonce: () => args['dpop-nonce'],
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: (ctx, client, oneOf) => {
          if (oneOf) return oneOf.length === 1 ? oneOf[0] : oneOf;
          return RESOURCE;
        },
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, indicator) => {
          const rs = resources.get(indicator);
          if (!rs) throw new errors.InvalidTarget(`unknown resource indicator ${indicator}`);
          return {
            scope: SCOPE,
            audience: rs.audience,
            accessTokenTTL: AT_TTL,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: rs.alg, kid: signers[rs.alg] } },
          };
        },
      },
    },
  });
  for (const event of ['server_error', 'grant.error', 'introspection.error', 'revocation.error']) {
    provider.on(event, (ctx, err) => console.error(`${event}: ${err}${err.error_detail ? ` (${err.error_detail})` : ''}`));
  }
  return provider;
}

// --- HTTP plumbing -------------------------------------------------------------------------------

let provider; // the current Provider; replaced by /test/rotate-keys
let handle; // provider.callback() of the current Provider
let issuer;

function useProvider(next) {
  provider = next;
  handle = next.callback();
}

function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req) {
  let text = '';
  for await (const chunk of req) text += chunk;
  return text.trim() ? JSON.parse(text) : {};
}

function info() {
  const url = (name) => provider.urlFor(name);
  const byAlg = (alg) => [...resources].find(([id, rs]) => rs.alg === alg && id !== RESOURCE)[0];
  return {
    issuer,
    port: Number(new URL(issuer).port),
    pid: process.pid,
    discovery: `${issuer}/.well-known/openid-configuration`,
    jwks_uri: url('jwks'),
    authorization_endpoint: url('authorization'),
    token_endpoint: url('token'),
    introspection_endpoint: url('introspection'),
    revocation_endpoint: url('revocation'),
    userinfo_endpoint: url('userinfo'),
    audience: RESOURCE,
    resource: RESOURCE,
    resources: {
      RS256: byAlg('RS256'),
      PS256: byAlg('PS256'),
      ES256: byAlg('ES256'),
      EdDSA: byAlg('EdDSA'),
      Ed25519: byAlg('Ed25519'),
    },
    other_audience_resource: `${RESOURCE}/other-audience`,
    scope: SCOPE,
    access_token_ttl: AT_TTL,
    kids: signers,
    published_kids: jwks.map((k) => k.kid),
    clients: {
      secret: { client_id: clients.secret.client_id, client_secret: clients.secret.client_secret, auth: 'client_secret_basic' },
      private_key_jwt: clients.privateKeyJwt ? { client_id: clients.privateKeyJwt.client_id, auth: 'private_key_jwt' } : null,
      public: { client_id: clients.public.client_id, auth: 'none' },
    },
    redirect_uri: REDIRECT_URI,
    account: ACCOUNT,
    dpop_nonce_required: args['dpop-nonce'],
    test_routes: {
      code_flow: `${issuer}/test/code-flow`,
      rotate_keys: `${issuer}/test/rotate-keys`,
      info: `${issuer}/test/info`,
    },
  };
}

// The interaction "UI": approves every login as ACCOUNT and consents to everything requested.
async function autoInteraction(req, res) {
  const interaction = await provider.interactionDetails(req, res);
  const { prompt, params, session } = interaction;
  let result;
  if (prompt.name === 'login') {
    result = { login: { accountId: ACCOUNT } };
  } else if (prompt.name === 'consent') {
    const grant = interaction.grantId
      ? await provider.Grant.find(interaction.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const { details } = prompt;
    if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
    if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(details.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    result = { consent: { grantId: await grant.save() } };
  } else {
    result = { error: 'access_denied', error_description: `unexpected prompt ${prompt.name}` };
  }
  await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
}

// POST /test/code-flow {client_id, scope, resource, exchange}: runs a real authorization-code flow
// with PKCE against this provider (cookies and redirects followed here) and returns the token
// endpoint's own status and JSON body, or with exchange:false the code and its PKCE verifier.
async function codeFlow(req, res) {
  const body = await readJson(req);
  const clientId = body.client_id ?? clients.public.client_id;
  const client = Object.values(clients).find((c) => c.client_id === clientId);
  if (!client) return sendJson(res, 400, { error: 'invalid_request', error_description: `unknown client_id ${clientId}` });
  const scope = body.scope ?? `offline_access ${SCOPE}`;
  const resource = body.resource === undefined ? RESOURCE : body.resource;

  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const state = randomBytes(8).toString('base64url');
  const url = new URL(provider.urlFor('authorization'));
  const query = {
    client_id: clientId, response_type: 'code', redirect_uri: REDIRECT_URI, scope, state,
    prompt: 'consent', code_challenge: challenge, code_challenge_method: 'S256',
  };
  if (resource) query.resource = resource;
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);

  const jar = new Map();
  let next = url;
  let callback;
  for (let hop = 0; hop < 10 && !callback; hop += 1) {
    const r = await fetch(next, {
      redirect: 'manual',
      headers: { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') },
    });
    for (const line of r.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair.indexOf('=');
      const [name, value] = [pair.slice(0, eq).trim(), pair.slice(eq + 1).trim()];
      if (value) jar.set(name, value); else jar.delete(name);
    }
    const location = r.headers.get('location');
    if (!location) {
      return sendJson(res, 502, { error: 'flow_failed', status: r.status, body: await r.text() });
    }
    const target = new URL(location, next);
    if (target.href.startsWith(REDIRECT_URI)) callback = target; else next = target;
  }
  if (!callback) return sendJson(res, 502, { error: 'flow_failed', error_description: 'too many redirects' });
  const params = callback.searchParams;
  if (params.get('error') || params.get('state') !== state) {
    return sendJson(res, 502, { error: 'flow_failed', callback: Object.fromEntries(params) });
  }
  if (body.exchange === false) {
    return sendJson(res, 200, {
      code: params.get('code'), code_verifier: verifier, redirect_uri: REDIRECT_URI, state, resource,
    });
  }

  const form = new URLSearchParams({
    grant_type: 'authorization_code', code: params.get('code'), redirect_uri: REDIRECT_URI, code_verifier: verifier,
  });
  if (resource) form.set('resource', resource);
  const headers = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
  if (client.client_secret) {
    headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(client.client_secret)}`).toString('base64')}`;
  } else if (client.token_endpoint_auth_method === 'none') {
    form.set('client_id', clientId);
  } else {
    return sendJson(res, 400, { error: 'invalid_request', error_description: `${clientId} authenticates with private_key_jwt: use exchange:false and redeem the code yourself` });
  }
  const token = await fetch(provider.urlFor('token'), { method: 'POST', headers, body: form });
  return sendJson(res, token.status, await token.json());
}

// POST /test/rotate-keys {retire_old}: publishes a new key generation and makes it the signer; the
// older keys stay published (for tokens already out) unless retire_old is true.
async function rotateKeys(req, res) {
  const body = await readJson(req);
  const fresh = await newKeyGeneration();
  jwks = body.retire_old ? fresh.keys : [...fresh.keys, ...jwks];
  signers = fresh.signers;
  useProvider(buildProvider(issuer));
  return sendJson(res, 200, { generation, kids: signers, published_kids: jwks.map((k) => k.kid) });
}

const testRoutes = {
  'POST /test/code-flow': codeFlow,
  'POST /test/rotate-keys': rotateKeys,
  'GET /test/info': async (req, res) => sendJson(res, 200, info()),
};

const server = createServer((req, res) => {
  const started = Date.now();
  res.on('finish', () => {
    console.error(`${new Date().toISOString()} ${req.method} ${req.url} ${res.statusCode} ${Date.now() - started}ms`);
  });
  const path = req.url.split('?')[0];
  let handler = testRoutes[`${req.method} ${path}`];
  if (!handler && req.method === 'GET' && /^\/interaction\/[^/]+$/.test(path)) handler = autoInteraction;
  if (!handler) return handle(req, res);
  return handler(req, res).catch((err) => {
    console.error(`${req.method} ${path} failed:`, err);
    if (!res.headersSent) sendJson(res, 500, { error: 'server_error', error_description: String(err?.message ?? err) });
  });
});

const first = await newKeyGeneration();
jwks = first.keys;
signers = first.signers;

server.listen(Number.parseInt(args.port, 10), '127.0.0.1', () => {
  issuer = `http://127.0.0.1:${server.address().port}`;
  useProvider(buildProvider(issuer));
  process.stdout.write(`${JSON.stringify(info())}\n`);
});

function shutdown() {
  server.close();
  server.closeAllConnections();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (args['exit-with-stdin']) {
  process.stdin.on('end', shutdown).on('error', shutdown).resume();
}
