package oauthsrv

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/internal/metrics"
	"github.com/mcpgateway/mcp-gateway/internal/netguard"
	"github.com/mcpgateway/mcp-gateway/internal/strictjson"
	"github.com/mcpgateway/mcp-gateway/internal/ttlcache"
	"github.com/mcpgateway/mcp-gateway/store"
)

// Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document,
// MCP authorization 2026-07-28): a client_id that is an https URL names a
// JSON document of client metadata, fetched instead of a registration record.
// The fetch is an SSRF vector, so the address actually dialled is checked.

const (
	cimdMinCache     = 5 * time.Minute // floor: protects both sides from refetch storms
	cimdMaxCache     = 24 * time.Hour  // ceiling: a changed document is seen within a day
	cimdCacheEntries = 1000
	cimdMaxFetches   = 16 // concurrent fetches per process
)

// cimdError is a refusal whose message is safe to show to the user and the
// client (it never echoes the document).
type cimdError struct{ msg string }

func (e *cimdError) Error() string { return e.msg }

func cimdErrorf(format string, a ...any) error { return &cimdError{msg: fmt.Sprintf(format, a...)} }

// errBlockedAddress refuses a dialled address that is loopback, private,
// link-local…
var errBlockedAddress = errors.New("address not allowed")

// blockedAddr reports whether a is anything but a public unicast address
// (netguard, shared with the agent-upstream guard) unless
// cimd.allowed_hosts names it.
func blockedAddr(a netip.Addr) bool { return netguard.NotPublic(a) }

// cimdCached is a validated document and how long it may be cached
// (cacheTTL of its response; 0: not cached).
type cimdCached struct {
	c   *store.Client
	ttl time.Duration
}

// newCIMDCache caches documents for their own cacheTTL; fetch errors are
// not cached.
func newCIMDCache() *ttlcache.Cache[cimdCached] {
	return ttlcache.New(ttlcache.Options[cimdCached]{
		TTLOf: func(d *cimdCached) time.Duration { return d.ttl },
		Max:   cimdCacheEntries,
		Hit:   metrics.CacheLookups.WithLabelValues("cimd", "hit"),
		Miss:  metrics.CacheLookups.WithLabelValues("cimd", "miss"),
	})
}

// cimdResolver fetches, validates and caches metadata documents.
type cimdResolver struct {
	s        *Server
	http     *http.Client
	timeout  time.Duration
	maxBytes int64
	hosts    map[string]bool // allowed hostnames (lower case)
	nets     []netip.Prefix  // allowed addresses
	slots    chan struct{}
	cache    *ttlcache.Cache[cimdCached]
}

func newCIMDResolver(s *Server, cfg config.CIMD, roots *x509.CertPool) (*cimdResolver, error) {
	r := &cimdResolver{
		s:        s,
		timeout:  cfg.Timeout.D(),
		maxBytes: int64(cfg.MaxBytes),
		hosts:    map[string]bool{},
		slots:    make(chan struct{}, cimdMaxFetches),
		cache:    newCIMDCache(),
	}
	if r.timeout <= 0 {
		r.timeout = 5 * time.Second
	}
	if r.maxBytes <= 0 {
		r.maxBytes = 5 << 10
	}
	for i, h := range cfg.AllowedHosts {
		if p, err := netip.ParsePrefix(h); err == nil {
			r.nets = append(r.nets, p.Masked())
		} else if a, err := netip.ParseAddr(h); err == nil {
			r.nets = append(r.nets, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
		} else if h != "" && !strings.ContainsAny(h, "/:") {
			r.hosts[strings.ToLower(strings.TrimSuffix(h, "."))] = true
		} else {
			return nil, fmt.Errorf("oauthsrv: cimd.allowed_hosts[%d]: %q is not a hostname, IP or CIDR", i, h)
		}
	}
	tr := &http.Transport{
		Proxy:                  nil, // a proxy would dial for us and bypass the address check
		DialContext:            r.dial,
		TLSClientConfig:        &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    r.timeout,
		ResponseHeaderTimeout:  r.timeout,
		MaxIdleConns:           16,
		IdleConnTimeout:        30 * time.Second,
		MaxResponseHeaderBytes: 16 << 10,
		ForceAttemptHTTP2:      true,
	}
	r.http = &http.Client{Transport: tr, Timeout: r.timeout, CheckRedirect: checkCIMDRedirect}
	return r, nil
}

// checkCIMDRedirect hands every 3xx back to fetch, which refuses it: the
// draft says the server must not follow redirects automatically (a redirect
// would also hand the choice of the address fetched to whoever answers).
func checkCIMDRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// dial connects like net.Dialer but refuses, in Control (after DNS
// resolution, before connect), every blocked address that the allow-list
// does not name. Checking the address really dialled defeats DNS rebinding.
func (r *cimdResolver) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	hostAllowed := r.hosts[strings.ToLower(strings.TrimSuffix(host, "."))]
	d := &net.Dialer{
		Timeout: r.timeout,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: %q", errBlockedAddress, address)
			}
			ip := ap.Addr().Unmap()
			if hostAllowed || r.ipAllowed(ip) || !blockedAddr(ip) {
				return nil
			}
			return fmt.Errorf("%w: %s is a loopback, private, link-local or reserved address", errBlockedAddress, ip)
		},
	}
	return d.DialContext(ctx, network, addr)
}

