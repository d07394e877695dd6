#!/usr/bin/env node
// A DPoP client for Tessera's interop tests, built on oauth4webapi 3 (an independent implementation
// of RFC 9449: this file only drives it). With one fresh key pair it
//   1. requests a token (grant password, refresh_token or client_credentials) with a DPoP proof,
//   2. refreshes the refresh token it got, with the same key (skipped when there is none),
//   3. GETs --resource-url with `Authorization: DPoP <token>` and a proof bound to the token,
// retrying each step once when the server answers use_dpop_nonce, and prints one JSON line on
// stdout (format in README.md). Exit status: 0 when every step ran and answered 2xx, 1 when a step
// failed (the JSON line is printed all the same), 2 for bad arguments.
//
//   node dpop-client.mjs --token-endpoint URL --client-id ID [--client-secret S [--client-auth post]]
//       --grant password --username U --password P | --grant refresh_token --refresh-token RT |
//       --grant client_credentials
//       [--issuer URL] [--scope S] [--resource-indicator URI] [--resource-url URL]
//       [--key-alg ES256|EdDSA|Ed25519] [--no-refresh]
//   node dpop-client.mjs '{"token_endpoint": "...", "client_id": "...", ...}'   (same names, _ or -)
//
// Only loopback URLs are accepted; plain http is allowed for them (oauth4webapi's
// allowInsecureRequests).
import { parseArgs } from 'node:util';

import * as oauth from 'oauth4webapi';

const flags = {
  'token-endpoint': 'string',
  issuer: 'string',
  'client-id': 'string',
  'client-secret': 'string',
  'client-auth': 'string',
  grant: 'string',
  username: 'string',
  password: 'string',
  'refresh-token': 'string',
  scope: 'string',
  'resource-indicator': 'string',
  'resource-url': 'string',
  'key-alg': 'string',
  'no-refresh': 'boolean',
};

function usage(message) {
  process.stderr.write(`dpop-client.mjs: ${message}\n(see the header of tests/interop/dpop-client.mjs)\n`);
  process.exit(2);
}

function readOptions() {
  let parsed;
  try {
    parsed = parseArgs({
      options: Object.fromEntries(Object.entries(flags).map(([name, type]) => [name, { type }])),
      allowPositionals: true,
    });
  } catch (err) {
    return usage(err.message);
  }
  const options = { ...parsed.values };
  for (const positional of parsed.positionals) {
    let json;
    try {
      json = JSON.parse(positional);
    } catch {
      return usage(`not a flag nor a JSON object: ${positional}`);
    }
    for (const [key, value] of Object.entries(json)) {
      const name = key.replaceAll('_', '-');
      if (!(name in flags)) usage(`unknown option ${key}`);
      options[name] = value;
    }
  }
  return options;
}

const opts = readOptions();
const grant = opts.grant ?? 'client_credentials';
const keyAlg = opts['key-alg'] ?? 'ES256';
if (!opts['token-endpoint']) usage('--token-endpoint is required');
if (!opts['client-id']) usage('--client-id is required');
if (!['password', 'refresh_token', 'client_credentials'].includes(grant)) usage(`unknown grant ${grant}`);
if (grant === 'password' && (opts.username === undefined || opts.password === undefined)) usage('grant password needs --username and --password');
if (grant === 'refresh_token' && !opts['refresh-token']) usage('grant refresh_token needs --refresh-token');
if (!['ES256', 'EdDSA', 'Ed25519'].includes(keyAlg)) usage(`--key-alg must be ES256, EdDSA or Ed25519, not ${keyAlg}`);

const loopback = (url) => /^(127(\.\d{1,3}){3}|localhost|\[::1\])$/.test(new URL(url).hostname);
for (const name of ['token-endpoint', 'issuer', 'resource-url']) {
  if (opts[name] && !loopback(opts[name])) usage(`--${name} must be a loopback URL (127.0.0.0/8, localhost, [::1]): ${opts[name]}`);
}

// A manually built Authorization Server: Tessera may publish no metadata yet.
const as = {
  issuer: opts.issuer ?? new URL(opts['token-endpoint']).origin,
  token_endpoint: opts['token-endpoint'],
};
const client = { client_id: opts['client-id'] };
let clientAuth = oauth.None();
if (opts['client-secret'] !== undefined) {
  clientAuth = opts['client-auth'] === 'post'
    ? oauth.ClientSecretPost(opts['client-secret'])
    : oauth.ClientSecretBasic(opts['client-secret']);
}

// oauth4webapi labels Ed25519 proofs with the fully specified alg "Ed25519"; --key-alg EdDSA
// relabels the same signature "EdDSA" through the library's modifyAssertion hook.
const keyPair = await oauth.generateKeyPair(keyAlg === 'ES256' ? 'ES256' : 'Ed25519');
const dpop = oauth.DPoP(client, keyPair, keyAlg === 'EdDSA'
  ? { [oauth.modifyAssertion]: (header) => { header.alg = 'EdDSA'; } }
  : undefined);
