package xds

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/mcpgateway/mcp-gateway/internal/netguard"
)

// MaxUpstreamLen bounds an upstream URL.
const MaxUpstreamLen = 2048

// Guard checks agent upstream URLs before Envoy is told to proxy to them:
// anyone allowed to create an agent would otherwise point the gateway's
// proxy at its own loopback services or the cloud metadata endpoint.
type Guard struct {
	// Allowed exempts hosts (names, IPs, CIDRs) from the address check,
	// e.g. 127.0.0.1 for an agent on the proxy's own machine.
	Allowed netguard.AllowList
}

// NewGuard parses the allow-list (xds.allowed_upstream_hosts).
func NewGuard(allowed []string) (Guard, error) {
	l, err := netguard.ParseAllowList(allowed)
	if err != nil {
		return Guard{}, fmt.Errorf("xds.allowed_upstream_hosts%w", err)
	}
	return Guard{Allowed: l}, nil
}

// Check refuses an upstream URL that is not plain http(s) to a host Envoy
// may reach: scheme http or https, a host, no userinfo (Envoy would send it
// nowhere, and it would sit in the config), no fragment, and no loopback,
// link-local or metadata address unless allowed.
func (g Guard) Check(raw string) error {
	if len(raw) > MaxUpstreamLen {
		return fmt.Errorf("upstream URL longer than %d bytes", MaxUpstreamLen)
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return errors.New("upstream is not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("upstream URL scheme must be http or https")
	case u.User != nil:
		return errors.New("upstream URL must not carry userinfo (user:password@)")
	case u.Host == "" || u.Hostname() == "":
		return errors.New("upstream URL has no host")
	case u.Fragment != "" || u.RawFragment != "":
		return errors.New("upstream URL must not have a fragment")
	}
	if why, bad := netguard.InternalHost(u.Hostname()); bad && !g.Allowed.Host(u.Hostname()) {
		return fmt.Errorf("upstream host %q is %s; list it in xds.allowed_upstream_hosts to route to it", u.Hostname(), why)
	}
	return nil
}
