// Package login holds the login providers that authenticate users outside
// the gateway: an upstream OpenID Provider (login.provider: oidc) and a
// signed hand-off from the product's web app (login.provider: webapp). Both
// plug into oauthsrv through oauthsrv.LoginProvider and end a successful
// login with Server.CompleteLogin; the built-in users stay in oauthsrv.
//
//	srv, err := oauthsrv.New(oauthsrv.Options{..., Login: login.Provider(cfg, st)})
package login

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/oauthsrv"
	"github.com/mcpgateway/mcp-gateway/store"
)

// Paths the providers mount (relative to the public URL).
const (
	OIDCCallbackPath   = "/login/oidc/callback"
	WebAppCallbackPath = "/login/callback"
)

const (
	// upstreamTimeout bounds every call to an identity provider.
	upstreamTimeout = 10 * time.Second
	// maxUpstreamBody caps what an identity provider may send us.
	maxUpstreamBody = 1 << 20
	maxQueryLen     = 8 << 10
	maxUserIDLen    = 256
)

// Store is what the providers keep: the OIDC state in the pending request,
// used hand-off assertions as markers. store.Store satisfies it.
type Store interface {
	store.AuthRequests
	store.Markers
}

// Option tunes Provider.
type Option func(*options)

type options struct {
	client *http.Client
	log    *slog.Logger
	now    func() time.Time
}

// WithHTTPClient sets the client for calls to the identity provider
// (discovery, keys, token, userinfo). Its Timeout is kept if set; otherwise
// 10 s. Response bodies are capped at 1 MiB either way.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.client = c } }

// WithLogger sets the logger for provider errors (audit lines go through
// the oauthsrv.Server). nil: slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithClock sets the clock used to judge token and assertion lifetimes.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// Provider returns the login-provider constructor for cfg.Login.Provider,
// to pass as oauthsrv.Options.Login. For "builtin" it returns nil:
// oauthsrv then uses its own built-in users. The returned function fails
// for an unknown provider or an unreadable secret.
func Provider(cfg *config.Config, st Store, opts ...Option) func(*oauthsrv.Server) (oauthsrv.LoginProvider, error) {
	o := options{}
	for _, f := range opts {
		f(&o)
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	if o.now == nil {
		o.now = time.Now
	}
	o.client = upstreamClient(o.client)
	switch cfg.Login.Provider {
	case config.LoginBuiltin, "":
		return nil
	case config.LoginOIDC:
		return func(s *oauthsrv.Server) (oauthsrv.LoginProvider, error) {
			if st == nil {
				return nil, errors.New("login: oidc needs a store")
			}
			return newOIDC(s, cfg.Login.OIDC, st, o)
		}
	case config.LoginWebApp:
		return func(s *oauthsrv.Server) (oauthsrv.LoginProvider, error) {
			if st == nil {
				return nil, errors.New("login: webapp needs a store")
			}
			return newWebApp(s, cfg.Login.WebApp, st, o)
		}
	default:
		p := cfg.Login.Provider
		return func(*oauthsrv.Server) (oauthsrv.LoginProvider, error) {
			return nil, fmt.Errorf("login: unknown provider %q (want builtin, oidc or webapp)", p)
		}
	}
}

// upstreamClient copies c (or a new client) with a timeout and a body cap.
func upstreamClient(c *http.Client) *http.Client {
	n := &http.Client{}
	if c != nil {
		*n = *c
	}
	if n.Timeout == 0 {
		n.Timeout = upstreamTimeout
	}
	rt := n.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	n.Transport = capped{rt}
	return n
}

// capped limits response bodies so a hostile provider cannot exhaust memory.
type capped struct{ rt http.RoundTripper }

func (c capped) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.rt.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = limitedBody{Reader: io.LimitReader(resp.Body, maxUpstreamBody), Closer: resp.Body}
	return resp, nil
}

type limitedBody struct {
	io.Reader
	io.Closer
}

