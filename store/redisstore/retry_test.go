package redisstore_test

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/store/redistest"
	"github.com/mcpgateway/mcp-gateway/token"
)

// replyDropper is a TCP proxy in front of Redis that, once armed with a
// marker, lets the next request containing it reach Redis and then cuts the
// connection instead of passing the reply on: the write happened, the
// client saw a network error. go-redis then retries the command on a new
// connection, the way it does after any connection loss.
type replyDropper struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	marker  []byte
	dropped atomic.Int32
}

func newReplyDropper(t *testing.T, target string) *replyDropper {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &replyDropper{ln: ln, target: target}
	t.Cleanup(func() { _ = ln.Close() })
	go p.serve()
	return p
}

// arm makes the next request that contains marker lose its reply.
func (p *replyDropper) arm(marker string) {
	p.mu.Lock()
	p.marker = []byte(marker)
	p.mu.Unlock()
}

// matches reports whether buf is the armed request.
func (p *replyDropper) matches(buf []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.marker != nil && bytes.Contains(buf, p.marker)
}

// disarm is called once a reply was dropped.
func (p *replyDropper) disarm() {
	p.mu.Lock()
	p.marker = nil
	p.mu.Unlock()
	p.dropped.Add(1)
}

func (p *replyDropper) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.pipe(c)
	}
}

