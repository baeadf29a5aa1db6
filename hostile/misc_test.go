package hostile

import (
	"bufio"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/oauthsrv"
	"github.com/mcpgateway/mcp-gateway/token"
)

// Issue 10, items 5 and 6 and the test gaps: slow request bodies, the CIMD
// fetcher's address guard and redirects, a verified token kept in the
// cache past exp + leeway, and what anonymous callers learn about agents.

// TestHostileMisc runs these cases as TestHostileMatrix runs the matrix.
func TestHostileMisc(t *testing.T) { runAttacks(t, miscCases()) }

// bodyTimeout is the slow-body cases' http_limits.body_timeout: short, so
// nothing waits long; slowFailsafe bounds every wait, and the old code
// (no body deadline) runs into it.
const (
	bodyTimeout  = 300 * time.Millisecond
	slowFailsafe = 10 * time.Second
)

func shortBodyTimeout(c *config.Config) { c.HTTPLimits.BodyTimeout = config.Duration(bodyTimeout) }

// slowBody sends headers announcing a body of announced bytes, then only
// sent, and waits. It returns the answer and whether the gateway then
// closed the connection (fx["closed"]).
func (g *gw) slowBody(method, target string, hdr [][2]string, announced int, sent string) *reply {
	g.t.Helper()
	return g.slowAnswer(g.startSlow(method, target, hdr, announced, sent), method+" "+target)
}

// startSlow opens the connection and sends the start of the request.
func (g *gw) startSlow(method, target string, hdr [][2]string, announced int, sent string) net.Conn {
	g.t.Helper()
	conn, err := net.DialTimeout("tcp", g.ts.Listener.Addr().String(), 5*time.Second)
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(slowFailsafe))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", method, target, g.ts.Listener.Addr(), announced)
	for _, h := range hdr {
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
	}
	b.WriteString("\r\n" + sent)
	if _, err := io.WriteString(conn, b.String()); err != nil {
		g.t.Fatal(err)
	}
	return conn
}

// slowAnswer reads the answer on conn, then notes whether the gateway
// closed the connection.
func (g *gw) slowAnswer(conn net.Conn, what string) *reply {
	g.t.Helper()
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(slowFailsafe)) // from now: the answer may already be waiting
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		g.t.Fatalf("%s with a slow body: no answer (%v)", what, err)
	}
	rb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	g.observe(what, resp.StatusCode, resp.Header, rb)
	_, err = br.ReadByte()
	var ne net.Error
	g.fx["closed"] = strconv.FormatBool(err != nil && !(errors.As(err, &ne) && ne.Timeout()))
	return &reply{status: resp.StatusCode, hdr: resp.Header, body: rb}
}

// connClosed: the slow client's connection was closed after the answer.
func connClosed(t *testing.T, g *gw, _ *reply) {
	if g.fx["closed"] != "true" {
		t.Errorf("the connection is still open %v after the answer: a slow body holds it", slowFailsafe)
	}
}

// slowBodyCase: a body that never arrives in full is cut off with 408 and
// the connection closed; nothing is stored.
func slowBodyCase(name, target, ctype, partial string) attack {
	return attack{name: "http/slow_body/" + name, tweak: shortBodyTimeout,
		want: want{http.StatusRequestTimeout, "invalid_request", kJSON, nil},
		run: func(t *testing.T, g *gw) *reply {
			g.begin()
			return g.slowBody(http.MethodPost, target, [][2]string{{"Content-Type", ctype}}, 4096, partial)
		},
		then: connClosed}
}

// docServer is an https server on 127.0.0.1 standing in for a client's
// metadata document host; it counts connections and requests per path.
type docServer struct {
	ts    *httptest.Server
	mux   *http.ServeMux
	conns atomic.Int64
	mu    sync.Mutex
	hits  map[string]int
}

var docServers sync.Map // *gw → *docServer

func withDocServer(g *gw, o *oauthsrv.Options) {
	d := &docServer{mux: http.NewServeMux(), hits: map[string]int{}}
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
	g.t.Cleanup(d.ts.Close)
	pool := x509.NewCertPool()
	pool.AddCert(d.ts.Certificate())
	o.CIMDRootCAs = pool // trusted: only the address guard stands in the way
	docServers.Store(g, d)
	g.t.Cleanup(func() { docServers.Delete(g) })
}

func docs(g *gw) *docServer {
	d, _ := docServers.Load(g)
	return d.(*docServer)
}

func (d *docServer) port() string { return strconv.Itoa(d.ts.Listener.Addr().(*net.TCPAddr).Port) }

func (d *docServer) hitCount(path string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.hits[path]
}

