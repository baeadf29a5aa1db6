package authz

import "testing"

// TestChallengeMetadataUnderPublicPath: with a public URL that has a path,
// every challenge names the resource's metadata where RFC 9728 §3.1 puts
// it, the well-known suffix between the host and the path, for a known
// agent, an unknown one, the slash form, and an insufficient_scope 403; the
// old code named <public>/.well-known/…, a URL the authorization server
// never serves.
func TestChallengeMetadataUnderPublicPath(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.PublicURL = pub + "/gw" })
	const prm = pub + "/.well-known/oauth-protected-resource/gw/"
	tok := e.mint("", "alice", aud(pub+"/gw/scoped/mcp"))
	for _, tc := range []struct {
		path, auth string
		status     int
		want       string
	}{
		{"/demo/mcp", "", 401, prm + "demo/mcp"},
		{"/demo/mcp/", "", 401, prm + "demo/mcp/"},
		{"/ghost/mcp", "", 401, prm + "ghost/mcp"},
		{"/scoped/mcp", "Bearer " + tok, 403, prm + "scoped/mcp"},
	} {
		d := decideDirect(e.a, "POST", tc.path, map[string]string{"authorization": tc.auth})
		ch := header(d, "www-authenticate")
		if d.Status != tc.status || ch == "" {
			t.Fatalf("%s: %d %q, want %d with a challenge", tc.path, d.Status, ch, tc.status)
		}
		if got := challengeParams(t, ch)["resource_metadata"]; got != tc.want {
			t.Errorf("%s: resource_metadata %q, want %q", tc.path, got, tc.want)
		}
	}
}
