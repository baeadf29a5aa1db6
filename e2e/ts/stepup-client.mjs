#!/usr/bin/env node
// The TypeScript SDK v2 client (@modelcontextprotocol/client) meets the
// gateway's tool policy: it signs in (401 → discovery → registration →
// authorize through the real login and consent pages → token), calls the
// open tool echo, then admin_echo, which needs mcp:admin: the gateway answers
// 403 insufficient_scope naming the scopes, the SDK's own step-up asks for
// the union of its scopes and those, the consent page says what is added,
// and the retried call succeeds. It records every MCP POST's Mcp-Method /
// Mcp-Name headers, so the Go test can tell which path (headers or body)
// the gateway decided on.
//
//   node ts/stepup-client.mjs <mcp-url>   (password in MCPGW_E2E_PASSWORD, user "demo")
// Prints one JSON line; exits 1 on any failure. No token is printed.
import { randomUUID } from 'node:crypto';
import { Client, StreamableHTTPClientTransport, UnauthorizedError } from '@modelcontextprotocol/client';

const serverURL = new URL(process.argv[2]);
const password = process.env.MCPGW_E2E_PASSWORD ?? '';
const redirectURI = 'http://127.0.0.1:9/callback';
const result = { ok: false, posts: [], authorizations: [], consents: [] };

function finish(code) {
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(code));
}
setTimeout(() => { result.error = 'timed out'; finish(1); }, 60000).unref();

// recordingFetch notes each MCP POST: its JSON-RPC method, the tool, the
// standard headers sent, and the status.
async function recordingFetch(input, init) {
  const url = new URL(input instanceof Request ? input.url : String(input));
  const res = await fetch(input, init);
  const method = (init?.method ?? 'GET').toUpperCase();
  if (method === 'POST' && url.pathname === serverURL.pathname) {
    const h = new Headers(init?.headers);
    let rpc = '';
    let tool = '';
    try {
      const m = JSON.parse(String(init.body));
      rpc = m.method ?? '';
      tool = m.params?.name ?? '';
    } catch {}
    result.posts.push({
      rpc, tool, status: res.status,
      protocol_version: h.get('mcp-protocol-version') ?? '',
      mcp_method: h.get('mcp-method') ?? '',
      mcp_name: h.get('mcp-name') ?? '',
      challenge: res.status === 403 ? res.headers.get('www-authenticate') ?? '' : '',
    });
  }
  return res;
}

