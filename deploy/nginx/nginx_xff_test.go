package nginx

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/oauthsrv"
	"github.com/mcpgateway/mcp-gateway/store/memstore"
	"github.com/mcpgateway/mcp-gateway/token"
)

// TestNginxClientAddress runs the real authorization server behind one
// shipped nginx (trusted_hops: 1) and behind two in a row (2), with
// trusted_proxies covering the clients' own network (127.0.0.0/8, as
// private ranges do in Docker and office networks). A client rotating
// forged X-Forwarded-For entries keeps one registration budget; another
// client behind the same proxies has its own.
func TestNginxClientAddress(t *testing.T) {
	nginxBinary(t)
	for _, hops := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d_hops", hops), func(t *testing.T) {
			front := freePort(t)
			gw := startAuthServer(t, "http://"+front, hops)
			next := gw
			if hops == 2 {
				inner := freePort(t)
				startNginx(t, NginxParams{Listen: inner, GatewayHTTP: gw})
				next = inner
			}
			startNginx(t, NginxParams{Listen: front, GatewayHTTP: next})

			mallory, alice := clientFrom(t, "127.0.0.5"), clientFrom(t, "127.0.0.6")
			register := func(c *http.Client, xff string) int {
				req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://"+front+"/oauth/register",
					strings.NewReader(`{"redirect_uris":["http://127.0.0.1:9/cb"]}`))
				req.Header.Set("Content-Type", "application/json")
				if xff != "" {
					req.Header.Set("X-Forwarded-For", xff)
				}
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return resp.StatusCode
			}
			for i := range 3 {
				if s := register(mallory, fmt.Sprintf("203.0.113.%d, 10.0.0.%d", i, i)); s != http.StatusCreated {
					t.Fatalf("registration %d: %d", i, s)
				}
			}
			if s := register(mallory, "203.0.113.99, 10.0.0.99"); s != http.StatusTooManyRequests {
				t.Fatalf("a fresh forged X-Forwarded-For after the budget: %d, want 429", s)
			}
			if s := register(alice, ""); s != http.StatusCreated {
				t.Fatalf("another client through the same proxies: %d, want 201", s)
			}
		})
	}
}

// startAuthServer serves the authorization server on 127.0.0.1 with a
// registration budget of 3 per client IP and returns its host:port.
func startAuthServer(t *testing.T, publicURL string, hops int) string {
	t.Helper()
	cfg := config.Default()
	cfg.PublicURL = publicURL
	cfg.TrustedProxies = []string{"127.0.0.0/8"}
	cfg.TrustedHops = hops
	cfg.RateLimit = config.RateLimit{Register: 3}
	ring, err := token.NewRing(publicURL, []token.Key{{ID: "k", Secret: []byte(strings.Repeat("s", 32))}})
	if err != nil {
		t.Fatal(err)
	}
	st := memstore.New()
	t.Cleanup(func() { _ = st.Close() })
	srv, err := oauthsrv.New(oauthsrv.Options{Config: cfg, Store: st, Ring: ring, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts.Listener.Addr().String()
}

// clientFrom is an HTTP client whose connections come from ip (any
// 127.0.0.0/8 address is local on Linux).
func clientFrom(t *testing.T, ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}
