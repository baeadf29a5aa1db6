// Package config loads the gateway's one YAML file and lets MCPGW_* environment
// variables override any field. Every invalid value is reported with the name of
// its field.
package config

import (
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/mcpgateway/mcp-gateway/store"
)

// Duration is a time.Duration written as "60m", "120s" in YAML and env.
type Duration time.Duration

func (d Duration) D() time.Duration { return time.Duration(d) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration string like \"60m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Config is the whole configuration. JSON names are the YAML keys; the env
// name of a field is MCPGW_ + its upper-cased path joined by "_"
// (listen.http → MCPGW_LISTEN_HTTP). Lists of strings are comma-separated in
// env; lists of objects are JSON.
type Config struct {
	// PublicURL is the externally visible base URL; it is the issuer and the
	// base of every resource URL. No trailing slash.
	PublicURL   string        `json:"public_url"`
	Listen      Listen        `json:"listen"`
	HTTPLimits  HTTPLimits    `json:"http_limits"`
	Store       Store         `json:"store"`
	SigningKeys []SigningKey  `json:"signing_keys"`
	TTL         TTL           `json:"ttl"`
	Login       Login         `json:"login"`
	Scopes      Scopes        `json:"scopes"`
	CORS        CORS          `json:"cors"`
	AdminToken  string        `json:"admin_token"`
	Agents      []StaticAgent `json:"agents"`
	RateLimit   RateLimit     `json:"rate_limit"`
	// TrustedProxies are CIDRs of the proxies that may set X-Forwarded-For:
	// from any other peer the header is ignored.
	TrustedProxies []string `json:"trusted_proxies"`
	// TrustedHops is how many proxies in front of the gateway append to
	// X-Forwarded-For: the client is that many entries from its right end.
	// Entries further left are written by the client and never believed
	// (as Envoy's xff_num_trusted_hops, which counts one fewer).
	TrustedHops int   `json:"trusted_hops"`
	Cache       Cache `json:"cache"`
	// CIMD: client_ids that are https URLs of Client ID Metadata Documents.
	CIMD CIMD `json:"cimd"`
	// Clients: hygiene of dynamically registered clients.
	Clients Clients `json:"clients"`
	// XDS: the Envoy control plane (ADS) in serve, and envoy-config.
	XDS XDS `json:"xds"`
	// AgentOrigins: browser origins (scheme://host[:port]) that may call
	// /<agent>/mcp besides public_url's own; any other Origin is refused
	// (the MCP transport's DNS-rebinding defence). A request without Origin
	// (not a browser) is unaffected. "*" admits every origin. See origins.go.
	AgentOrigins []string `json:"agent_origins"`

	// AssertionKeys sign the x-mcp-identity assertion agents receive (ES256:
	// P-256 PEM files written by `mcp-gateway keys gen-assertion`). The first
	// signs, all are published at /.well-known/jwks.json: rotate by
	// prepending. Empty: one key is derived from each signing key.
	AssertionKeys []AssertionKey `json:"assertion_keys"`
	// UpstreamSecrets: where agents' upstream credentials (upstream_auth
	// secret_file) are read, and how often a file is re-read for rotation.
	UpstreamSecrets UpstreamSecrets `json:"upstream_secrets"`
}

// UpstreamSecrets locates agents' upstream secrets.
type UpstreamSecrets struct {
	Dir     string   `json:"dir"`     // absolute; secret_file names a file in it
	Refresh Duration `json:"refresh"` // a file is re-read at most this often
}

// validateUpstreamAuth: a secret file can only be in the directory. The
// reference itself is StaticAgent.Validate's.
func (c *Config) validateUpstreamAuth(bad func(field, format string, a ...any)) {
	if c.UpstreamSecrets.Refresh < Duration(time.Second) || c.UpstreamSecrets.Refresh > Duration(10*time.Minute) {
		bad("upstream_secrets.refresh", "must be between 1s and 10m")
	}
	if d := c.UpstreamSecrets.Dir; d != "" && !filepath.IsAbs(d) {
		bad("upstream_secrets.dir", "%q must be an absolute path", d)
	}
	for i, a := range c.Agents {
		if u := a.UpstreamAuth; u != nil && u.SecretFile != "" && c.UpstreamSecrets.Dir == "" {
			bad(fmt.Sprintf("agents[%d].upstream_auth.secret_file", i), "needs upstream_secrets.dir")
		}
	}
}

// AssertionKey is one identity-assertion signing key.
type AssertionKey struct {
	ID             string `json:"id"`
	PrivateKeyFile string `json:"private_key_file"`
}

// validateAssertionKeys: unique non-empty ids, a file each.
func (c *Config) validateAssertionKeys(bad func(field, format string, a ...any)) {
	seen := map[string]bool{}
	for i, k := range c.AssertionKeys {
		f := fmt.Sprintf("assertion_keys[%d]", i)
		switch {
		case k.ID == "" || len(k.ID) > 128:
			bad(f+".id", "required, at most 128 characters")
		case seen[k.ID]:
			bad(f+".id", "%q used twice", k.ID)
		}
		seen[k.ID] = true
		if k.PrivateKeyFile == "" {
			bad(f+".private_key_file", "required (mcp-gateway keys gen-assertion writes one)")
		}
	}
}

type Listen struct {
	HTTP  string `json:"http"`
	GRPC  string `json:"grpc"`
	Admin string `json:"admin"`
}

// HTTPLimits bound slow clients on every HTTP listener (public and admin):
// a trickled request body holds a connection and a goroutine only so long,
// and only so many at once.
type HTTPLimits struct {
	// BodyTimeout is how long a request body may take to arrive in full,
	// from the end of its headers; slower ones are cut off (408).
	BodyTimeout Duration `json:"body_timeout"`
	// MaxBodyReads caps the request bodies being received at once per
	// listener; beyond it a request with a body gets 503 + Retry-After.
	MaxBodyReads int `json:"max_body_reads"`
	// IdleTimeout closes a keep-alive connection idle this long.
	IdleTimeout Duration `json:"idle_timeout"`
}

type Store struct {
	// URL is "memory" or a Redis URL naming its mode: one server
	// (redis://user:pass@host:6379/0, rediss:// for TLS), a Redis Cluster
	// (redis-cluster://user:pass@host:7000?addr=host2:7001, rediss-cluster://)
	// or a Sentinel-managed primary
	// (redis-sentinel://host:26379/0?master_name=mymaster&addr=host2:26379,
	// rediss-sentinel://).
	URL    string `json:"url"`
	Prefix string `json:"prefix"`
}

// Store URL schemes, by mode (store/redisstore.Dial reads them).
var storeSchemes = map[string]string{
	"redis": "single", "rediss": "single", "unix": "single",
	"redis-cluster": "cluster", "rediss-cluster": "cluster",
	"redis-sentinel": "sentinel", "rediss-sentinel": "sentinel",
}

// validateStore checks store.url's scheme and what a Redis Cluster cannot
// do: a database other than 0, and a prefix with '{' or '}' (the first
// "{…}" of a key picks its hash slot, and the store's tags must be it).
func (c *Config) validateStore(bad func(field, format string, a ...any)) {
	if c.Store.URL == "memory" {
		return
	}
	u, err := url.Parse(c.Store.URL)
	if err != nil || storeSchemes[u.Scheme] == "" {
		bad("store.url", "want \"memory\" or a redis://, rediss://, unix://, redis-cluster://, rediss-cluster://, redis-sentinel:// or rediss-sentinel:// URL")
		return
	}
	if storeSchemes[u.Scheme] != "cluster" {
		return
	}
	if p := strings.Trim(u.Path, "/"); p != "" && p != "0" {
		bad("store.url", "a Redis Cluster has only database 0")
	}
	if strings.ContainsAny(c.Store.Prefix, "{}") {
		bad("store.prefix", "must not contain '{' or '}' on a Redis Cluster (they would pick the keys' hash slot)")
	}
}

type SigningKey struct {
	ID         string `json:"id"`
	Secret     string `json:"secret,omitempty"`
	SecretFile string `json:"secret_file,omitempty"`
}

type TTL struct {
	Access       Duration `json:"access"`
	Code         Duration `json:"code"`
	Refresh      Duration `json:"refresh"`
	Session      Duration `json:"session"`
	AuthRequest  Duration `json:"auth_request"`
	RefreshGrace Duration `json:"refresh_grace"`
}

type Login struct {
	Provider string `json:"provider"` // "builtin", "oidc" or "webapp"
	Users    []User `json:"users"`
	// OIDC and WebApp configure those providers (config/login.go).
	OIDC   OIDCLogin   `json:"oidc"`
	WebApp WebAppLogin `json:"webapp"`
}

// User is a built-in login user; PasswordHash is bcrypt (mcp-gateway hash-password).
type User struct {
	Username     string `json:"username"`
	PasswordHash string `json:"password_hash"`
	// Groups, optional, go into the user's access tokens (groups claim),
	// for tool-policy rules naming groups: at most 64, each 1–128
	// printable bytes.
	Groups []string `json:"groups,omitempty"`
}

type CORS struct {
	AllowedOrigins []string `json:"allowed_origins"`
}

// StaticAgent is an agent declared in the config file, and the admin
// API's create body: the declared fields (store.AgentSpec, promoted so
// the YAML and JSON keys stay flat) with their validation (Validate). In
// the config file, rule scopes must also be declared in its scopes.
type StaticAgent struct {
	store.AgentSpec
}

// RateLimit: requests per client IP per minute; 0 disables that limit.
type RateLimit struct {
	Register  int `json:"register"`
	Token     int `json:"token"`
	Authorize int `json:"authorize"`
	Login     int `json:"login"`
	// LoginPerUser caps failed logins per (IP, username) per 15 minutes,
	// and per username from browsers that never signed in as that user.
	LoginPerUser int `json:"login_per_user"`
	// AdminAuth caps failed admin-token authentications per IP per minute.
	AdminAuth int `json:"admin_auth"`
	// Introspect: /oauth/introspect calls per client IP per minute.
	Introspect int `json:"introspect"`
}

// Cache bounds the in-process caches of API keys and agents.
type Cache struct {
	TTL     Duration `json:"ttl"`
	MaxSize int      `json:"max_size"`
}

// CIMD configures Client ID Metadata Documents
// (draft-ietf-oauth-client-id-metadata-document): a client_id that is an
// https URL is fetched instead of looked up.
type CIMD struct {
	Enabled bool `json:"enabled"`
	// AllowedHosts are hostnames or CIDRs that may be fetched although they
	// are (or resolve to) loopback, private or link-local addresses.
	AllowedHosts []string `json:"allowed_hosts"`
	Timeout      Duration `json:"timeout"`
	MaxBytes     int      `json:"max_bytes"`
}

// Clients bounds dynamically registered clients.
type Clients struct {
	// IdleTTL: a registered client unused this long is deleted; any use
	// renews it. 0: registered clients never expire.
	IdleTTL Duration `json:"idle_ttl"`
	// MaxPerIP caps the live clients registered from one IP; 0: no cap.
	MaxPerIP int `json:"max_per_ip"`
	// AllowedSchemes are custom redirect URI schemes accepted besides https,
	// loopback http and reverse-DNS private-use schemes (RFC 8252 §7.1),
	// for native apps that register a plain scheme (Cursor: cursor://).
	AllowedSchemes []string `json:"allowed_schemes"`
}

const (
	// MaxTrustedHops bounds trusted_hops: no real chain of proxies is longer.
	MaxTrustedHops = 10
	// MinAdminTokenLen is the shortest admin token serve accepts, as for
	// signing keys: a guessable token would open the whole admin API.
	MinAdminTokenLen = 32
)

// XDS configures the ADS server that sends Envoy its listeners, routes and
// clusters built from the agent registry (package xds), and the static
// bootstrap `mcp-gateway envoy-config` prints.
type XDS struct {
	// Listen is the ADS gRPC listener; "" disables it.
	Listen string `json:"listen"`
	TLS    XDSTLS `json:"tls"`
	// Mode: "grpc" (ext_authz to the Check) or "http-service" (/authz/check).
	Mode string `json:"mode"`
	// GatewayHTTP and GatewayGRPC: host:port at which Envoy reaches
	// listen.http and listen.grpc (default 127.0.0.1 and their ports).
	GatewayHTTP string `json:"gateway_http"`
	GatewayGRPC string `json:"gateway_grpc"`
	// UpstreamCAFile validates https agents (default: the system roots).
	UpstreamCAFile string `json:"upstream_ca_file"`
	// AllowedUpstreamHosts: hostnames, IPs or CIDRs agents may use as
	// upstream although loopback, link-local or cloud metadata.
	AllowedUpstreamHosts []string `json:"allowed_upstream_hosts"`
}

// XDSTLS: the ADS listener's certificate; with ClientCAFile, Envoy must
// present a certificate signed by it (mutual TLS).
type XDSTLS struct {
	CertFile     string `json:"cert_file"`
	KeyFile      string `json:"key_file"`
	ClientCAFile string `json:"client_ca_file"`
}

// Default returns the defaults every loaded config starts from.
func Default() *Config {
	return &Config{
		PublicURL: "http://127.0.0.1:8000",
		Listen:    Listen{HTTP: ":8080", GRPC: ":9191", Admin: "127.0.0.1:9090"},
		Store:     Store{URL: "memory", Prefix: "mcpgw:"},
		TTL: TTL{
			Access:       Duration(60 * time.Minute),
			Code:         Duration(120 * time.Second),
			Refresh:      Duration(30 * 24 * time.Hour),
			Session:      Duration(12 * time.Hour),
			AuthRequest:  Duration(10 * time.Minute),
			RefreshGrace: Duration(5 * time.Second),
		},
		HTTPLimits: HTTPLimits{
			BodyTimeout: Duration(10 * time.Second), MaxBodyReads: 256, IdleTimeout: Duration(2 * time.Minute),
		},
		Login:     Login{Provider: "builtin", OIDC: defaultOIDC()},
		Scopes:    Scopes{{Name: "mcp", Description: DefaultMCPScopeDescription}},
		CORS:      CORS{AllowedOrigins: []string{"*"}},
		RateLimit: RateLimit{Register: 20, Token: 120, Authorize: 60, Login: 30, LoginPerUser: 10, AdminAuth: 10, Introspect: 600},
		Cache:     Cache{TTL: Duration(30 * time.Second), MaxSize: 10000},
		CIMD:      CIMD{Enabled: true, Timeout: Duration(5 * time.Second), MaxBytes: 5 << 10},
		Clients:   Clients{IdleTTL: Duration(30 * 24 * time.Hour), MaxPerIP: 50, AllowedSchemes: []string{"cursor"}},

		XDS: XDS{Listen: ":18000", Mode: "grpc"},

		TrustedHops: 1,

		UpstreamSecrets: UpstreamSecrets{Refresh: Duration(10 * time.Second)},
	}
}

// Load reads path (optional: "" means defaults only), then applies the
// environment (os.LookupEnv) and validates. dev relaxes the signing-key rule:
// the dev command generates a key when none is set.
func Load(path string, dev bool) (*Config, error) {
	var b []byte
	if path != "" {
		var err error
		if b, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	return Parse(path, b, os.LookupEnv, dev)
}

// Parse does Load's work on YAML already read (name labels its errors):
// strict YAML over the defaults, then the MCPGW_* variables lookup finds,
// then Validate. The shipped deployments' tests load their configs through it
// with the environment their containers set.
func Parse(name string, y []byte, lookup func(string) (string, bool), dev bool) (*Config, error) {
	c := Default()
	if err := yaml.UnmarshalStrict(y, c); err != nil {
		return nil, fmt.Errorf("config %s: %w", name, yamlError(y, err))
	}
	if err := ApplyEnv(c, lookup); err != nil {
		return nil, err
	}
	if err := c.Validate(dev); err != nil {
		return nil, err
	}
	return c, nil
}

// ApplyEnv overrides fields from MCPGW_* variables found by lookup.
func ApplyEnv(c *Config, lookup func(string) (string, bool)) error {
	return applyEnv(reflect.ValueOf(c).Elem(), "MCPGW", "", lookup)
}

func applyEnv(v reflect.Value, envPrefix, fieldPath string, lookup func(string) (string, bool)) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("json"), ",")[0]
		env := envPrefix + "_" + strings.ToUpper(name)
		path := name
		if fieldPath != "" {
			path = fieldPath + "." + name
		}
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct && f.Type != reflect.TypeFor[Duration]() {
			if err := applyEnv(fv, env, path, lookup); err != nil {
				return err
			}
			continue
		}
		s, ok := lookup(env)
		if !ok {
			continue
		}
		if err := setFromString(fv, s); err != nil {
			return fmt.Errorf("config: %s (from %s): %w", path, env, err)
		}
	}
	return nil
}

