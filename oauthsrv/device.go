package oauthsrv

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mcpgateway/mcp-gateway/token"
)

// Device cookies (OWASP's "slow brute force" defence): a browser that has
// signed in as a user carries a cookie saying so, MACed with the signing
// keys. The per-username budget of failed logins binds only browsers
// without one, so strangers who use it up cannot lock the user out of the
// browsers they already use; a browser with one has a budget of its own.

const (
	deviceCookieTTL  = 90 * 24 * time.Hour
	deviceMACPurpose = "login-device"
	maxDeviceCookie  = 256
)

// deviceCookieName is the device cookie's name; __Host- when the issuer is
// https, as the session cookie's.
func (s *Server) deviceCookieName() string {
	if s.secure {
		return "__Host-mcpgw_device"
	}
	return "mcpgw_device"
}

// deviceMsg is what a device cookie's MAC covers. The user is in the MAC
// only, never in the cookie: the cookie does not tell who signed in.
func deviceMsg(user, exp, nonce string) []byte {
	return []byte("device\x00" + strings.ToLower(user) + "\x00" + exp + "\x00" + nonce)
}

// setDeviceCookie marks this browser as one that signed in as user, for
// deviceCookieTTL from now. One cookie per browser: the last user wins.
func (s *Server) setDeviceCookie(w http.ResponseWriter, user string) {
	exp := strconv.FormatInt(s.now().Add(deviceCookieTTL).Unix(), 10)
	nonce := token.Random(16)
	kid, mac := s.ring.MAC(deviceMACPurpose, deviceMsg(user, exp, nonce))
	v := base64.RawURLEncoding.EncodeToString([]byte(kid)) + "." + exp + "." + nonce + "." + base64.RawURLEncoding.EncodeToString(mac)
	http.SetCookie(w, s.cookie(s.deviceCookieName(), v, deviceCookieTTL))
}

// knownDevice returns the id (its nonce) of the request's device cookie
// when it is live, MACed by a key of the ring, and for user (compared
// case-insensitively, as the budgets of failed logins count names); ""
// for any other browser.
func (s *Server) knownDevice(r *http.Request, user string) string {
	c, err := r.Cookie(s.deviceCookieName())
	if err != nil || len(c.Value) > maxDeviceCookie {
		return ""
	}
	parts := strings.Split(c.Value, ".")
	if len(parts) != 4 {
		return ""
	}
	kid, err1 := base64.RawURLEncoding.Strict().DecodeString(parts[0])
	mac, err2 := base64.RawURLEncoding.Strict().DecodeString(parts[3])
	exp, err3 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || !s.now().Before(time.Unix(exp, 0)) ||
		!s.ring.CheckMAC(deviceMACPurpose, string(kid), deviceMsg(user, parts[1], parts[2]), mac) {
		return ""
	}
	return parts[2]
}
