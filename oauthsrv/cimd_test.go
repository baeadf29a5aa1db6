package oauthsrv

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/store"
)

// docServer is an https server on 127.0.0.1 serving client metadata
// documents; it counts requests per path and TCP connections.
type docServer struct {
	ts      *httptest.Server
	mux     *http.ServeMux
	conns   atomic.Int64
	mu      sync.Mutex
	hits    map[string]int
	release chan struct{} // closed at the end: frees slow handlers
}

func newDocServer(t *testing.T) *docServer {
	d := &docServer{mux: http.NewServeMux(), hits: map[string]int{}, release: make(chan struct{})}
	d.ts = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		d.hits[r.URL.Path]++
		d.mu.Unlock()
		d.mux.ServeHTTP(w, r)
	}))
	d.ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			d.conns.Add(1)
		}
	}
	d.ts.StartTLS()
	t.Cleanup(func() {
		close(d.release)
		d.ts.Close()
	})
	return d
}

func (d *docServer) hitCount(path string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.hits[path]
}

// url is the https URL of path on this server ("https://127.0.0.1:port/…").
func (d *docServer) url(path string) string { return d.ts.URL + path }

// serveDoc serves a JSON document at path with extra headers.
func (d *docServer) serveDoc(path string, doc any, headers ...string) {
	b, _ := json.Marshal(doc)
	d.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		_, _ = w.Write(b)
	})
}

func cimdDoc(id string, redirects ...string) map[string]any {
	if len(redirects) == 0 {
		redirects = []string{loopbackRedirect}
	}
	return map[string]any{"client_id": id, "client_name": "Doc Client", "redirect_uris": redirects}
}

// withCIMD trusts the doc server's certificate and allow-lists hosts.
func withCIMD(d *docServer, allowed ...string) envOption {
	return func(c *config.Config, o *Options) {
		c.CIMD.AllowedHosts = allowed
		pool := x509.NewCertPool()
		pool.AddCert(d.ts.Certificate())
		o.CIMDRootCAs = pool
	}
}

// authorizePage requests authorization for clientID (not following
// redirects) and returns status and body: 302 to the login page when the
// client was accepted, else the error page.
func (e *env) authorizePage(clientID, redirect string) (int, string) {
	e.t.Helper()
	_, challenge := pkce()
	resp := e.get("/oauth/authorize?" + url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "state": {"s"},
	}.Encode())
	return resp.StatusCode, readBodyString(resp)
}

func TestCIMDFullFlow(t *testing.T) {
	d := newDocServer(t)
	e := newEnv(t, withCIMD(d, "127.0.0.1"))
	id := d.url("/oauth/client.json")
	d.serveDoc("/oauth/client.json", cimdDoc(id), "Cache-Control", "max-age=600")

	m := readJSON(t, e.get("/.well-known/oauth-authorization-server"))
	if m["client_id_metadata_document_supported"] != true {
		t.Fatalf("AS metadata does not advertise CIMD: %v", m)
	}

	b := e.browser()
	verifier, challenge := pkce()
	resp := b.get(e.authorizeURL(authzParams{clientID: id, redirect: loopbackRedirect, challenge: challenge, state: "st", resource: e.url + "/demo/mcp"}))
	resp = b.login(resp, "alice")
	if resp.Request.URL.Path != "/consent" {
		t.Fatalf("expected consent, got %s", resp.Request.URL)
	}
	page := readBodyString(resp)
	host := strings.TrimPrefix(d.ts.URL, "https://")
	for _, want := range []string{"Doc Client", host, "only returns to addresses on this device"} {
		if !strings.Contains(page, want) {
			t.Fatalf("consent page lacks %q:\n%s", want, page)
		}
	}
	resp = b.get(resp.Request.URL.String())
	resp = b.consent(resp, "approve")
	q := callback(t, resp, loopbackRedirect)
	tok := e.tokens(id, q.Get("code"), verifier)
	c := e.verify(tok["access_token"].(string))
	if c.ClientID != id || c.Subject != "alice" {
		t.Fatalf("claims %+v", c)
	}
	// The refresh grant identifies the CIMD client the same way.
	resp = e.refresh(id, tok["refresh_token"].(string), nil)
	if m := readJSON(t, resp); resp.StatusCode != http.StatusOK {
		t.Fatalf("refresh: %d %v", resp.StatusCode, m)
	}
	// authorize, login form, consent, token, refresh: one fetch (max-age).
	if n := d.hitCount("/oauth/client.json"); n != 1 {
		t.Fatalf("document fetched %d times, want 1 (cached for max-age)", n)
	}
	// Nothing was registered: the document is the client.
	if cs, _ := e.st.ListClients(t.Context()); len(cs) != 0 {
		t.Fatalf("CIMD stored clients: %+v", cs)
	}
	// A loopback redirect is never auto-approved (trust.go): the second
	// authorization shows the consent page again, without a login.
	_, challenge = pkce()
	resp = b.get(e.authorizeURL(authzParams{clientID: id, redirect: loopbackRedirect, challenge: challenge, resource: e.url + "/demo/mcp"}))
	callback(t, b.consent(resp, "approve"), loopbackRedirect)
}