func (p *replyDropper) pipe(c net.Conn) {
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	var drop atomic.Bool
	closeBoth := func() { _ = c.Close(); _ = s.Close() }
	go func() { // client → Redis
		defer closeBoth()
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if p.matches(buf[:n]) {
					drop.Store(true)
				}
				if _, werr := s.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	defer closeBoth()
	buf := make([]byte, 64<<10)
	for {
		n, err := s.Read(buf)
		// An error reply (NOSCRIPT before EVAL) changed nothing: pass it on
		// and drop the next answer instead.
		if n > 0 && buf[0] != '-' && drop.Load() {
			p.disarm()
			return // Redis answered: the write is done; the client never hears it
		}
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// A write whose reply is lost is retried by go-redis on a new connection.
// The retry must get the first attempt's answer, not see its own first
// attempt as somebody else's: a rotated token as a "concurrent refresh" (the
// client keeps a dead token), a redeemed code as a replay (its tokens
// revoked), a created record as a conflict.
func TestRetriedWriteGetsTheFirstAnswer(t *testing.T) {
	u := redistest.URL(t)
	host := strings.TrimPrefix(u, "redis://")
	host, _, _ = strings.Cut(host, "/")
	p := newReplyDropper(t, host)
	s := redistest.OpenURL(t, "redis://"+p.ln.Addr().String()+"/0", "retry")
	ctx := t.Context()
	now := time.Now().Truncate(time.Millisecond)
	lost := func(t *testing.T, marker string, call func() error) {
		t.Helper()
		before := p.dropped.Load()
		p.arm(marker)
		if err := call(); err != nil {
			t.Fatalf("after a lost reply: %v", err)
		}
		if p.dropped.Load() != before+1 {
			t.Fatal("the proxy dropped no reply: the test exercised nothing")
		}
	}

	fam := token.Random(8)
	f := &store.RefreshFamily{ID: fam, ClientID: "c1", UserID: "alice", Scope: "mcp", Resource: "http://gw/a/mcp",
		CurrentHash: fam + "." + token.Random(8), AccessJTI: token.Random(8), AccessExp: now.Add(time.Hour),
		CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour)}
	t.Run("CreateFamily", func(t *testing.T) {
		lost(t, f.CurrentHash, func() error { return s.CreateFamily(ctx, f, time.Hour) })
	})
	t.Run("Rotate", func(t *testing.T) {
		r := store.Rotation{FamilyID: fam, OldHash: f.CurrentHash, NewHash: fam + "." + token.Random(8),
			AccessJTI: token.Random(8), AccessExp: now.Add(time.Hour), Now: now, Grace: 10 * time.Second, TokenTTL: time.Hour}
		var got *store.RefreshFamily
		lost(t, r.NewHash, func() (err error) { got, err = s.Rotate(ctx, r); return err })
		if got.CurrentHash != r.NewHash {
			t.Fatalf("current = %q, want the new token", got.CurrentHash)
		}
		// The new token works; the old one is rotated (a later, different
		// rotation of it is a race within grace, not a success).
		next := store.Rotation{FamilyID: fam, OldHash: r.NewHash, NewHash: fam + "." + token.Random(8),
			AccessJTI: token.Random(8), AccessExp: now.Add(time.Hour), Now: now, Grace: 10 * time.Second, TokenTTL: time.Hour}
		if _, err := s.Rotate(ctx, next); err != nil {
			t.Fatalf("the token the retried rotation returned: %v", err)
		}
		again := r
		again.NewHash = fam + "." + token.Random(8)
		if _, err := s.Rotate(ctx, again); !errors.Is(err, store.ErrRefreshRace) {
			t.Fatalf("a second, different rotation of a rotated token: %v, want ErrRefreshRace", err)
		}
	})
	t.Run("RedeemCode", func(t *testing.T) {
		c := &store.AuthCode{Hash: token.Random(8) + "." + token.Random(8), ClientID: "c1", RedirectURI: "http://127.0.0.1/cb",
			CodeChallenge: "ch", Resource: "http://gw/a/mcp", UserID: "alice", Scope: "mcp", FamilyID: fam,
			ExpiresAt: now.Add(time.Minute)}
		if err := s.PutCode(ctx, c); err != nil {
			t.Fatal(err)
		}
		b := store.CodeBinding{ClientID: "c1", RedirectURI: "http://127.0.0.1/cb", CodeChallenge: "ch", Resource: "http://gw/a/mcp"}
		lost(t, c.Hash, func() error { _, err := s.RedeemCode(ctx, c.Hash, b); return err })
		// A second redemption (a replay, not a retry) is still refused.
		if _, err := s.RedeemCode(ctx, c.Hash, b); !errors.Is(err, store.ErrCodeReused) {
			t.Fatalf("a replay after the retried redemption: %v, want ErrCodeReused", err)
		}
	})
	t.Run("PutCode", func(t *testing.T) {
		c := &store.AuthCode{Hash: token.Random(8) + "." + token.Random(8), ClientID: "c1", RedirectURI: "http://127.0.0.1/cb",
			CodeChallenge: "ch", UserID: "alice", Scope: "mcp", FamilyID: fam, ExpiresAt: now.Add(time.Minute)}
		lost(t, c.Hash, func() error { return s.PutCode(ctx, c) })
	})
	t.Run("CreateClient", func(t *testing.T) {
		c := &store.Client{ID: token.Random(8), Name: "retry", RedirectURIs: []string{"http://127.0.0.1/cb"},
			CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		lost(t, c.ID, func() error { return s.CreateClient(ctx, c) })
	})
	t.Run("CreateKey", func(t *testing.T) {
		k := &store.APIKey{ID: token.Random(8), Hash: token.Random(16), Kind: store.KeyAgent, Agent: "a", User: "alice",
			Name: "retry", CreatedAt: now}
		lost(t, k.Hash, func() error { return s.CreateKey(ctx, k) })
	})
	t.Run("TakeAuthRequest", func(t *testing.T) {
		r := &store.AuthRequest{ID: token.Random(12), ClientID: "c1", RedirectURI: "http://127.0.0.1/cb", Scope: "mcp",
			Resource: "http://gw/a/mcp", CodeChallenge: "ch", CSRF: "x", CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
		if err := s.PutAuthRequest(ctx, r, time.Minute); err != nil {
			t.Fatal(err)
		}
		var got *store.AuthRequest
		lost(t, r.ID, func() (err error) { got, err = s.TakeAuthRequest(ctx, r.ID); return err })
		if got.ClientID != "c1" {
			t.Fatalf("taken: %+v", got)
		}
		if _, err := s.TakeAuthRequest(ctx, r.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("taken twice (another call, not a resend): %v", err)
		}
	})
	t.Run("MarkOnce", func(t *testing.T) {
		key := "retry-" + token.Random(8)
		var first bool
		lost(t, key, func() (err error) { first, err = s.MarkOnce(ctx, key, time.Minute); return err })
		if !first {
			t.Fatal("the resent first mark was reported as not first")
		}
		if again, err := s.MarkOnce(ctx, key, time.Minute); err != nil || again {
			t.Fatalf("a second call: first=%v %v", again, err)
		}
	})
	t.Run("CreateAgent", func(t *testing.T) {
		a := &store.Agent{AgentSpec: store.AgentSpec{ID: "retry-" + strings.ToLower(token.Random(4)), Owner: "alice", Upstream: "http://127.0.0.1:1/mcp"}, Created: now}
		lost(t, a.ID, func() error { return s.CreateAgent(ctx, a) })
	})
}
