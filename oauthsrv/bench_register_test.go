package oauthsrv

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpgateway/mcp-gateway/config"
)

// BenchmarkRegister measures dynamic client registration (RFC 7591) over a
// real HTTP server (memory store; Redis with MCPGW_TEST_REDIS_URL): parse
// and validate the metadata, store the client, answer 201. The per-IP
// client cap and rate limit are off, since every request comes from
// 127.0.0.1; with them on the benchmark would time 429s.
func BenchmarkRegister(b *testing.B) {
	e := newEnv(b, func(c *config.Config, o *Options) {
		c.Clients.MaxPerIP = 0
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	})
	const body = `{"client_name":"bench client","redirect_uris":["http://127.0.0.1:33418/callback","http://localhost/cb"],` +
		`"grant_types":["authorization_code","refresh_token"],"response_types":["code"],"token_endpoint_auth_method":"none"}`
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	defer client.CloseIdleConnections()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Post(e.url+"/oauth/register", "application/json", strings.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