const http = { DPoP: dpop, [oauth.allowInsecureRequests]: true };

const extra = {};
if (opts.scope) extra.scope = opts.scope;
if (opts['resource-indicator']) extra.resource = opts['resource-indicator'];

// Runs attempt() and, when it fails with use_dpop_nonce, once more (the handle has cached the nonce).
async function withNonceRetry(attempt) {
  try {
    return { value: await attempt(), nonceRetry: false };
  } catch (err) {
    if (!oauth.isDPoPNonceError(err)) throw err;
    return { value: await attempt(), nonceRetry: true };
  }
}

// What a failed step reports: the OAuth error from the body when there is one (oauth4webapi throws
// on a WWW-Authenticate challenge before reading it), else the library's error code and message.
async function describeError(err) {
  const out = {
    status: err.status ?? err.response?.status ?? null,
    error: err.error ?? err.code ?? err.name,
    error_description: err.error_description ?? err.message,
  };
  if (err instanceof oauth.WWWAuthenticateChallengeError) {
    out.www_authenticate = err.response.headers.get('www-authenticate');
    const body = await err.response.clone().json().catch(() => null);
    if (body?.error) Object.assign(out, { error: body.error, error_description: body.error_description ?? null });
  }
  return out;
}

// One token-endpoint step: send(), then process the Response with oauth4webapi, keeping the raw
// token_type (the library lower-cases it).
async function tokenStep(send, parse) {
  let lastStatus = null;
  let rawTokenType = null;
  try {
    const { value, nonceRetry } = await withNonceRetry(async () => {
      const response = await send();
      lastStatus = response.status;
      rawTokenType = (await response.clone().json().catch(() => ({}))).token_type ?? null;
      return parse(response);
    });
    return {
      ok: lastStatus >= 200 && lastStatus < 300,
      status: lastStatus,
      token_type: rawTokenType,
      nonce_retry: nonceRetry,
      expires_in: value.expires_in ?? null,
      scope: value.scope ?? null,
      access_token: value.access_token,
      refresh_token: value.refresh_token ?? null,
    };
  } catch (err) {
    const described = await describeError(err);
    return { ok: false, ...described, status: lastStatus ?? described.status, token_type: rawTokenType };
  }
}

function firstToken() {
  switch (grant) {
    case 'password':
      return tokenStep(
        () => oauth.genericTokenEndpointRequest(as, client, clientAuth, 'password', { username: opts.username, password: opts.password, ...extra }, http),
        (r) => oauth.processGenericTokenEndpointResponse(as, client, r),
      );
    case 'refresh_token':
      return refresh(opts['refresh-token']);
    default:
      return tokenStep(
        () => oauth.clientCredentialsGrantRequest(as, client, clientAuth, extra, http),
        (r) => oauth.processClientCredentialsResponse(as, client, r),
      );
  }
}

function refresh(refreshToken) {
  return tokenStep(
    () => oauth.refreshTokenGrantRequest(as, client, clientAuth, refreshToken, { ...http, additionalParameters: extra }),
    (r) => oauth.processRefreshTokenResponse(as, client, r),
  );
}

async function callResource(accessToken) {
  const url = new URL(opts['resource-url']);
  let response;
  let nonceRetry = false;
  try {
    ({ value: response, nonceRetry } = await withNonceRetry(
      () => oauth.protectedResourceRequest(accessToken, 'GET', url, new Headers(), null, http),
    ));
  } catch (err) {
    if (!(err instanceof oauth.WWWAuthenticateChallengeError)) return { ok: false, ...(await describeError(err)) };
    response = err.response; // a challenge other than use_dpop_nonce, or a second use_dpop_nonce
  }
  const body = await response.text();
  let json = null;
  try {
    json = JSON.parse(body);
  } catch {}
  return {
    ok: response.ok,
    status: response.status,
    nonce_retry: nonceRetry,
    www_authenticate: response.headers.get('www-authenticate'),
    body,
    json,
  };
}

const report = {
  ok: false,
  grant,
  key_alg: keyAlg,
  jkt: await dpop.calculateThumbprint(),
  token: null,
  refresh: null,
  resource: null,
};
report.token = await firstToken();
let accessToken = report.token.ok ? report.token.access_token : null;
if (report.token.ok && !opts['no-refresh']) {
  if (report.token.refresh_token) {
    report.refresh = await refresh(report.token.refresh_token);
    report.refresh.rotated = report.refresh.ok ? report.refresh.refresh_token !== report.token.refresh_token : null;
    if (report.refresh.ok) accessToken = report.refresh.access_token;
  } else {
    report.refresh = { skipped: 'no refresh_token issued' };
  }
}
if (accessToken && opts['resource-url']) report.resource = await callResource(accessToken);
report.ok = [report.token, report.refresh, report.resource].every((step) => step === null || step.skipped || step.ok);
process.stdout.write(`${JSON.stringify(report)}\n`);
process.exitCode = report.ok ? 0 : 1;
