package oauthsrv

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/internal/metrics"
	"github.com/mcpgateway/mcp-gateway/internal/strictjson"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

const (
	grantCode    = "authorization_code"
	grantRefresh = "refresh_token"

	maxRedirectURIs = 10
	maxURILen       = 2000
	maxNameLen      = 200
	maxListLen      = 10
)

// registration is the subset of RFC 7591 client metadata we accept.
// Unknown members are ignored (RFC 7591 §2).
type registration struct {
	RedirectURIs            []string `json:"redirect_uris"`
	ClientName              string   `json:"client_name"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	TokenEndpointAuthMethod *string  `json:"token_endpoint_auth_method"`
	Scope                   string   `json:"scope"`
	ClientURI               string   `json:"client_uri"`
	LogoURI                 string   `json:"logo_uri"`
	SoftwareID              string   `json:"software_id"`
	SoftwareVersion         string   `json:"software_version"`
}

type registrationResponse struct {
	ClientID                string   `json:"client_id"`
	ClientIDIssuedAt        int64    `json:"client_id_issued_at"`
	ClientName              string   `json:"client_name,omitempty"`
	RedirectURIs            []string `json:"redirect_uris"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	Scope                   string   `json:"scope,omitempty"`
	ClientURI               string   `json:"client_uri,omitempty"`
	LogoURI                 string   `json:"logo_uri,omitempty"`
	SoftwareID              string   `json:"software_id,omitempty"`
	SoftwareVersion         string   `json:"software_version,omitempty"`
}

func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeMethodNotAllowed(w, "POST, OPTIONS")
		return
	}
	ctx := r.Context()
	ip := s.clientIP(r)
	if pass, limited := s.limitIP(w, r, "register", s.cfg.RateLimit.Register, false); !pass {
		if limited {
			metrics.Registrations.WithLabelValues("rate_limited").Inc()
		}
		return
	}
	reject := func(status int, code, desc string) {
		metrics.Registrations.WithLabelValues("rejected").Inc()
		s.writeError(ctx, w, errOAuth(status, code, desc))
	}
	if !hasMediaType(r, "application/json") {
		reject(http.StatusBadRequest, "invalid_client_metadata", "Content-Type must be application/json")
		return
	}
	body, err := readBody(w, r)
	if errors.Is(err, errTooLarge) {
		reject(http.StatusRequestEntityTooLarge, "invalid_client_metadata", "request body too large")
		return
	}
	if errors.Is(err, errBodyTimeout) {
		writeBodyError(w, err)
		return
	}
	if err != nil {
		reject(http.StatusBadRequest, "invalid_client_metadata", "could not read the request body")
		return
	}
	var m registration
	if err := strictjson.DecodeObject(bytes.NewReader(body), &m, strictjson.IgnoreUnknown); err != nil {
		reject(http.StatusBadRequest, "invalid_client_metadata", "body must be one JSON object of client metadata")
		return
	}
	c, code, desc := s.validateRegistration(&m)
	if code != "" {
		reject(http.StatusBadRequest, code, desc)
		return
	}
	if limit := s.cfg.Clients.MaxPerIP; limit > 0 {
		n, err := s.st.CountClientsByIP(ctx, ip)
		if err != nil {
			s.writeError(ctx, w, fmt.Errorf("count clients: %w", err))
			return
		}
		if n >= limit {
			// Checked before creating, so concurrent registrations may pass
			// the cap by a few; the rate limit bounds that.
			metrics.Registrations.WithLabelValues("rate_limited").Inc()
			metricsRateLimited("register")
			s.audit(ctx, "client_cap_reached", slog.String("ip", ip), slog.Int("clients", n))
			desc := "too many clients registered from this address: reuse a client_id you registered before"
			if idle := s.cfg.Clients.IdleTTL.D(); idle > 0 {
				desc += " (unused clients expire after " + idle.String() + ")"
			}
			s.writeError(ctx, w, errOAuth(http.StatusTooManyRequests, "rate_limited", desc))
			return
		}
	}
	c.RegisteredIP = ip
	c.CreatedAt = s.now().UTC().Truncate(time.Second)
	if idle := s.cfg.Clients.IdleTTL.D(); idle > 0 {
		c.ExpiresAt = s.now().Add(idle)
	}
	for attempt := 0; ; attempt++ {
		c.ID = token.Random(16)
		err = s.st.CreateClient(ctx, c)
		if !errors.Is(err, store.ErrConflict) || attempt == 2 {
			break
		}
	}
	if err != nil {
		s.writeError(ctx, w, fmt.Errorf("create client: %w", err))
		return
	}
	metrics.Registrations.WithLabelValues("created").Inc()
	s.audit(ctx, "client_registered", slog.String("client_id", c.ID), slog.String("client_name", c.Name), slog.String("ip", ip))
	writeJSON(w, http.StatusCreated, registrationResponse{
		ClientID:                c.ID,
		ClientIDIssuedAt:        c.CreatedAt.Unix(),
		ClientName:              c.Name,
		RedirectURIs:            c.RedirectURIs,
		GrantTypes:              c.GrantTypes,
		ResponseTypes:           c.ResponseTypes,
		TokenEndpointAuthMethod: "none",
		Scope:                   c.Scope,
		ClientURI:               c.ClientURI,
		LogoURI:                 c.LogoURI,
		SoftwareID:              c.SoftwareID,
		SoftwareVersion:         c.SoftwareVer,
	})
}

