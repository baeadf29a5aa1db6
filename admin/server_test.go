package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mcpgateway/mcp-gateway/internal/metrics"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/store/memstore"
	"github.com/mcpgateway/mcp-gateway/token"
)

func TestAdminAuth(t *testing.T) {
	e := newEnv(t, nil)
	cases := []struct {
		name, header string
		want         int
		invalidToken bool // challenge carries error="invalid_token"
	}{
		{"missing", "", 401, false},
		{"basic scheme", "Basic " + testToken, 401, false},
		{"bearer without token", "Bearer ", 401, false},
		{"wrong token same length", "Bearer " + strings.Repeat("x", len(testToken)), 401, true},
		{"prefix of the token", "Bearer " + testToken[:len(testToken)-1], 401, true},
		{"token plus a byte", "Bearer " + testToken + "x", 401, true},
		{"right token", "Bearer " + testToken, 200, false},
		{"scheme is case-insensitive", "bearer " + testToken, 200, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", e.srv.URL+"/admin/v1/agents", nil)
			if c.header != "" {
				req.Header.Set("Authorization", c.header)
			}
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.want)
			}
			ch := resp.Header.Get("WWW-Authenticate")
			if c.want == 401 {
				if !strings.HasPrefix(ch, "Bearer ") {
					t.Fatalf("WWW-Authenticate = %q, want a Bearer challenge", ch)
				}
				if got := strings.Contains(ch, `error="invalid_token"`); got != c.invalidToken {
					t.Fatalf("WWW-Authenticate = %q, invalid_token=%v, want %v", ch, got, c.invalidToken)
				}
			} else if ch != "" {
				t.Fatalf("unexpected challenge %q on success", ch)
			}
		})
	}
	// Routing happens after authentication: an anonymous caller gets 401 for
	// unknown paths and wrong methods too.
	for _, p := range []struct{ method, path string }{{"GET", "/admin/v1/nope"}, {"PUT", "/admin/v1/agents"}} {
		if status, _, _ := e.call(t, p.method, p.path, "", ""); status != 401 {
			t.Fatalf("anonymous %s %s: %d, want 401", p.method, p.path, status)
		}
	}
	if strings.Contains(e.logs.String(), strings.Repeat("x", len(testToken))) {
		t.Fatal("a presented token reached the log")
	}
}

func TestAdminDisabledWithoutToken(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Token = "" })
	for _, tok := range []string{"", "anything"} {
		status, _, b := e.call(t, "GET", "/admin/v1/agents", tok, "")
		if status != 503 {
			t.Fatalf("status %d, want 503", status)
		}
		errorMessage(t, b, "admin API disabled: no admin token")
	}
	if status, _, _ := e.call(t, "GET", "/healthz", "", ""); status != 200 {
		t.Fatalf("healthz %d with the admin API disabled", status)
	}
}

// TestAdminAuthThrottled: failed authentications from one IP are capped
// per minute; past the cap every request gets 429 + Retry-After without its
// token being looked at (the right one too, so a throttled guess learns
// nothing), good tokens never use up the budget, and other addresses keep
// their own.
func TestAdminAuthThrottled(t *testing.T) {
	mem := memstore.New()
	t.Cleanup(func() { _ = mem.Close() })
	h := New(Options{Token: testToken, Store: mem, AuthFailLimit: 3, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))}).Handler()
	call := func(ip, tok string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/admin/v1/agents", nil)
		req.RemoteAddr = ip + ":4711"
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for i := range 10 {
		if r := call("192.0.2.1", testToken); r.Code != 200 {
			t.Fatalf("good request %d: %d", i, r.Code)
		}
	}
	for i, tok := range []string{"", "wrong", strings.Repeat("x", len(testToken))} {
		if r := call("192.0.2.1", tok); r.Code != 401 {
			t.Fatalf("failure %d: %d, want 401", i, r.Code)
		}
	}
	before := adminThrottled(t)
	for _, tok := range []string{"wrong-again", testToken} {
		r := call("192.0.2.1", tok)
		if r.Code != 429 || r.Header().Get("Retry-After") == "" {
			t.Fatalf("token %.5s… after the budget: %d Retry-After %q, want 429", tok, r.Code, r.Header().Get("Retry-After"))
		}
		errorMessage(t, r.Body.Bytes(), "too many failed admin authentications from this address; try again later")
	}
	if got := adminThrottled(t) - before; got != 2 {
		t.Errorf("mcp_gateway_rate_limited_total{endpoint=admin_auth} rose by %v, want 2", got)
	}
	if r := call("192.0.2.2", testToken); r.Code != 200 {
		t.Fatalf("another address: %d, want 200", r.Code)
	}
}