func TestCIMDConsentNoLoopbackWarning(t *testing.T) {
	d := newDocServer(t)
	e := newEnv(t, withCIMD(d, "127.0.0.1/32"))
	id := d.url("/web.json")
	d.serveDoc("/web.json", cimdDoc(id, "https://app.example/cb"))
	b := e.browser()
	_, challenge := pkce()
	resp := b.get(e.authorizeURL(authzParams{clientID: id, redirect: "https://app.example/cb", challenge: challenge}))
	resp = b.login(resp, "alice")
	page := readBodyString(resp)
	if resp.Request.URL.Path != "/consent" || !strings.Contains(page, strings.TrimPrefix(d.ts.URL, "https://")) {
		t.Fatalf("consent page %s: %s", resp.Request.URL, page)
	}
	if strings.Contains(page, "only returns to addresses on this device") {
		t.Fatal("loopback warning for a client with an https redirect URI")
	}
}

func TestCIMDCache(t *testing.T) {
	d := newDocServer(t)
	e := newEnv(t, withCIMD(d, "127.0.0.1"))
	cached, nostore := d.url("/cached.json"), d.url("/nostore.json")
	d.serveDoc("/cached.json", cimdDoc(cached), "Cache-Control", "public, max-age=600")
	d.serveDoc("/nostore.json", cimdDoc(nostore), "Cache-Control", "no-store")

	for i := 1; i <= 3; i++ {
		if st, body := e.authorizePage(cached, loopbackRedirect); st != http.StatusFound {
			t.Fatalf("authorize %d: %d %s", i, st, body)
		}
		if n := d.hitCount("/cached.json"); n != 1 {
			t.Fatalf("after %d authorizations: %d fetches, want 1 within max-age", i, n)
		}
		if st, body := e.authorizePage(nostore, loopbackRedirect); st != http.StatusFound {
			t.Fatalf("authorize no-store %d: %d %s", i, st, body)
		}
		if n := d.hitCount("/nostore.json"); n != i {
			t.Fatalf("no-store document fetched %d times after %d uses", n, i)
		}
	}
	e.clock.Advance(11 * time.Minute) // past max-age
	e.authorizePage(cached, loopbackRedirect)
	if n := d.hitCount("/cached.json"); n != 2 {
		t.Fatalf("after max-age: %d fetches, want 2", n)
	}
}