// validateRegistration turns metadata into a client, or names the error.
func (s *Server) validateRegistration(m *registration) (c *store.Client, code, desc string) {
	meta := func(d string) (*store.Client, string, string) { return nil, "invalid_client_metadata", d }
	if m.TokenEndpointAuthMethod != nil && *m.TokenEndpointAuthMethod != "none" {
		return meta("only public clients are supported: token_endpoint_auth_method must be \"none\"")
	}
	if len(m.RedirectURIs) == 0 {
		return nil, "invalid_redirect_uri", "redirect_uris is required"
	}
	if len(m.RedirectURIs) > maxRedirectURIs {
		return nil, "invalid_redirect_uri", "too many redirect_uris"
	}
	for _, u := range m.RedirectURIs {
		if why := s.checkRedirectURI(u); why != "" {
			return nil, "invalid_redirect_uri", why
		}
	}
	for name, v := range map[string]string{"client_name": m.ClientName, "software_id": m.SoftwareID, "software_version": m.SoftwareVersion} {
		if !cleanText(v, maxNameLen) {
			return meta(name + " is too long or contains control characters")
		}
	}
	for name, v := range map[string]string{"client_uri": m.ClientURI, "logo_uri": m.LogoURI} {
		if v != "" && !webURL(v) {
			return meta(name + " must be an absolute http(s) URL")
		}
	}
	grants := m.GrantTypes
	if len(grants) == 0 {
		grants = []string{grantCode, grantRefresh}
	}
	if len(grants) > maxListLen {
		return meta("too many grant_types")
	}
	for _, g := range grants {
		if g != grantCode && g != grantRefresh {
			return meta("unsupported grant type " + quote(g) + ": only authorization_code and refresh_token")
		}
	}
	if !slices.Contains(grants, grantCode) {
		return meta("grant_types must include authorization_code")
	}
	resp := m.ResponseTypes
	if len(resp) == 0 {
		resp = []string{"code"}
	}
	if len(resp) > maxListLen {
		return meta("too many response_types")
	}
	for _, rt := range resp {
		if rt != "code" {
			return meta("unsupported response type " + quote(rt) + ": only code")
		}
	}
	scope := ""
	if m.Scope != "" {
		sc, ok := s.parseScope(m.Scope, s.scopes)
		if !ok {
			return meta("scope names a scope this server does not support")
		}
		scope = sc
	}
	return &store.Client{
		Name:          m.ClientName,
		RedirectURIs:  slices.Clone(m.RedirectURIs),
		GrantTypes:    slices.Compact(slices.Sorted(slices.Values(grants))),
		ResponseTypes: []string{"code"},
		Scope:         scope,
		ClientURI:     m.ClientURI,
		LogoURI:       m.LogoURI,
		SoftwareID:    m.SoftwareID,
		SoftwareVer:   m.SoftwareVersion,
	}, "", ""
}