// serveDoc serves a valid metadata document naming id at path.
func (d *docServer) serveDoc(path, id string) {
	b, _ := json.Marshal(map[string]any{"client_id": id, "client_name": "doc client", "redirect_uris": []string{loopback}})
	d.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
}

// cimdGuardCase: a metadata document URL whose host is (or resolves to)
// loopback is refused before any connection, though the document there is
// valid and its certificate trusted.
func cimdGuardCase(name, host string) attack {
	return attack{name: "authorize/cimd_address_guard/" + name, oauth: withDocServer,
		want: want{http.StatusBadRequest, "", kPage, nil},
		run: func(t *testing.T, g *gw) *reply {
			d := docs(g)
			id := "https://" + host + ":" + d.port() + "/client.json"
			d.serveDoc("/client.json", id)
			_, ch := pkce()
			g.begin()
			return g.get(g.authzURL(id, loopback, ch, nil))
		},
		then: func(t *testing.T, g *gw, r *reply) {
			if !strings.Contains(string(r.body), "loopback, private or link-local") {
				t.Errorf("the page does not name the address rule: %.400s", r.body)
			}
			if n := docs(g).conns.Load(); n != 0 {
				t.Errorf("%d connections reached the document server, want 0", n)
			}
		}}
}

func miscCases() []attack {
	return []attack{
		// ---- item 5: slow request bodies ----
		slowBodyCase("register", "/oauth/register", "application/json", `{"redirect_uris":["`),
		slowBodyCase("token", "/oauth/token", "application/x-www-form-urlencoded", "grant_type=authorization_code&code="),
		slowBodyCase("revoke", "/oauth/revoke", "application/x-www-form-urlencoded", "token="),
		{name: "http/slow_body/login_form", tweak: shortBodyTimeout,
			want: want{http.StatusBadRequest, "", kPage, nil},
			run: func(t *testing.T, g *gw) *reply {
				g.begin()
				return g.slowBody(http.MethodPost, "/login", [][2]string{{"Content-Type", "application/x-www-form-urlencoded"}}, 4096, "request=")
			},
			then: connClosed},
		{name: "http/slow_body/check_never_reads_it", tweak: shortBodyTimeout,
			want: want{http.StatusUnauthorized, "unauthorized", kCheck, nil},
			run: func(t *testing.T, g *gw) *reply {
				g.begin()
				// The HTTP check answers without reading; net/http's drain of
				// the rest is what must be bounded.
				return g.slowBody(http.MethodGet, "/authz/check/alpha/mcp", nil, 4096, "x")
			},
			then: connClosed},
		{name: "http/slow_body/proxy", tweak: shortBodyTimeout,
			want: want{http.StatusUnauthorized, "unauthorized", kCheck, nil},
			run: func(t *testing.T, g *gw) *reply {
				g.begin()
				return g.slowBody(http.MethodPost, "/alpha/mcp", [][2]string{{"Content-Type", "application/json"}}, 4096, `{"jsonrpc":`)
			},
			then: func(t *testing.T, g *gw, r *reply) {
				connClosed(t, g, r)
				upstreamUntouched(t, g, r)
			}},
		{name: "http/slow_body/proxy_allowed", tweak: shortBodyTimeout,
			want: want{http.StatusRequestTimeout, "request_timeout", kJSON, nil},
			run: func(t *testing.T, g *gw) *reply {
				tok := g.good(nil)
				g.begin()
				// Allowed, so the proxy sends the body on as it arrives: the
				// client is too slow, not the agent (no 502).
				return g.slowBody(http.MethodPost, "/alpha/mcp", [][2]string{{"Content-Type", "application/json"}, {"Authorization", "Bearer " + tok}}, 4096, `{"jsonrpc":`)
			},
			then: connClosed},
		{name: "http/slow_body/cap_full",
			tweak: func(c *config.Config) {
				// Long enough that a loaded machine still sees the slot
				// taken before the holder is cut off.
				c.HTTPLimits.BodyTimeout = config.Duration(3 * time.Second)
				c.HTTPLimits.MaxBodyReads = 1
			},
			want: want{http.StatusServiceUnavailable, "temporarily_unavailable", kJSON, nil},
			run: func(t *testing.T, g *gw) *reply {
				g.allow5xx.Store(true)
				g.begin()
				// This one holds the only slot until its body deadline.
				held := g.startSlow(http.MethodPost, "/oauth/token", [][2]string{{"Content-Type", "application/x-www-form-urlencoded"}}, 4096, "grant_type=")
				var r *reply
				for end := time.Now().Add(slowFailsafe); ; time.Sleep(10 * time.Millisecond) {
					r = g.postForm("/oauth/token", form("grant_type", "refresh_token", "client_id", "c", "refresh_token", "r"))
					if r.status == http.StatusServiceUnavailable || time.Now().After(end) {
						break
					}
				}
				g.fx["held"] = strconv.Itoa(g.slowAnswer(held, "the slot holder").status)
				return r
			},
			then: func(t *testing.T, g *gw, r *reply) {
				if r.hdr.Get("Retry-After") == "" {
					t.Error("503 without Retry-After")
				}
				if g.fx["held"] != "408" {
					t.Errorf("the slow body that held the slot: %s, want 408", g.fx["held"])
				}
				// The slot is free again once the slow body is cut off.
				if r := g.postForm("/oauth/token", form("grant_type", "refresh_token", "client_id", "c", "refresh_token", "r")); r.status == http.StatusServiceUnavailable {
					t.Errorf("still 503 after the slow body ended: %s", r.body)
				}
			}},

		// ---- test gap: a token verified once, presented after exp + leeway ----
		{name: "check/jwt/cached_after_exp_plus_leeway",
			want: want{http.StatusUnauthorized, "invalid_token", kCheck, nil},
			run: func(t *testing.T, g *gw) *reply {
				// Expired already but within the leeway for about two seconds.
				exp := time.Now().Add(-token.Leeway + 2*time.Second).Truncate(time.Second)
				tok := g.good(func(c *token.Claims) { c.ExpiresAt = jwt.NewNumericDate(exp) })
				g.checkAllowed(t, "alpha", "Bearer "+tok, "alice") // verified, now in the ring's cache
				time.Sleep(time.Until(exp.Add(token.Leeway + 100*time.Millisecond)))
				g.begin()
				return g.check("/alpha/mcp", "Bearer "+tok)
			}},

		// ---- item 6 and the test gap: the CIMD fetcher ----
		cimdGuardCase("localhost", "localhost"),
		cimdGuardCase("loopback_literal", "127.0.0.1"),
		{name: "authorize/cimd_redirect_not_followed", oauth: withDocServer,
			tweak: func(c *config.Config) { c.CIMD.AllowedHosts = []string{"127.0.0.1"} },
			want:  want{http.StatusBadRequest, "", kPage, nil},
			run: func(t *testing.T, g *gw) *reply {
				d := docs(g)
				id := d.ts.URL + "/moved.json"
				d.serveDoc("/target.json", id) // valid for id, were the redirect followed
				d.mux.Handle("/moved.json", http.RedirectHandler("/target.json", http.StatusFound))
				_, ch := pkce()
				g.begin()
				return g.get(g.authzURL(id, loopback, ch, nil))
			},
			then: func(t *testing.T, g *gw, r *reply) {
				d := docs(g)
				if !strings.Contains(string(r.body), "answered a redirect (HTTP 302)") {
					t.Errorf("the page does not say the document URL redirected: %.400s", r.body)
				}
				if d.hitCount("/moved.json") != 1 || d.hitCount("/target.json") != 0 {
					t.Errorf("fetches: moved %d, target %d; want 1 and 0", d.hitCount("/moved.json"), d.hitCount("/target.json"))
				}
			}},

		// ---- also found: what anonymous callers learn about agents ----
		{name: "check/anonymous_same_answer_for_unknown_agent",
			want: want{http.StatusUnauthorized, "unauthorized", kCheck, nil},
			run: func(t *testing.T, g *gw) *reply {
				g.begin()
				known, unknown := g.check("/alpha/mcp", ""), g.check("/zzzzz/mcp", "")
				g.fx["unknown"] = fmt.Sprintf("%d %s %s", unknown.status, unknown.hdr.Get("WWW-Authenticate"), unknown.body)
				g.fx["known"] = fmt.Sprintf("%d %s %s", known.status, strings.ReplaceAll(known.hdr.Get("WWW-Authenticate"), "/alpha/", "/zzzzz/"), known.body)
				return known
			},
			then: func(t *testing.T, g *gw, _ *reply) {
				if g.fx["known"] != g.fx["unknown"] {
					t.Errorf("the Check tells a known agent from an unknown one:\nknown   %s\nunknown %s", g.fx["known"], g.fx["unknown"])
				}
			}},
		{name: "metadata/prm_reveals_no_owner_users_or_upstream",
			want: want{http.StatusOK, "", kStatus, nil},
			run: func(t *testing.T, g *gw) *reply {
				g.begin()
				return g.get("/.well-known/oauth-protected-resource/alpha/mcp")
			},
			then: func(t *testing.T, g *gw, r *reply) {
				for _, s := range []string{"alice", "bob", g.up.ts.URL, strings.TrimPrefix(g.up.ts.URL, "http://")} {
					if strings.Contains(string(r.body), s) {
						t.Errorf("the anonymous resource metadata carries %q: %s", s, r.body)
					}
				}
			}},
	}
}
