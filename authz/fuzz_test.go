package authz

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

// FuzzDecide feeds arbitrary targets and Authorization values to the core
// and the HTTP check adapter: no panic, only the documented statuses, and
// an allow only for a well-formed MCP path with a real credential.
func FuzzDecide(f *testing.F) {
	e := newEnv(f, func(o *Options) { o.Logger = slog.New(slog.DiscardHandler) })
	tok := e.mint("", "alice")
	key := e.addKey("bak", token.PrefixAgentKey, store.APIKey{Kind: store.KeyAgent, Agent: "alpha"})
	for _, s := range [][2]string{
		{"/alpha/mcp", "Bearer " + tok}, {"/alpha/mcp/?x=1", "bearer " + key}, {"/alpha/../mcp", "Bearer " + tok},
		{"/alpha%2Fmcp", ""}, {"//alpha/mcp", "Basic x"}, {"/alpha/mcp", "Bearer " + tok + "x"},
		{"/alpha/mcp", "Bearer  " + key + " "}, {"/\x00/mcp", "Bearer \x00"}, {"", "Bearer"},
	} {
		f.Add(s[0], s[1])
	}
	h := HTTPCheckHandler(e.a)
	f.Fuzz(func(t *testing.T, path, authz string) {
		d := decideDirect(e.a, "GET", path, map[string]string{"authorization": authz})
		switch d.Status {
		case 200, 401, 403, 404, 503:
		default:
			t.Fatalf("status %d", d.Status)
		}
		if d.Allow {
			if _, ok := AgentFromPath(path); !ok {
				t.Fatalf("allowed bad path %q", path)
			}
			// Fuzz workers each mint their own token: any allowed JWT must
			// verify with the ring; an allowed key must be this process's.
			raw, _, _ := parseBearer(authz)
			if raw != key {
				if _, err := e.ring.Verify(raw); err != nil {
					t.Fatalf("allowed with %q: %v", authz, err)
				}
			}
		}
		for _, hv := range d.Headers {
			if hv.Key == "www-authenticate" && !strings.Contains(hv.Value, `resource_metadata="`+pub+"/.well-known/oauth-protected-resource/") {
				t.Fatalf("challenge %q", hv.Value)
			}
		}
		req := &http.Request{Method: "GET", RequestURI: CheckPath, URL: &url.URL{Path: CheckPath}, Header: http.Header{
			"X-Original-Uri": {path}, "Authorization": {authz},
		}}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req.WithContext(context.Background()))
		if rec.Code != HTTPStatus(d) {
			t.Fatalf("HTTP %d for decision %d %s", rec.Code, d.Status, d.Reason)
		}
	})
}
