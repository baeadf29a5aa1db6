package login

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/token"
)

// hostileOP is an OpenID Provider under the test's control. It follows the
// protocol (discovery, keys, a code for the state and nonce it was sent, a
// signed ID token) but signs whatever claims the test sets and serves
// whatever userinfo answer it is given: a provider that is compromised,
// buggy, or lets users edit their own profile claims.
type hostileOP struct {
	t   *testing.T
	url string

	mu        sync.Mutex
	nonces    map[string]string               // code → nonce
	claims    func(c jwt.MapClaims)           // edits each ID token's claims
	header    func(h map[string]any)          // edits each ID token's header
	userinfo  func(sub string) map[string]any // nil: the endpoint answers 404
	tokenFail func(w http.ResponseWriter)     // answers the token request instead
	infoFail  func(w http.ResponseWriter)     // answers the userinfo request instead
}

const hostileSub = "u-mallory"

// hostileKey is the provider's RSA key, made once for every test.
var hostileKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func newHostileOP(t *testing.T) *hostileOP {
	o := &hostileOP{t: t, nonces: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", o.discovery)
	mux.HandleFunc("GET /keys", o.keys)
	mux.HandleFunc("GET /authorize", o.authorize)
	mux.HandleFunc("POST /token", o.token)
	mux.HandleFunc("GET /userinfo", o.userinfoEndpoint)
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	o.url = ts.URL
	return o
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (o *hostileOP) discovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, map[string]any{
		"issuer": o.url, "authorization_endpoint": o.url + "/authorize", "token_endpoint": o.url + "/token",
		"jwks_uri": o.url + "/keys", "userinfo_endpoint": o.url + "/userinfo",
		"response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
	})
}

func (o *hostileOP) keys(w http.ResponseWriter, _ *http.Request) {
	pub := hostileKey().PublicKey
	b64 := base64.RawURLEncoding.EncodeToString
	writeJSON(w, map[string]any{"keys": []any{map[string]any{
		"kty": "RSA", "kid": "hostile-1", "use": "sig", "alg": "RS256",
		"n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes()),
	}}})
}

// authorize signs the user in at once and sends the browser back.
func (o *hostileOP) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	code := token.Random(16)
	o.mu.Lock()
	o.nonces[code] = q.Get("nonce")
	o.mu.Unlock()
	back, err := url.Parse(q.Get("redirect_uri"))
	if err != nil {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	back.RawQuery = url.Values{"code": {code}, "state": {q.Get("state")}}.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

func (o *hostileOP) token(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	nonce, ok := o.nonces[r.PostFormValue("code")]
	delete(o.nonces, r.PostFormValue("code"))
	edit, fail, hdr := o.claims, o.tokenFail, o.header
	o.mu.Unlock()
	if fail != nil {
		fail(w)
		return
	}
	if !ok {
		w.WriteHeader(http.StatusBadRequest)
		writeJSON(w, map[string]string{"error": "invalid_grant"})
		return
	}
	now := time.Now()
	c := jwt.MapClaims{
		"iss": o.url, "sub": hostileSub, "aud": opClientID, "nonce": nonce,
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
	}
	if edit != nil {
		edit(c)
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	t.Header["kid"] = "hostile-1"
	if hdr != nil {
		hdr(t.Header)
	}
	idt, err := t.SignedString(hostileKey())
	if err != nil {
		o.t.Error(err)
		http.Error(w, "cannot sign", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, map[string]any{"access_token": token.Random(16), "token_type": "Bearer", "expires_in": 300, "id_token": idt})
}

func (o *hostileOP) userinfoEndpoint(w http.ResponseWriter, _ *http.Request) {
	o.mu.Lock()
	ui, fail := o.userinfo, o.infoFail
	o.mu.Unlock()
	if fail != nil {
		fail(w)
		return
	}
	if ui == nil {
		http.NotFound(w, nil)
		return
	}
	writeJSON(w, ui(hostileSub))
}

// hostileEnv is a gateway whose login provider is a hostile OP.
type hostileEnv struct {
	*gateway
	op *hostileOP
}

func newHostileEnv(t *testing.T, tweak func(*config.OIDCLogin)) *hostileEnv {
	t.Helper()
	o := newHostileOP(t)
	g := newGateway(t, func(cfg *config.Config) {
		cfg.Login.Provider = config.LoginOIDC
		cfg.Login.OIDC.Issuer = o.url
		cfg.Login.OIDC.ClientID = opClientID
		cfg.Login.OIDC.ClientSecret = opClientSecret
		if tweak != nil {
			tweak(&cfg.Login.OIDC)
		}
	})
	return &hostileEnv{gateway: g, op: o}
}

// login runs authorize → provider → callback and returns where the gateway
// sent the browser (consent page, client redirect or an error page).
func (e *hostileEnv) login() (*browser, *flow, *http.Response) {
	e.t.Helper()
	b := newBrowser(e.t)
	u, f := e.authorizeURL()
	return b, f, b.follow(b.get(u), atClient, nil)
}