// adminThrottled reads mcp_gateway_rate_limited_total{endpoint="admin_auth"}.
func adminThrottled(t *testing.T) float64 {
	t.Helper()
	var m dto.Metric
	if err := metrics.RateLimited.WithLabelValues("admin_auth").Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestAgentsCRUD(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()

	b := e.api(t, "POST", "/admin/v1/agents", `{"id":"weather","name":"Weather","owner":"alice","users":["bob"],"upstream":"https://weather.internal/mcp","scopes":["mcp"]}`, 201)
	a := decode[store.Agent](t, b)
	if a.ID != "weather" || a.Owner != "alice" || !slices.Equal(a.Users, []string{"bob"}) || a.Upstream != "https://weather.internal/mcp" || a.Static || !a.Created.Equal(fixedNow) {
		t.Fatalf("created agent %+v", a)
	}
	stored, err := e.mem.GetAgent(ctx, "weather")
	if err != nil || stored.Owner != "alice" || !slices.Equal(stored.Scopes, []string{"mcp"}) {
		t.Fatalf("stored agent %+v, %v", stored, err)
	}

	list := decode[AgentList](t, e.api(t, "GET", "/admin/v1/agents", "", 200))
	if len(list.Agents) != 2 || list.Agents[0].ID != "static-demo" || !list.Agents[0].Static || list.Agents[1].ID != "weather" || list.Agents[1].Static {
		t.Fatalf("list %+v", list.Agents)
	}

	got := decode[store.Agent](t, e.api(t, "GET", "/admin/v1/agents/weather", "", 200))
	if got.ID != "weather" || got.Name != "Weather" {
		t.Fatalf("get %+v", got)
	}
	st := decode[store.Agent](t, e.api(t, "GET", "/admin/v1/agents/static-demo", "", 200))
	if !st.Static || st.Owner != "demo" {
		t.Fatalf("static get %+v", st)
	}

	errorMessage(t, e.api(t, "POST", "/admin/v1/agents", `{"id":"weather","owner":"carol"}`, 409), "exists")
	errorMessage(t, e.api(t, "POST", "/admin/v1/agents", `{"id":"static-demo","owner":"carol"}`, 409), "static")
	if a, _ := e.mem.GetAgent(ctx, "weather"); a.Owner != "alice" {
		t.Fatal("a duplicate create replaced the agent")
	}
	errorMessage(t, e.api(t, "DELETE", "/admin/v1/agents/static-demo", "", 409), "static")
	errorMessage(t, e.api(t, "GET", "/admin/v1/agents/nobody", "", 404), `"nobody" not found`)
	errorMessage(t, e.api(t, "DELETE", "/admin/v1/agents/nobody", "", 404), "not found")
	errorMessage(t, e.api(t, "GET", "/admin/v1/agents/bad%20id", "", 400), "invalid agent id")
	errorMessage(t, e.api(t, "DELETE", "/admin/v1/agents/a%2Fb", "", 400), "invalid agent id")

	e.api(t, "DELETE", "/admin/v1/agents/weather", "", 200)
	if _, err := e.mem.GetAgent(ctx, "weather"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("agent still stored after delete: %v", err)
	}
	e.api(t, "GET", "/admin/v1/agents/weather", "", 404)

	events := map[string]bool{}
	for _, l := range e.logs.Audit(t) {
		if l["who"] != "admin" {
			t.Fatalf("audit line without who=admin: %v", l)
		}
		events[fmt.Sprint(l["event"], " ", l["id"])] = true
	}
	if !events["agent_created weather"] || !events["agent_deleted weather"] {
		t.Fatalf("audit events %v", events)
	}
}

func TestAgentCreateBadInput(t *testing.T) {
	e := newEnv(t, nil)
	cases := []struct {
		name, body string
		status     int
		mention    string
	}{
		{"empty body", ``, 400, "empty"},
		{"not JSON", `{"id":`, 400, "invalid JSON"},
		{"syntax error", `{"id" "x"}`, 400, "invalid JSON"},
		{"array", `[]`, 400, "want a JSON object"},
		{"unknown field", `{"id":"a","owner":"b","colour":"red"}`, 400, `unknown field "colour"`},
		{"trailing data", `{"id":"a","owner":"b"} {"x":1}`, 400, "trailing data"},
		{"trailing brace", `{"id":"a","owner":"b"}}`, 400, "trailing data"},
		{"trailing bracket", `{"id":"a","owner":"b"}]`, 400, "trailing data"},
		{"null", `null`, 400, "want a JSON object"},
		{"wrong type", `{"id":"a","owner":"b","users":"bob"}`, 400, "users: want an array of strings"},
		{"id missing", `{"owner":"b"}`, 400, "id: required"},
		{"id with slash", `{"id":"a/b","owner":"b"}`, 400, "id:"},
		{"id dot-dot", `{"id":"..","owner":"b"}`, 400, "id:"},
		{"id a gateway route", `{"id":"login","owner":"b"}`, 400, "id:"},
		{"id too long", `{"id":"` + strings.Repeat("a", 129) + `","owner":"b"}`, 400, "id:"},
		{"owner missing", `{"id":"a"}`, 400, "owner: required"},
		{"owner control char", `{"id":"a","owner":"b\u0007"}`, 400, "owner: contains a control character"},
		{"relative upstream", `{"id":"a","owner":"b","upstream":"/mcp"}`, 400, "upstream:"},
		{"ftp upstream", `{"id":"a","owner":"b","upstream":"ftp://x/mcp"}`, 400, "upstream:"},
		{"empty user", `{"id":"a","owner":"b","users":[""]}`, 400, "users[0]: required"},
		{"scope with space", `{"id":"a","owner":"b","scopes":["a b"]}`, 400, "scopes[0]:"},
		{"duplicate scope", `{"id":"a","owner":"b","scopes":["mcp","mcp"]}`, 400, "scopes[1]:"},
		{"oversize", `{"id":"a","owner":"b","name":"` + strings.Repeat("n", MaxBodyBytes) + `"}`, 413, "larger than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errorMessage(t, e.api(t, "POST", "/admin/v1/agents", c.body, c.status), c.mention)
		})
	}
	if l, _ := e.mem.ListAgents(context.Background()); len(l) != 0 {
		t.Fatalf("bad input stored agents: %v", l)
	}
}

