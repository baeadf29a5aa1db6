package redisstore_test

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

// On one server the key layout is the one the previous version wrote, so
// replicas of both run side by side during a rolling upgrade and no
// migration is needed. The state below is written key by key as the
// previous version's scripts left it (a code, a refresh family with its
// token, a denylist entry, an API key, an agent); this version reads and
// changes it, and writes under the same names.
func TestPreviousLayoutKeepsWorking(t *testing.T) {
	mr := miniredis.RunT(t)
	clk := &clock{now: time.Now(), mr: mr}
	const p = "mcpgw:"
	s := miniStore(t, mr, p, clk)
	ctx := t.Context()
	now := clk.Now()

	// An authorization code minted by the previous version: untagged.
	code := token.Random(32)
	codeHash := token.Address(code)
	if codeHash != token.Hash(code) {
		t.Fatalf("an untagged code's address changed: %q", codeHash)
	}
	mr.Set(p+"code:"+codeHash, `{"client_id":"c1","user_id":"alice","redirect_uri":"http://127.0.0.1/cb","scope":"mcp","resource":"http://gw/a/mcp","code_challenge":"ch","family_id":"famOLD1","auth_time":"`+now.Format(time.RFC3339Nano)+`","expires_at":"`+now.Add(time.Minute).Format(time.RFC3339Nano)+`"}`)
	mr.SetTTL(p+"code:"+codeHash, time.Minute)
	c, err := s.RedeemCode(ctx, codeHash, store.CodeBinding{ClientID: "c1", RedirectURI: "http://127.0.0.1/cb", CodeChallenge: "ch"})
	if err != nil || c.FamilyID != "famOLD1" || c.UserID != "alice" {
		t.Fatalf("redeem a previous version's code: %+v, %v", c, err)
	}
	if !mr.Exists(p + "codeused:" + codeHash) {
		t.Fatalf("the used marker is not where the previous version looks: %v", mr.Keys())
	}

	// A refresh family and its token, as the previous createFamily wrote them.
	rt := token.Hash(token.Random(32))
	d := `{"id":"famOLD2","client_id":"c1","user_id":"alice","scope":"mcp","resource":"http://gw/a/mcp","current_hash":"","access_jti":"","access_exp":"0001-01-01T00:00:00Z","revoked":false,"created_at":"` + now.Format(time.RFC3339Nano) + `","expires_at":"` + now.Add(24*time.Hour).Format(time.RFC3339Nano) + `"}`
	mr.HSet(p+"rtfam:famOLD2", "d", d, "cur", rt, "jti", "j1", "aexp", "0", "end", strconv.FormatInt(now.Add(24*time.Hour).UnixMilli(), 10), "rev", "0")
	mr.SetTTL(p+"rtfam:famOLD2", 24*time.Hour)
	mr.HSet(p+"rt:"+rt, "fam", "famOLD2", "st", "a")
	mr.SetTTL(p+"rt:"+rt, 24*time.Hour)
	mr.SetAdd(p+"rtuser:alice", "famOLD2")
	f, err := s.LookupRefresh(ctx, rt)
	if err != nil || f.ID != "famOLD2" || f.CurrentHash != rt {
		t.Fatalf("look up a previous version's refresh token: %+v, %v", f, err)
	}
	next := token.Hash(token.Random(32))
	if _, err := s.Rotate(ctx, store.Rotation{OldHash: rt, NewHash: next, AccessJTI: "j2", Now: now, TokenTTL: time.Hour, FamilyID: f.ID}); err != nil {
		t.Fatalf("rotate a previous version's family: %v", err)
	}
	if v := mr.HGet(p+"rt:"+next, "fam"); v != "famOLD2" {
		t.Fatalf("the new token is not where the previous version looks: %q %v", v, mr.Keys())
	}
	fams, err := s.ListFamilies(ctx, "alice")
	if err != nil || len(fams) != 1 {
		t.Fatalf("list: %v %v", fams, err)
	}

	// A denylist entry, an API key and an agent.
	mr.Set(p+"revoked:jOLD", "1")
	if ok, err := s.IsRevoked(ctx, "jOLD"); err != nil || !ok {
		t.Fatalf("a previous version's revocation: %v %v", ok, err)
	}
	kh := token.Hash("oag_old")
	mr.HSet(p+"key:"+kh, "d", `{"id":"key_old","kind":"user","user":"alice","name":"n","created_at":"`+now.Format(time.RFC3339Nano)+`"}`)
	mr.Set(p+"keyid:key_old", kh)
	mr.SetAdd(p+"keys", kh)
	if k, err := s.GetKeyByHash(ctx, kh); err != nil || k.ID != "key_old" {
		t.Fatalf("a previous version's key: %+v %v", k, err)
	}
	if _, err := s.RevokeKey(ctx, "key_old"); err != nil || mr.HGet(p+"key:"+kh, "rev") != "1" {
		t.Fatalf("revoke a previous version's key: %v", err)
	}
	mr.Set(p+"agent:old", `{"id":"old","owner":"alice"}`)
	mr.SetAdd(p+"agents", "old")
	if a, err := s.GetAgent(ctx, "old"); err != nil || a.Owner != "alice" {
		t.Fatalf("a previous version's agent: %+v %v", a, err)
	}
	for _, k := range mr.Keys() {
		if strings.ContainsAny(k, "{}") {
			t.Errorf("a hash tag on one server: %q (the previous version would not find it)", k)
		}
	}
}

