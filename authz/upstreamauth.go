package authz

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mcpgateway/mcp-gateway/store"
)

// maxSecretBytes bounds an upstream secret file.
const maxSecretBytes = 4096

// secrets reads agents' upstream secrets: files in one directory, opened
// through os.Root so that neither a name nor a symlink can leave it, and
// UpstreamSecretEnvPrefix* environment variables. A value (or the failure
// to get one) is kept for refresh, so a rotated file takes effect within
// refresh without a restart, and the disk is not read per request.
type secrets struct {
	dir     string
	refresh time.Duration
	getenv  func(string) string
	log     *slog.Logger

	mu sync.RWMutex
	m  map[secretKey]*secretEntry
}

type secretKey struct{ file, env, prefix string }

type secretEntry struct {
	value string // prefix + secret: the header value
	err   error
	until int64 // unix ns
}

// maxSecretEntries bounds the table; references come from agents only.
const maxSecretEntries = 10000

var errNoSecret = errors.New("upstream secret unavailable")

// get returns the header value for u (prefix + secret).
func (s *secrets) get(u *store.UpstreamAuth, now time.Time) (string, error) {
	k := secretKey{u.SecretFile, u.SecretEnv, u.Prefix}
	n := now.UnixNano()
	s.mu.RLock()
	e, ok := s.m[k]
	s.mu.RUnlock()
	if ok && n < e.until {
		return e.value, e.err
	}
	v, err := s.read(u)
	e = &secretEntry{until: n + int64(s.refresh)}
	if err != nil {
		// The reference only: never a byte of the secret.
		s.log.Error("authz: an agent's upstream secret cannot be read; its requests are refused", "secret_file", u.SecretFile, "secret_env", u.SecretEnv, "err", err)
		e.err = fmt.Errorf("%w: %w", errNoSecret, err)
	} else {
		e.value = u.Prefix + v
	}
	s.mu.Lock()
	if len(s.m) >= maxSecretEntries {
		clear(s.m)
	}
	s.m[k] = e
	s.mu.Unlock()
	return e.value, e.err
}

func (s *secrets) read(u *store.UpstreamAuth) (string, error) {
	var v string
	switch {
	case u.SecretEnv != "":
		v = s.getenv(u.SecretEnv)
	case s.dir == "":
		return "", errors.New("upstream_secrets.dir is not configured")
	default:
		root, err := os.OpenRoot(s.dir)
		if err != nil {
			return "", err
		}
		defer root.Close()
		f, err := root.Open(u.SecretFile)
		if err != nil {
			return "", err
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxSecretBytes+1))
		if err != nil {
			return "", err
		}
		if len(b) > maxSecretBytes {
			return "", fmt.Errorf("longer than %d bytes", maxSecretBytes)
		}
		v = string(b)
	}
	v = strings.TrimRight(v, "\r\n")
	if v == "" || !store.ValidHeaderValue(v) {
		return "", errors.New("empty, or not printable ASCII on one line")
	}
	return v, nil
}
