//go:build e2e

package e2e

// The Envoy path: a gRPC client sending CheckRequests shaped as Envoy's
// ext_authz filter sends them (lower-case headers, pseudo-headers, the
// attributes.request.http fields) to `mcp-gateway serve`'s gRPC port, with
// credentials from the real OAuth flow and the admin CLI.

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// envoyCheck builds what Envoy sends for one downstream request.
func envoyCheck(host, method, path string, hdr map[string]string) *authv3.CheckRequest {
	h := map[string]string{
		":authority":        host,
		":path":             path,
		":method":           method,
		":scheme":           "http",
		"content-type":      "application/json",
		"accept":            "application/json, text/event-stream",
		"user-agent":        "mcp-gateway-e2e",
		"x-forwarded-proto": "http",
		"x-request-id":      randomString(12),
	}
	for k, v := range hdr {
		h[strings.ToLower(k)] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 50000}},
		}}},
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.Now(),
			Http: &authv3.AttributeContext_HttpRequest{
				Id:       h["x-request-id"],
				Method:   method,
				Headers:  h,
				Path:     path,
				Host:     host,
				Scheme:   "http",
				Protocol: "HTTP/1.1",
				Size:     -1,
			},
		},
	}}
}

// rawHeaderCheck is the same request as Envoy sends it with
// encode_raw_headers: header_map with raw values, no headers map.
func rawHeaderCheck(req *authv3.CheckRequest) *authv3.CheckRequest {
	h := req.Attributes.Request.Http
	var hm corev3.HeaderMap
	for k, v := range h.Headers {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: k, RawValue: []byte(v)})
	}
	h.Headers, h.HeaderMap = nil, &hm
	return req
}

type checkWant struct {
	code       codes.Code
	status     int               // DeniedHttpResponse status (deny)
	upstream   map[string]string // OkHttpResponse headers (allow)
	errCode    string            // error="…" in the challenge
	challenge  bool              // a WWW-Authenticate is expected
	agent      string            // the agent named in the challenge
	removeHdrs []string          // must be in headers_to_remove (allow)
}

