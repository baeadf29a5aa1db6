package admin

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpgateway/mcp-gateway/store"
)

// The admin API refuses an upstream the xDS guard refuses (an agent creator
// must not point Envoy at loopback or the metadata service), and its agent
// answers say whether Envoy routes the agent.
func TestAgentUpstreamGuardAndRouteNote(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.CheckUpstream = func(raw string) error {
			if strings.Contains(raw, "169.254.169.254") {
				return errors.New("upstream host is a link-local address (cloud metadata)")
			}
			return nil
		}
		o.RouteNote = func(a store.Agent) (bool, string) {
			if a.Upstream == "" {
				return false, "the agent has no upstream URL"
			}
			return true, ""
		}
		o.XDS = func() any { return map[string]string{"state": "on"} }
	})
	status, _, body := e.call(t, http.MethodPost, "/admin/v1/agents", testToken, `{"id":"meta","owner":"alice","upstream":"http://169.254.169.254/latest"}`)
	if status != http.StatusBadRequest || !strings.Contains(string(body), "link-local") {
		t.Fatalf("metadata upstream: %d %s", status, body)
	}
	if _, err := e.mem.GetAgent(t.Context(), "meta"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused agent stored: %v", err)
	}

	var ans struct {
		ID    string     `json:"id"`
		Route *RouteInfo `json:"route"`
	}
	status, _, body = e.call(t, http.MethodPost, "/admin/v1/agents", testToken, `{"id":"bare","owner":"alice"}`)
	if status != http.StatusCreated || json.Unmarshal(body, &ans) != nil || ans.ID != "bare" || ans.Route == nil || ans.Route.Routed || ans.Route.Note == "" {
		t.Fatalf("agent without upstream: %d %s", status, body)
	}
	status, _, body = e.call(t, http.MethodPost, "/admin/v1/agents", testToken, `{"id":"ok","owner":"alice","upstream":"http://agent:3000/mcp"}`)
	if status != http.StatusCreated || json.Unmarshal(body, &ans) != nil || !ans.Route.Routed || ans.Route.Path != "/ok/mcp" {
		t.Fatalf("routed agent: %d %s", status, body)
	}
	status, _, body = e.call(t, http.MethodGet, "/admin/v1/agents/bare", testToken, "")
	if status != http.StatusOK || json.Unmarshal(body, &ans) != nil || ans.Route == nil || ans.Route.Routed {
		t.Fatalf("get: %d %s", status, body)
	}
	status, _, body = e.call(t, http.MethodGet, "/admin/v1/xds", testToken, "")
	if status != http.StatusOK || !strings.Contains(string(body), `"on"`) {
		t.Fatalf("/admin/v1/xds: %d %s", status, body)
	}
	if status, _, _ := e.call(t, http.MethodGet, "/admin/v1/xds", "", ""); status != http.StatusUnauthorized {
		t.Fatalf("/admin/v1/xds without the token: %d", status)
	}
}

func TestXDSViewOffWithoutServer(t *testing.T) {
	e := newEnv(t, nil)
	if status, _, body := e.call(t, http.MethodGet, "/admin/v1/xds", testToken, ""); status != http.StatusNotFound || !strings.Contains(string(body), "xds.listen") {
		t.Fatalf("%d %s", status, body)
	}
}
