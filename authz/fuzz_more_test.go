package authz

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

// FuzzAgentFromPath checks the path matcher against its specification from
// both sides: whatever it accepts is literally /<valid id>/mcp[/][?query]
// with nothing a router could read differently, and every such target built
// from a valid id is accepted with that id.
func FuzzAgentFromPath(f *testing.F) {
	for _, s := range []string{
		"/alpha/mcp", "/alpha/mcp/", "/alpha/mcp?x=1", "/alpha/mcp/?", "/a/mcp", "/./mcp", "/../mcp", "/.../mcp",
		"/beta/../alpha/mcp", "/alpha%2Fmcp", "/%61lpha/mcp", "//alpha/mcp", "/alpha//mcp", "/alpha/mcp#x",
		"/alpha/mcp;x", "/alpha/MCP", "/alpha/mcp/extra", "/alpha\\mcp", "/al pha/mcp", "/alph\x00a/mcp",
		"/alpha/mcp?#", "/alpha/mcp?a=/../x", "alpha/mcp", "", "/", "/mcp", "//mcp", "/\xc3\xa9/mcp",
		"/" + strings.Repeat("a", 128) + "/mcp", "/" + strings.Repeat("a", 129) + "/mcp",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		id, ok := AgentFromPath(target)
		if ok {
			if !config.ValidAgentID(id) || id == "." || id == ".." {
				t.Fatalf("%q → invalid id %q", target, id)
			}
			path, _, _ := strings.Cut(target, "?")
			if path != "/"+id+"/mcp" && path != "/"+id+"/mcp/" {
				t.Fatalf("%q → %q, but the path is %q", target, id, path)
			}
			for i := 0; i < len(target); i++ {
				if c := target[i]; c <= ' ' || c >= 0x7f || c == '#' {
					t.Fatalf("%q accepted with byte %#x", target, c)
				}
			}
			if strings.ContainsAny(path, "%\\") {
				t.Fatalf("%q accepted with an escape in the path", target)
			}
			// A router that cleans or decodes the path sees the same agent.
			if u, err := url.Parse(path); err != nil || strings.Trim(u.Path, "/") != id+"/mcp" {
				t.Fatalf("%q: a URL parser reads path %q", target, u.Path)
			}
		}
		// Completeness: the canonical target of any valid id is accepted.
		if config.ValidAgentID(target) {
			for _, tgt := range []string{"/" + target + "/mcp", "/" + target + "/mcp/?q=1"} {
				if got, ok := AgentFromPath(tgt); (!ok || got != target) && target != "." && target != ".." {
					t.Fatalf("AgentFromPath(%q) = %q, %v; want %q", tgt, got, ok, target)
				}
			}
		}
	})
}

// FuzzHTTPCheckAdapter drives WithHTTPCheck with arbitrary raw request
// targets (the Envoy http_service form /authz/check/<path>, the nginx form
// with X-Original-URI, and anything else): check paths are always answered
// by the adapter with 200/401/403 only, everything else goes to next, and an
// allow carries the identity of a real credential for a well-formed MCP path.
func FuzzHTTPCheckAdapter(f *testing.F) {
	e := newEnv(f, func(o *Options) { o.Logger = slog.New(slog.DiscardHandler) })
	tok := e.mint("", "alice")
	key := e.addKey("fz", token.PrefixAgentKey, store.APIKey{Kind: store.KeyAgent, Agent: "alpha", User: "alice"})
	for _, s := range [][3]string{
		{"/authz/check/alpha/mcp", "", "TOKEN"}, {"/authz/check/alpha/mcp?x=1", "", "KEY"},
		{"/authz/check", "/alpha/mcp", "TOKEN"}, {"/authz/check?x", "/alpha/../beta/mcp", "TOKEN"},
		{"/authz/check/beta/../alpha/mcp", "", "TOKEN"}, {"/authz/check//alpha/mcp", "", "KEY"},
		{"/authz/check/alpha%2Fmcp", "", "TOKEN"}, {"/authz/checkx/alpha/mcp", "", "TOKEN"},
		{"/authz/check/", "/alpha/mcp", "TOKEN"}, {"/authz/check/alpha/mcp", "", "Basic x"},
		{"/oauth/token", "", ""}, {"http://h/authz/check/alpha/mcp", "", "TOKEN"}, {"*", "", ""},
	} {
		f.Add(s[0], s[1], s[2])
	}
	var nextCalls int
	h := WithHTTPCheck(e.a, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		nextCalls++
		w.WriteHeader(http.StatusTeapot)
	}))
	f.Fuzz(func(t *testing.T, raw, original, authorization string) {
		authorization = strings.ReplaceAll(strings.ReplaceAll(authorization, "TOKEN", "Bearer "+tok), "KEY", "Bearer "+key)
		u, err := url.ParseRequestURI(raw)
		if err != nil {
			u = &url.URL{Path: "/"}
		}
		req := &http.Request{Method: http.MethodGet, RequestURI: raw, URL: u, Header: http.Header{}}
		if original != "" {
			req.Header.Set("X-Original-URI", original)
		}
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		before := nextCalls
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req.WithContext(t.Context()))
		isCheck := raw == CheckPath || strings.HasPrefix(raw, CheckPath+"/") || strings.HasPrefix(raw, CheckPath+"?")
		if !isCheck {
			if nextCalls != before+1 {
				t.Fatalf("%q: not a check path but next was not called", raw)
			}
			return
		}
		if nextCalls != before {
			t.Fatalf("%q: a check path reached next", raw)
		}
		switch rec.Code {
		case http.StatusOK:
			target := original
			if strings.HasPrefix(raw, CheckPath+"/") {
				target = raw[len(CheckPath):]
			}
			agent, ok := AgentFromPath(target)
			if !ok {
				t.Fatalf("allowed a bad target %q (raw %q)", target, raw)
			}
			if rec.Header().Get(HeaderAgent) != agent || rec.Header().Get(HeaderUser) != "alice" {
				t.Fatalf("allowed %q with identity %v", target, rec.Header())
			}
			if !strings.Contains(rec.Header().Get("X-Envoy-Auth-Headers-To-Remove"), "authorization") {
				t.Fatalf("allow does not strip authorization: %v", rec.Header())
			}
		case http.StatusUnauthorized, http.StatusForbidden:
			if rec.Header().Get(HeaderUser) != "" || rec.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("denial %d with headers %v", rec.Code, rec.Header())
			}
		default:
			t.Fatalf("%q: status %d (nginx turns it into a 500)", raw, rec.Code)
		}
	})
}