func TestCIMDRejections(t *testing.T) {
	d := newDocServer(t)
	e := newEnv(t, withCIMD(d, "127.0.0.1"), func(c *config.Config, _ *Options) { c.CIMD.Timeout = config.Duration(300 * time.Millisecond) })
	serve := func(path string, doc map[string]any) string {
		id := d.url(path)
		if doc == nil {
			doc = cimdDoc(id)
		}
		d.serveDoc(path, doc)
		return id
	}
	raw := func(path, ctype, body string) string {
		d.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", ctype)
			_, _ = w.Write([]byte(body))
		})
		return d.url(path)
	}
	chain := func(prefix string, n int, final string) string {
		for i := n; i > 0; i-- {
			from, to := prefix+strconv.Itoa(i), prefix+strconv.Itoa(i-1)
			if i == 1 {
				to = final
			}
			d.mux.HandleFunc(from, func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, to, http.StatusFound) })
		}
		return d.url(prefix + strconv.Itoa(n))
	}
	big := cimdDoc(d.url("/big.json"))
	big["padding"] = strings.Repeat("x", 6<<10)
	d.serveDoc("/big.json", big)
	d.mux.HandleFunc("/big-stream.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"client_id":"` + d.url("/big-stream.json") + `","client_name":"x","redirect_uris":["` + loopbackRedirect + `"],"p":"`))
		w.(http.Flusher).Flush() // chunked: no Content-Length to refuse early
		for range 8 {
			_, _ = w.Write([]byte(strings.Repeat("y", 1024)))
			w.(http.Flusher).Flush()
		}
		_, _ = w.Write([]byte(`"}`))
	})
	d.mux.HandleFunc("/slow.json", func(w http.ResponseWriter, r *http.Request) {
		// Never answers before the gateway gives up. Not tied to the
		// request's context: a CI run once saw it end early and answer an
		// empty 200 (reported as "not served as application/json").
		select {
		case <-d.release:
		case <-time.After(30 * time.Second):
		}
	})
	d.mux.HandleFunc("/missing.json", http.NotFound)
	d.serveDoc("/target.json", cimdDoc(d.url("/ok2")))

	cases := []struct {
		name, clientID, redirect, want string
	}{
		{"client_id mismatch", serve("/mismatch.json", cimdDoc(d.url("/other.json"))), "", "client_id differs from its URL"},
		{"client_id with trailing slash differs", serve("/slash.json", cimdDoc(d.url("/slash.json/"))), "", "client_id differs"},
		{"no client_id", serve("/noid.json", map[string]any{"client_name": "x", "redirect_uris": []string{loopbackRedirect}}), "", "has no client_id"},
		{"no client_name", serve("/noname.json", map[string]any{"client_id": d.url("/noname.json"), "redirect_uris": []string{loopbackRedirect}}), "", "has no client_name"},
		{"client secret", serve("/secret.json", map[string]any{"client_id": d.url("/secret.json"), "client_name": "x", "redirect_uris": []string{loopbackRedirect}, "client_secret": "s"}), "", "must not contain a client secret"},
		{"confidential auth method", serve("/basic.json", map[string]any{"client_id": d.url("/basic.json"), "client_name": "x", "redirect_uris": []string{loopbackRedirect}, "token_endpoint_auth_method": "client_secret_basic"}), "", "token_endpoint_auth_method"},
		{"javascript redirect", serve("/js.json", map[string]any{"client_id": d.url("/js.json"), "client_name": "x", "redirect_uris": []string{"javascript:alert(1)"}}), "", "invalid_redirect_uri"},
		{"ms-msdt redirect", serve("/msdt.json", map[string]any{"client_id": d.url("/msdt.json"), "client_name": "x", "redirect_uris": []string{"ms-msdt:/id"}}), "", "invalid_redirect_uri"},
		{"plain custom scheme", serve("/myapp.json", map[string]any{"client_id": d.url("/myapp.json"), "client_name": "x", "redirect_uris": []string{"myapp://cb"}}), "", "custom scheme"},
		{"oversize", d.url("/big.json"), "", "larger than 5120 bytes"},
		{"oversize streamed", d.url("/big-stream.json"), "", "larger than 5120 bytes"},
		{"slow", d.url("/slow.json"), "", "not received within 300ms"},
		{"bad JSON", raw("/bad.json", "application/json", `{"client_id":`), "", "not one JSON object"},
		{"JSON array", raw("/array.json", "application/json", `[]`), "", "not one JSON object"},
		{"trailing brace", raw("/brace.json", "application/json", `{"client_id":"`+d.url("/brace.json")+`","client_name":"x","redirect_uris":["`+loopbackRedirect+`"]}}`), "", "not one JSON object"},
		{"trailing bracket", raw("/bracket.json", "application/json", `{"client_id":"`+d.url("/bracket.json")+`","client_name":"x","redirect_uris":["`+loopbackRedirect+`"]}]`), "", "not one JSON object"},
		{"HTML", raw("/page.json", "text/html", `<html></html>`), "", "not served as application/json"},
		{"404", d.url("/missing.json"), "", "answered HTTP 404"},
		{"redirect to a valid document", chain("/hop", 1, "/target.json"), "", "answered a redirect (HTTP 302)"},
		{"redirect to http", chain("/tohttp", 1, "http://127.0.0.1:9/x.json"), "", "answered a redirect (HTTP 302)"},
		{"redirect to metadata address", chain("/tometa", 1, "https://169.254.169.254/latest/meta-data"), "", "answered a redirect (HTTP 302)"},
		{"redirect_uri not in document", serve("/cb.json", nil), "http://127.0.0.1:9/elsewhere", "not one listed in the application"},
		{"http client_id", "http://127.0.0.1/client.json", "", "must use https"},
		{"root path", d.url("/"), "", "must have a path"},
		{"no path", d.ts.URL, "", "must have a path"},
		{"query", d.url("/q.json?x=1"), "", "must not contain a query"},
		{"dot segment", d.url("/a/../client.json"), "", ". or .. path segments"},
		{"encoded dot segment", d.url("/a/%2e%2e/client.json"), "", ". or .. path segments"},
		{"userinfo", "https://u@" + strings.TrimPrefix(d.ts.URL, "https://") + "/c.json", "", "user information"},
		{"upper-case scheme", "HTTPS://" + strings.TrimPrefix(d.ts.URL, "https://") + "/c.json", "", "must use https"},
		{"private literal", "https://10.1.2.3/client.json", "", "loopback, private or link-local"},
		{"link-local metadata", "https://169.254.169.254/client.json", "", "loopback, private or link-local"},
		{"CGNAT", "https://100.64.0.1/client.json", "", "loopback, private or link-local"},
		{"IPv6 ULA", "https://[fd00::1]/client.json", "", "loopback, private or link-local"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			redirect := tc.redirect
			if redirect == "" {
				redirect = loopbackRedirect
			}
			st, body := e.authorizePage(tc.clientID, redirect)
			if st != http.StatusBadRequest || !strings.Contains(body, tc.want) {
				t.Fatalf("got %d, want 400 mentioning %q:\n%s", st, tc.want, body)
			}
			// The token endpoint refuses the same client with invalid_client.
			if tc.redirect == "" {
				resp := e.postForm("/oauth/token", url.Values{"grant_type": {"authorization_code"}, "client_id": {tc.clientID},
					"code": {"c"}, "redirect_uri": {redirect}, "code_verifier": {strings.Repeat("v", 43)}})
				expectOAuthError(t, resp, http.StatusUnauthorized, "invalid_client")
			}
		})
	}
	// The draft: the server must not follow redirects automatically. The
	// target, a valid document, was never fetched.
	if n := d.hitCount("/target.json"); n != 0 {
		t.Fatalf("the redirect target was fetched %d times, want 0", n)
	}
}