// oldAgent is a stored agent with every field set, byte for byte as the
// version that declared the agent's fields in store.Agent itself wrote it.
const oldAgent = `{"id":"full","name":"Full","owner":"alice","users":["bob"],"upstream":"https://full.internal/mcp","scopes":["mcp","mcp:admin"],` +
	`"rules":[{"name":"admin","method":"tools/call","target":"admin_*","scopes":["mcp:admin"],"users":["@owner"],"groups":["ops"],"credentials":["oauth"]}],` +
	`"limits":{"per_user":60,"per_tool":10},"static":true,"created_at":"2026-01-02T03:04:05Z",` +
	`"upstream_auth":{"header":"authorization","prefix":"Bearer ","secret_file":"full.token"}}`

// An agent record written by the previous version decodes field by field,
// and this version writes the same JSON object (key order aside), so
// replicas of both share agents during a rolling upgrade.
func TestPreviousAgentRecord(t *testing.T) {
	mr := miniredis.RunT(t)
	const p = "mcpgw:"
	s := miniStore(t, mr, p, &clock{now: time.Now(), mr: mr})
	mr.Set(p+"agent:full", oldAgent)
	mr.SetAdd(p+"agents", "full")
	a, err := s.GetAgent(t.Context(), "full")
	if err != nil {
		t.Fatal(err)
	}
	var want store.Agent
	want.ID, want.Name, want.Owner, want.Users = "full", "Full", "alice", []string{"bob"}
	want.Upstream, want.Scopes = "https://full.internal/mcp", []string{"mcp", "mcp:admin"}
	want.Rules = []store.Rule{{Name: "admin", Method: "tools/call", Target: "admin_*", Scopes: []string{"mcp:admin"},
		Users: []string{"@owner"}, Groups: []string{"ops"}, Credentials: []string{"oauth"}}}
	want.Limits = &store.Limits{PerUser: 60, PerTool: 10}
	want.Static, want.Created = true, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	want.UpstreamAuth = &store.UpstreamAuth{Header: "authorization", Prefix: "Bearer ", SecretFile: "full.token"}
	if !reflect.DeepEqual(*a, want) {
		t.Fatalf("read %+v\nwant %+v", *a, want)
	}

	mr.Del(p + "agent:full")
	if err := s.PutAgent(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	got, err := mr.Get(p + "agent:full")
	if err != nil {
		t.Fatal(err)
	}
	var gotObj, oldObj map[string]any
	if err := json.Unmarshal([]byte(got), &gotObj); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(oldAgent), &oldObj); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotObj, oldObj) {
		t.Fatalf("this version writes\n%s\nthe previous one wrote\n%s", got, oldAgent)
	}
}
