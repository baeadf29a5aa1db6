package slowbody

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// deadline is the body timeout of these tests: small, so nothing waits long.
const deadline = 200 * time.Millisecond

// failsafe bounds every wait on the server; the old code (no guard) hits it.
const failsafe = 10 * time.Second

// readAll is a handler that reads the whole body as oauthsrv's readBody
// does and answers 408 when it did not arrive in time.
func readAll(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		w.WriteHeader(http.StatusRequestTimeout)
	case err != nil:
		w.WriteHeader(http.StatusBadRequest)
	default:
		fmt.Fprintf(w, "%d bytes", len(b))
	}
}

func serve(t *testing.T, g *Guard, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	var handler http.Handler = h
	if g != nil {
		handler = g.Wrap(h)
	}
	ts := httptest.NewUnstartedServer(handler)
	ts.Config.ReadHeaderTimeout = failsafe
	ts.Start()
	t.Cleanup(ts.Close)
	return ts
}

// slowPost opens a connection and sends a POST announcing 100 body bytes
// but only the first few: the slow-loris client.
func slowPost(t *testing.T, ts *httptest.Server, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(failsafe))
	if _, err := io.WriteString(c, "POST "+path+" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a"); err != nil {
		t.Fatal(err)
	}
	return c
}

// answer reads the response on c (status 0: the connection was closed
// without one) and reports whether the server then closed the connection.
func answer(t *testing.T, c net.Conn) (status int, closed bool) {
	t.Helper()
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("no answer and the connection is still open after %v", failsafe)
		}
		return 0, true
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	_, err = br.ReadByte()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the connection is still open %v after the answer", failsafe)
	}
	return resp.StatusCode, err != nil
}

func TestSlowBodyIsCutOff(t *testing.T) {
	ts := serve(t, New(deadline, 8), readAll)
	st, closed := answer(t, slowPost(t, ts, "/"))
	if st != http.StatusRequestTimeout || !closed {
		t.Fatalf("slow body: status %d, closed %v; want 408 and the connection closed", st, closed)
	}
}

