// Package slowbody bounds request bodies in time and in number on an HTTP
// listener, for clients that trickle a body byte by byte (slowloris): only
// ReadHeaderTimeout bounds the headers, and without a deadline on the body a
// handler (or net/http draining an unread body after it) waits for as long
// as the client keeps the connection open.
//
// The read deadline covers the body alone: it is set when the handler
// starts and cleared the moment the body has been read to its end, so a
// response may then stream (an SSE stream through the dev proxy) for as long
// as it likes, and a request without a body gets no deadline at all; the
// rest of a body its handler did not read is abandoned when it returns. Unlike
// http.Server's ReadTimeout, the guard also caps how many bodies may be
// arriving at once, so the goroutines and connections a slow client can
// hold are bounded by number as well as by time.
package slowbody

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpgateway/mcp-gateway/internal/metrics"
)

// Guard wraps the handlers of one listener.
type Guard struct {
	timeout time.Duration
	slots   chan struct{}
}

// New returns a guard that gives every request body timeout to arrive in
// full and lets at most maxReads bodies arrive at once; a request with a
// body beyond that is answered 503 with Retry-After at once.
func New(timeout time.Duration, maxReads int) *Guard {
	return &Guard{timeout: timeout, slots: make(chan struct{}, max(maxReads, 1))}
}

// Wrap applies the guard to h. It must wrap the listener's root handler, so
// that it sees the connection's own ResponseWriter.
func (g *Guard) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			h.ServeHTTP(w, r) // nothing to read: no deadline, streams unaffected
			return
		}
		rc := http.NewResponseController(w)
		select {
		case g.slots <- struct{}{}:
		default:
			metrics.SlowBodies.WithLabelValues("busy").Inc()
			abandon(rc)
			refuse(w)
			return
		}
		_ = rc.SetReadDeadline(time.Now().Add(g.timeout)) // ErrNotSupported: not a net/http connection
		b := &body{ReadCloser: r.Body, rc: rc, release: func() { <-g.slots }}
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, b))
		r.Body = b
		defer b.finish(false)
		h.ServeHTTP(w, r)
	})
}

// abandon stops waiting for the rest of a body nobody will read: after the
// handler, net/http drains up to 256 KiB of it to reuse the connection,
// and a slow client would hold the goroutine (outside any slot) meanwhile.
// What has arrived already is drained from the buffer; needing more closes
// the connection.
func abandon(rc *http.ResponseController) { _ = rc.SetReadDeadline(time.Now()) }

func refuse(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Connection", "close")
	h.Set("Retry-After", "5")
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = io.WriteString(w, `{"error":"temporarily_unavailable","error_description":"too many request bodies are being received; retry shortly"}`)
}

type ctxKey struct{}

// TimedOut reports whether the body of the request that ctx belongs to was
// cut off by its deadline: net/http then cancels the request's context, so
// a handler that sees only "context canceled" (a reverse proxy sending the
// body upstream) can still answer 408 rather than blame the upstream.
func TimedOut(ctx context.Context) bool {
	b, _ := ctx.Value(ctxKey{}).(*body)
	return b != nil && b.timedOut.Load()
}

// body holds a slot until the body has been read to its end, has failed,
// or the handler has returned, whichever comes first.
type body struct {
	io.ReadCloser
	rc      *http.ResponseController
	release func()

	timedOut atomic.Bool

	mu   sync.Mutex
	done bool
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) && !b.timedOut.Swap(true) {
			metrics.SlowBodies.WithLabelValues("timeout").Inc()
		}
		b.finish(err == io.EOF)
	}
	return n, err
}

// finish releases the slot once: at the body's end, on a read error, or
// when the handler returns. complete (read to EOF while the handler runs)
// clears the read deadline, so the rest of the exchange (a streamed
// response) is not bounded by it; net/http clears it as well when it starts
// watching for the client's disconnect, but that is not documented.
// Otherwise the rest of the body is abandoned. The controller is never used
// after the handler has returned: the connection may serve the next
// request by then, whose deadlines are not ours to change.
func (b *body) finish(complete bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	b.done = true
	b.release()
	if complete {
		_ = b.rc.SetReadDeadline(time.Time{})
	} else {
		abandon(b.rc)
	}
}