func TestKeysCreateListRevoke(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	e.api(t, "POST", "/admin/v1/agents", `{"id":"weather","owner":"alice","scopes":["mcp","read"]}`, 201)

	// Agent key: user defaults to the agent's owner; expires_in is seconds.
	ck := decode[CreatedKey](t, e.api(t, "POST", "/admin/v1/keys", `{"kind":"agent","agent":"weather","name":"ci","scopes":["read"],"expires_in":3600}`, 201))
	if !strings.HasPrefix(ck.Key, token.PrefixAgentKey) || len(ck.Key) < len(token.PrefixAgentKey)+43 {
		t.Fatalf("agent key %q", ck.Key)
	}
	if ck.ID == "" || ck.Kind != store.KeyAgent || ck.Agent != "weather" || ck.User != "alice" || ck.Name != "ci" ||
		!ck.ExpiresAt.Equal(fixedNow.Add(time.Hour)) || !ck.CreatedAt.Equal(fixedNow) || ck.Revoked {
		t.Fatalf("created key record %+v", ck.APIKey)
	}
	rec, err := e.mem.GetKeyByHash(ctx, token.Hash(ck.Key))
	if err != nil {
		t.Fatalf("store has no record under token.Hash(key): %v", err)
	}
	if rec.ID != ck.ID || rec.Hash != token.Hash(ck.Key) || !slices.Equal(rec.Scopes, []string{"read"}) {
		t.Fatalf("stored record %+v", rec)
	}

	// User key, and an agent key for a static agent with an explicit user.
	uk := decode[CreatedKey](t, e.api(t, "POST", "/admin/v1/keys", `{"kind":"user","user":"bob"}`, 201))
	if !strings.HasPrefix(uk.Key, token.PrefixUserKey) || uk.User != "bob" || uk.Agent != "" || !uk.ExpiresAt.IsZero() {
		t.Fatalf("user key %+v %q", uk.APIKey, uk.Key)
	}
	sk := decode[CreatedKey](t, e.api(t, "POST", "/admin/v1/keys", `{"kind":"agent","agent":"static-demo","user":"ops"}`, 201))
	if sk.Agent != "static-demo" || sk.User != "ops" {
		t.Fatalf("static agent key %+v", sk.APIKey)
	}

	// The key is shown once: never in a list, nor its hash.
	raw := e.api(t, "GET", "/admin/v1/keys", "", 200)
	for _, k := range []CreatedKey{ck, uk, sk} {
		if strings.Contains(string(raw), k.Key) || strings.Contains(string(raw), token.Hash(k.Key)) {
			t.Fatalf("key list leaks a key or its hash: %s", raw)
		}
	}
	if strings.Contains(string(raw), `"key"`) || strings.Contains(string(raw), `"hash"`) {
		t.Fatalf("key list has key/hash fields: %s", raw)
	}
	list := decode[KeyList](t, raw)
	if len(list.Keys) != 3 {
		t.Fatalf("listed %d keys, want 3", len(list.Keys))
	}
	filtered := decode[KeyList](t, e.api(t, "GET", "/admin/v1/keys?agent=weather", "", 200))
	if len(filtered.Keys) != 1 || filtered.Keys[0].ID != ck.ID {
		t.Fatalf("?agent=weather listed %+v", filtered.Keys)
	}

	// Revocation marks the record and tells every replica.
	evc := make(chan store.Event, 16)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := e.mem.Subscribe(sctx, func(ev store.Event) { evc <- ev }); err != nil {
		t.Fatal(err)
	}
	before := counterValue(t, e, "mcp_gateway_tokens_revoked_total", map[string]string{"kind": "api_key", "reason": "admin"})
	rv := decode[store.APIKey](t, e.api(t, "DELETE", "/admin/v1/keys/"+ck.ID, "", 200))
	if !rv.Revoked || rv.ID != ck.ID {
		t.Fatalf("revoke answer %+v", rv)
	}
	if rec, _ := e.mem.GetKeyByHash(ctx, token.Hash(ck.Key)); rec == nil || !rec.Revoked {
		t.Fatalf("record after revoke %+v", rec)
	}
	select {
	case ev := <-evc:
		if ev.Kind != store.EventKey || ev.ID != token.Hash(ck.Key) {
			t.Fatalf("event %+v, want key event with the key's hash", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no store.EventKey published on revoke")
	}
	if after := counterValue(t, e, "mcp_gateway_tokens_revoked_total", map[string]string{"kind": "api_key", "reason": "admin"}); after != before+1 {
		t.Fatalf("tokens_revoked{api_key,admin} %v → %v, want +1", before, after)
	}
	errorMessage(t, e.api(t, "DELETE", "/admin/v1/keys/key_nope", "", 404), "not found")

	// Audit lines name the event and id, never the key.
	logs := e.logs.String()
	for _, k := range []CreatedKey{ck, uk, sk} {
		if strings.Contains(logs, k.Key) || strings.Contains(logs, token.Hash(k.Key)) {
			t.Fatal("a key or its hash reached the log")
		}
	}
	seen := map[string]int{}
	for _, l := range e.logs.Audit(t) {
		seen[fmt.Sprint(l["event"])]++
		if l["event"] == "key_revoked" && l["id"] != ck.ID {
			t.Fatalf("revoke audit line %v", l)
		}
	}
	if seen["key_created"] != 3 || seen["key_revoked"] != 1 {
		t.Fatalf("audit events %v", seen)
	}
}

func TestDeleteAgentRevokesItsKeys(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	e.api(t, "POST", "/admin/v1/agents", `{"id":"tmp","owner":"alice"}`, 201)
	e.api(t, "POST", "/admin/v1/agents", `{"id":"other","owner":"alice"}`, 201)
	k1 := decode[CreatedKey](t, e.api(t, "POST", "/admin/v1/keys", `{"kind":"agent","agent":"tmp"}`, 201))
	k2 := decode[CreatedKey](t, e.api(t, "POST", "/admin/v1/keys", `{"kind":"agent","agent":"other"}`, 201))
	out := decode[map[string]any](t, e.api(t, "DELETE", "/admin/v1/agents/tmp", "", 200))
	if out["keys_revoked"] != float64(1) {
		t.Fatalf("delete answer %v", out)
	}
	if r, _ := e.mem.GetKeyByHash(ctx, token.Hash(k1.Key)); r == nil || !r.Revoked {
		t.Fatalf("key of the deleted agent not revoked: %+v", r)
	}
	if r, _ := e.mem.GetKeyByHash(ctx, token.Hash(k2.Key)); r == nil || r.Revoked {
		t.Fatalf("key of another agent revoked: %+v", r)
	}
}

func TestKeyCreateBadInput(t *testing.T) {
	e := newEnv(t, nil)
	e.api(t, "POST", "/admin/v1/agents", `{"id":"scoped","owner":"alice","scopes":["mcp"]}`, 201)
	cases := []struct {
		name, body string
		status     int
		mention    string
	}{
		{"kind missing", `{"agent":"scoped"}`, 400, "kind: required"},
		{"kind unknown", `{"kind":"root"}`, 400, `kind: "root"`},
		{"agent missing", `{"kind":"agent"}`, 400, "agent: required"},
		{"agent invalid", `{"kind":"agent","agent":"a b"}`, 400, "agent:"},
		{"agent unknown", `{"kind":"agent","agent":"ghost"}`, 400, `agent: no agent "ghost"`},
		{"agent on user key", `{"kind":"user","user":"bob","agent":"scoped"}`, 400, "agent: only for kind"},
		{"user missing", `{"kind":"user"}`, 400, "user: required"},
		{"scope not allowed by agent", `{"kind":"agent","agent":"scoped","scopes":["admin"]}`, 400, `scopes[0]: "admin" is not allowed`},
		{"bad scope", `{"kind":"user","user":"bob","scopes":["a\"b"]}`, 400, "scopes[0]:"},
		{"negative expires_in", `{"kind":"user","user":"bob","expires_in":-1}`, 400, "expires_in:"},
		{"huge expires_in", `{"kind":"user","user":"bob","expires_in":999999999999}`, 400, "expires_in:"},
		{"string expires_in", `{"kind":"user","user":"bob","expires_in":"720h"}`, 400, "expires_in: want an integer"},
		{"fractional expires_in", `{"kind":"user","user":"bob","expires_in":1.5}`, 400, "expires_in: want an integer"},
		{"unknown field", `{"kind":"user","user":"bob","secret":"x"}`, 400, `unknown field "secret"`},
		{"name control char", `{"kind":"user","user":"bob","name":"a\nb"}`, 400, "name:"},
		{"oversize", `{"kind":"user","user":"` + strings.Repeat("u", MaxBodyBytes) + `"}`, 413, "larger than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errorMessage(t, e.api(t, "POST", "/admin/v1/keys", c.body, c.status), c.mention)
		})
	}
	if l, _ := e.mem.ListKeys(context.Background()); len(l) != 0 {
		t.Fatalf("bad input stored keys: %v", l)
	}
}

func TestClientsListDelete(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	cimd := "https://app.example/oauth/client.json" // CIMD ids are URLs: escaped in the path
	// Created oldest first, which is not the order of their ids.
	for i, id := range []string{cimd, "c1"} {
		c := &store.Client{ID: id, Name: "Client " + id, RedirectURIs: []string{"http://127.0.0.1:3333/cb"},
			GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"}, CreatedAt: fixedNow.Add(time.Duration(i) * time.Second)}
		if err := e.mem.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	l := decode[ClientList](t, e.api(t, "GET", "/admin/v1/clients", "", 200))
	if len(l.Clients) != 2 || l.Clients[0].ID != cimd || l.Clients[1].ID != "c1" {
		t.Fatalf("clients %+v", l.Clients)
	}
	e.api(t, "DELETE", "/admin/v1/clients/c1", "", 200)
	e.api(t, "DELETE", "/admin/v1/clients/https:%2F%2Fapp.example%2Foauth%2Fclient.json", "", 200)
	// The tokens they were issued are revoked until the last has expired
	// (24 h when the access TTL is not given, plus the clock leeway).
	revoked, err := e.mem.RevokedJTIs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"c1", cimd} {
		if until := revoked[store.RevokedClientJTI(id)]; !until.Equal(fixedNow.Add(24*time.Hour + token.Leeway)) {
			t.Fatalf("client %s: tokens revoked until %v", id, until)
		}
	}
	if _, err := e.mem.GetClient(ctx, cimd); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("URL client still there: %v", err)
	}
	errorMessage(t, e.api(t, "DELETE", "/admin/v1/clients/c1", "", 404), `client "c1" not found`)
	if l := decode[ClientList](t, e.api(t, "GET", "/admin/v1/clients", "", 200)); l.Clients == nil || len(l.Clients) != 0 {
		t.Fatalf("empty list should be [], got %+v", l.Clients)
	}
	seen := 0
	for _, a := range e.logs.Audit(t) {
		if a["event"] == "client_deleted" {
			seen++
		}
	}
	if seen != 2 {
		t.Fatalf("%d client_deleted audit lines, want 2", seen)
	}
}

func TestRouting404And405(t *testing.T) {
	e := newEnv(t, nil)
	cases := []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/admin/v1/nope", 404, ""},
		{"GET", "/admin/v1/agents/a/b", 404, ""},
		{"GET", "/admin/v1/keys/abc", 405, "DELETE"},
		{"PUT", "/admin/v1/agents", 405, "GET, HEAD, POST"},
		{"PATCH", "/admin/v1/agents/x", 405, "DELETE, GET, HEAD"},
		{"DELETE", "/admin/v1/keys", 405, "GET, HEAD, POST"},
		{"POST", "/admin/v1/clients", 405, "GET, HEAD"},
		{"GET", "/admin/v1/clients/x", 405, "DELETE"},
	}
	for _, c := range cases {
		status, h, b := e.call(t, c.method, c.path, testToken, "")
		if status != c.status || h.Get("Allow") != c.allow {
			t.Fatalf("%s %s: %d Allow=%q, want %d Allow=%q (%s)", c.method, c.path, status, h.Get("Allow"), c.status, c.allow, b)
		}
		decode[ErrorBody](t, b)
	}
	if status, _, _ := e.call(t, "POST", "/healthz", "", ""); status != 405 {
		t.Fatalf("POST /healthz: %d", status)
	}
}