// Every redirect status is refused as such, whatever its target.
func TestCIMDRefusesEveryRedirectStatus(t *testing.T) {
	d := newDocServer(t)
	e := newEnv(t, withCIMD(d, "127.0.0.1"))
	d.serveDoc("/target.json", cimdDoc(d.url("/target.json")))
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		path := "/moved" + strconv.Itoa(code) + ".json"
		d.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/target.json", code) })
		st, body := e.authorizePage(d.url(path), loopbackRedirect)
		want := "answered a redirect (HTTP " + strconv.Itoa(code) + ")"
		if st != http.StatusBadRequest || !strings.Contains(body, want) {
			t.Fatalf("HTTP %d: got %d, want 400 mentioning %q:\n%s", code, st, want, body)
		}
	}
	if n := d.hitCount("/target.json"); n != 0 {
		t.Fatalf("a redirect was followed %d times", n)
	}
}

// A real hostname resolving to loopback ("localhost") is refused when the
// allow-list does not name it, before any connection is made.
func TestCIMDLoopbackHostRefusedBeforeConnecting(t *testing.T) {
	d := newDocServer(t)
	e := newEnv(t, withCIMD(d)) // no allow-list
	port := d.ts.Listener.Addr().(*net.TCPAddr).Port
	id := "https://localhost:" + strconv.Itoa(port) + "/client.json"
	d.serveDoc("/client.json", cimdDoc(id))
	st, body := e.authorizePage(id, loopbackRedirect)
	if st != http.StatusBadRequest || !strings.Contains(body, "loopback, private or link-local") {
		t.Fatalf("got %d: %s", st, body)
	}
	if n := d.conns.Load(); n != 0 {
		t.Fatalf("%d connections reached the server, want 0", n)
	}
	if n := d.hitCount("/client.json"); n != 0 {
		t.Fatalf("%d requests reached the server", n)
	}
	// The literal address too.
	st, _ = e.authorizePage(d.url("/client.json"), loopbackRedirect)
	if st != http.StatusBadRequest || d.conns.Load() != 0 {
		t.Fatalf("127.0.0.1 without allow-list: %d, %d connections", st, d.conns.Load())
	}
}

