package oauthsrv

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"time"
)

// A new key is shown once, after a redirect (post/redirect/get: reloading
// or going back never re-posts the form, and GET /account/keys is no
// dead end). The key crosses the redirect in a one-time "flash" cookie,
// sealed (AES-256-GCM) under a key derived from the session secret and
// bound to the user: the server keeps no copy of the key (only its hash),
// the cookie means nothing without the session cookie, lives
// newKeyFlashTTL, and the next account page clears it.

const newKeyFlashTTL = 2 * time.Minute

// newKeyFlash is what the cookie carries.
type newKeyFlash struct {
	Key     string    `json:"k"`
	Name    string    `json:"n,omitempty"`
	Expires time.Time `json:"e"`
}

// flashCookie is the cookie's name (__Host- on https, as the session's).
func (s *Server) flashCookie() string {
	if s.secure {
		return "__Host-mcpgw_newkey"
	}
	return "mcpgw_newkey"
}

// flashAEAD is the cipher of one session's flash cookies.
func flashAEAD(sid string) (cipher.AEAD, error) {
	k := sha256.Sum256([]byte("mcpgw-account-flash\x00" + sid))
	b, err := aes.NewCipher(k[:])
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// setNewKeyFlash hands a just-created key to the next account page.
func (s *Server) setNewKeyFlash(w http.ResponseWriter, sid, user, key, name string) error {
	aead, err := flashAEAD(sid)
	if err != nil {
		return err
	}
	plain, err := json.Marshal(newKeyFlash{Key: key, Name: name, Expires: s.now().Add(newKeyFlashTTL)})
	if err != nil {
		return err
	}
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce) // never fails (crypto/rand)
	sealed := aead.Seal(nonce, nonce, plain, []byte(user))
	http.SetCookie(w, s.cookie(s.flashCookie(), base64.RawURLEncoding.EncodeToString(sealed), newKeyFlashTTL))
	return nil
}

// takeNewKeyFlash returns the flash's key and name, if the request carries
// a valid, unexpired one for this session and user, and clears the cookie
// in any case.
func (s *Server) takeNewKeyFlash(w http.ResponseWriter, r *http.Request, sid, user string) (key, name string, ok bool) {
	c, err := r.Cookie(s.flashCookie())
	if err != nil {
		return "", "", false
	}
	gone := s.cookie(s.flashCookie(), "", 0)
	gone.MaxAge = -1
	http.SetCookie(w, gone)
	if len(c.Value) > 1024 {
		return "", "", false
	}
	sealed, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil {
		return "", "", false
	}
	aead, err := flashAEAD(sid)
	if err != nil || len(sealed) < aead.NonceSize() {
		return "", "", false
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(user))
	if err != nil {
		return "", "", false
	}
	var f newKeyFlash
	if json.Unmarshal(plain, &f) != nil || f.Key == "" || !s.now().Before(f.Expires) {
		return "", "", false
	}
	return f.Key, f.Name, true
}