func setFromString(v reflect.Value, s string) error {
	switch {
	case v.Type() == reflect.TypeFor[Duration]():
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(Duration(d)))
	case v.Kind() == reflect.String:
		v.SetString(s)
	case v.CanAddr() && v.Addr().Type().Implements(reflect.TypeFor[encoding.TextUnmarshaler]()):
		return v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s))
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("want true or false: %w", err)
		}
		v.SetBool(b)
	case v.Kind() == reflect.Int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("want an integer: %w", err)
		}
		v.SetInt(int64(n))
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		var out []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		v.Set(reflect.ValueOf(out))
	case v.Kind() == reflect.Slice:
		p := reflect.New(v.Type())
		if err := json.Unmarshal([]byte(s), p.Interface()); err != nil {
			return fmt.Errorf("want a JSON list: %w", err)
		}
		v.Set(p.Elem())
	default:
		return fmt.Errorf("unsupported field type %s", v.Type())
	}
	return nil
}

// Validate checks every field and names the first wrong one.
func (c *Config) Validate(dev bool) error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("config: %s: %s", field, fmt.Sprintf(format, a...)))
	}
	if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("public_url", "%q is not an absolute http(s) URL", c.PublicURL)
	} else if strings.HasSuffix(c.PublicURL, "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		// Userinfo would travel into every issuer, audience and metadata
		// URL, and clients refuse (or leak) credentials in URLs.
		bad("public_url", "%q must have no user info, trailing slash, query or fragment", c.PublicURL)
	} else if p := u.EscapedPath(); p != u.Path || (p != "" && path.Clean(p) != p) {
		// A path is copied as is into every resource and metadata URL
		// (internal/resource) and compared with decoded request paths:
		// it must have one spelling only.
		bad("public_url", "%q: its path must be plain segments, without percent-encoding, dot or empty segments", c.PublicURL)
	}
	for name, a := range map[string]string{"listen.http": c.Listen.HTTP, "listen.grpc": c.Listen.GRPC, "listen.admin": c.Listen.Admin} {
		if a == "" {
			continue // disabled
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			bad(name, "%q is not host:port", a)
		}
	}
	if c.HTTPLimits.BodyTimeout <= 0 || c.HTTPLimits.BodyTimeout.D() > 10*time.Minute {
		bad("http_limits.body_timeout", "must be between 0 and 10m")
	}
	if c.HTTPLimits.MaxBodyReads < 1 {
		bad("http_limits.max_body_reads", "must be at least 1")
	}
	if c.HTTPLimits.IdleTimeout <= 0 {
		bad("http_limits.idle_timeout", "must be positive")
	}
	c.validateStore(bad)
	if len(c.SigningKeys) == 0 && !dev {
		bad("signing_keys", "at least one key is required (id + secret or secret_file of ≥ 32 bytes)")
	}
	seen := map[string]bool{}
	for i, k := range c.SigningKeys {
		f := fmt.Sprintf("signing_keys[%d]", i)
		if k.ID == "" {
			bad(f+".id", "required")
		} else if seen[k.ID] {
			bad(f+".id", "%q used twice", k.ID)
		}
		seen[k.ID] = true
		if (k.Secret == "") == (k.SecretFile == "") {
			bad(f, "set exactly one of secret and secret_file")
		}
	}
	for name, d := range map[string]Duration{"ttl.access": c.TTL.Access, "ttl.code": c.TTL.Code, "ttl.refresh": c.TTL.Refresh, "ttl.session": c.TTL.Session, "ttl.auth_request": c.TTL.AuthRequest} {
		if d <= 0 {
			bad(name, "must be positive")
		}
	}
	if c.TTL.RefreshGrace < 0 || c.TTL.RefreshGrace.D() > time.Minute {
		bad("ttl.refresh_grace", "must be between 0 and 1m")
	}
	c.Login.validate(bad)
	for i, u := range c.Login.Users {
		if u.Username == "" {
			bad(fmt.Sprintf("login.users[%d].username", i), "required")
		}
		if !strings.HasPrefix(u.PasswordHash, "$2") {
			bad(fmt.Sprintf("login.users[%d].password_hash", i), "want a bcrypt hash (mcp-gateway hash-password)")
		}
		if _, err := store.NormalizeGroups(u.Groups); err != nil {
			bad(fmt.Sprintf("login.users[%d].groups", i), "%v", err)
		}
	}
	c.Scopes.validate(bad)
	for i := range c.Agents {
		// The admin API's rules (StaticAgent.Validate), then what needs the
		// rest of the file: rule scopes must be declared.
		a := &c.Agents[i]
		f := fmt.Sprintf("agents[%d]", i)
		if err := a.Validate(); err != nil {
			agentField(f, err, bad)
		}
		for j, r := range a.Rules {
			for k, sc := range r.Scopes {
				if !slices.Contains(c.ScopeNames(), sc) {
					bad(fmt.Sprintf("%s.rules[%d].scopes[%d]", f, j, k), "%q is not a declared scope", sc)
				}
			}
		}
	}
	// Client addresses behind proxies, and the admin token's strength.
	for i, p := range c.TrustedProxies {
		if _, _, err := net.ParseCIDR(p); err != nil {
			bad(fmt.Sprintf("trusted_proxies[%d]", i), "%q is not a CIDR", p)
		}
	}
	if c.TrustedHops < 1 || c.TrustedHops > MaxTrustedHops {
		bad("trusted_hops", "must be between 1 and %d (the proxies that append to X-Forwarded-For)", MaxTrustedHops)
	}
	if !dev && c.AdminToken != "" && len(c.AdminToken) < MinAdminTokenLen {
		bad("admin_token", "is %d bytes, need at least %d (e.g. head -c 32 /dev/urandom | base64)", len(c.AdminToken), MinAdminTokenLen)
	}
	if c.Cache.TTL <= 0 || c.Cache.MaxSize <= 0 {
		bad("cache", "ttl and max_size must be positive")
	}
	if c.CIMD.Timeout <= 0 || c.CIMD.Timeout.D() > time.Minute {
		bad("cimd.timeout", "must be between 0 and 1m")
	}
	if c.CIMD.MaxBytes < 512 || c.CIMD.MaxBytes > 1<<20 {
		bad("cimd.max_bytes", "must be between 512 and 1048576")
	}
	for i, h := range c.CIMD.AllowedHosts {
		if !validHostOrCIDR(h) {
			bad(fmt.Sprintf("cimd.allowed_hosts[%d]", i), "%q is not a hostname, IP address or CIDR", h)
		}
	}
	validateAgentOrigins(c.AgentOrigins, bad)
	if c.Clients.IdleTTL < 0 {
		bad("clients.idle_ttl", "must not be negative (0: never expire)")
	}
	if c.Clients.MaxPerIP < 0 {
		bad("clients.max_per_ip", "must not be negative (0: no cap)")
	}
	// clients.allowed_schemes: plain custom schemes a native app may
	// register; never one that runs code or a system handler.
	for i, sc := range c.Clients.AllowedSchemes {
		field := fmt.Sprintf("clients.allowed_schemes[%d]", i)
		switch {
		case !validScheme(sc):
			bad(field, "%q is not a lower-case URI scheme (RFC 3986: a letter, then letters, digits, '+', '-', '.')", sc)
		case sc == "http" || sc == "https":
			bad(field, "%q is always allowed under its own rules; list only custom schemes", sc)
		case RefusedRedirectScheme(sc):
			bad(field, "%q can run code or launch a system handler and is never allowed", sc)
		}
	}
	c.XDS.validate(bad)
	c.validateAssertionKeys(bad)
	c.validateUpstreamAuth(bad)
	return errors.Join(errs...)
}