// checkRedirectURI applies the registration rules, for registrations and
// Client ID Metadata Documents alike; "" means acceptable. Allowed: https,
// http on loopback hosts, reverse-DNS private-use schemes (RFC 8252 §7.1)
// and the plain schemes of clients.allowed_schemes; never a scheme that runs
// code or launches a system handler (config.RefusedRedirectScheme).
func (s *Server) checkRedirectURI(raw string) string {
	switch {
	case raw == "":
		return "redirect_uris must not contain an empty string"
	case len(raw) > maxURILen:
		return "a redirect URI is too long"
	case !cleanText(raw, maxURILen) || strings.ContainsAny(raw, " \\<>\"{}|^`"):
		return "a redirect URI contains characters that are not allowed"
	case strings.Contains(raw, "#"):
		return "a redirect URI must not contain a fragment"
	case strings.Contains(raw, "*"):
		return "a redirect URI must not contain wildcards"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return "a redirect URI must be an absolute URI"
	}
	scheme := strings.ToLower(u.Scheme)
	if u.User != nil {
		return "a redirect URI must not contain user information"
	}
	switch {
	case config.RefusedRedirectScheme(scheme):
		return "the " + quote(scheme) + " scheme is not allowed for redirect URIs"
	case scheme == "https":
		if u.Hostname() == "" {
			return "an https redirect URI needs a host"
		}
	case scheme == "http":
		if !isLoopbackHost(u.Hostname()) {
			return "http redirect URIs are allowed only on loopback hosts (localhost, 127.0.0.1, [::1]); use https"
		}
	case reverseDNSScheme(scheme) || slices.Contains(s.cfg.Clients.AllowedSchemes, scheme):
		// A native app's private-use scheme: com.example.app:/cb, cursor://…
		// It needs something after the scheme.
		if u.Host == "" && u.Path == "" && u.Opaque == "" {
			return "a private-use scheme redirect URI needs a path"
		}
	default:
		return "the custom scheme " + quote(scheme) + " is not allowed: use https, http on a loopback host, " +
			"or a reverse domain name scheme such as com.example.app:/callback (RFC 8252 section 7.1)"
	}
	return ""
}

// reverseDNSScheme reports whether scheme is a private-use scheme named
// after a domain in reverse order (RFC 8252 §7.1), e.g. com.example.app. The first label must look
// like a top-level domain (letters only), which keeps out handler schemes
// such as x-apple.systempreferences.
func reverseDNSScheme(scheme string) bool {
	labels := strings.Split(scheme, ".")
	if len(labels) < 2 || len(labels[0]) < 2 {
		return false
	}
	for i, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for j := 0; j < len(l); j++ {
			b := l[j]
			letter := b >= 'a' && b <= 'z'
			if !letter && (i == 0 || !(b >= '0' && b <= '9' || b == '-')) {
				return false
			}
		}
	}
	return true
}

func isLoopbackHost(h string) bool {
	return h == "127.0.0.1" || h == "::1" || strings.EqualFold(h, "localhost")
}

func webURL(raw string) bool {
	if len(raw) > maxURILen || !cleanText(raw, maxURILen) {
		return false
	}
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.User == nil
}

// cleanText reports whether s is valid UTF-8 of at most n bytes without
// control characters.
func cleanText(s string, n int) bool {
	if len(s) > n || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

func quote(s string) string { return "\"" + trunc(s, 64) + "\"" }
