package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/internal/metrics"
	"github.com/mcpgateway/mcp-gateway/internal/resource"
	"github.com/mcpgateway/mcp-gateway/store"
)

// AgentRequest is the body of POST /admin/v1/agents.
// It is the config file's agent declaration: one set of fields and one
// validation (config.StaticAgent.Validate) for both.
type AgentRequest = config.StaticAgent

// AgentAnswer is an agent as the API answers it: with how proxies route it.
type AgentAnswer struct {
	*store.Agent
	Route *RouteInfo `json:"route,omitempty"`
}

// RouteInfo says whether Envoy (the xDS output) routes /<id>/mcp to the
// agent's upstream, and if not, why.
type RouteInfo struct {
	Routed bool   `json:"routed"`
	Path   string `json:"path,omitempty"`
	Note   string `json:"note,omitempty"`
}

func (s *Server) answer(a *store.Agent) AgentAnswer {
	out := AgentAnswer{Agent: a}
	if s.routeNote != nil {
		routed, note := s.routeNote(*a)
		out.Route = &RouteInfo{Routed: routed, Note: note}
		if routed {
			out.Route.Path = resource.Path(a.ID)
		}
	}
	return out
}

func (s *Server) xdsStatus(w http.ResponseWriter, _ *http.Request) {
	if s.xds == nil {
		writeError(w, http.StatusNotFound, "the xDS server is off (xds.listen is empty)")
		return
	}
	writeJSON(w, http.StatusOK, s.xds())
}

// AgentList is the body of GET /admin/v1/agents.
type AgentList struct {
	Agents []*store.Agent `json:"agents"`
}

func (s *Server) createAgent(w http.ResponseWriter, r *http.Request) {
	var req AgentRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if err := req.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if req.Upstream != "" && s.checkUp != nil {
		if err := s.checkUp(req.Upstream); err != nil {
			writeError(w, http.StatusBadRequest, "upstream: "+err.Error())
			return
		}
	}
	if _, ok := s.static[req.ID]; ok {
		writeError(w, http.StatusConflict, fmt.Sprintf("agent %q exists (static, from the config file)", req.ID))
		return
	}
	a := &store.Agent{AgentSpec: req.AgentSpec, Created: s.now().UTC()}
	// One atomic create: of two admins creating one id, one gets 409.
	if err := s.store.CreateAgent(r.Context(), a); err != nil {
		if errors.Is(err, store.ErrConflict) {
			writeError(w, http.StatusConflict, fmt.Sprintf("agent %q exists", req.ID))
			return
		}
		s.storeError(w, "create_agent", err, "")
		return
	}
	s.audit(r, "agent_created", a.ID, "owner", a.Owner, "upstream", a.Upstream)
	w.Header().Set("Location", "/admin/v1/agents/"+url.PathEscape(a.ID))
	writeJSON(w, http.StatusCreated, s.answer(a))
}

func (s *Server) listAgents(w http.ResponseWriter, r *http.Request) {
	dyn, err := s.store.ListAgents(r.Context())
	if err != nil {
		s.storeError(w, "list_agents", err, "")
		return
	}
	out := make([]*store.Agent, 0, len(dyn)+len(s.static))
	for _, a := range s.static {
		out = append(out, &a)
	}
	for _, a := range dyn {
		if _, shadowed := s.static[a.ID]; !shadowed { // the config file wins
			out = append(out, a)
		}
	}
	store.SortByID(out)
	writeJSON(w, http.StatusOK, AgentList{Agents: out})
}

// agentID reads and checks the {id} path value; on failure it answered 400.
func agentID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if !config.ValidAgentID(id) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid agent id %q: want 1–128 of [A-Za-z0-9._-]", id))
		return "", false
	}
	return id, true
}

// lookupAgent finds a static or stored agent.
func (s *Server) lookupAgent(ctx context.Context, id string) (*store.Agent, error) {
	if a, ok := s.static[id]; ok {
		return &a, nil
	}
	return s.store.GetAgent(ctx, id)
}

func (s *Server) getAgent(w http.ResponseWriter, r *http.Request) {
	id, ok := agentID(w, r)
	if !ok {
		return
	}
	a, err := s.lookupAgent(r.Context(), id)
	if err != nil {
		s.storeError(w, "get_agent", err, fmt.Sprintf("agent %q not found", id))
		return
	}
	writeJSON(w, http.StatusOK, s.answer(a))
}

// deleteAgent also revokes the agent's bak_ keys: a later agent created with
// the same id (perhaps for another owner) must not inherit them.
func (s *Server) deleteAgent(w http.ResponseWriter, r *http.Request) {
	id, ok := agentID(w, r)
	if !ok {
		return
	}
	if _, ok := s.static[id]; ok {
		writeError(w, http.StatusConflict, fmt.Sprintf("agent %q is static (from the config file): remove it there", id))
		return
	}
	if err := s.store.DeleteAgent(r.Context(), id); err != nil {
		s.storeError(w, "delete_agent", err, fmt.Sprintf("agent %q not found", id))
		return
	}
	s.audit(r, "agent_deleted", id)
	keys, err := s.store.ListKeys(r.Context())
	if err != nil {
		s.storeError(w, "list_keys", err, "")
		return
	}
	revoked := 0
	for _, k := range keys {
		if k.Kind != store.KeyAgent || k.Agent != id || k.Revoked {
			continue
		}
		if _, err := s.store.RevokeKey(r.Context(), k.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.storeError(w, "revoke_key", err, "")
			return
		}
		revoked++
		metrics.TokensRevoked.WithLabelValues("api_key", "agent_deleted").Inc()
		s.audit(r, "key_revoked", k.ID, "kind", string(k.Kind), "agent", k.Agent, "reason", "agent_deleted")
	}
	writeJSON(w, http.StatusOK, map[string]any{"deleted": id, "keys_revoked": revoked})
}
