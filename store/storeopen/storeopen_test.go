package storeopen_test

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"

	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/store/memstore"
	"github.com/mcpgateway/mcp-gateway/store/redisstore"
	"github.com/mcpgateway/mcp-gateway/store/storeopen"
)

func TestOpen(t *testing.T) {
	ctx := t.Context()
	s, err := storeopen.Open(ctx, "memory", "p:")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*memstore.Store); !ok {
		t.Fatalf("memory → %T", s)
	}
	_ = s.Close()

	mr := miniredis.RunT(t)
	mr.RequireAuth("sekrit")
	s, err = storeopen.Open(ctx, "redis://:sekrit@"+mr.Addr()+"/0", "p:")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*redisstore.Store); !ok {
		t.Fatalf("redis:// → %T", s)
	}
	if err := s.PutAgent(ctx, &store.Agent{AgentSpec: store.AgentSpec{ID: "a", Owner: "u"}}); err != nil {
		t.Fatal(err)
	}
	if !mr.Exists("p:agent:a") {
		t.Fatalf("prefix not used: keys %v", mr.Keys())
	}
	_ = s.Close()

	// A wrong password is a failure to connect, reported as unavailable.
	if _, err := storeopen.Open(ctx, "redis://:wrong@"+mr.Addr()+"/0", "p:"); err == nil {
		t.Fatal("wrong password accepted")
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	if _, err := storeopen.Open(ctx, "redis://"+addr+"/0?dial_timeout=100ms", "p:"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("closed port: %v, want ErrUnavailable", err)
	}

	for _, bad := range []string{"", "mem", "http://127.0.0.1:6379", "postgres://x", "::"} {
		if _, err := storeopen.Open(ctx, bad, "p:"); err == nil || !strings.Contains(err.Error(), "store url") {
			t.Errorf("Open(%q) = %v, want a store url error", bad, err)
		}
	}
}