// validUserID reports whether s is usable as a gateway user id from an
// identity provider: 1–256 bytes of valid UTF-8, every character visible.
// Spaces, controls, format characters (Cf: zero-width, bidi controls such
// as U+202E, the BOM), private-use and unassigned code points and the other
// default-ignorable characters are refused (UTS #39 §3.1): they would show
// "alice\u200b" as "alice" on consent, /account, the audit log and x-mcp-user.
func validUserID(s string) bool {
	if s == "" || len(s) > maxUserIDLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !store.Visible(r) {
			return false
		}
	}
	return true
}

// numericDateClaims are the registered claims whose value is a NumericDate
// (RFC 7519 §2, §4.1; OIDC Core §2 adds auth_time).
var numericDateClaims = []string{"exp", "nbf", "iat", "auth_time"}

// numericDates checks that the NumericDate claims present in decoded JSON
// claims are JSON numbers: golang-jwt and go-oidc read them through
// json.Number, which also takes a string such as "1700000000".
func numericDates(claims map[string]any) error {
	for _, k := range numericDateClaims {
		if v, ok := claims[k]; ok {
			if _, num := v.(float64); !num {
				return fmt.Errorf("%s is not a JSON number (RFC 7519 NumericDate)", k)
			}
		}
	}
	return nil
}

// validRandom reports whether v looks like a value minted by
// token.Random(32) (43 base64url characters).
func validRandom(v string) bool {
	if len(v) != 43 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// maxLogText caps untrusted upstream text (an identity provider's error
// page quoted in an error) in one log line.
const maxLogText = 512

// trunc makes untrusted text fit for one log line: invalid UTF-8 becomes
// "?", characters that would not show (see store.Visible; a space is kept) are
// written as \u escapes so that "\u202ealice" cannot pass for "alice", and
// the result is cut to at most n bytes, never inside a character or an
// escape, with "…" marking the cut. n is far larger than the mark.
func trunc(s string, n int) string {
	const mark = "…"
	var b strings.Builder
	keep := 0 // how much of b leaves room for the mark
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteByte('?')
		case r == ' ' || store.Visible(r):
			b.WriteString(s[i : i+size])
		case r <= 0xffff:
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			fmt.Fprintf(&b, "\\U%08x", r)
		}
		i += size
		if b.Len() <= n-len(mark) {
			keep = b.Len()
		}
		if b.Len() > n {
			return b.String()[:keep] + mark
		}
	}
	return b.String()
}

// errText is err's message for a log line: errors from the code exchange,
// userinfo and discovery quote the provider's response body (up to 1 MiB).
func errText(err error) string { return trunc(err.Error(), maxLogText) }

// methodNotAllowed answers a page request with the wrong method.
func methodNotAllowed(s *oauthsrv.Server, w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	s.ErrorPage(w, http.StatusMethodNotAllowed, "Method not allowed", "This page does not accept that kind of request.")
}

// unavailable answers a page request when the store failed.
func unavailable(s *oauthsrv.Server, w http.ResponseWriter) {
	w.Header().Set("Retry-After", "5")
	s.ErrorPage(w, http.StatusServiceUnavailable, "Temporarily unavailable", "The service is temporarily unavailable. Please try again in a moment.")
}

// singleQuery parses a callback's query: bounded, every parameter at most
// once. On failure it has written a 400 page.
func singleQuery(s *oauthsrv.Server, w http.ResponseWriter, r *http.Request) (map[string]string, bool) {
	bad := func() (map[string]string, bool) {
		s.ErrorPage(w, http.StatusBadRequest, "Invalid sign-in response", "The sign-in response is malformed. Go back to the application and start again.")
		return nil, false
	}
	if len(r.URL.RawQuery) > maxQueryLen {
		return bad()
	}
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return bad()
	}
	q := make(map[string]string, len(v))
	for k, vs := range v {
		if len(vs) > 1 {
			return bad()
		}
		q[k] = vs[0]
	}
	return q, true
}
