#!/usr/bin/env node
// An MCP client built on the official TypeScript SDK (@modelcontextprotocol/sdk)
// that signs in to the gateway the way a desktop client does, with the
// browser step played headlessly: 401 → protected-resource metadata →
// authorization-server metadata → dynamic registration → authorize (the real
// login and consent forms are fetched, parsed and posted) → token with PKCE →
// tools/list → whoami → refresh (the stored access token is spoiled, so the
// SDK meets a 401 and uses its refresh token) → whoami again.
//
// Usage: node ts/oauth-client.mjs --url http://127.0.0.1:8000/demo/mcp --user demo
// The password is read from MCPGW_E2E_PASSWORD (never from argv, which other
// processes can read). Prints one JSON line; exits 1 on any failure. No token
// or secret is ever printed: only booleans about them.

import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    user: { type: 'string', default: 'demo' },
    'redirect-uri': { type: 'string', default: 'http://127.0.0.1:9/callback' },
    'timeout-ms': { type: 'string', default: '45000' },
  },
});

const result = { ok: false, steps: [], browser: [] };

function finish(code, extra) {
  Object.assign(result, extra);
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(code));
}

function fail(err) {
  finish(1, { ok: false, error: String(err?.stack ?? err) });
}

const deadline = setTimeout(() => fail(new Error(`timed out after ${args['timeout-ms']} ms`)), Number(args['timeout-ms']));
deadline.unref();

const password = process.env.MCPGW_E2E_PASSWORD ?? '';
const serverURL = URL.canParse(args.url ?? '') ? new URL(args.url) : undefined;
const redirectURI = args['redirect-uri'];

