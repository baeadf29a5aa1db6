package admin

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/internal/metrics"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

// MaxKeyLifetime caps expires_in.
const MaxKeyLifetime = 10 * 365 * 24 * time.Hour

// KeyRequest is the body of POST /admin/v1/keys.
//
// Kind "agent" makes a bak_ key bound to Agent (which must exist); User
// defaults to the agent's owner. Kind "user" makes an oag_ key for User
// (required; Agent must be empty). ExpiresIn is a whole number of seconds
// (as OAuth's expires_in); 0 or absent means the key does not expire.
type KeyRequest struct {
	Kind      string   `json:"kind"`
	Agent     string   `json:"agent,omitempty"`
	User      string   `json:"user,omitempty"`
	Name      string   `json:"name,omitempty"`
	Scopes    []string `json:"scopes,omitempty"`
	ExpiresIn int64    `json:"expires_in,omitempty"`
}

// CreatedKey is the 201 answer of POST /admin/v1/keys: the record plus the
// key itself, which is shown only in this answer.
type CreatedKey struct {
	store.APIKey
	Key string `json:"key"`
}

// KeyList is the body of GET /admin/v1/keys (records only: never a key or hash).
type KeyList struct {
	Keys []*store.APIKey `json:"keys"`
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request) {
	var req KeyRequest
	if !decodeBody(w, r, &req) {
		return
	}
	now := s.now().UTC()
	k := &store.APIKey{
		ID:        "key_" + token.Random(12),
		Kind:      store.KeyKind(req.Kind),
		Name:      req.Name,
		Scopes:    req.Scopes,
		CreatedAt: now,
	}
	var prefix string
	switch k.Kind {
	case store.KeyAgent:
		prefix = token.PrefixAgentKey
		if req.Agent == "" {
			writeError(w, http.StatusBadRequest, "agent: required for kind \"agent\"")
			return
		}
		if !config.ValidAgentID(req.Agent) {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("agent: %q is not a valid agent id", req.Agent))
			return
		}
		a, err := s.lookupAgent(r.Context(), req.Agent)
		if errors.Is(err, store.ErrNotFound) {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("agent: no agent %q", req.Agent))
			return
		} else if err != nil {
			s.storeError(w, "get_agent", err, "")
			return
		}
		if len(a.Scopes) > 0 {
			// The agent's own scopes and those its tool policy asks for.
			allowed := a.GrantableScopes(nil)
			for i, sc := range req.Scopes {
				if !slices.Contains(allowed, sc) {
					writeError(w, http.StatusBadRequest, fmt.Sprintf("scopes[%d]: %q is not allowed for agent %q (allowed: %v)", i, sc, a.ID, allowed))
					return
				}
			}
		}
		k.Agent = a.ID
		k.User = req.User
		if k.User == "" {
			k.User = a.Owner
		}
	case store.KeyUser:
		prefix = token.PrefixUserKey
		if req.Agent != "" {
			writeError(w, http.StatusBadRequest, "agent: only for kind \"agent\" (a user key works for every agent its user may use)")
			return
		}
		if req.User == "" {
			writeError(w, http.StatusBadRequest, "user: required for kind \"user\"")
			return
		}
		k.User = req.User
	case "":
		writeError(w, http.StatusBadRequest, "kind: required (\"agent\" or \"user\")")
		return
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("kind: %q: want \"agent\" or \"user\"", req.Kind))
		return
	}
	if err := config.CheckText("user", k.User, config.MaxUserLen, false); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := config.CheckText("name", req.Name, config.MaxNameLen, false); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := config.CheckScopes("scopes", req.Scopes); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if req.ExpiresIn < 0 || req.ExpiresIn > int64(MaxKeyLifetime/time.Second) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("expires_in: want 0 (never) to %d seconds", int64(MaxKeyLifetime/time.Second)))
		return
	}
	if req.ExpiresIn > 0 {
		k.ExpiresAt = now.Add(time.Duration(req.ExpiresIn) * time.Second)
	}
	key, hash := token.NewAPIKey(prefix)
	k.Hash = hash
	if err := s.store.CreateKey(r.Context(), k); err != nil {
		s.storeError(w, "create_key", err, "")
		return
	}
	s.audit(r, "key_created", k.ID, "kind", string(k.Kind), "agent", k.Agent, "user", k.User, "name", k.Name)
	w.Header().Set("Location", "/admin/v1/keys/"+k.ID)
	writeJSON(w, http.StatusCreated, CreatedKey{APIKey: *k, Key: key})
}

// listKeys answers every key record, optionally filtered by ?agent= and ?user=.
func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := s.store.ListKeys(r.Context())
	if err != nil {
		s.storeError(w, "list_keys", err, "")
		return
	}
	agent, user := r.URL.Query().Get("agent"), r.URL.Query().Get("user")
	out := make([]*store.APIKey, 0, len(keys))
	for _, k := range keys {
		if (agent != "" && k.Agent != agent) || (user != "" && k.User != user) {
			continue
		}
		c := *k
		c.Hash = "" // json:"-" already; belt and braces for other encoders
		out = append(out, &c)
	}
	store.SortByCreated(out)
	writeJSON(w, http.StatusOK, KeyList{Keys: out})
}

func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if id == "" || len(id) > maxKeyIDLen {
		writeError(w, http.StatusBadRequest, "invalid key id")
		return
	}
	k, err := s.store.RevokeKey(r.Context(), id)
	if err != nil {
		s.storeError(w, "revoke_key", err, fmt.Sprintf("key %q not found", id))
		return
	}
	metrics.TokensRevoked.WithLabelValues("api_key", "admin").Inc()
	s.audit(r, "key_revoked", k.ID, "kind", string(k.Kind), "agent", k.Agent, "user", k.User, "reason", "admin")
	c := *k
	c.Hash = ""
	writeJSON(w, http.StatusOK, &c)
}