func TestStoreUnavailableIs503(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Store = &faultyStore{Store: o.Store, err: fmt.Errorf("redis: dial tcp: %w", store.ErrUnavailable)}
	})
	cases := []struct{ method, path, body string }{
		{"GET", "/admin/v1/agents", ""},
		{"POST", "/admin/v1/agents", `{"id":"x","owner":"y"}`},
		{"GET", "/admin/v1/agents/x", ""},
		{"DELETE", "/admin/v1/agents/x", ""},
		{"GET", "/admin/v1/keys", ""},
		{"POST", "/admin/v1/keys", `{"kind":"user","user":"bob"}`},
		{"POST", "/admin/v1/keys", `{"kind":"agent","agent":"x"}`},
		{"DELETE", "/admin/v1/keys/k", ""},
		{"GET", "/admin/v1/clients", ""},
		{"DELETE", "/admin/v1/clients/c", ""},
	}
	for _, c := range cases {
		errorMessage(t, e.api(t, c.method, c.path, c.body, 503), "store unavailable")
	}
	// Static agents need no store.
	e.api(t, "GET", "/admin/v1/agents/static-demo", "", 200)
}

func TestHealthAndReady(t *testing.T) {
	t.Run("healthy", func(t *testing.T) {
		e := newEnv(t, nil)
		status, _, b := e.call(t, "GET", "/healthz", "", "")
		if status != 200 || strings.TrimSpace(string(b)) != "ok" {
			t.Fatalf("healthz %d %q", status, b)
		}
		status, _, b = e.call(t, "GET", "/readyz", "", "")
		if status != 200 {
			t.Fatalf("readyz %d %s", status, b)
		}
	})
	cases := []struct {
		name   string
		wrap   func(*Options)
		reason string
	}{
		{"store ping fails", func(o *Options) {
			o.Store = &faultyStore{Store: o.Store, pingErr: fmt.Errorf("dial: %w", store.ErrUnavailable)}
		}, "store unreachable"},
		{"store ping hangs past 1s", func(o *Options) {
			o.Store = &faultyStore{Store: o.Store, pingBlock: true}
		}, "store unreachable"},
		{"state not loaded", func(o *Options) { o.Ready = func() bool { return false } }, "not loaded"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, c.wrap)
			status, _, b := e.call(t, "GET", "/readyz", "", "")
			if status != 503 {
				t.Fatalf("readyz %d, want 503", status)
			}
			m := decode[map[string]string](t, b)
			if !strings.Contains(m["reason"], c.reason) {
				t.Fatalf("readyz reason %q, want %q", m["reason"], c.reason)
			}
			if status, _, _ := e.call(t, "GET", "/healthz", "", ""); status != 200 {
				t.Fatalf("healthz %d while unready: alive is not ready", status)
			}
		})
	}
}

