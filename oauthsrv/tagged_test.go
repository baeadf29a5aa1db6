package oauthsrv

import (
	"net/http"
	"strings"
	"testing"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/token"
)

// taggingStore is a store that asks for tagged secrets, as a Redis Cluster
// does (store.TagsSecrets); Store is the server's own view of a store.
type taggingStore struct{ Store }

func (taggingStore) TagsSecrets() bool { return true }

// For a store that needs it, codes and refresh tokens carry their family's
// id ("<family>.<random>"), rotation keeps it, and the flow works; for any
// other store they are untagged, as the previous version minted them, so
// old and new replicas on one Redis read each other's.
func TestSecretsTaggedForTheStore(t *testing.T) {
	for _, tagged := range []bool{false, true} {
		e := newEnv(t, func(_ *config.Config, o *Options) {
			if tagged {
				o.Store = taggingStore{o.Store}
			}
		})
		clientID := e.register("tagged")
		_, code, verifier := e.fullLogin(clientID, "alice", "")
		m := e.tokens(clientID, code, verifier)
		access, _ := m["access_token"].(string)
		rt, _ := m["refresh_token"].(string)
		fam := e.verify(access).Family
		for name, secret := range map[string]string{"code": code, "refresh token": rt} {
			if tagged && !strings.HasPrefix(secret, fam+".") {
				t.Errorf("%s %q does not carry its family %q", name, secret, fam)
			}
			if !tagged && (strings.Contains(secret, ".") || token.Address(secret) != token.Hash(secret)) {
				t.Errorf("%s %q is tagged for a store that does not need it", name, secret)
			}
		}
		resp := e.refresh(clientID, rt, nil)
		m = readJSON(t, resp)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("tagged=%v: refresh %d %v", tagged, resp.StatusCode, m)
		}
		if next, _ := m["refresh_token"].(string); tagged && !strings.HasPrefix(next, fam+".") {
			t.Errorf("the rotated token %q lost its family %q", next, fam)
		}
	}
}