func TestCIMDDisabled(t *testing.T) {
	d := newDocServer(t)
	e := newEnv(t, withCIMD(d, "127.0.0.1"), func(c *config.Config, _ *Options) { c.CIMD.Enabled = false })
	id := d.url("/client.json")
	d.serveDoc("/client.json", cimdDoc(id))
	m := readJSON(t, e.get("/.well-known/oauth-authorization-server"))
	if _, ok := m["client_id_metadata_document_supported"]; ok {
		t.Fatalf("disabled CIMD advertised: %v", m)
	}
	st, body := e.authorizePage(id, loopbackRedirect)
	if st != http.StatusBadRequest || !strings.Contains(body, "not registered") || d.hitCount("/client.json") != 0 {
		t.Fatalf("disabled CIMD: %d %s", st, body)
	}
}

func TestBlockedAddr(t *testing.T) {
	for _, a := range []string{"127.0.0.1", "127.1.2.3", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254",
		"100.64.0.1", "100.127.255.254", "0.0.0.0", "224.0.0.1", "255.255.255.255", "198.18.0.1", "::", "::1",
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "fd00::1", "fc00::1", "fe80::1", "ff02::1", "64:ff9b::a00:1", "2002:a00:1::1", "2001::1"} {
		if !blockedAddr(netip.MustParseAddr(a)) {
			t.Errorf("%s not blocked", a)
		}
	}
	for _, a := range []string{"8.8.8.8", "1.1.1.1", "100.128.0.1", "172.32.0.1", "2606:4700:4700::1111", "2a00:1450:4001::1"} {
		if blockedAddr(netip.MustParseAddr(a)) {
			t.Errorf("%s blocked", a)
		}
	}
}

func TestCacheTTL(t *testing.T) {
	cases := []struct {
		cc, age string
		want    time.Duration
	}{
		{"", "", cimdMinCache},
		{"max-age=600", "", 10 * time.Minute},
		{"public, max-age=3600", "600", 50 * time.Minute},
		{"max-age=0", "", cimdMinCache},
		{"max-age=31536000", "", cimdMaxCache},
		{"no-store", "", 0},
		{"max-age=600, no-cache", "", 0},
		{"max-age=junk", "", cimdMinCache},
	}
	for _, tc := range cases {
		h := http.Header{}
		if tc.cc != "" {
			h.Set("Cache-Control", tc.cc)
		}
		if tc.age != "" {
			h.Set("Age", tc.age)
		}
		if got := cacheTTL(h); got != tc.want {
			t.Errorf("Cache-Control %q Age %q: %v, want %v", tc.cc, tc.age, got, tc.want)
		}
	}
}

func TestCIMDCacheBounded(t *testing.T) {
	clk := &clock{}
	r := &cimdResolver{s: &Server{now: clk.Now}, cache: newCIMDCache()}
	for i := range cimdCacheEntries + 500 {
		id := "https://c" + strconv.Itoa(i) + ".example/client.json"
		_, err := r.cache.Get(t.Context(), id, clk.Now(), func(context.Context) (*cimdCached, error) {
			return &cimdCached{c: &store.Client{ID: id}, ttl: time.Hour}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n := r.cache.Len(); n > cimdCacheEntries {
			t.Fatalf("cache holds %d entries, cap %d", n, cimdCacheEntries)
		}
		if r.cached(id) == nil {
			t.Fatalf("entry %d not cached right after put", i)
		}
	}
	clk.Advance(2 * time.Hour)
	if r.cached("https://c"+strconv.Itoa(cimdCacheEntries+499)+".example/client.json") != nil {
		t.Fatal("expired entry served")
	}
}