// scrape fetches /metrics and parses it with the Prometheus text parser.
func scrape(t *testing.T, e *testEnv) (map[string]*dto.MetricFamily, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+"/metrics", nil)
	req.Header.Set("Accept", "text/plain;version=0.0.4") // the classic text format promtool reads
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics %d", resp.StatusCode)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("/metrics does not parse as Prometheus text: %v", err)
	}
	return fams, b
}

func counterValue(t *testing.T, e *testEnv, name string, labels map[string]string) float64 {
	t.Helper()
	fams, _ := scrape(t, e)
	f, ok := fams[name]
	if !ok {
		return 0
	}
next:
	for _, m := range f.GetMetric() {
		for _, lp := range m.GetLabel() {
			if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
				continue next
			}
		}
		return m.GetCounter().GetValue()
	}
	return 0
}

func TestMetricsEndpoint(t *testing.T) {
	e := newEnv(t, nil)
	// Make sure at least one gateway counter has a sample.
	e.api(t, "POST", "/admin/v1/agents", `{"id":"m","owner":"o"}`, 201)
	k := decode[CreatedKey](t, e.api(t, "POST", "/admin/v1/keys", `{"kind":"agent","agent":"m"}`, 201))
	e.api(t, "DELETE", "/admin/v1/keys/"+k.ID, "", 200)

	// No admin token needed.
	fams, raw := scrape(t, e)
	var ours []string
	for n := range fams {
		if strings.HasPrefix(n, "mcp_gateway_") {
			ours = append(ours, n)
		}
	}
	if !slices.Contains(ours, "mcp_gateway_tokens_revoked_total") {
		t.Fatalf("mcp_gateway_ families %v lack tokens_revoked_total", ours)
	}
	for _, n := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if _, ok := fams[n]; !ok {
			t.Fatalf("missing %s (Go/process collectors)", n)
		}
	}
	// What `promtool check metrics` checks.
	problems, err := promlint.New(strings.NewReader(string(raw))).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// Profiles are served behind the admin token, and only the runtime's
