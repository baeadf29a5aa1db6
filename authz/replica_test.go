package authz

import (
	"context"
	"testing"
	"time"

	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/store/memstore"
	"github.com/mcpgateway/mcp-gateway/store/redistest"
	"github.com/mcpgateway/mcp-gateway/token"
)

func TestCrossReplicaInvalidation(t *testing.T) {
	t.Run("memstore", func(t *testing.T) {
		st := memstore.New()
		t.Cleanup(func() { _ = st.Close() })
		seedAgents(t, st)
		replicaScenario(t, st)
	})
	t.Run("redis", func(t *testing.T) {
		st := redistest.Open(t, "authz")
		seedAgents(t, st)
		replicaScenario(t, st)
	})
}

// replicaScenario: two gateways on one store. What the admin API of one
// replica changes in the store is enforced by the other through store
// events, well before their cache TTL (5 min here) could expire.
func replicaScenario(t *testing.T, st store.Store) {
	long := func(o *Options) { o.CacheTTL = 5 * time.Minute; o.NegativeCacheTTL = 5 * time.Minute }
	a := newEnvOn(t, st, long)
	b := newEnvOn(t, st, long)
	ctx := context.Background()

	bak := a.addKey("bak", token.PrefixAgentKey, store.APIKey{Kind: store.KeyAgent, Agent: "alpha"})
	oagBob := a.addKey("oagBob", token.PrefixUserKey, store.APIKey{Kind: store.KeyUser, User: "bob"})
	c := baseClaims("alice")
	jwtAlice, err := a.ring.Mint(c)
	if err != nil {
		t.Fatal(err)
	}
	check := func(e *env, tok, agent string) *Decision {
		return decideDirect(e.a, "POST", "/"+agent+"/mcp", auth(tok))
	}
	for _, e := range []*env{a, b} {
		for _, tok := range []string{bak, oagBob, jwtAlice} {
			if d := check(e, tok, "alpha"); !d.Allow {
				t.Fatalf("warm-up: %d %s", d.Status, d.Reason)
			}
		}
	}

	// Revoke the API key (as replica A's admin API does).
	if _, err := st.RevokeKey(ctx, "key-bak"); err != nil {
		t.Fatal(err)
	}
	for name, e := range map[string]*env{"A": a, "B": b} {
		eventually(t, "revoked key denied on replica "+name, func() bool {
			d := check(e, bak, "alpha")
			return !d.Allow && d.Reason == ReasonRevoked
		})
	}

	// Revoke the access token.
	if err := st.RevokeJTI(ctx, c.ID, c.ExpiresAt.Time); err != nil {
		t.Fatal(err)
	}
	eventually(t, "revoked jti denied on replica B", func() bool {
		d := check(b, jwtAlice, "alpha")
		return !d.Allow && d.Reason == ReasonRevoked
	})

	// Delete a client (as the admin API does): the tokens it was issued are
	// denied on both replicas, and on one that starts afterwards; another
	// client's are not, nor one of the same id expiring after the entry
	// (the client came back, as a CIMD client can).
	issued := a.mint("", "alice", client("deleted-client"))
	other := a.mint("", "alice", client("other-client"))
	until := time.Now().Add(time.Hour + token.Leeway)
	if err := st.RevokeJTI(ctx, store.RevokedClientJTI("deleted-client"), until); err != nil {
		t.Fatal(err)
	}
	late := newEnvOn(t, st, long)
	for name, e := range map[string]*env{"A": a, "B": b, "started later": late} {
		eventually(t, "deleted client's token denied on replica "+name, func() bool {
			d := check(e, issued, "alpha")
			return !d.Allow && d.Reason == ReasonRevoked
		})
		if d := check(e, other, "alpha"); !d.Allow {
			t.Fatalf("replica %s: another client's token denied: %s", name, d.Reason)
		}
		back := e.mint("", "alice", client("deleted-client"), expIn(time.Hour+2*token.Leeway))
		if d := check(e, back, "alpha"); !d.Allow {
			t.Fatalf("replica %s: a token issued after the entry denied: %s", name, d.Reason)
		}
	}

	// Revoke a grant (as the token endpoint does): every access token of
	// the family, the first as well as the newest, is denied on both
	// replicas and on one that starts afterwards; another family's token
	// and a token minted before the fam claim existed are not.
	first := a.mint("", "alice", family("grant-1"))
	newest := b.mint("", "alice", family("grant-1"))
	otherGrant := a.mint("", "alice", family("grant-2"))
	legacy := a.mint("", "alice", family(""))
	if err := st.RevokeJTI(ctx, store.RevokedFamilyJTI("grant-1"), time.Now().Add(time.Hour+token.Leeway)); err != nil {
		t.Fatal(err)
	}
	lateFam := newEnvOn(t, st, long)
	for name, e := range map[string]*env{"A": a, "B": b, "started later": lateFam} {
		for _, tok := range []string{first, newest} {
			eventually(t, "revoked family's token denied on replica "+name, func() bool {
				d := check(e, tok, "alpha")
				return !d.Allow && d.Reason == ReasonRevoked
			})
		}
		for _, tok := range []string{otherGrant, legacy} {
			if d := check(e, tok, "alpha"); !d.Allow {
				t.Fatalf("replica %s: a token of another grant denied: %s", name, d.Reason)
			}
		}
	}

	// Take bob's access to alpha away.
	if err := st.PutAgent(ctx, &store.Agent{AgentSpec: store.AgentSpec{ID: "alpha", Owner: "alice"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "access change enforced on replica B", func() bool {
		d := check(b, oagBob, "alpha")
		return !d.Allow && d.Reason == ReasonForbidden
	})

	// An agent created after a negative lookup is found at once.
	jwtBob := b.mint("", "bob")
	if d := check(b, jwtBob, "beta"); d.Reason != ReasonUnknownAgent {
		t.Fatalf("unknown agent: %s", d.Reason)
	}
	if err := st.PutAgent(ctx, &store.Agent{AgentSpec: store.AgentSpec{ID: "beta", Owner: "bob"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "new agent usable on replica B", func() bool { return check(b, jwtBob, "beta").Allow })

	// Deleting it is seen too.
	if err := st.DeleteAgent(ctx, "beta"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deleted agent unknown on replica B", func() bool {
		return check(b, jwtBob, "beta").Reason == ReasonUnknownAgent
	})
}
