package oauthsrv

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

// BenchmarkCodeToToken measures the token endpoint redeeming authorization
// codes over a real HTTP server (memory store; Redis with
// MCPGW_TEST_REDIS_URL). Codes are put in the store beforehand so only the
// exchange is timed: parse, redeem, PKCE, mint, create the refresh family.
func BenchmarkCodeToToken(b *testing.B) {
	e := newEnv(b, func(_ *config.Config, o *Options) {
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil)) // audit lines are formatted, not kept
	})
	clientID := e.register("bench")
	verifier, challenge := pkce()
	ctx := context.Background()
	now := time.Now()
	codes := make([]string, b.N)
	for i := range codes {
		codes[i] = token.Random(32)
		err := e.st.PutCode(ctx, &store.AuthCode{
			Hash: token.Hash(codes[i]), ClientID: clientID, UserID: "alice", RedirectURI: loopbackRedirect,
			Scope: "mcp", Resource: e.url + "/demo/mcp", CodeChallenge: challenge, FamilyID: token.Random(16),
			AuthTime: now, ExpiresAt: now.Add(30 * time.Minute),
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	defer client.CloseIdleConnections()
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			code := codes[next.Add(1)-1]
			resp, err := client.PostForm(e.url+"/oauth/token", url.Values{
				"grant_type": {"authorization_code"}, "client_id": {clientID}, "code": {code},
				"redirect_uri": {loopbackRedirect}, "code_verifier": {verifier},
			})
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
