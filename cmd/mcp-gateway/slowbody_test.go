package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mcpgateway/mcp-gateway/internal/logtest"
)

// Small limits so nothing waits long; failsafe bounds every wait (the old
// code, without body deadlines, runs into it).
const (
	devBodyTimeout = 300 * time.Millisecond
	devFailsafe    = 10 * time.Second
	devAdminToken  = "slow-body-test-admin-token-0123456789"
)

// devGateway runs `mcp-gateway dev` in-process with http_limits from the
// test and a second static agent, "stream", in front of upstream. It
// returns the public and admin base URLs.
func devGateway(t *testing.T, upstream string) (base, admin string) {
	t.Helper()
	listen, adminAddr := freeAddr(t), freeAddr(t)
	cfg := filepath.Join(t.TempDir(), "gateway.yaml")
	yaml := fmt.Sprintf(`http_limits: {body_timeout: %s, idle_timeout: %s, max_body_reads: 8}
agents:
  - {id: stream, owner: demo, upstream: %q}
`, devBodyTimeout, devBodyTimeout, upstream)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MCPGW_CONFIG", cfg)
	t.Setenv("MCPGW_ADMIN_TOKEN", devAdminToken)
	t.Setenv("MCPGW_DEV_PASSWORD", "slow-body-test-pw")
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out logtest.Buffer
	go func() {
		done <- runDev(ctx, []string{"--listen", listen, "--admin", adminAddr, "--grpc", "", "--shutdown-timeout", "2s"}, &out)
	}()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("dev mode: %v", err)
		}
	})
	base, admin = "http://"+listen, "http://"+adminAddr
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(admin + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base, admin
			}
		}
		select {
		case err := <-done:
			t.Fatalf("dev mode exited: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(end) {
			t.Fatal("dev mode never became ready")
		}
	}
}

// agentKey creates an agent key for agent through the admin API.
func agentKey(t *testing.T, c *http.Client, admin, agent string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, admin+"/admin/v1/keys", strings.NewReader(`{"kind":"agent","agent":"`+agent+`","name":"slow-body test"}`))
	req.Header.Set("Authorization", "Bearer "+devAdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var created struct{ Key string }
	_ = json.NewDecoder(resp.Body).Decode(&created)
	if resp.StatusCode != http.StatusCreated || created.Key == "" {
		t.Fatalf("create key for %s: %d", agent, resp.StatusCode)
	}
	return created.Key
}

// streamingUpstream reads the request body, then sends n SSE events
// devBodyTimeout/2 apart and an end marker: an answer that lasts several
// body deadlines after its body arrived.
func streamingUpstream(t *testing.T, n int) *httptest.Server {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range n {
			fmt.Fprintf(w, "data: %d\n\n", i)
			http.NewResponseController(w).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(devBodyTimeout / 2):
			}
		}
		fmt.Fprint(w, "data: end\n\n")
	}))
	t.Cleanup(ts.Close)
	return ts
}

