package login

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/oauthsrv"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

const (
	// maxAssertionLife is how long after iat an assertion's exp may be at most.
	maxAssertionLife = 60 * time.Second
	// assertionLeeway absorbs clock skew between the web app and us.
	assertionLeeway = 5 * time.Second
	maxAssertionLen = 4096
	maxJTILen       = 128
)

// webAppLogin hands the login to the product's web app: the browser goes to
// login_url with the pending request id and comes back to /login/callback
// with an HS256 assertion naming the user (login/README.md has the contract).
type webAppLogin struct {
	s        *oauthsrv.Server
	marks    store.Markers
	issuer   string // the web app's iss
	audience string // our issuer
	secret   []byte
	loginURL *url.URL
	returnTo string
	log      *slog.Logger
	now      func() time.Time
}

func newWebApp(s *oauthsrv.Server, cfg config.WebAppLogin, marks store.Markers, o options) (*webAppLogin, error) {
	secret, err := cfg.ResolveSecret()
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(cfg.LoginURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("login: login.webapp.login_url %q is not an absolute http(s) URL", cfg.LoginURL)
	}
	if cfg.Issuer == "" {
		return nil, errors.New("login: login.webapp.issuer is required")
	}
	return &webAppLogin{
		s: s, marks: marks, issuer: cfg.Issuer, audience: s.Issuer(), secret: secret, loginURL: u,
		returnTo: s.Issuer() + WebAppCallbackPath, log: o.log, now: o.now,
	}, nil
}

func (l *webAppLogin) Routes() map[string]http.Handler {
	return map[string]http.Handler{WebAppCallbackPath: http.HandlerFunc(l.callback)}
}

func (l *webAppLogin) Start(w http.ResponseWriter, r *http.Request, p *store.AuthRequest) {
	u := *l.loginURL
	q := u.Query()
	q.Set("request", p.ID)
	q.Set("return_to", l.returnTo)
	u.RawQuery = q.Encode()
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// callback receives ?request=<pending id>&assertion=<JWT>, or
// ?request=…&error=access_denied when the user gave up at the web app.
// GET only: the browser-binding cookie is SameSite=Lax, so a cross-site
// POST would arrive without it.
func (l *webAppLogin) callback(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet { // not HEAD either: the callback has effects
		methodNotAllowed(l.s, w, "GET")
		return
	}
	ctx := r.Context()
	q, ok := singleQuery(l.s, w, r)
	if !ok {
		return
	}
	p, ok := l.s.Pending(w, r, q["request"]) // this browser started it
	if !ok {
		return
	}
	attrs := []slog.Attr{slog.String("provider", config.LoginWebApp)}
	if e := q["error"]; e != "" {
		l.s.FailLogin(w, r, p, "access_denied", "the user did not sign in",
			append(attrs, slog.String("reason", "webapp_error"), slog.String("upstream_error", trunc(e, 64)))...)
		return
	}
	raw := q["assertion"]
	if raw == "" {
		l.s.ErrorPage(w, http.StatusBadRequest, "Invalid sign-in response", "The web app sent no sign-in assertion. Go back to the application and start again.")
		return
	}
	c, err := l.verify(raw, p.ID)
	if err != nil {
		l.log.Warn("web-app assertion rejected", "client_id", p.ClientID, "err", errText(err))
		l.s.Audit(ctx, "login_failed", slog.String("provider", config.LoginWebApp), slog.String("client_id", p.ClientID),
			slog.String("ip", l.s.ClientIP(r)), slog.String("reason", "bad_assertion"), slog.String("detail", trunc(err.Error(), 200)))
		l.s.ErrorPage(w, http.StatusBadRequest, "Sign-in failed",
			"The sign-in answer from the web app could not be verified. Go back to the application and start again.")
		return
	}
	// Single use: the first presentation of a jti wins, on any replica.
	ttl := max(c.ExpiresAt.Time.Add(assertionLeeway).Sub(l.now()), time.Second)
	first, err := l.marks.MarkOnce(ctx, "login-assertion:"+token.Hash(l.issuer+"\x00"+c.ID), ttl)
	if err != nil {
		l.log.Error("store operation failed", "op", "mark_once", "err", err)
		unavailable(l.s, w)
		return
	}
	if !first {
		l.s.Audit(ctx, "login_failed", slog.String("provider", config.LoginWebApp), slog.String("client_id", p.ClientID),
			slog.String("ip", l.s.ClientIP(r)), slog.String("reason", "assertion_replayed"), slog.String("user", c.Subject))
		l.s.ErrorPage(w, http.StatusBadRequest, "Sign-in link already used",
			"This sign-in answer was already used. Go back to the application and start again.")
		return
	}
	l.s.CompleteLoginGroups(w, r, p.ID, c.Subject, c.Groups)
}

// assertion is the web app's JWT.
type assertion struct {
	jwt.RegisteredClaims
	Request string `json:"request"`
	// Groups, optional, are the user's groups for the access token's
	// groups claim (store.NormalizeGroups: at most 64, each 1–128
	// printable bytes); an assertion with bad groups is refused whole.
	Groups []string `json:"groups,omitempty"`
}

// UnmarshalJSON decodes the claims, refusing NumericDates (exp, iat, nbf)
// given as strings, which jwt.NumericDate would accept.
func (a *assertion) UnmarshalJSON(b []byte) error {
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if err := numericDates(raw); err != nil {
		return err
	}
	type plain assertion // without this method
	return json.Unmarshal(b, (*plain)(a))
}

// keyFor returns the shared secret for an HS256 assertion without critical
// header parameters: RFC 7515 §4.1.11 says a recipient that does not
// understand a "crit" extension must reject the JWS, and we understand none.
func (l *webAppLogin) keyFor(t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		return nil, errors.New(`"crit" header parameter: no extension is understood`)
	}
	return l.secret, nil
}

// verify checks the assertion for pending request id: HS256 with our
// secret, iss, aud, a short exp, the request, a sane sub and a jti.
func (l *webAppLogin) verify(raw, id string) (*assertion, error) {
	if len(raw) > maxAssertionLen {
		return nil, errors.New("assertion too long")
	}
	var c assertion
	_, err := jwt.ParseWithClaims(raw, &c, l.keyFor,
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(l.issuer),
		jwt.WithAudience(l.audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(assertionLeeway),
		jwt.WithTimeFunc(l.now),
	)
	if err != nil {
		return nil, err
	}
	switch {
	case c.IssuedAt == nil:
		return nil, errors.New("iat is required")
	case c.ExpiresAt.Sub(c.IssuedAt.Time) > maxAssertionLife:
		return nil, fmt.Errorf("exp is more than %v after iat", maxAssertionLife)
	case c.ExpiresAt.Before(c.IssuedAt.Time):
		return nil, errors.New("exp is before iat")
	case subtle.ConstantTimeCompare([]byte(c.Request), []byte(id)) != 1:
		return nil, errors.New("request claim does not name this sign-in request")
	case !validUserID(c.Subject):
		return nil, errors.New("sub is missing or not a usable user id")
	case c.ID == "" || len(c.ID) > maxJTILen:
		return nil, errors.New("jti is missing or too long")
	}
	groups, err := store.NormalizeGroups(c.Groups)
	if err != nil {
		return nil, fmt.Errorf("groups claim: %w", err)
	}
	c.Groups = groups
	return &c, nil
}
