//go:build e2e

package e2e

// Revoking a grant ends every access token issued from it on every
// replica: two `mcp-gateway serve` processes on one Redis, tokens from the
// first, the Check asked on the second.

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
)

// startReplica runs a second `mcp-gateway serve` with gw's configuration
// (store, prefix, signing keys, public URL) on listeners of its own, and
// returns its gRPC address.
func startReplica(t *testing.T, gw *Gateway) string {
	t.Helper()
	b, err := os.ReadFile(gw.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	httpAddr, grpcAddr, adminAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	cfg["listen"] = map[string]string{"http": httpAddr, "grpc": grpcAddr, "admin": adminAddr}
	if x, ok := cfg["xds"].(map[string]any); ok {
		x["listen"] = freeAddr(t) // the first replica holds its own ADS port
	}
	if b, err = json.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(gw.Dir, "replica.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "serve-replica", filepath.Join(gw.Dir, "replica.log"), childEnv(nil), gatewayBin(),
		"serve", "--config", path, "--drain-delay", "0s", "--shutdown-timeout", "3s")
	waitReady(t, p, "/readyz", httpOK("http://"+adminAddr+"/readyz"))
	return grpcAddr
}

func TestRevokedGrantOnEveryReplica(t *testing.T) {
	gw := startServe(t, nil)
	if gw.StoreURL == "memory" {
		missing(t, "two replicas need a shared store: MCPGW_TEST_REDIS_URL is not set")
	}
	base := startFront(t, gw)
	host := strings.TrimPrefix(base, "http://")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	checks := map[string]authv3.AuthorizationClient{}
	for name, addr := range map[string]string{"A": gw.GRPCAddr, "B": startReplica(t, gw)} {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		checks[name] = authv3.NewAuthorizationClient(conn)
	}
	allowed := func(name, access string) bool {
		t.Helper()
		resp, err := checks[name].Check(ctx, envoyCheck(host, "POST", "/demo/mcp", map[string]string{"authorization": "Bearer " + access}))
		if err != nil {
			t.Fatal(err)
		}
		return codes.Code(resp.GetStatus().GetCode()) == codes.OK
	}

	// Token, then refresh, at replica A (through the front).
	tok := oauthTokens(t, base, "alice", gw.Users["alice"], gw.MCPURL("demo"))
	var next struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if st := postForm(t, base+"/oauth/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {tok.ClientID},
		"refresh_token": {tok.RefreshToken}}, &next); st != http.StatusOK || next.AccessToken == "" {
		t.Fatalf("refresh: %d", st)
	}
	for _, name := range []string{"A", "B"} {
		for i, a := range []string{tok.AccessToken, next.AccessToken} {
			if !allowed(name, a) {
				t.Fatalf("replica %s refuses access token %d before the revocation", name, i+1)
			}
		}
	}

	// Revoke the new refresh token: both access tokens end on both replicas.
	if st := postForm(t, base+"/oauth/revoke", url.Values{"token": {next.RefreshToken}, "client_id": {tok.ClientID}}, nil); st != http.StatusOK {
		t.Fatalf("revoke: %d", st)
	}
	deadline := time.Now().Add(5 * time.Second) // a store event, not a cache TTL
	for _, name := range []string{"B", "A"} {
		for i, a := range []string{tok.AccessToken, next.AccessToken} {
			for allowed(name, a) {
				if time.Now().After(deadline) {
					t.Fatalf("replica %s still allows access token %d after the grant was revoked", name, i+1)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
}