func TestEnvoyGRPCCheck(t *testing.T) {
	gw := startServe(t, &ServeOptions{CacheTTL: time.Second})
	base := startFront(t, gw)
	host := strings.TrimPrefix(base, "http://")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	conn, err := grpc.NewClient(gw.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hres, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: authv3.Authorization_ServiceDesc.ServiceName})
	if err != nil || hres.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC health of the Authorization service: %v %v", hres, err)
	}
	client := authv3.NewAuthorizationClient(conn)

	// Credentials from the real parts: the OAuth flow (DCR, login and
	// consent forms, PKCE) and the admin CLI.
	alice, bob := gw.Users["alice"], gw.Users["bob"]
	demoTok := oauthTokens(t, base, "alice", alice, gw.MCPURL("demo"))
	wideTok := oauthTokens(t, base, "alice", alice, "")
	bobTok := oauthTokens(t, base, "bob", bob, "")
	bak := gw.CreateKey(t, "agent", "demo", "envoy")
	oag := gw.CreateKey(t, "user", "alice", "envoy")
	tampered := demoTok.AccessToken[:len(demoTok.AccessToken)-2] + flip(demoTok.AccessToken[len(demoTok.AccessToken)-2:])

	bearer := func(s string) map[string]string { return map[string]string{"authorization": "Bearer " + s} }
	okAs := func(user, agent, cred, clientID string) checkWant {
		up := map[string]string{"x-mcp-user": user, "x-mcp-agent": agent, "x-mcp-credential": cred, "x-mcp-scope": "mcp"}
		if clientID != "" {
			up["x-mcp-client-id"] = clientID
		}
		return checkWant{code: codes.OK, upstream: up, removeHdrs: []string{"authorization"}}
	}
	cases := []struct {
		name   string
		method string
		path   string
		hdr    map[string]string
		raw    bool
		want   checkWant
	}{
		{"JWT for demo on demo", "POST", "/demo/mcp", bearer(demoTok.AccessToken), false, okAs("alice", "demo", "oauth", demoTok.ClientID)},
		{"JWT for demo, raw header map", "POST", "/demo/mcp", bearer(demoTok.AccessToken), true, okAs("alice", "demo", "oauth", demoTok.ClientID)},
		{"JWT for demo, GET stream with query", "GET", "/demo/mcp?x=1", bearer(demoTok.AccessToken), false, okAs("alice", "demo", "oauth", demoTok.ClientID)},
		{"JWT for demo on other: audience", "POST", "/other/mcp", bearer(demoTok.AccessToken), false,
			checkWant{code: codes.Unauthenticated, status: 401, challenge: true, agent: "other", errCode: "invalid_token"}},
		{"gateway-wide JWT on alice's agent", "POST", "/demo/mcp", bearer(wideTok.AccessToken), false, okAs("alice", "demo", "oauth", wideTok.ClientID)},
		{"gateway-wide JWT on bob's agent", "POST", "/other/mcp", bearer(wideTok.AccessToken), false,
			checkWant{code: codes.PermissionDenied, status: 403, agent: "other"}},
		{"bob's JWT on bob's agent", "POST", "/other/mcp", bearer(bobTok.AccessToken), false, okAs("bob", "other", "oauth", bobTok.ClientID)},
		{"tampered JWT", "POST", "/demo/mcp", bearer(tampered), false,
			checkWant{code: codes.Unauthenticated, status: 401, challenge: true, agent: "demo", errCode: "invalid_token"}},
		{"agent key on its agent", "POST", "/demo/mcp", bearer(bak.Key), false, okAs("alice", "demo", "agent_key", "")},
		{"agent key on another agent", "POST", "/other/mcp", bearer(bak.Key), false,
			checkWant{code: codes.PermissionDenied, status: 403, agent: "other"}},
		{"user key on the user's agent", "POST", "/demo/mcp", bearer(oag.Key), false, okAs("alice", "demo", "user_key", "")},
		{"user key on bob's agent", "POST", "/other/mcp", bearer(oag.Key), false,
			checkWant{code: codes.PermissionDenied, status: 403, agent: "other"}},
		{"no credential", "POST", "/demo/mcp", nil, false,
			checkWant{code: codes.Unauthenticated, status: 401, challenge: true, agent: "demo"}},
		{"unknown key", "POST", "/demo/mcp", bearer("oag_" + randomString(32)), false,
			checkWant{code: codes.Unauthenticated, status: 401, challenge: true, agent: "demo", errCode: "invalid_token"}},
		{"token in the query is not a credential", "POST", "/demo/mcp?access_token=" + demoTok.AccessToken, nil, false,
			checkWant{code: codes.Unauthenticated, status: 401, challenge: true, agent: "demo"}},
		{"unknown agent", "POST", "/nosuch/mcp", bearer(oag.Key), false, checkWant{code: codes.NotFound, status: 404}},
		{"dot segments", "POST", "/demo/mcp/../../other/mcp", bearer(bak.Key), false, checkWant{code: codes.NotFound, status: 404}},
		{"encoded slash", "POST", "/demo%2Fmcp", bearer(bak.Key), false, checkWant{code: codes.NotFound, status: 404}},
		{"spoofed identity headers", "POST", "/demo/mcp", map[string]string{
			"authorization": "Bearer " + bak.Key, "x-mcp-user": "mallory", "x-mcp-credential": "oauth", "x-mcp-role": "admin",
		}, false, func() checkWant {
			w := okAs("alice", "demo", "agent_key", "")
			w.removeHdrs = append(w.removeHdrs, "x-mcp-role")
			return w
		}()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := envoyCheck(host, c.method, c.path, c.hdr)
			if c.raw {
				req = rawHeaderCheck(req)
			}
			resp, err := client.Check(ctx, req)
			if err != nil {
				t.Fatalf("Check returned an RPC error (Envoy would apply failure_mode_allow): %v", err)
			}
			checkResponse(t, resp, base, c.want)
		})
	}

	// Envoy's per-route check_settings.context_extensions name the agent
	// the route was built for; a path for another agent is denied (404
	// route_mismatch), the credential unread.
	t.Run("route's agent in context_extensions", func(t *testing.T) {
		for _, c := range []struct {
			route, path string
			raw         bool
			want        checkWant
		}{
			{"demo", "/demo/mcp", false, okAs("alice", "demo", "agent_key", "")},
			{"demo", "/demo/mcp/?x=1", true, okAs("alice", "demo", "agent_key", "")},
			{"other", "/demo/mcp", false, checkWant{code: codes.NotFound, status: 404}},
			{"demo", "/other/mcp", true, checkWant{code: codes.NotFound, status: 404}},
			{"", "/demo/mcp", false, checkWant{code: codes.NotFound, status: 404}},
		} {
			req := envoyCheck(host, "POST", c.path, bearer(bak.Key))
			if c.raw {
				req = rawHeaderCheck(req)
			}
			req.Attributes.ContextExtensions = map[string]string{"agent": c.route, "virtual_host": "mcp"}
			resp, err := client.Check(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			checkResponse(t, resp, base, c.want)
			if c.want.code != codes.OK {
				if r := resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue(); r != "route_mismatch" {
					t.Errorf("route %q, path %s: reason %q, want route_mismatch", c.route, c.path, r)
				}
			}
		}
	})

	// refusedWithin polls the Check with req until it answers 401
	// invalid_token with the challenge, failing after within.
	refusedWithin := func(t *testing.T, req *authv3.CheckRequest, within time.Duration, what string) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			resp, err := client.Check(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if codes.Code(resp.GetStatus().GetCode()) != codes.OK {
				checkResponse(t, resp, base, checkWant{code: codes.Unauthenticated, status: 401, challenge: true, agent: "demo", errCode: "invalid_token"})
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s is still allowed after %s", what, within)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	t.Run("deleting a client ends its tokens", func(t *testing.T) {
		gone := oauthTokens(t, base, "alice", alice, gw.MCPURL("demo"))
		req := envoyCheck(host, "POST", "/demo/mcp", bearer(gone.AccessToken))
		resp, err := client.Check(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		checkResponse(t, resp, base, okAs("alice", "demo", "oauth", gone.ClientID))
		gw.CLI(t, "clients", "delete", gone.ClientID)
		refusedWithin(t, req, 5*time.Second, "a deleted client's access token") // a store event, not a cache TTL
		// Its refresh token is refused; another client of the same user is untouched.
		var tok struct {
			Error string `json:"error"`
		}
		if st := postForm(t, base+"/oauth/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {gone.ClientID},
			"refresh_token": {gone.RefreshToken}}, &tok); st != http.StatusUnauthorized || tok.Error != "invalid_client" {
			t.Fatalf("refresh by a deleted client: %d %s", st, tok.Error)
		}
		resp, err = client.Check(ctx, envoyCheck(host, "POST", "/demo/mcp", bearer(demoTok.AccessToken)))
		if err != nil {
			t.Fatal(err)
		}
		checkResponse(t, resp, base, okAs("alice", "demo", "oauth", demoTok.ClientID))
	})

	t.Run("revoked key is refused within the cache TTL", func(t *testing.T) {
		k := gw.CreateKey(t, "user", "alice", "to-revoke")
		req := envoyCheck(host, "POST", "/demo/mcp", bearer(k.Key))
		resp, err := client.Check(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		checkResponse(t, resp, base, okAs("alice", "demo", "user_key", ""))
		gw.CLI(t, "keys", "revoke", k.ID)
		refusedWithin(t, req, time.Second+5*time.Second, "a revoked key (past the cache TTL bound)")
	})
}

// flip changes a base64url string so it still decodes but differs.
func flip(s string) string {
	b := []byte(s)
	for i := range b {
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
	}
	return string(b)
}

func checkResponse(t *testing.T, resp *authv3.CheckResponse, base string, want checkWant) {
	t.Helper()
	got := codes.Code(resp.GetStatus().GetCode())
	if got != want.code {
		t.Fatalf("status %v (%s), want %v", got, resp.GetStatus().GetMessage(), want.code)
	}
	md := resp.GetDynamicMetadata().GetFields()
	if want.code == codes.OK {
		ok := resp.GetOkResponse()
		if ok == nil {
			t.Fatalf("allowed without an OkHttpResponse: %v", resp)
		}
		up := map[string]string{}
		for _, h := range ok.GetHeaders() {
			if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
				t.Errorf("header %s: append action %v, want OVERWRITE_IF_EXISTS_OR_ADD", h.GetHeader().GetKey(), h.GetAppendAction())
			}
			up[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
		for k, v := range want.upstream {
			if up[k] != v {
				t.Errorf("upstream %s = %q, want %q (all: %v)", k, up[k], v, up)
			}
		}
		if _, set := want.upstream["x-mcp-client-id"]; !set && up["x-mcp-client-id"] == "" &&
			!slices.Contains(ok.GetHeadersToRemove(), "x-mcp-client-id") {
			t.Error("x-mcp-client-id neither set nor removed: a spoofed one would pass")
		}
		for _, h := range want.removeHdrs {
			if !slices.Contains(ok.GetHeadersToRemove(), h) {
				t.Errorf("headers_to_remove %v lacks %s", ok.GetHeadersToRemove(), h)
			}
		}
		// An allow is the ok_response alone: the identity is in the
		// headers (the access log reads them), status absent means OK.
		if resp.GetStatus() != nil || resp.GetDynamicMetadata() != nil {
			t.Errorf("allow carries status %v, dynamic_metadata %v", resp.GetStatus(), resp.GetDynamicMetadata())
		}
		return
	}
	den := resp.GetDeniedResponse()
	if den == nil {
		t.Fatalf("denied without a DeniedHttpResponse: %v", resp)
	}
	if int(den.GetStatus().GetCode()) != want.status {
		t.Fatalf("denied HTTP status %d, want %d", den.GetStatus().GetCode(), want.status)
	}
	if den.GetBody() == "" {
		t.Error("denied without a body")
	}
	var challenge []string
	for _, h := range den.GetHeaders() {
		if strings.EqualFold(h.GetHeader().GetKey(), "www-authenticate") {
			challenge = append(challenge, h.GetHeader().GetValue())
		}
	}
	if !want.challenge {
		// "Not your agent" and the like: no challenge, so no step-up.
		if len(challenge) != 0 {
			t.Errorf("unexpected challenge %q", challenge)
		}
		return
	}
	hh := http.Header{}
	for _, c := range challenge {
		hh.Add("WWW-Authenticate", c)
	}
	wantChallenge(t, hh, base, want.agent, want.errCode)
	if want.errCode == "" && strings.Contains(challenge[0], "error=") {
		t.Errorf("challenge %q carries an error for a request without a credential", challenge[0])
	}
	if md["reason"].GetStringValue() == "" {
		t.Error("no reason in dynamic_metadata")
	}
}