class CookieJar {
  #c = new Map();
  store(res) {
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq > 0) this.#c.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
    }
  }
  header() { return [...this.#c].map(([k, v]) => `${k}=${v}`).join('; '); }
}
const jar = new CookieJar(); // one browser: the second sign-in reuses the session

const unescapeHTML = (s) => s.replace(/&(amp|lt|gt|quot|#39|#34|#43);/g, (_, e) => ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'", '#34': '"', '#43': '+' })[e]);

function parseForm(html) {
  const form = /<form\b([^>]*)>([\s\S]*?)<\/form>/i.exec(html);
  if (!form) return null;
  const attr = (tag, name) => { const m = new RegExp(`\\b${name}="([^"]*)"`, 'i').exec(tag); return m ? unescapeHTML(m[1]) : undefined; };
  const fields = {};
  for (const m of form[2].matchAll(/<input\b[^>]*>/gi)) { const n = attr(m[0], 'name'); if (n) fields[n] = attr(m[0], 'value') ?? ''; }
  return { action: attr(form[1], 'action') ?? '', fields };
}

// browserStep follows the authorization URL, signs in, approves, and
// returns the code; it records what the consent page listed as added.
async function browserStep(authorizationURL) {
  let url = new URL(authorizationURL);
  let method = 'GET';
  let body;
  for (let hop = 0; hop < 12; hop++) {
    if (url.href.startsWith(redirectURI)) {
      const err = url.searchParams.get('error');
      if (err) throw new Error(`authorization failed: ${err}: ${url.searchParams.get('error_description')}`);
      return { code: url.searchParams.get('code'), iss: url.searchParams.get('iss') };
    }
    const headers = { cookie: jar.header() };
    if (body) headers['content-type'] = 'application/x-www-form-urlencoded';
    const res = await fetch(url, { method, headers, body, redirect: 'manual' });
    jar.store(res);
    if (res.status >= 300 && res.status < 400) {
      url = new URL(res.headers.get('location'), url);
      method = 'GET';
      body = undefined;
      continue;
    }
    const html = await res.text();
    if (res.status !== 200) throw new Error(`${method} ${url.pathname}: HTTP ${res.status}: ${html.slice(0, 300)}`);
    const form = parseForm(html);
    if (!form) throw new Error(`no form on ${url.pathname}`);
    const f = new URLSearchParams(form.fields);
    if ('password' in form.fields) {
      f.set('username', 'demo');
      f.set('password', password);
    } else {
      const added = /<ul id="added-scopes">([\s\S]*?)<\/ul>/.exec(html);
      result.consents.push({ added: added ? unescapeHTML(added[1].replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim()) : '' });
      f.set('decision', 'approve');
    }
    url = new URL(form.action, url);
    method = 'POST';
    body = f.toString();
  }
  throw new Error('too many redirects');
}

class MemoryProvider {
  clientInfo; saved; verifier; discovery; code;
  get redirectUrl() { return redirectURI; }
  get clientMetadata() {
    return { client_name: 'MCP Gateway e2e step-up (TypeScript SDK v2)', redirect_uris: [redirectURI], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'none' };
  }
  state() { return randomUUID(); }
  clientInformation() { return this.clientInfo; }
  saveClientInformation(i) { this.clientInfo = i; }
  tokens() { return this.saved; }
  saveTokens(t) { this.saved = t; }
  async redirectToAuthorization(u) {
    const a = new URL(u);
    result.authorizations.push({ scope: a.searchParams.get('scope') ?? '' });
    this.code = await browserStep(a);
  }
  saveCodeVerifier(v) { this.verifier = v; }
  codeVerifier() { return this.verifier; }
  saveDiscoveryState(s) { this.discovery = s; }
  discoveryState() { return this.discovery; }
}

// call runs fn; when the SDK stops for a browser redirect (UnauthorizedError),
// it finishes the authorization with the code and runs fn again.
async function withAuth(transport, provider, fn) {
  try {
    return await fn();
  } catch (err) {
    if (!(err instanceof UnauthorizedError) && !String(err).includes('Unauthorized')) throw err;
    if (!provider.code) throw err;
    const { code, iss } = provider.code;
    provider.code = undefined;
    await transport.finishAuth(code, iss);
    return await fn();
  }
}

async function main() {
  const provider = new MemoryProvider();
  let transport = new StreamableHTTPClientTransport(serverURL, { authProvider: provider, fetch: recordingFetch });
  let client = new Client({ name: 'mcp-gateway-e2e-stepup', version: '1.0.0' });
  try {
    await client.connect(transport);
  } catch (err) {
    if (!provider.code) throw err;
    await transport.finishAuth(provider.code.code, provider.code.iss);
    provider.code = undefined;
    transport = new StreamableHTTPClientTransport(serverURL, { authProvider: provider, fetch: recordingFetch });
    client = new Client({ name: 'mcp-gateway-e2e-stepup', version: '1.0.0' });
    await client.connect(transport);
  }
  result.protocol_version = transport.protocolVersion ?? '';
  result.first_scope = provider.saved?.scope ?? '';
  const echo = await client.callTool({ name: 'echo', arguments: { text: 'open' } });
  result.echo = echo.structuredContent?.text ?? '';
  const admin = await withAuth(transport, provider, () => client.callTool({ name: 'admin_echo', arguments: { text: 'stepped up' } }));
  result.admin_echo = admin.structuredContent?.text ?? '';
  result.final_scope = provider.saved?.scope ?? '';
  await client.close();
  result.ok = true;
  finish(0);
}

main().catch((err) => { result.error = String(err?.stack ?? err); finish(1); });
