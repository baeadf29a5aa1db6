package agentauth

import (
	"net/http"
	"sync"
	"time"
)

// SessionHeader is the Streamable HTTP session header.
const SessionHeader = "Mcp-Session-Id"

// SessionOptions bound the session table of BindSessions.
type SessionOptions struct {
	MaxSessions int           // default 10000
	IdleTimeout time.Duration // a binding unused this long is forgotten; default 1h
	Now         func() time.Time
}

// BindSessions binds every MCP session that next (a Streamable HTTP
// handler, behind Middleware) creates to the user and client of the request
// that created it, as the MCP Security Best Practices ask: a session id
// that leaks or is guessed is useless to anyone else. A request naming a
// session bound to someone else, or one the table does not know (evicted,
// or made before a restart), gets 404 — what the protocol answers for an
// unknown session, so a legitimate client starts a new one. Requests
// without a session pass.
func BindSessions(next http.Handler, opts SessionOptions) http.Handler {
	if opts.MaxSessions <= 0 {
		opts.MaxSessions = 10000
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	t := &sessionTable{opts: opts, m: make(map[string]*binding)}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := FromContext(r.Context())
		if !ok {
			refuse(w, "no verified identity: BindSessions must run behind Middleware")
			return
		}
		sid := r.Header.Get(SessionHeader)
		if sid == "" {
			bw := &bindingWriter{ResponseWriter: w, t: t, sub: principal(id)}
			next.ServeHTTP(bw, r)
			bw.bind()
			return
		}
		if !t.check(sid, principal(id)) {
			http.Error(w, "session not found", http.StatusNotFound)
			return
		}
		if r.Method != http.MethodDelete {
			next.ServeHTTP(w, r)
			return
		}
		bw := &bindingWriter{ResponseWriter: w}
		next.ServeHTTP(bw, r)
		if bw.status/100 == 2 {
			t.forget(sid)
		}
	})
}

// principal is who a session belongs to: the user through one client (an
// agent key without a user is its own client).
func principal(id *Identity) string { return id.Subject + "\x00" + id.ClientID }

type binding struct {
	sub  string
	seen time.Time
}

type sessionTable struct {
	opts SessionOptions
	mu   sync.Mutex
	m    map[string]*binding
}

func (t *sessionTable) check(sid, sub string) bool {
	now := t.opts.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	b, ok := t.m[sid]
	if !ok || now.Sub(b.seen) >= t.opts.IdleTimeout || b.sub != sub {
		return false
	}
	b.seen = now
	return true
}

func (t *sessionTable) add(sid, sub string) {
	now := t.opts.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.m) >= t.opts.MaxSessions {
		for k, b := range t.m { // idle ones first
			if now.Sub(b.seen) >= t.opts.IdleTimeout {
				delete(t.m, k)
			}
		}
		for k := range t.m { // then any: that session's user starts a new one
			if len(t.m) < t.opts.MaxSessions {
				break
			}
			delete(t.m, k)
		}
	}
	t.m[sid] = &binding{sub: sub, seen: now}
}

func (t *sessionTable) forget(sid string) {
	t.mu.Lock()
	delete(t.m, sid)
	t.mu.Unlock()
}

// bindingWriter notes the status and, when the response creates a session
// (its Mcp-Session-Id header), binds that session before the first byte
// leaves, so the client cannot use it before it is bound.
type bindingWriter struct {
	http.ResponseWriter
	t      *sessionTable // nil: only the status is wanted
	sub    string
	status int
}

func (w *bindingWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
		w.bind()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *bindingWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Flush keeps SSE streams flowing through the wrapper.
func (w *bindingWriter) Flush() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *bindingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *bindingWriter) bind() {
	if w.t == nil {
		return
	}
	if sid := w.Header().Get(SessionHeader); sid != "" {
		w.t.add(sid, w.sub)
	}
	w.t = nil // once
}
