package proxy

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// lateReader answers at once with a streamed body, then reads the rest of
// the request body: net/http's transport does that read (looking for bytes
// past Content-Length) in its write loop, which may run after the
// upstream's answer is already streaming to the client.
type lateReader struct {
	streaming chan struct{} // closed by the test once the client has the headers
	readErr   chan error
	release   chan struct{}
}

func (l *lateReader) RoundTrip(r *http.Request) (*http.Response, error) {
	body := r.Body
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

// The request body stays readable while the answer streams: without full
// duplex net/http closes it when the response starts, the transport's late
// read fails, and the transport drops the upstream connection: the client's
// stream is cut right after its first event (seen in TestSIGTERMDrainsDevMode
// under load).
func TestBodyReadableWhileTheAnswerStreams(t *testing.T) {
	lr := &lateReader{streaming: make(chan struct{}), readErr: make(chan error, 1), release: make(chan struct{})}
	e := newEnv(t, map[string]string{"sse": "http://127.0.0.1:1/mcp"}, func(o *Options) { o.Transport = lr })
	end := sync.OnceFunc(func() { close(lr.release) })
	t.Cleanup(end) // before the servers close
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, e.proxy.URL+"/sse/mcp",
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
		t.Fatalf("the request body, read while the answer streams: %v", err)
	}
	end()
	if rest, err := io.ReadAll(br); err != nil {
		t.Fatalf("stream end: %q %v", rest, err)
	}
}
