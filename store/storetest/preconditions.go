package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/mcpgateway/mcp-gateway/store"
)

// testPreconditions checks that every backend refuses the same bad calls
// with store.ErrInvalid (the records' Validate methods and store's checks),
// so that no backend drifts from the others.
func testPreconditions(t *testing.T, h *harness) {
	s, ctx, now := h.s, h.ctx, h.now()
	past := now.Add(-time.Minute)
	fam := id("fam")
	calls := map[string]func() error{
		"CreateClient nil":       func() error { return s.CreateClient(ctx, nil) },
		"CreateClient no id":     func() error { return s.CreateClient(ctx, &store.Client{}) },
		"CreateClient expired":   func() error { return s.CreateClient(ctx, &store.Client{ID: id("c"), ExpiresAt: past}) },
		"TouchClient zero ttl":   func() error { return s.TouchClient(ctx, id("c"), 0) },
		"TouchClient sub-ms ttl": func() error { return s.TouchClient(ctx, id("c"), time.Microsecond) },
		"PutAuthRequest no id":   func() error { return s.PutAuthRequest(ctx, &store.AuthRequest{}, time.Minute) },
		"PutAuthRequest zero ttl": func() error {
			return s.PutAuthRequest(ctx, &store.AuthRequest{ID: id("ar")}, 0)
		},
		"PutCode no hash": func() error { return s.PutCode(ctx, &store.AuthCode{ExpiresAt: now.Add(time.Minute)}) },
		"PutCode expired": func() error { return s.PutCode(ctx, &store.AuthCode{Hash: id("code"), ExpiresAt: past}) },
		"CreateFamily no hash": func() error {
			return s.CreateFamily(ctx, &store.RefreshFamily{ID: fam, ExpiresAt: now.Add(time.Hour)}, time.Minute)
		},
		"CreateFamily zero ttl": func() error {
			f := &store.RefreshFamily{ID: fam, CurrentHash: tagged(fam, id("rt")), ExpiresAt: now.Add(time.Hour)}
			return s.CreateFamily(ctx, f, 0)
		},
		"CreateFamily expired": func() error {
			f := &store.RefreshFamily{ID: fam, CurrentHash: tagged(fam, id("rt")), ExpiresAt: past}
			return s.CreateFamily(ctx, f, time.Minute)
		},
		"Rotate same hashes": func() error {
			_, err := s.Rotate(ctx, store.Rotation{OldHash: "a", NewHash: "a", TokenTTL: time.Minute})
			return err
		},
		"Rotate zero ttl": func() error {
			_, err := s.Rotate(ctx, store.Rotation{OldHash: "a", NewHash: "b"})
			return err
		},
		"SaveConsent no redirect": func() error {
			return s.SaveConsent(ctx, &store.Consent{UserID: "alice", ClientID: "c1", Scope: "mcp"})
		},
		"PutSession no hash": func() error {
			return s.PutSession(ctx, "", &store.Session{UserID: "alice", ExpiresAt: now.Add(time.Hour)})
		},
		"PutSession expired": func() error {
			return s.PutSession(ctx, id("sess"), &store.Session{UserID: "alice", ExpiresAt: past})
		},
		"RevokeJTI empty":   func() error { return s.RevokeJTI(ctx, "", now.Add(time.Hour)) },
		"CreateKey no id":   func() error { return s.CreateKey(ctx, &store.APIKey{Hash: id("kh")}) },
		"PutAgent no id":    func() error { return s.PutAgent(ctx, &store.Agent{}) },
		"CreateAgent nil":   func() error { return s.CreateAgent(ctx, nil) },
		"Allow zero window": func() error { _, _, err := s.Allow(ctx, id("rl"), 1, 0); return err },
		"MarkOnce no key":   func() error { _, err := s.MarkOnce(ctx, "", time.Minute); return err },
		"MarkOnce zero ttl": func() error { _, err := s.MarkOnce(ctx, id("mark"), 0); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s = %v; want store.ErrInvalid", name, err)
		}
	}
}

// testAgentCopies checks that a stored agent shares nothing with the
// caller's value, its tool policy and limits included: a caller editing
// what it put or got must not change the stored agent.
func testAgentCopies(t *testing.T, h *harness) {
	s, ctx := h.s, h.ctx
	a := &store.Agent{
		AgentSpec: store.AgentSpec{
			ID: id("agent"), Owner: "alice",
			Rules:  []store.Rule{{Method: "tools/call", Target: "x", Scopes: []string{"mcp:x"}, Users: []string{"alice"}}},
			Limits: &store.Limits{PerUser: 5},
		},
	}
	must(t, s.PutAgent(ctx, a))
	a.Rules[0].Scopes[0] = "changed"
	a.Limits.PerUser = 99
	got, err := s.GetAgent(ctx, a.ID)
	must(t, err)
	if got.Rules[0].Scopes[0] != "mcp:x" || got.Limits.PerUser != 5 {
		t.Fatalf("stored agent changed with the caller's copy: %+v %+v", got.Rules, got.Limits)
	}
	got.Rules[0].Users[0] = "mallory"
	got.Limits.PerUser = 99
	again, err := s.GetAgent(ctx, a.ID)
	must(t, err)
	if again.Rules[0].Users[0] != "alice" || again.Limits.PerUser != 5 {
		t.Fatalf("stored agent changed with a returned copy: %+v %+v", again.Rules, again.Limits)
	}
}