// named ones.
func TestPprof(t *testing.T) {
	e := newEnv(t, nil)
	for _, p := range []string{"/admin/v1/debug/pprof/heap", "/admin/v1/debug/pprof/profile?seconds=1", "/admin/v1/debug/pprof/goroutine"} {
		if status, _, _ := e.call(t, "GET", p, "", ""); status != 401 {
			t.Fatalf("anonymous %s: %d, want 401", p, status)
		}
	}
	b := e.api(t, "GET", "/admin/v1/debug/pprof/goroutine?debug=1", "", 200)
	if !strings.Contains(string(b), "goroutine profile:") {
		t.Fatalf("goroutine profile: %.200s", b)
	}
	b = e.api(t, "GET", "/admin/v1/debug/pprof/profile?seconds=1", "", 200)
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b { // a CPU profile is gzipped protobuf
		t.Fatalf("CPU profile does not look like one: % x", b[:min(len(b), 8)])
	}
	errorMessage(t, e.api(t, "GET", "/admin/v1/debug/pprof/nope", "", 404), "no such profile: nope")
	if status, _, _ := e.call(t, "POST", "/admin/v1/debug/pprof/heap", testToken, ""); status == 200 {
		t.Fatal("POST to a profile answered 200")
	}
	// The standard library's handlers are not on any public mux.
	if status, _, _ := e.call(t, "GET", "/debug/pprof/", "", ""); status != 404 {
		t.Fatalf("/debug/pprof/ without the token: %d, want 404", status)
	}
}

// Two admins creating one agent id at once: one 201, the rest 409, and the
// stored agent is the winner's.
func TestAgentCreateRace(t *testing.T) {
	e := newEnv(t, nil)
	var mu sync.Mutex
	statuses := map[int]int{}
	winner := ""
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			owner := fmt.Sprintf("owner%d", i)
			status, _, _ := e.call(t, "POST", "/admin/v1/agents", testToken, `{"id":"contested","owner":"`+owner+`"}`)
			mu.Lock()
			defer mu.Unlock()
			statuses[status]++
			if status == 201 {
				winner = owner
			}
		})
	}
	wg.Wait()
	if statuses[201] != 1 || statuses[409] != 15 {
		t.Fatalf("statuses %v, want one 201 and fifteen 409", statuses)
	}
	if a, err := e.mem.GetAgent(context.Background(), "contested"); err != nil || a.Owner != winner {
		t.Fatalf("stored %+v, %v; the winner was %s", a, err, winner)
	}
}
