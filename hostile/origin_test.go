package hostile

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpgateway/mcp-gateway/authz"
)

// TestForeignOriginRefused: the MCP transport's DNS-rebinding defence at the
// gateway (issue 16 item 8). A page of another site, or of an attacker's
// name rebound to the gateway's address, runs in the victim's browser and
// holds a valid credential (pasted, or taken from the page's own storage):
// every front refuses its requests with 403 origin_not_allowed before the
// agent sees them; a preflight gets no CORS. The public URL's origin, a
// configured one and no Origin at all (not a browser) still pass.
func TestForeignOriginRefused(t *testing.T) {
	const listed = "http://localhost:6274"
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			g := newGWWith(t, b, gwOptions{authz: func(_ *gw, o *authz.Options) { o.AgentOrigins = []string{listed} }})
			alice := "Bearer " + g.good(nil)
			g.secret(strings.TrimPrefix(alice, "Bearer "))
			host := strings.TrimPrefix(g.url, "http://")
			_, port, _ := strings.Cut(host, ":")

			for _, origin := range []string{"", g.url, listed} {
				var hdr [][2]string
				if origin != "" {
					hdr = append(hdr, [2]string{"Origin", origin})
				}
				if r := g.check("/alpha/mcp", alice, hdr...); r.status != http.StatusOK {
					t.Errorf("check with Origin %q: %d %s", origin, r.status, r.body)
				}
			}

			hostile := []string{
				"http://evil.example.com", "https://evil.example.com", "null",
				"http://localhost:6275", "https://" + host, "http://rebind.example:" + port,
				g.url + "/", strings.ToUpper(g.url), g.url + ", " + g.url, listed + ".",
			}
			for _, origin := range hostile {
				// Both Check adapters (g.check compares them).
				r := g.check("/alpha/mcp", alice, [2]string{"Origin", origin})
				if r.status != http.StatusForbidden || errorOf(r.body) != authz.ReasonOriginNotAllowed || r.hdr.Get("WWW-Authenticate") != "" {
					t.Errorf("check, Origin %q: %d %s challenge %q, want 403 origin_not_allowed without a challenge", origin, r.status, r.body, r.hdr.Get("WWW-Authenticate"))
				}
				// The dev front, as the browser sends it.
				hits := g.up.hits.Load()
				for _, method := range []string{http.MethodPost, http.MethodGet, http.MethodDelete} {
					req, _ := http.NewRequest(method, g.url+"/alpha/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
					req.Header.Set("Authorization", alice)
					req.Header.Set("Origin", origin)
					req.Header.Set("Content-Type", "application/json")
					if strings.HasPrefix(origin, "http://rebind.example") {
						req.Host = "rebind.example:" + port
					}
					r := g.do(req)
					if r.status != http.StatusForbidden || errorOf(r.body) != authz.ReasonOriginNotAllowed || r.hdr.Get("Access-Control-Allow-Origin") != "" {
						t.Errorf("%s, Origin %q: %d %s ACAO %q", method, origin, r.status, r.body, r.hdr.Get("Access-Control-Allow-Origin"))
					}
				}
				if got := g.up.hits.Load(); got != hits {
					t.Errorf("Origin %q: the agent received %d request(s)", origin, got-hits)
				}
				req, _ := http.NewRequest(http.MethodOptions, g.url+"/alpha/mcp", nil)
				req.Header.Set("Origin", origin)
				req.Header.Set("Access-Control-Request-Method", "POST")
				req.Header.Set("Access-Control-Request-Headers", "authorization")
				if r := g.do(req); r.hdr.Get("Access-Control-Allow-Origin") != "" || r.status/100 == 2 {
					t.Errorf("preflight, Origin %q: %d ACAO %q", origin, r.status, r.hdr.Get("Access-Control-Allow-Origin"))
				}
			}
			if !strings.Contains(g.logs.String(), `"reason":"origin_not_allowed"`) || !strings.Contains(g.logs.String(), `"origin":"http://evil.example.com"`) {
				t.Error("refusals not audited with their origin")
			}
			g.assertNoSecretsLogged(t)
		})
	}
}

func errorOf(body []byte) string {
	var b struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(body, &b)
	return b.Error
}
