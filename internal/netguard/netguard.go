// Package netguard decides which network addresses the gateway may make
// requests to on someone else's behalf: the CIMD fetcher (public addresses
// only) and agent upstreams routed by Envoy (no loopback, link-local or
// cloud-metadata addresses unless the operator allows them).
package netguard

import (
	"fmt"
	"net/netip"
	"strings"
)

// blockedPrefixes are never fetched by Public: loopback, RFC 1918, CGNAT,
// link-local (cloud metadata 169.254.169.254), ULA, multicast, unspecified,
// reserved and documentation ranges, and the IPv6 transition prefixes that
// embed an IPv4 address.
var blockedPrefixes = func() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
		"192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
		"198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
		"::/96", "::1/128", "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64",
		"2001::/32", "2001:db8::/32", "2002::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
	} {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}()

// NotPublic reports whether a is anything but a public unicast address.
func NotPublic(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsUnspecified() || a.IsLoopback() || a.IsPrivate() || a.IsMulticast() ||
		a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() {
		return true
	}
	for _, p := range blockedPrefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// metadataAddrs are cloud instance-metadata services outside link-local.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("fd00:ec2::254"),   // AWS IMDS over IPv6
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
}

// metadataHosts are the names of metadata services.
var metadataHosts = []string{"metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"}

// Internal reports why a must not be an agent's upstream: the machine the
// proxy runs on (loopback, unspecified), link-local (cloud metadata at
// 169.254.169.254) or multicast. Private ranges are fine: agents live there.
func Internal(a netip.Addr) (string, bool) {
	a = a.Unmap()
	switch {
	case !a.IsValid():
		return "not an address", true
	case a.IsLoopback(), a.IsUnspecified():
		return "a loopback address", true
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast():
		return "a link-local address (cloud metadata)", true
	case a.IsMulticast():
		return "a multicast address", true
	}
	for _, m := range metadataAddrs {
		if a == m {
			return "a cloud metadata address", true
		}
	}
	return "", false
}

// AllowList is hostnames and address prefixes an operator exempts.
type AllowList struct {
	hosts map[string]bool
	nets  []netip.Prefix
}

// ParseAllowList reads hostnames, IP addresses and CIDRs.
func ParseAllowList(entries []string) (AllowList, error) {
	l := AllowList{hosts: map[string]bool{}}
	for i, h := range entries {
		if p, err := netip.ParsePrefix(h); err == nil {
			l.nets = append(l.nets, p.Masked())
		} else if a, err := netip.ParseAddr(h); err == nil {
			l.nets = append(l.nets, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
		} else if h != "" && !strings.ContainsAny(h, "/:") {
			l.hosts[strings.ToLower(strings.TrimSuffix(h, "."))] = true
		} else {
			return AllowList{}, fmt.Errorf("[%d]: %q is not a hostname, IP or CIDR", i, h)
		}
	}
	return l, nil
}

// Host reports whether host (a name or an IP literal) is exempt.
func (l AllowList) Host(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if l.hosts[host] {
		return true
	}
	if a, err := netip.ParseAddr(host); err == nil {
		for _, p := range l.nets {
			if p.Contains(a.Unmap()) {
				return true
			}
		}
	}
	return false
}

// InternalHost reports why host (a name or IP literal, as in a URL) names
// an internal address; names are judged by their spelling only (localhost,
// metadata services), as the proxy resolves them later.
func InternalHost(host string) (string, bool) {
	h := strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if a, err := netip.ParseAddr(h); err == nil {
		return Internal(a)
	}
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return "a loopback address", true
	}
	for _, m := range metadataHosts {
		if h == m {
			return "a cloud metadata address", true
		}
	}
	return "", false
}