// TestDevModeStreamsOutliveBodyDeadlines: with a 300 ms body deadline and
// idle timeout, the demo agent's subscriptions/listen stream and
// a POST whose answer streams for 2 s both stay open through dev mode's
// proxy, while a slow body on the public and on the admin listener is cut
// off with 408.
func TestDevModeStreamsOutliveBodyDeadlines(t *testing.T) {
	up := streamingUpstream(t, 8)
	base, admin := devGateway(t, up.URL+"/mcp")
	c := &http.Client{Timeout: devFailsafe}
	demoKey, streamKey := agentKey(t, c, admin, "demo"), agentKey(t, c, admin, "stream")

	// A long-lived stream to the demo agent: it is stateless, so the stream
	// is a 2026-07-28 subscriptions/listen POST (its first event acknowledges
	// the subscription).
	mcpURL := base + "/demo/mcp"
	sreq, _ := http.NewRequest(http.MethodPost, mcpURL, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"toolsListChanged":true},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"slow-body-test","version":"1"}}}}`))
	sreq.Header.Set("Authorization", "Bearer "+demoKey)
	sreq.Header.Set("Content-Type", "application/json")
	sreq.Header.Set("Accept", "application/json, text/event-stream")
	sreq.Header.Set("MCP-Protocol-Version", "2026-07-28")
	sreq.Header.Set("Mcp-Method", "subscriptions/listen")
	sresp, err := (&http.Client{}).Do(sreq)
	if err != nil {
		t.Fatal(err)
	}
	defer sresp.Body.Close()
	if sresp.StatusCode != http.StatusOK || !strings.HasPrefix(sresp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("SSE stream: %d %s", sresp.StatusCode, sresp.Header.Get("Content-Type"))
	}
	sbody := bufio.NewReader(sresp.Body)
	for {
		line, err := sbody.ReadString('\n')
		if err != nil {
			t.Fatalf("SSE stream ended before its acknowledgement: %v", err)
		}
		if strings.Contains(line, "notifications/subscriptions/acknowledged") {
			break
		}
	}
	ended := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, sbody)
		ended <- err
	}()

	// Meanwhile: a POST whose answer streams for 8 × 150 ms = 4 deadlines.
	req, _ := http.NewRequest(http.MethodPost, base+"/stream/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call"}`))
	req.Header.Set("Authorization", "Bearer "+streamKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !strings.HasSuffix(string(b), "data: 7\n\ndata: end\n\n") {
		t.Fatalf("streamed answer: %d %v, cut short: %q", resp.StatusCode, err, b)
	}

	// Slow bodies on both listeners are cut off.
	for _, tc := range []struct{ url, path, hdr string }{
		{base, "/oauth/register", "Content-Type: application/json\r\n"},
		{admin, "/admin/v1/keys", "Content-Type: application/json\r\nAuthorization: Bearer " + devAdminToken + "\r\n"},
	} {
		if st := slowPostStatus(t, strings.TrimPrefix(tc.url, "http://"), tc.path, tc.hdr); st != http.StatusRequestTimeout {
			t.Errorf("slow body to %s: %d, want 408", tc.path, st)
		}
	}

	// The SSE stream outlived all of it, and the agent still answers.
	select {
	case err := <-ended:
		t.Fatalf("the SSE stream ended: %v", err)
	default:
	}
	call := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"still here"}}}`
	if resp, body := mcpPost(t, c, mcpURL, demoKey, "", call); resp.StatusCode != http.StatusOK || !strings.Contains(body, "still here") {
		t.Fatalf("tool call after the deadlines: %d %s", resp.StatusCode, body)
	}
	select {
	case err := <-ended:
		t.Fatalf("the SSE stream ended: %v", err)
	default:
	}
}

// slowPostStatus sends a POST announcing 4096 body bytes, sends 2, and
// returns the status of the answer (0: closed without one).
func slowPostStatus(t *testing.T, addr, path, hdr string) int {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(devFailsafe))
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\n%sContent-Length: 4096\r\n\r\n{\"", path, addr, hdr)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatalf("slow body to %s: no answer after %v", path, devFailsafe)
	case err != nil:
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestDevModeSlowLoris: 300 connections trickling bodies to dev mode all
// end, and the process's goroutines come back to where they were.
func TestDevModeSlowLoris(t *testing.T) {
	base, _ := devGateway(t, "http://127.0.0.1:9/mcp")
	addr := strings.TrimPrefix(base, "http://")
	http.DefaultClient.CloseIdleConnections()
	time.Sleep(2 * devBodyTimeout) // idle keep-alive connections of the set-up close
	runtime.GC()
	before := runtime.NumGoroutine()
	const n = 300
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(devFailsafe))
		fmt.Fprintf(c, "POST /oauth/token HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 4096\r\n\r\ngrant_type=", addr)
		conns[i] = c
	}
	during := runtime.NumGoroutine()
	counts := map[int]int{}
	for _, c := range conns {
		st := 0
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
			st = resp.StatusCode
			resp.Body.Close()
		} else if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("a slow-loris connection got no answer within %v", devFailsafe)
		}
		counts[st]++
		c.Close()
	}
	if counts[http.StatusRequestTimeout]+counts[http.StatusServiceUnavailable] != n {
		t.Fatalf("answers %v: want every slow body refused (408, or 503 beyond max_body_reads)", counts)
	}
	var after int
	for end := time.Now().Add(devFailsafe); ; time.Sleep(20 * time.Millisecond) {
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