// A handler that never reads the body answers at once; net/http then
// drains the rest before reusing the connection, and that read is bounded.
func TestUnreadSlowBodyIsCutOff(t *testing.T) {
	ts := serve(t, New(deadline, 8), func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	st, closed := answer(t, slowPost(t, ts, "/"))
	if st != http.StatusNoContent || !closed {
		t.Fatalf("unread slow body: status %d, closed %v; want 204 and the connection closed", st, closed)
	}
}

// The rest of a body its handler did not read is not waited for at all,
// however long the deadline: the slow client's connection closes at once.
func TestUnreadSlowBodyIsNotWaitedFor(t *testing.T) {
	ts := serve(t, New(time.Hour, 8), func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	st, closed := answer(t, slowPost(t, ts, "/"))
	if st != http.StatusNoContent || !closed {
		t.Fatalf("unread slow body: status %d, closed %v; want 204 and the connection closed", st, closed)
	}
}

// An unread body that had arrived in full is drained from the buffer and
// the connection is reused.
func TestUnreadCompleteBodyKeepsTheConnection(t *testing.T) {
	ts := serve(t, New(deadline, 8), func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	c := ts.Client()
	reused := false
	for i := range 2 {
		trace := &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) { reused = ci.Reused }}
		req, _ := http.NewRequest(http.MethodPost, ts.URL, strings.NewReader(`{"unread":true}`))
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
	}
	if !reused {
		t.Fatal("the second request did not reuse the connection")
	}
}

// A body that arrived in full clears the deadline: the response may then
// stream for longer than it, and the request's context stays alive.
func TestStreamsOutliveTheBodyDeadline(t *testing.T) {
	const events = 8 // 8 × deadline/2 = 4 deadlines
	stream := func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range events {
			fmt.Fprintf(w, "data: %d\n\n", i)
			http.NewResponseController(w).Flush()
			select {
			case <-r.Context().Done():
				return // the stream was cut
			case <-time.After(deadline / 2):
			}
		}
		fmt.Fprint(w, "data: end\n\n")
	}
	ts := serve(t, New(deadline, 8), stream)
	c := &http.Client{Timeout: failsafe}
	for _, tc := range []struct{ method, body string }{
		{http.MethodPost, `{"jsonrpc":"2.0","id":1,"method":"tools/call"}`}, // body read, then a long answer
		{http.MethodGet, ""}, // no body: the standalone SSE stream
	} {
		req, _ := http.NewRequest(tc.method, ts.URL, strings.NewReader(tc.body))
		if tc.body == "" {
			req.Body = http.NoBody
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !strings.HasSuffix(string(b), "data: end\n\n") {
			t.Fatalf("%s stream: %d %v, cut short: %q", tc.method, resp.StatusCode, err, b)
		}
	}
}

// Keep-alive: a connection whose first body arrived in full serves the
// next request after a pause longer than the deadline.
func TestKeepAliveAfterABody(t *testing.T) {
	ts := serve(t, New(deadline, 8), readAll)
	c := ts.Client()
	for i := range 2 {
		resp, err := c.Post(ts.URL, "application/json", strings.NewReader(`{"n":1}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(b) != "7 bytes" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, b)
		}
		time.Sleep(2 * deadline)
	}
}

// Beyond maxReads bodies in flight the next one is refused at once with
// 503 and Retry-After; once the slow ones are cut off, bodies pass again.
func TestTooManySlowBodiesAreRefused(t *testing.T) {
	started := make(chan struct{}, 4)
	ts := serve(t, New(deadline, 2), func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		readAll(w, r)
	})
	slow := []net.Conn{slowPost(t, ts, "/"), slowPost(t, ts, "/")}
	for range slow {
		<-started // both hold a slot
	}
	c := &http.Client{Timeout: failsafe}
	resp, err := c.Post(ts.URL, "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "temporarily_unavailable") {
		t.Fatalf("third body: %d %v %s; want 503 with Retry-After", resp.StatusCode, resp.Header, b)
	}
	// A request without a body needs no slot.
	if resp, err := c.Get(ts.URL); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET while the slots are full: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	for _, s := range slow {
		if st, _ := answer(t, s); st != http.StatusRequestTimeout {
			t.Fatalf("slow body: %d, want 408", st)
		}
	}
	resp, err = c.Post(ts.URL, "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after the slow bodies were cut off: %d", resp.StatusCode)
	}
}

// TestSlowLorisGoroutines: n connections trickling bodies all end, and the
// server's goroutines return to where they were.
func TestSlowLorisGoroutines(t *testing.T) {
	const n = 300
	const timeout = time.Second // long enough for every connection to be open at once
	ts := serve(t, New(timeout, 100), readAll)
	runtime.GC()
	before := runtime.NumGoroutine()
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = slowPost(t, ts, "/")
	}
	time.Sleep(50 * time.Millisecond) // the server takes the last ones in
	during := runtime.NumGoroutine()
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i], _ = answerQuiet(c)
		}()
	}
	wg.Wait()
	counts := map[int]int{}
	for _, s := range statuses {
		counts[s]++
	}
	if counts[http.StatusRequestTimeout]+counts[http.StatusServiceUnavailable] != n {
		t.Fatalf("answers %v: want every slow body refused (408 or 503)", counts)
	}
	for _, c := range conns {
		c.Close()
	}
	var after int
	for end := time.Now().Add(failsafe); ; time.Sleep(10 * time.Millisecond) {
		after = runtime.NumGoroutine()
		if after <= before+2 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("goroutines: %d before, %d after %d slow-loris connections ended", before, after, n)
		}
	}
	t.Logf("%d slow-loris connections: answers %v; goroutines %d before, %d while they trickled, %d after", n, counts, before, during, after)
}

// answerQuiet is answer without t (it runs in goroutines).
func answerQuiet(c net.Conn) (int, error) {
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// BenchmarkPost: a small POST over loopback keep-alive, with and without
// the guard. Its cost: a deadline set and cleared, one slot, and five
// allocations (about 0.4 KiB) on top of the round trip's ~80.
func BenchmarkPost(b *testing.B) {
	for _, guarded := range []bool{false, true} {
		b.Run(map[bool]string{false: "bare", true: "guarded"}[guarded], func(b *testing.B) {
			var h http.Handler = http.HandlerFunc(readAll)
			if guarded {
				h = New(time.Second, 256).Wrap(h)
			}
			ts := httptest.NewServer(h)
			defer ts.Close()
			c := ts.Client()
			b.ReportAllocs()
			for b.Loop() {
				resp, err := c.Post(ts.URL, "application/json", strings.NewReader(`{"grant_type":"x"}`))
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