// recordingFetch is the fetch the SDK uses: it notes every request (method,
// path, status, and the grant type of token requests) so the Go test can see
// the discovery and token steps in order.
async function recordingFetch(input, init) {
  const url = new URL(input instanceof Request ? input.url : String(input));
  const method = (init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
  const step = { method, path: url.pathname };
  const body = init?.body;
  if (url.pathname.endsWith('/oauth/token') && body != null) {
    step.grant_type = new URLSearchParams(String(body)).get('grant_type');
  }
  if (method === 'POST' && body != null && typeof body === 'string' && body.startsWith('{')) {
    try {
      const m = JSON.parse(body);
      if (m && typeof m.method === 'string') step.rpc = m.method;
    } catch {
      // not JSON-RPC (registration metadata)
    }
  }
  const res = await fetch(input, init);
  step.status = res.status;
  result.steps.push(step);
  return res;
}

// A minimal cookie jar for one origin: the gateway's cookies are host-only
// with Path=/.
class CookieJar {
  #cookies = new Map();
  store(res) {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq < 1) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => /^\s*max-age\s*=\s*(0|-\d+)\s*$/i.test(a));
      if (expired || value === '') this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
  }
  header() {
    return [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

const entities = { amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'", '#34': '"', '#43': '+' };
function unescapeHTML(s) {
  return s.replace(/&(amp|lt|gt|quot|#39|#34|#43);/g, (_, e) => entities[e]);
}

// parseForm returns the page's first POST form: its action and its inputs'
// name/value pairs (hidden fields carry the pending request id and CSRF).
function parseForm(html) {
  const form = /<form\b([^>]*)>([\s\S]*?)<\/form>/i.exec(html);
  if (!form) return null;
  const attr = (tag, name) => {
    const m = new RegExp(`\\b${name}="([^"]*)"`, 'i').exec(tag);
    return m ? unescapeHTML(m[1]) : undefined;
  };
  const fields = {};
  for (const m of form[2].matchAll(/<input\b[^>]*>/gi)) {
    const name = attr(m[0], 'name');
    if (name) fields[name] = attr(m[0], 'value') ?? '';
  }
  const buttons = [];
  for (const m of form[2].matchAll(/<button\b[^>]*>/gi)) {
    buttons.push({ name: attr(m[0], 'name'), value: attr(m[0], 'value') });
  }
  return { action: attr(form[1], 'action') ?? '', method: (attr(form[1], 'method') ?? 'get').toLowerCase(), fields, buttons };
}

// browserStep plays the user's browser: it follows the authorization URL's
// redirects, fills the login form, approves the consent form and returns
// the code from the redirect to our redirect URI.
async function browserStep(authorizationURL) {
  const jar = new CookieJar();
  let url = new URL(authorizationURL);
  let method = 'GET';
  let body;
  for (let hop = 0; hop < 12; hop++) {
    if (url.href.startsWith(redirectURI)) {
      const err = url.searchParams.get('error');
      if (err) throw new Error(`authorization failed: ${err}: ${url.searchParams.get('error_description')}`);
      const code = url.searchParams.get('code');
      if (!code) throw new Error('redirect to the client without a code');
      result.redirect = {
        has_code: true,
        state_present: url.searchParams.has('state'),
        iss: url.searchParams.get('iss'),
      };
      return code;
    }
    if (url.origin !== serverURL.origin) throw new Error(`browser sent to another origin: ${url.origin}`);
    const headers = { cookie: jar.header() };
    if (body) headers['content-type'] = 'application/x-www-form-urlencoded';
    const res = await fetch(url, { method, headers, body, redirect: 'manual' });
    jar.store(res);
    const step = { method, path: url.pathname, status: res.status };
    result.browser.push(step);
    if (res.status >= 300 && res.status < 400) {
      const loc = res.headers.get('location');
      if (!loc) throw new Error(`${res.status} without Location at ${url.pathname}`);
      url = new URL(loc, url);
      method = 'GET';
      body = undefined;
      continue;
    }
    const html = await res.text();
    // An error before the user approved the client is a page, not a
    // redirect (RFC 9700 §4.11.2); its link back carries the error to us,
    // as a user clicking "Return to the application" would.
    const back = /<a id="back" href="([^"]*)"/.exec(html);
    if (back) {
      step.page = 'error';
      url = new URL(unescapeHTML(back[1]), url);
      method = 'GET';
      body = undefined;
      continue;
    }
    if (res.status !== 200) throw new Error(`${method} ${url.pathname}: HTTP ${res.status}: ${html.slice(0, 300)}`);
    const form = parseForm(html);
    if (!form || form.method !== 'post') throw new Error(`no form on ${url.pathname}`);
    const f = new URLSearchParams(form.fields);
    if ('password' in form.fields) {
      step.page = 'login';
      if (!form.fields.csrf) throw new Error('login form without csrf field');
      f.set('username', args.user);
      f.set('password', password);
    } else if (form.buttons.some((b) => b.name === 'decision' && b.value === 'approve')) {
      step.page = 'consent';
      if (!form.fields.csrf) throw new Error('consent form without csrf field');
      f.set('decision', 'approve');
      result.consent_page_names_client = html.includes('MCP Gateway e2e (TypeScript SDK)');
    } else {
      throw new Error(`unexpected form on ${url.pathname}`);
    }
    url = new URL(form.action, url);
    method = 'POST';
    body = f.toString();
  }
  throw new Error('too many redirects in the browser step');
}

// The OAuthClientProvider: everything in memory, as a CLI session would.
class MemoryProvider {
  clientInfo;
  saved;
  verifier;
  discovery;
  authorizationURL;
  code;
  savedTokens = 0;

  get redirectUrl() {
    return redirectURI;
  }
  get clientMetadata() {
    return {
      client_name: 'MCP Gateway e2e (TypeScript SDK)',
      redirect_uris: [redirectURI],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  state() {
    return randomUUID();
  }
  clientInformation() {
    return this.clientInfo;
  }
  saveClientInformation(info) {
    this.clientInfo = info;
  }
  tokens() {
    return this.saved;
  }
  saveTokens(tokens) {
    this.saved = tokens;
    this.savedTokens++;
  }
  async redirectToAuthorization(authorizationUrl) {
    this.authorizationURL = new URL(authorizationUrl);
    this.code = await browserStep(this.authorizationURL);
  }
  saveCodeVerifier(v) {
    this.verifier = v;
  }
  codeVerifier() {
    if (!this.verifier) throw new Error('no code verifier saved');
    return this.verifier;
  }
  saveDiscoveryState(s) {
    this.discovery = s;
  }
  discoveryState() {
    return this.discovery;
  }
}

function newClient(provider) {
  const transport = new StreamableHTTPClientTransport(serverURL, { authProvider: provider, fetch: recordingFetch });
  const client = new Client({ name: 'mcp-gateway-e2e-ts', version: '1.0.0' });
  return { client, transport };
}

async function whoami(client) {
  const r = await client.callTool({ name: 'whoami', arguments: {} });
  if (r.isError) throw new Error(`whoami returned an error: ${JSON.stringify(r.content)}`);
  if (r.structuredContent) return r.structuredContent;
  const text = r.content?.find((c) => c.type === 'text')?.text;
  return JSON.parse(text);
}

async function main() {
  if (!serverURL) throw new Error('--url must be the MCP endpoint URL');
  if (!password) throw new Error('MCPGW_E2E_PASSWORD is not set');
  const provider = new MemoryProvider();

  // 1. Connect without a token: the SDK meets the 401 challenge, discovers,
  //    registers and sends the "browser" to authorize.
  let { client, transport } = newClient(provider);
  try {
    await client.connect(transport);
    throw new Error('connected without authorization: the gateway did not challenge');
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) throw err;
  }
  if (!provider.code) throw new Error('the SDK did not ask for authorization');
  const a = provider.authorizationURL.searchParams;
  result.authorize = {
    code_challenge_method: a.get('code_challenge_method'),
    code_challenge_present: !!a.get('code_challenge'),
    resource: a.get('resource'),
    scope: a.get('scope'),
    state_present: !!a.get('state'),
  };
  result.client_id = provider.clientInfo?.client_id;
  result.discovery = {
    authorization_server: provider.discovery?.authorizationServerUrl,
    resource: provider.discovery?.resourceMetadata?.resource,
    issuer: provider.discovery?.authorizationServerMetadata?.issuer,
  };

  // 2. The redirect came back with a code: exchange it (PKCE), reconnect.
  await transport.finishAuth(provider.code);
  await transport.close();
  const first = provider.saved;
  if (!first?.access_token || !first?.refresh_token) throw new Error('token response lacks access or refresh token');
  result.token = { token_type: first.token_type, expires_in: first.expires_in, scope: first.scope, has_refresh_token: true };

  ({ client, transport } = newClient(provider));
  await client.connect(transport);
  result.server = client.getServerVersion()?.name;
  const tools = await client.listTools();
  result.tools = tools.tools.map((t) => t.name).sort();
  result.whoami = await whoami(client);

  // 3. Spoil the access token (as an expired one would be): the next call
  //    gets a 401 and the SDK refreshes with its refresh token, then retries.
  const savesBefore = provider.savedTokens;
  provider.saved = { ...first, access_token: 'expired.' + first.access_token.slice(8) };
  result.whoami_after_refresh = await whoami(client);
  const second = provider.saved;
  result.refresh = {
    tokens_saved: provider.savedTokens - savesBefore,
    new_access_token: second.access_token !== first.access_token && !second.access_token.startsWith('expired.'),
    refresh_token_rotated: !!second.refresh_token && second.refresh_token !== first.refresh_token,
  };
  await client.close();
  finish(0, { ok: true });
}

main().catch(fail);
