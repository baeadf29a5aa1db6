//go:build e2e

package e2e

// bak_ and oag_ keys made with the CLI (which calls the admin API), used by
// a plain MCP client (Go SDK, static bearer) through real nginx → gateway
// HTTP check → the demo agent.

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestAPIKeysThroughNginx(t *testing.T) {
	const cacheTTL = time.Second
	gw := startServe(t, &ServeOptions{CacheTTL: cacheTTL})
	base := startNginx(t, gw)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	bak := gw.CreateKey(t, "agent", "demo", "ci")
	oag := gw.CreateKey(t, "user", "alice", "laptop")
	bakOther := gw.CreateKey(t, "agent", "other", "other-ci")
	if !strings.HasPrefix(bak.Key, "bak_") || !strings.HasPrefix(oag.Key, "oag_") || bak.Kind != "agent" || oag.Kind != "user" {
		t.Fatalf("key formats: %q/%s, %q/%s", bak.Key[:4], bak.Kind, oag.Key[:4], oag.Kind)
	}
	if bak.User != "alice" || bakOther.User != "bob" {
		t.Fatalf("agent keys default to the agent's owner: got %q and %q", bak.User, bakOther.User)
	}
	if gw.StoreURL != "memory" {
		// The keys live in the real Redis, as SHA-256 hashes only.
		stored := gw.redisKeys(t, "key:*")
		if len(stored) < 3 {
			t.Fatalf("%d key records in Redis under %s, want ≥ 3", len(stored), gw.Prefix)
		}
		for _, k := range stored {
			if strings.Contains(k, bak.Key) || strings.Contains(k, oag.Key) {
				t.Fatal("a key is stored in clear in a Redis key name")
			}
		}
	}

	// Headers a caller might send to pose as someone else. Go canonicalises
	// names set with Set; the underscore form is set raw.
	spoof := http.Header{
		"X-Mcp-User":       {"mallory"},
		"X-Mcp-Agent":      {"mallory"},
		"X-Mcp-Credential": {"mallory"},
		"X-Mcp-Client-Id":  {"mallory"},
		"x_mcp_user":       {"mallory"},
	}

	t.Run("agent key on its agent", func(t *testing.T) {
		cs := connectMCP(t, ctx, gw.MCPURL("demo"), bearerClient(bak.Key, spoof), nil)
		assertTools(t, ctx, cs)
		w := whoami(t, ctx, cs)
		assertIdentity(t, w, "alice", "demo", "agent_key")
	})

	t.Run("user key on the user's agent", func(t *testing.T) {
		cs := connectMCP(t, ctx, gw.MCPURL("demo"), bearerClient(oag.Key, spoof), nil)
		w := whoami(t, ctx, cs)
		assertIdentity(t, w, "alice", "demo", "user_key")
	})

	t.Run("agent key of other on other", func(t *testing.T) {
		cs := connectMCP(t, ctx, gw.MCPURL("other"), bearerClient(bakOther.Key, nil), nil)
		w := whoami(t, ctx, cs)
		assertIdentity(t, w, "bob", "other", "agent_key")
	})

	// Beyond the five identity names: the spec removes every incoming
	// x-mcp-* header, so no agent can be fooled by a name it trusts that
	// the gateway does not set.
	t.Run("extra x-mcp-* header does not reach the agent", func(t *testing.T) {
		cs := connectMCP(t, ctx, gw.MCPURL("demo"), bearerClient(bak.Key, http.Header{"X-Mcp-Role": {"mallory"}}), nil)
		w := whoami(t, ctx, cs)
		if v, ok := w.MCPHeaders["x-mcp-role"]; ok {
			t.Fatalf("x-mcp-role: %q reached the agent through nginx", v)
		}
		assertIdentity(t, w, "alice", "demo", "agent_key")
	})

	forbidden := []struct{ name, key, agent string }{
		{"agent key of demo on other", bak.Key, "other"},
		{"alice's user key on bob's agent", oag.Key, "other"},
		{"agent key of other on demo", bakOther.Key, "demo"},
	}
	for _, c := range forbidden {
		t.Run(c.name, func(t *testing.T) {
			status, h, body := rawInitialize(t, gw.MCPURL(c.agent), http.Header{"Authorization": {"Bearer " + c.key}})
			if status != http.StatusForbidden {
				t.Fatalf("status %d, want 403: %s", status, body)
			}
			// Not a scope problem: no challenge, so no client tries a step-up.
			if ch := h.Values("WWW-Authenticate"); len(ch) != 0 || !strings.Contains(body, `"access_denied"`) {
				t.Fatalf("challenge %q, body %s: want none and access_denied", ch, body)
			}
			if _, err := dialMCP(ctx, gw.MCPURL(c.agent), bearerClient(c.key, nil), nil); err == nil {
				t.Fatal("the SDK client connected with a key for another agent")
			}
		})
	}

	t.Run("no credential: challenge reaches the client", func(t *testing.T) {
		status, h, body := rawInitialize(t, gw.MCPURL("demo"), nil)
		if status != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401: %s", status, body)
		}
		wantChallenge(t, h, base, "demo", "")
		if !strings.Contains(h.Get("Access-Control-Expose-Headers"), "www-authenticate") {
			t.Fatalf("browser clients cannot read the challenge: expose %q", h.Get("Access-Control-Expose-Headers"))
		}
		// The resource_metadata URL in the challenge is served through nginx.
		resp, err := quickClient.Get(base + "/.well-known/oauth-protected-resource/demo/mcp")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var prm struct {
			Resource             string   `json:"resource"`
			AuthorizationServers []string `json:"authorization_servers"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&prm); err != nil || resp.StatusCode != 200 {
			t.Fatalf("PRM: %d %v", resp.StatusCode, err)
		}
		if prm.Resource != gw.MCPURL("demo") || len(prm.AuthorizationServers) != 1 || prm.AuthorizationServers[0] != base {
			t.Fatalf("PRM %+v", prm)
		}
	})

	t.Run("unknown key", func(t *testing.T) {
		status, h, _ := rawInitialize(t, gw.MCPURL("demo"), http.Header{"Authorization": {"Bearer bak_" + randomString(32)}})
		if status != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", status)
		}
		wantChallenge(t, h, base, "demo", "invalid_token")
	})

	t.Run("unknown agent", func(t *testing.T) {
		status, _, _ := rawInitialize(t, gw.MCPURL("nosuch"), http.Header{"Authorization": {"Bearer " + oag.Key}})
		// No route in the agents include nginx-config wrote: 404 before any check.
		if status != http.StatusNotFound {
			t.Fatalf("status %d, want 404 (nginx has no route to an agent the registry lacks)", status)
		}
	})

	t.Run("dot segments do not reach another agent", func(t *testing.T) {
		// nginx routes on the normalised path (/other/mcp) but the gateway
		// decides on the raw one and refuses it.
		status, _, _ := rawInitialize(t, base+"/demo/../other/mcp", http.Header{"Authorization": {"Bearer " + bak.Key}})
		if status == http.StatusOK {
			t.Fatal("/demo/../other/mcp with demo's key was allowed")
		}
	})

	t.Run("revoked key is refused within the cache TTL", func(t *testing.T) {
		k := gw.CreateKey(t, "agent", "demo", "to-revoke")
		hdr := http.Header{"Authorization": {"Bearer " + k.Key}}
		if status, _, body := rawInitialize(t, gw.MCPURL("demo"), hdr); status != http.StatusOK {
			t.Fatalf("fresh key: %d %s", status, body) // and now it is cached
		}
		gw.CLI(t, "keys", "revoke", k.ID)
		revoked := time.Now()
		// The bound: one cache TTL (pub/sub usually makes it immediate),
		// plus slack for a slow machine.
		deadline := revoked.Add(cacheTTL + 5*time.Second)
		for {
			status, h, _ := rawInitialize(t, gw.MCPURL("demo"), hdr)
			if status == http.StatusUnauthorized {
				wantChallenge(t, h, base, "demo", "invalid_token")
				t.Logf("revoked key refused %v after the revoke", time.Since(revoked).Round(time.Millisecond))
				break
			}
			if status != http.StatusOK {
				t.Fatalf("revoked key: status %d, want 200 (cached) then 401", status)
			}
			if time.Now().After(deadline) {
				t.Fatalf("revoked key still allowed %v after the revoke (cache ttl %v)", time.Since(revoked), cacheTTL)
			}
			time.Sleep(100 * time.Millisecond)
		}
		var list struct {
			Keys []struct {
				ID      string `json:"id"`
				Revoked bool   `json:"revoked"`
			} `json:"keys"`
		}
		out := gw.CLI(t, "keys", "list", "--agent", "demo", "--json")
		if err := json.Unmarshal(out, &list); err != nil {
			t.Fatalf("keys list --json: %v", err)
		}
		found := false
		for _, l := range list.Keys {
			if l.ID == k.ID {
				found = true
				if !l.Revoked {
					t.Fatal("keys list shows the revoked key as active")
				}
			}
		}
		if !found {
			t.Fatalf("keys list --agent demo lacks %s", k.ID)
		}
		if strings.Contains(string(out), k.Key) {
			t.Fatal("keys list printed a key")
		}
	})
}
