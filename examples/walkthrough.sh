#!/usr/bin/env bash
# The README's curl walk-through as a script: register a client, authorize
# it (the browser's sign-in and consent done headless, with curl and a cookie
# jar), exchange the code, call the agent (tools/list, tools/call), refresh,
# revoke. CI runs it against `mcp-gateway dev` (e2e TestWalkthroughScript),
# and README.md quotes the part between the markers verbatim, so the README
# cannot drift from what works.
#
#   MCPGW_DEV_PASSWORD=choose-a-password make run              # terminal 1
#   MCPGW_DEV_PASSWORD=choose-a-password examples/walkthrough.sh  # terminal 2
#
# Needs curl, jq and openssl. Settings (environment):
#   BASE                the gateway's public URL (default http://127.0.0.1:8000)
#   AGENT_ID            the agent (default demo)
#   MCPGW_USER          who signs in (default demo, dev mode's user)
#   MCPGW_DEV_PASSWORD  their password (required)
set -euo pipefail
for tool in curl jq openssl; do
  command -v "$tool" >/dev/null || { echo "walkthrough: $tool is not installed (apt-get install -y $tool)" >&2; exit 1; }
done
trap 'rm -f "${JAR:-}"' EXIT
set -E
trap 'echo "walkthrough: FAILED at line $LINENO: $BASH_COMMAND" >&2' ERR