func (r *cimdResolver) ipAllowed(ip netip.Addr) bool {
	for _, p := range r.nets {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// isURLClientID reports whether id looks like a URL: such client ids go to
// the CIMD resolver (which rejects anything but a valid https document URL).
func isURLClientID(id string) bool {
	l := strings.ToLower(id)
	return strings.HasPrefix(l, "https://") || strings.HasPrefix(l, "http://")
}

// checkCIMDURL applies the draft's client identifier rules.
func checkCIMDURL(raw string) error {
	if !strings.HasPrefix(raw, "https://") {
		return cimdErrorf("a URL client_id must use https")
	}
	if len(raw) > maxClientIDLen || !cleanText(raw, maxClientIDLen) || strings.ContainsAny(raw, " \\<>\"{}|^`") {
		return cimdErrorf("the client_id URL is too long or contains characters that are not allowed")
	}
	if strings.Contains(raw, "#") {
		return cimdErrorf("the client_id URL must not contain a fragment")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Hostname() == "" {
		return cimdErrorf("the client_id is not a valid https URL")
	}
	if u.User != nil {
		return cimdErrorf("the client_id URL must not contain user information")
	}
	if u.RawQuery != "" || u.ForceQuery {
		return cimdErrorf("the client_id URL must not contain a query")
	}
	if u.Path == "" || u.Path == "/" {
		return cimdErrorf("the client_id URL must have a path (the metadata document's location)")
	}
	for _, seg := range strings.Split(u.EscapedPath(), "/")[1:] {
		dec, err := url.PathUnescape(seg)
		if err != nil || dec == "." || dec == ".." {
			return cimdErrorf("the client_id URL must not contain . or .. path segments")
		}
	}
	return nil
}

// cimdDocument is a fetched metadata document: RFC 7591 metadata plus the
// members that must (client_id) or must not (secrets) be present.
type cimdDocument struct {
	registration
	ClientID              *string         `json:"client_id"`
	ClientSecret          json.RawMessage `json:"client_secret"`
	ClientSecretExpiresAt json.RawMessage `json:"client_secret_expires_at"`
}

// resolve returns the client described by the document at id, from the
// cache while it is fresh.
func (r *cimdResolver) resolve(ctx context.Context, id string) (*store.Client, error) {
	if err := checkCIMDURL(id); err != nil {
		return nil, err
	}
	// One fetch per URL at a time; concurrent callers wait for it.
	d, err := r.cache.Get(ctx, id, r.s.now(), func(ctx context.Context) (*cimdCached, error) {
		c, ttl, err := r.fetch(ctx, id)
		if err != nil {
			return nil, err
		}
		return &cimdCached{c: c, ttl: ttl}, nil
	})
	if err != nil && ctx.Err() != nil {
		return nil, cimdErrorf("the metadata document could not be fetched in time")
	}
	if err != nil {
		return nil, err
	}
	return d.c.Clone(), nil
}

// cached returns the client of a fresh cached document, or nil (no fetch).
func (r *cimdResolver) cached(id string) *store.Client {
	if d, ok := r.cache.Peek(id, r.s.now()); ok && d != nil {
		return d.c.Clone()
	}
	return nil
}

// fetch GETs and validates the document; ttl 0 means do not cache.
func (r *cimdResolver) fetch(ctx context.Context, id string) (*store.Client, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	select {
	case r.slots <- struct{}{}:
		defer func() { <-r.slots }()
	case <-ctx.Done():
		return nil, 0, cimdErrorf("too many metadata documents are being fetched; try again")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, id, nil)
	if err != nil {
		return nil, 0, cimdErrorf("the client_id is not a valid https URL")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "mcp-gateway (client metadata fetch)")
	resp, err := r.http.Do(req)
	if err != nil {
		reason := r.fetchFailure(err)
		r.s.log.LogAttrs(ctx, slog.LevelInfo, "cimd fetch failed", slog.String("client_id", trunc(id, 256)), slog.String("err", err.Error()))
		return nil, 0, &cimdError{msg: reason}
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return nil, 0, cimdErrorf("the metadata document URL answered a redirect (HTTP %d), which this gateway does not follow: the document must be served at the client_id URL itself", resp.StatusCode)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, 0, cimdErrorf("the metadata document URL answered HTTP %d, want 200", resp.StatusCode)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil ||
		(mt != "application/json" && !(strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))) {
		return nil, 0, cimdErrorf("the metadata document is not served as application/json")
	}
	if resp.ContentLength > r.maxBytes {
		return nil, 0, cimdErrorf("the metadata document is larger than %d bytes", r.maxBytes)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, r.maxBytes+1))
	if err != nil {
		return nil, 0, &cimdError{msg: r.fetchFailure(err)}
	}
	if int64(len(body)) > r.maxBytes {
		return nil, 0, cimdErrorf("the metadata document is larger than %d bytes", r.maxBytes)
	}
	c, err := r.s.validateCIMD(id, body)
	if err != nil {
		return nil, 0, err
	}
	c.CreatedAt = r.s.now().UTC().Truncate(time.Second)
	return c, cacheTTL(resp.Header), nil
}

// fetchFailure names why a fetch failed without echoing internals.
func (r *cimdResolver) fetchFailure(err error) string {
	var ce *cimdError
	var ne net.Error
	switch {
	case errors.As(err, &ce):
		return ce.msg
	case errors.Is(err, errBlockedAddress):
		return "the metadata document's host resolves to a loopback, private or link-local address, which this gateway does not fetch"
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return fmt.Sprintf("the metadata document was not received within %s", r.timeout)
	default:
		var x509Err x509.UnknownAuthorityError
		var hostErr x509.HostnameError
		var dnsErr *net.DNSError
		switch {
		case errors.As(err, &x509Err) || errors.As(err, &hostErr):
			return "the metadata document's host has no valid TLS certificate"
		case errors.As(err, &dnsErr):
			return "the metadata document's host name does not resolve"
		}
		return "the metadata document could not be fetched"
	}
}

// cacheTTL honours Cache-Control (no-store / no-cache: not cached; max-age
// minus Age) within [cimdMinCache, cimdMaxCache]; no directive: the floor.
func cacheTTL(h http.Header) time.Duration {
	ttl := cimdMinCache
	for _, v := range h.Values("Cache-Control") {
		for _, d := range strings.Split(v, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(name) {
			case "no-store", "no-cache":
				return 0
			case "max-age":
				if n, err := strconv.ParseInt(strings.Trim(val, `"`), 10, 64); err == nil && n >= 0 {
					ttl = time.Duration(min(n, int64(cimdMaxCache/time.Second))) * time.Second
					if age, err := strconv.ParseInt(h.Get("Age"), 10, 64); err == nil && age > 0 {
						ttl -= time.Duration(min(age, int64(cimdMaxCache/time.Second))) * time.Second
					}
				}
			}
		}
	}
	return min(max(ttl, cimdMinCache), cimdMaxCache)
}

// validateCIMD checks a document against its URL and the registration rules.
func (s *Server) validateCIMD(id string, body []byte) (*store.Client, error) {
	var doc cimdDocument
	if err := strictjson.DecodeObject(bytes.NewReader(body), &doc, strictjson.IgnoreUnknown); err != nil {
		return nil, cimdErrorf("the metadata document is not one JSON object of client metadata")
	}
	switch {
	case doc.ClientID == nil:
		return nil, cimdErrorf("the metadata document has no client_id")
	case *doc.ClientID != id:
		return nil, cimdErrorf("the metadata document's client_id differs from its URL")
	case doc.ClientSecret != nil || doc.ClientSecretExpiresAt != nil:
		return nil, cimdErrorf("the metadata document must not contain a client secret")
	case strings.TrimSpace(doc.ClientName) == "":
		return nil, cimdErrorf("the metadata document has no client_name")
	}
	c, code, desc := s.validateRegistration(&doc.registration)
	if code != "" {
		return nil, cimdErrorf("the metadata document is not acceptable (%s): %s", code, desc)
	}
	c.ID = id
	return c, nil
}