// refusedSchemes can run code, read local data, launch system handlers or
// are no redirect target at all.
var refusedSchemes = map[string]bool{
	"javascript": true, "data": true, "file": true, "vbscript": true, "blob": true, "about": true,
	"filesystem": true, "view-source": true, "jar": true, "mailto": true, "tel": true, "sms": true,
	"ftp": true, "ws": true, "wss": true, "intent": true, "search-ms": true, "search": true,
	"shell": true, "res": true, "mk": true, "its": true, "ms-its": true, "hcp": true, "chrome": true,
	"chrome-extension": true, "moz-extension": true, "resource": true, "x-apple.systempreferences": true,
}

// RefusedRedirectScheme reports whether a redirect URI scheme (lower-case)
// is refused whatever the configuration says: the list above and every
// ms-* scheme (Windows protocol handlers: ms-msdt, ms-officecmd, …).
func RefusedRedirectScheme(scheme string) bool {
	return refusedSchemes[scheme] || strings.HasPrefix(scheme, "ms-")
}

// validScheme: RFC 3986 scheme syntax, lower-case, at most 64 bytes.
func validScheme(s string) bool {
	if s == "" || len(s) > 64 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '+' || b == '-' || b == '.') {
			return false
		}
	}
	return true
}

// validHostOrCIDR: an IP, a CIDR or a DNS hostname (letters, digits, '-', '.').
func validHostOrCIDR(h string) bool {
	if _, _, err := net.ParseCIDR(h); err == nil {
		return true
	}
	if net.ParseIP(h) != nil {
		return true
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// reservedAgentIDs are the first path segments the gateway itself serves:
// an agent by one of these names would be shadowed by (or shadow) a gateway
// route in dev mode and in the shipped Envoy, nginx and Istio configs.
var reservedAgentIDs = []string{"oauth", "login", "consent", "account", "authz", "admin", ".well-known", "metrics", "healthz", "readyz"}

// ValidAgentID: 1–128 of [A-Za-z0-9._-], not "." or "..", and not a name the
// gateway's own routes use (compared case-insensitively).
func ValidAgentID(id string) bool {
	if len(id) == 0 || len(id) > 128 || id == "." || id == ".." {
		return false
	}
	for _, r := range reservedAgentIDs {
		if strings.EqualFold(id, r) {
			return false
		}
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Secrets resolves the signing keys' secrets (reading secret_file).
func (c *Config) Secrets() ([][]byte, error) {
	out := make([][]byte, len(c.SigningKeys))
	for i, k := range c.SigningKeys {
		s := []byte(k.Secret)
		if k.SecretFile != "" {
			b, err := os.ReadFile(k.SecretFile)
			if err != nil {
				return nil, fmt.Errorf("config: signing_keys[%d].secret_file: %w", i, err)
			}
			s = []byte(strings.TrimRight(string(b), "\r\n"))
		}
		if len(s) < 32 {
			return nil, fmt.Errorf("config: signing_keys[%d] (%s): secret is %d bytes, need at least 32", i, k.ID, len(s))
		}
		out[i] = s
	}
	return out, nil
}

// validate checks the xds block.
func (x *XDS) validate(bad func(field, format string, a ...any)) {
	for name, a := range map[string]string{"xds.listen": x.Listen, "xds.gateway_http": x.GatewayHTTP, "xds.gateway_grpc": x.GatewayGRPC} {
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			bad(name, "%q is not host:port", a)
		}
	}
	if x.Mode != "grpc" && x.Mode != "http-service" {
		bad("xds.mode", "%q: want grpc or http-service", x.Mode)
	}
	if (x.TLS.CertFile == "") != (x.TLS.KeyFile == "") {
		bad("xds.tls", "set both cert_file and key_file, or neither")
	}
	if x.TLS.ClientCAFile != "" && x.TLS.CertFile == "" {
		bad("xds.tls.client_ca_file", "mutual TLS needs cert_file and key_file too")
	}
	for i, h := range x.AllowedUpstreamHosts {
		if !validHostOrCIDR(h) {
			bad(fmt.Sprintf("xds.allowed_upstream_hosts[%d]", i), "%q is not a hostname, IP address or CIDR", h)
		}
	}
}

// unknownField matches the JSON decoder's message for a key no field takes;
// sigs.k8s.io/yaml converts YAML to JSON first, so the message has no line.
var unknownField = regexp.MustCompile(`unknown field "([^"]+)"`)

// yamlError turns the YAML→JSON decoder's "error unmarshaling JSON: … json:
// unknown field" into the field's name and the lines where it is a key, so
// a typo in the config points at itself. Other errors pass through.
func yamlError(src []byte, err error) error {
	m := unknownField.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	key := regexp.MustCompile(`^\s*(?:-\s+)?["']?` + regexp.QuoteMeta(m[1]) + `["']?\s*:`)
	var lines []string
	for i, l := range strings.Split(string(src), "\n") {
		if key.MatchString(l) {
			lines = append(lines, strconv.Itoa(i+1))
		}
	}
	switch len(lines) {
	case 0:
		return fmt.Errorf("unknown field %q", m[1])
	case 1:
		return fmt.Errorf("line %s: unknown field %q", lines[0], m[1])
	}
	return fmt.Errorf("unknown field %q (a key on lines %s)", m[1], strings.Join(lines, ", "))
}