# --- walk-through (README.md quotes from here to the end marker)
BASE=${BASE:-http://127.0.0.1:8000} AGENT_ID=${AGENT_ID:-demo} MCPGW_USER=${MCPGW_USER:-demo}
: "${MCPGW_DEV_PASSWORD:?set it to the password of the demo user (make run prints it)}"

# 0. Without a token the MCP endpoint answers 401; the challenge names the
#    protected-resource metadata, an absolute URL, from which a client
#    discovers the authorization server.
curl -si -X POST "$BASE/$AGENT_ID/mcp" -H "Content-Type: application/json" \
  -d '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' | grep -i '^www-authenticate: Bearer realm="MCP", resource_metadata="http'
#   Www-Authenticate: Bearer realm="MCP", resource_metadata="http://127.0.0.1:8000/.well-known/oauth-protected-resource/demo/mcp", scope="mcp"
curl -sf "$BASE/.well-known/oauth-protected-resource/$AGENT_ID/mcp" | jq -e '.authorization_servers[0]'
curl -sf "$BASE/.well-known/oauth-authorization-server" | jq -e '.registration_endpoint, .authorization_endpoint, .token_endpoint'

# 1. Register a client (RFC 7591): a public client, no secret.
REDIRECT_URI=http://127.0.0.1:9999/callback
CLIENT_ID=$(curl -sf -X POST "$BASE/oauth/register" -H "Content-Type: application/json" \
  -d "{\"client_name\":\"My MCP Client\",\"redirect_uris\":[\"$REDIRECT_URI\"]}" | jq -er .client_id)
#   the answer: {"client_id":"…","client_name":"My MCP Client","redirect_uris":[…],"token_endpoint_auth_method":"none",…}

# 2. Authorize with PKCE (S256). In a browser you would open $AUTHORIZE_URL,
#    sign in, approve, and read code= from the address bar it lands on
#    (nothing needs to listen there). Headless, post the same two forms with
#    a cookie jar, carrying each page's hidden fields (request, csrf).
JAR=$(mktemp)
CODE_VERIFIER=$(openssl rand -base64 32 | tr '+/' '-_' | tr -d '=')
CODE_CHALLENGE=$(printf %s "$CODE_VERIFIER" | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '=')
STATE=$(openssl rand -hex 16)
AUTHORIZE_URL="$BASE/oauth/authorize?response_type=code&client_id=$CLIENT_ID&redirect_uri=$REDIRECT_URI&code_challenge=$CODE_CHALLENGE&code_challenge_method=S256&state=$STATE"
hidden() { grep -o '<input type="hidden" name="[^"]*" value="[^"]*"' | sed 's/.*name="\([^"]*\)" value="\([^"]*\)"/\1=\2/' | paste -sd'&'; }
LOGIN_PAGE=$(curl -sfL -c "$JAR" -b "$JAR" "$AUTHORIZE_URL")
CONSENT_PAGE=$(curl -sfL -c "$JAR" -b "$JAR" -H "Origin: $BASE" "$BASE/login" -d "$(hidden <<<"$LOGIN_PAGE")" \
  --data-urlencode "username=$MCPGW_USER" --data-urlencode "password=$MCPGW_DEV_PASSWORD")
CALLBACK=$(curl -s -o /dev/null -w '%{redirect_url}' -c "$JAR" -b "$JAR" -H "Origin: $BASE" "$BASE/consent" \
  -d "$(hidden <<<"$CONSENT_PAGE")" -d decision=approve)
#    CALLBACK is $REDIRECT_URI?code=…&state=…&iss=…: check state, take the code.
echo "$CALLBACK"
[ "$(sed -n 's/.*[?&]state=\([^&]*\).*/\1/p' <<<"$CALLBACK")" = "$STATE" ]
CODE=$(sed -n 's/.*[?&]code=\([^&]*\).*/\1/p' <<<"$CALLBACK")

# 3. Exchange the code for tokens.
TOKENS=$(curl -sf -X POST "$BASE/oauth/token" \
  -d grant_type=authorization_code \
  -d "code=$CODE" \
  --data-urlencode "redirect_uri=$REDIRECT_URI" \
  -d "client_id=$CLIENT_ID" \
  -d "code_verifier=$CODE_VERIFIER")
jq -e 'select(.token_type == "Bearer" and .expires_in == 3600) | {token_type, expires_in, scope}' <<<"$TOKENS"
#   the answer: {"access_token":"eyJ…","token_type":"Bearer","expires_in":3600,"refresh_token":"…","scope":"mcp"}
ACCESS_TOKEN=$(jq -er .access_token <<<"$TOKENS")
REFRESH_TOKEN=$(jq -er .refresh_token <<<"$TOKENS")

# 4. Call the agent: tools/list as the first request (the demo agent is
#    stateless: no initialize, no session), then tools/call.
curl -sf -X POST "$BASE/$AGENT_ID/mcp" \
  -H "Authorization: Bearer $ACCESS_TOKEN" \
  -H "Content-Type: application/json" \
  -d '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' | jq -ec '[.result.tools[].name] | select(index("whoami"))'
#   ["echo","whoami"]
curl -sf -X POST "$BASE/$AGENT_ID/mcp" \
  -H "Authorization: Bearer $ACCESS_TOKEN" \
  -H "Content-Type: application/json" \
  -d '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{}}}' \
  | jq -e --arg user "$MCPGW_USER" '.result.structuredContent | select(.user == $user and .credential == "oauth")'
#   {"agent":"demo","authorization_present":false,"credential":"oauth","user":"demo",…}

# 5. Refresh: the refresh token is rotated (use the new one from now on).
NEW_TOKENS=$(curl -sf -X POST "$BASE/oauth/token" -d grant_type=refresh_token \
  -d "client_id=$CLIENT_ID" -d "refresh_token=$REFRESH_TOKEN")
NEW_REFRESH_TOKEN=$(jq -er .refresh_token <<<"$NEW_TOKENS")

# 6. Revoke (RFC 7009). Revoking a refresh token, even the old one that was
#    rotated away, ends the whole sign-in (the refresh-token family): the
#    current refresh token is refused, and every access token of the sign-in
#    is denied too (on every replica within milliseconds: an event).
curl -sf -X POST "$BASE/oauth/revoke" -d "client_id=$CLIENT_ID" -d "token=$REFRESH_TOKEN"
curl -s -X POST "$BASE/oauth/token" -d grant_type=refresh_token \
  -d "client_id=$CLIENT_ID" -d "refresh_token=$NEW_REFRESH_TOKEN" | jq -e 'select(.error == "invalid_grant")'
#   {"error":"invalid_grant","error_description":"invalid refresh token"}
# --- end of the walk-through
echo "walkthrough: OK"
