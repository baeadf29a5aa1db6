package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/mcpgateway/mcp-gateway/config"
)

// TestDiscoveryUnderPublicPath walks an MCP client's discovery as the MCP
// authorization spec (2026-07-28, Authorization Server Discovery) orders
// it, against the whole gateway (dev mode's front, routed like Envoy)
// behind a host that serves it under public_url's path: 401 →
// resource_metadata → the metadata's authorization server → RFC 8414
// metadata → its token endpoint. The host strips the path from <path>/…,
// as an ingress with a prefix rewrite does, and passes the two well-known
// documents about <path> at its root on unchanged (README, "public_url
// with a path"); everything else at its root is another application's.
// The plain case, public_url at the host's root, walks the same way.
// With the old Check the 401 named <public>/.well-known/…, which the host
// does not route and the gateway would not serve.
func TestDiscoveryUnderPublicPath(t *testing.T) {
	for _, base := range []string{"", "/gw", "/a/b"} {
		t.Run("base="+base, func(t *testing.T) { walkDiscovery(t, base) })
	}
}

func walkDiscovery(t *testing.T, base string) {
	outer := httptest.NewUnstartedServer(nil)
	host := "http://" + outer.Listener.Addr().String()
	pub := host + base
	cfg := config.Default()
	cfg.PublicURL = pub
	cfg.SigningKeys = []config.SigningKey{{ID: "k1", Secret: "0123456789abcdef0123456789abcdef"}}
	cfg.Agents = []config.StaticAgent{{ID: "demo", Owner: "alice", Upstream: "http://127.0.0.1:9/mcp"}}
	if err := cfg.Validate(false); err != nil {
		t.Fatal(err)
	}
	g, err := newGateway(t.Context(), cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := g.authz.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); g.authz.Wait(); g.store.Close() })
	inner := httptest.NewServer(devHandler(g))
	t.Cleanup(inner.Close)
	innerURL, _ := url.Parse(inner.URL)

	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(innerURL)
		pr.Out.Host = pr.In.Host
		if rest, ok := strings.CutPrefix(pr.In.URL.Path, base+"/"); ok && base != "" {
			pr.Out.URL.Path, pr.Out.URL.RawPath = "/"+rest, ""
		}
	}}
	outer.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if base == "" || strings.HasPrefix(p, base+"/") ||
			strings.HasPrefix(p, "/.well-known/oauth-protected-resource"+base+"/") ||
			p == "/.well-known/oauth-protected-resource"+base || p == "/.well-known/oauth-authorization-server"+base {
			rp.ServeHTTP(w, r)
			return
		}
		http.Error(w, "another application", http.StatusNotFound)
	})
	outer.Start()
	t.Cleanup(outer.Close)
	c := outer.Client()

	// 1. The MCP request without a token: 401 naming the metadata's URL.
	endpoint := pub + "/demo/mcp"
	resp, err := c.Post(endpoint, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ch := resp.Header.Get("WWW-Authenticate")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST %s: %d, want 401", endpoint, resp.StatusCode)
	}
	prmURL := challengeParam(ch, "resource_metadata")
	// RFC 9728 §3.1: the well-known suffix between the host and the path.
	if want := host + "/.well-known/oauth-protected-resource" + base + "/demo/mcp"; prmURL != want {
		t.Fatalf("resource_metadata %q, want %q (challenge %q)", prmURL, want, ch)
	}

	// 2. The protected resource metadata names the endpoint byte for byte
	// (RFC 9728 §3.3) and the authorization server.
	var prm struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
	}
	getJSON(t, c, prmURL, &prm)
	if prm.Resource != endpoint || len(prm.AuthorizationServers) != 1 || prm.AuthorizationServers[0] != pub {
		t.Fatalf("metadata at %s: %+v, want resource %s, authorization server %s", prmURL, prm, endpoint, pub)
	}
	issuer := prm.AuthorizationServers[0]

	// 3. The authorization server's metadata. The spec's first URL for an
	// issuer, RFC 8414's with the path inserted, must answer (the gateway is
	// no OpenID provider: the OpenID Connect forms the spec tries next 404)
	// and name the issuer the URL was built from (RFC 8414 §3.3).
	u, _ := url.Parse(issuer)
	asURL := u.Scheme + "://" + u.Host + "/.well-known/oauth-authorization-server" + u.Path
	var as struct {
		Issuer        string `json:"issuer"`
		TokenEndpoint string `json:"token_endpoint"`
	}
	getJSON(t, c, asURL, &as)
	if as.Issuer != issuer || as.TokenEndpoint != issuer+"/oauth/token" {
		t.Fatalf("GET %s: %+v, want issuer %s", asURL, as, issuer)
	}

	// 4. The token endpoint is reachable through the host: an unknown code
	// is an OAuth error from the gateway, not the host's 404.
	r, err := c.PostForm(as.TokenEndpoint, url.Values{"grant_type": {"authorization_code"}, "code": {"nope"}, "client_id": {"nope"}})
	if err != nil {
		t.Fatal(err)
	}
	var oerr struct{ Error string }
	_ = json.NewDecoder(r.Body).Decode(&oerr)
	r.Body.Close()
	if r.StatusCode != http.StatusBadRequest && r.StatusCode != http.StatusUnauthorized || oerr.Error == "" {
		t.Fatalf("POST %s: %d %+v, want an OAuth error", as.TokenEndpoint, r.StatusCode, oerr)
	}

	// The gateway-wide resource's metadata, at its RFC 9728 URL.
	getJSON(t, c, host+"/.well-known/oauth-protected-resource"+base, &prm)
	if prm.Resource != pub {
		t.Fatalf("gateway-wide metadata: resource %q, want %q", prm.Resource, pub)
	}
}

// challengeParam returns one quoted parameter of a Bearer challenge.
func challengeParam(ch, name string) string {
	_, rest, ok := strings.Cut(ch, name+`="`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

func getJSON(t *testing.T, c *http.Client, u string, v any) {
	t.Helper()
	r, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	if r.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", u, r.StatusCode)
	}
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}
