package proxy

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// lateReader sends the request body on and answers with a stream, as
// net/http's transport and an agent do, except that the transport's last
// read (looking for bytes past Content-Length) comes once the answer is
// already streaming to the client: its write loop may run that late.
type lateReader struct {
	streaming chan struct{} // closed by the test once the client has the headers
	readErr   chan error
	release   chan struct{}
}

func (l *lateReader) RoundTrip(r *http.Request) (*http.Response, error) {
	body := r.Body
	if _, err := io.ReadFull(body, make([]byte, r.ContentLength)); err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	go func() {
		_, _ = io.WriteString(pw, "data: first\n\n")
		<-l.streaming
		_, err := io.Copy(io.Discard, body)
		l.readErr <- err
		<-l.release
		_ = pw.Close()
	}()
	return &http.Response{StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Request: r,
		Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: pr, ContentLength: -1}, nil
}

// The transport's late read past the body's end sees its end, not an
// error: net/http closes the request body when the response starts, and
// the failed read made the transport drop the upstream connection, cutting
// the client's stream right after its first event (seen in
// TestSIGTERMDrainsDevMode under load).
func TestBodyReadableWhileTheAnswerStreams(t *testing.T) {
	t.Run("plain", func(t *testing.T) { testLateRead(t, false) })
	// The decision reads the body first, as for an agent with a tool policy.
	t.Run("policy", func(t *testing.T) { testLateRead(t, true) })
}

func testLateRead(t *testing.T, policy bool) {
	lr := &lateReader{streaming: make(chan struct{}), readErr: make(chan error, 1), release: make(chan struct{})}
	e := newEnv(t, map[string]string{"demo": "http://127.0.0.1:1/mcp"}, func(o *Options) {
		o.Transport = lr
		if policy {
			o.Decider = &bodyDecider{} // reads the body first (body_test.go)
		}
	})
	end := sync.OnceFunc(func() { close(lr.release) })
	t.Cleanup(end) // before the servers close
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, e.proxy.URL+"/demo/mcp",
		strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen"}`))
	req.Header.Set("Authorization", goodToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "data: first\n" {
		t.Fatalf("first event: %q %v", line, err)
	}
	close(lr.streaming)
	if err := <-lr.readErr; err != nil {
		t.Fatalf("the request body's end, read while the answer streams: %v", err)
	}
	end()
	if rest, err := io.ReadAll(br); err != nil {
		t.Fatalf("stream end: %q %v", rest, err)
	}
}
