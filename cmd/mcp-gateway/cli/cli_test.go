package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mcpgateway/mcp-gateway/admin"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

// run calls a CLI entry point against e's server with the right token.
func run(t *testing.T, e *testEnv, fn func(context.Context, []string, *bytes.Buffer) error, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	full := append([]string{"--admin-url", e.srv.URL, "--admin-token", testToken}, args...)
	err := fn(context.Background(), full, &out)
	return out.String(), err
}

func agentsCLI(ctx context.Context, a []string, w *bytes.Buffer) error  { return RunAgents(ctx, a, w) }
func keysCLI(ctx context.Context, a []string, w *bytes.Buffer) error    { return RunKeys(ctx, a, w) }
func clientsCLI(ctx context.Context, a []string, w *bytes.Buffer) error { return RunClients(ctx, a, w) }

var keyRe = regexp.MustCompile(`\b(bak|oag)_[A-Za-z0-9_-]{43}\b`)

func TestCLIAgentsAndKeys(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()

	out, err := run(t, e, agentsCLI, "create", "--id", "weather", "--owner", "alice", "--users", "bob, carol", "--upstream", "http://127.0.0.1:3001/mcp", "--scopes", "mcp")
	if err != nil {
		t.Fatalf("agents create: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Created agent weather.") || !regexp.MustCompile(`users:\s+bob, carol`).MatchString(out) {
		t.Fatalf("agents create output:\n%s", out)
	}
	if a, err := e.mem.GetAgent(ctx, "weather"); err != nil || a.Owner != "alice" || len(a.Users) != 2 {
		t.Fatalf("stored %+v %v", a, err)
	}

	out, err = run(t, e, agentsCLI, "list")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") ||
		!regexp.MustCompile(`^static-demo\s+Static demo\s+demo\s+-\s+http://127.0.0.1:3000/mcp\s+mcp,tools\s+config$`).MatchString(lines[1]) ||
		!regexp.MustCompile(`^weather\s+-\s+alice\s+bob,carol\s+http://127.0.0.1:3001/mcp\s+mcp\s+api$`).MatchString(lines[2]) {
		t.Fatalf("agents list:\n%s", out)
	}

	// Flags after the positional id; --json prints the API's JSON.
	out, err = run(t, e, agentsCLI, "get", "weather", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if a := decode[store.Agent](t, []byte(out)); a.ID != "weather" || a.Upstream != "http://127.0.0.1:3001/mcp" {
		t.Fatalf("agents get --json: %s", out)
	}

	out, err = run(t, e, keysCLI, "create", "--kind", "agent", "--agent", "weather", "--name", "ci", "--expires-in", "720h", "--scopes", "mcp")
	if err != nil {
		t.Fatalf("keys create: %v\n%s", err, out)
	}
	key := keyRe.FindString(out)
	if !strings.HasPrefix(key, token.PrefixAgentKey) || !strings.Contains(out, "not shown again") ||
		!strings.Contains(out, "agent key for agent weather (user alice)") {
		t.Fatalf("keys create output:\n%s", out)
	}
	rec, err := e.mem.GetKeyByHash(ctx, token.Hash(key))
	if err != nil || rec.Name != "ci" || !rec.ExpiresAt.Equal(fixedNow.Add(720*time.Hour)) {
		t.Fatalf("printed key not stored as created: %+v %v", rec, err)
	}

	out, err = run(t, e, keysCLI, "create", "--user", "bob", "--expires-in", "90d")
	if err != nil {
		t.Fatal(err)
	}
	userKey := keyRe.FindString(out)
	if !strings.HasPrefix(userKey, token.PrefixUserKey) || !strings.Contains(out, "user key for user bob") {
		t.Fatalf("keys create --user output:\n%s", out)
	}
	if r, _ := e.mem.GetKeyByHash(ctx, token.Hash(userKey)); r == nil || !r.ExpiresAt.Equal(fixedNow.Add(90*24*time.Hour)) {
		t.Fatalf("user key record %+v", r)
	}

	out, err = run(t, e, keysCLI, "list")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, key) || strings.Contains(out, userKey) || !strings.Contains(out, rec.ID) ||
		!regexp.MustCompile(rec.ID+`\s+agent\s+weather\s+alice\s+ci\s+mcp\s+\S+\s+\S+\s+-\s+active`).MatchString(out) {
		t.Fatalf("keys list:\n%s", out)
	}
	out, err = run(t, e, keysCLI, "list", "--user", "bob", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if l := decode[admin.KeyList](t, []byte(out)); len(l.Keys) != 1 || l.Keys[0].User != "bob" {
		t.Fatalf("keys list --user bob --json: %s", out)
	}

	out, err = run(t, e, keysCLI, "revoke", rec.ID)
	if err != nil || !strings.Contains(out, "Revoked key "+rec.ID) {
		t.Fatalf("keys revoke: %v\n%s", err, out)
	}
	if r, _ := e.mem.GetKeyByHash(ctx, token.Hash(key)); r == nil || !r.Revoked {
		t.Fatal("key not revoked in the store")
	}
	out, _ = run(t, e, keysCLI, "list", "--agent", "weather")
	if !regexp.MustCompile(rec.ID + `.*\brevoked$`).MatchString(strings.TrimSpace(out)) {
		t.Fatalf("revoked key not shown as revoked:\n%s", out)
	}

	// API errors come back with the API's message and a non-nil error.
	_, err = run(t, e, keysCLI, "revoke", "key_missing")
	var ae *admin.APIError
	if !errors.As(err, &ae) || ae.Status != 404 || !strings.Contains(err.Error(), `key "key_missing" not found`) {
		t.Fatalf("revoke unknown: %v", err)
	}
	_, err = run(t, e, agentsCLI, "delete", "static-demo")
	if !errors.As(err, &ae) || ae.Status != 409 || !strings.Contains(err.Error(), "static") {
		t.Fatalf("delete static: %v", err)
	}
	_, err = run(t, e, keysCLI, "create", "--kind", "agent", "--agent", "ghost")
	if !errors.As(err, &ae) || ae.Status != 400 || !strings.Contains(err.Error(), `no agent "ghost"`) {
		t.Fatalf("key for unknown agent: %v", err)
	}

	out, err = run(t, e, agentsCLI, "delete", "--id", "weather")
	if err != nil || !strings.Contains(out, "Deleted agent weather (0 agent key(s) revoked).") {
		t.Fatalf("agents delete: %v\n%s", err, out)
	}
}

func TestCLIClients(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	for i, c := range []*store.Client{
		{ID: "c-1", Name: "Inspector", RedirectURIs: []string{"http://localhost:6274/cb"}, RegisteredIP: "127.0.0.1"},
		{ID: "c-2", Name: "Evil\x1b[2Jname", RedirectURIs: []string{"http://127.0.0.1/cb"}, ExpiresAt: time.Now().Add(time.Hour).UTC().Truncate(time.Second)},
	} {
		c.CreatedAt = fixedNow.Add(time.Duration(i) * time.Minute)
		c.GrantTypes, c.ResponseTypes = []string{"authorization_code"}, []string{"code"}
		if err := e.mem.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	out, err := run(t, e, clientsCLI, "list")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^c-1\s+Inspector\s+http://localhost:6274/cb\s+\S+\s+127\.0\.0\.1\s+never$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^c-2\s.*\s-\s+\d{4}-\d\d-\d\dT\S+Z$`).MatchString(out) {
		t.Fatalf("clients list:\n%s", out)
	}
	if strings.Contains(out, "\x1b") || !strings.Contains(out, "Evil?[2Jname") {
		t.Fatalf("control characters not neutralised:\n%q", out)
	}
	out, err = run(t, e, clientsCLI, "delete", "c-1")
	if err != nil || !strings.Contains(out, "Deleted client c-1.") {
		t.Fatalf("clients delete: %v %s", err, out)
	}
	if _, err := e.mem.GetClient(ctx, "c-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("client still there: %v", err)
	}
	out, err = run(t, e, clientsCLI, "list", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if l := decode[admin.ClientList](t, []byte(out)); len(l.Clients) != 1 || l.Clients[0].ID != "c-2" {
		t.Fatalf("clients list --json: %s", out)
	}
	if _, err := run(t, e, clientsCLI, "delete", "c-1"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("deleting twice: %v", err)
	}
}

func TestCLIEnvAndErrors(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()

	t.Setenv(EnvAdminURL, e.srv.URL)
	t.Setenv(EnvAdminToken, testToken)
	var out bytes.Buffer
	if err := RunAgents(ctx, []string{"list", "--json"}, &out); err != nil {
		t.Fatalf("with env only: %v", err)
	}
	if !json.Valid(out.Bytes()) {
		t.Fatalf("not JSON: %s", out.String())
	}

	// A flag beats the environment.
	out.Reset()
	err := RunAgents(ctx, []string{"list", "--admin-token", "wrong"}, &out)
	var ae *admin.APIError
	if !errors.As(err, &ae) || ae.Status != 401 || !strings.Contains(err.Error(), "invalid admin token") {
		t.Fatalf("wrong token: %v", err)
	}

	t.Setenv(EnvAdminToken, "")
	if err := RunKeys(ctx, []string{"list"}, &out); err == nil || !strings.Contains(err.Error(), EnvAdminToken) {
		t.Fatalf("no token: %v", err)
	}
	t.Setenv(EnvAdminToken, testToken)

	for _, c := range []struct {
		fn   func(context.Context, []string, *bytes.Buffer) error
		args []string
		want string
	}{
		{agentsCLI, nil, "missing command"},
		{agentsCLI, []string{"frobnicate"}, `unknown command "frobnicate"`},
		{agentsCLI, []string{"get"}, "an id is required"},
		{agentsCLI, []string{"get", "a", "b"}, "unexpected arguments"},
		{agentsCLI, []string{"create", "--bogus"}, "flag provided but not defined: -bogus"},
		{keysCLI, []string{"create"}, "--kind agent --agent ID"},
		{keysCLI, []string{"create", "--user", "bob", "--expires-in", "soon"}, "--expires-in"},
		{keysCLI, []string{"list", "extra"}, "unexpected arguments"},
		{clientsCLI, []string{"delete"}, "an id is required"},
	} {
		out.Reset()
		err := c.fn(ctx, c.args, &out)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%v: error %v, want it to mention %q", c.args, err, c.want)
		}
	}

	// -h prints usage and succeeds; the token never appears in help.
	for _, args := range [][]string{{"-h"}, {"create", "-h"}} {
		out.Reset()
		if err := RunKeys(ctx, args, &out); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if !strings.Contains(out.String(), "Usage: mcp-gateway keys") || strings.Contains(out.String(), testToken) {
			t.Fatalf("%v usage:\n%s", args, out.String())
		}
	}

	// Unreachable admin URL: an error, not a hang.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	if err := RunClients(ctx, []string{"list", "--admin-url", dead.URL}, &out); err == nil {
		t.Fatal("no error for an unreachable admin API")
	}
	if err := RunClients(ctx, []string{"list", "--admin-url", "ftp://x"}, &out); err == nil || !strings.Contains(err.Error(), "http(s) URL") {
		t.Fatalf("bad admin URL: %v", err)
	}
}

func TestHealthcheck(t *testing.T) {
	e := newEnv(t, nil)
	var out bytes.Buffer
	if err := RunHealthcheck(context.Background(), []string{"--url", e.srv.URL + "/healthz"}, &out); err != nil || strings.TrimSpace(out.String()) != "ok" {
		t.Fatalf("healthy: %v %q", err, out.String())
	}
	sick := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer sick.Close()
	if err := RunHealthcheck(context.Background(), []string{"--url", sick.URL}, &out); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("503 should fail: %v", err)
	}
	sick.Close()
	if err := RunHealthcheck(context.Background(), []string{"--url", sick.URL}, &out); err == nil {
		t.Fatal("unreachable should fail")
	}
	if err := RunHealthcheck(context.Background(), []string{"--timeout", "0s"}, &out); err == nil {
		t.Fatal("zero timeout accepted")
	}
}

func TestParseLifetime(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"", 0, true}, {"0", 0, true}, {"720h", 720 * 3600, true}, {"90d", 90 * 86400, true}, {"1s", 1, true},
		{"1.5s", 0, false}, {"500ms", 0, false}, {"-1h", 0, false}, {"0d", 0, false}, {"xd", 0, false},
		{"100000d", 0, false}, {"soon", 0, false},
	} {
		got, err := parseLifetime(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("parseLifetime(%q) = %d, %v; want %d ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}
