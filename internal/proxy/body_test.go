package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/mcpgateway/mcp-gateway/authz"
)

// bodyDecider allows everything and records the body the proxy passed.
type bodyDecider struct {
	mu      sync.Mutex
	body    []byte
	tooLong bool
}

func (b *bodyDecider) Decide(_ context.Context, r *authz.Request) *authz.Decision {
	b.mu.Lock()
	body, tooLong := r.LoadBody()
	b.body, b.tooLong = append([]byte(nil), body...), tooLong
	b.mu.Unlock()
	id := ident("demo")
	return &authz.Decision{Allow: true, Status: 200, Identity: id, RemoveHeaders: []string{"authorization"}}
}

// TestBodyReachesDecisionAndUpstream: the tool policy sees the JSON-RPC
// body (up to authz.MaxMCPBody, larger ones flagged), and the upstream
// still receives every byte of it.
func TestBodyReachesDecisionAndUpstream(t *testing.T) {
	var got []byte
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.ReadAll(r.Body)
	}))
	t.Cleanup(up.Close)
	dec := &bodyDecider{}
	srv := httptest.NewServer(New(Options{Decider: dec, Upstream: func(context.Context, string) (*url.URL, error) { return url.Parse(up.URL + "/mcp") }}))
	t.Cleanup(srv.Close)

	small := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin_echo"}}`
	large := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + strings.Repeat("x", authz.MaxMCPBody) + `"}}`
	for _, c := range []struct {
		body    string
		seen    string
		tooLong bool
	}{{small, small, false}, {large, "", true}} {
		resp, err := http.Post(srv.URL+"/demo/mcp", "application/json", strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if string(dec.body) != c.seen || dec.tooLong != c.tooLong {
			t.Errorf("decision saw %d bytes, too large %v; want %d, %v", len(dec.body), dec.tooLong, len(c.seen), c.tooLong)
		}
		if !bytes.Equal(got, []byte(c.body)) {
			t.Errorf("upstream got %d bytes, want %d", len(got), len(c.body))
		}
	}
}
