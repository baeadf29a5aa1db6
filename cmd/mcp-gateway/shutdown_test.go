package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpgateway/mcp-gateway/internal/logtest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// buildBinary compiles this command once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mcp-gateway")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// mcpPost sends one JSON-RPC message to the MCP endpoint and returns the
// response with its body read.
func mcpPost(t *testing.T, c *http.Client, url, key, session, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2025-06-18")
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestSIGTERMDrainsDevMode runs the real binary in dev mode, opens an SSE
// stream through the gated proxy to the demo agent, and sends SIGTERM:
// /readyz fails first while the listeners still serve (new requests during
// the drain delay work), the open stream is closed within the shutdown
// deadline, and the process exits 0 within it.
func TestSIGTERMDrainsDevMode(t *testing.T) {
	if testing.Short() && os.Getenv("CI") != "true" { // CI never skips it
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	listen, admin := freeAddr(t), freeAddr(t)
	const (
		adminToken = "shutdown-test-admin-token-0123456789"
		drain      = time.Second
		grace      = 4 * time.Second
	)
	cmd := exec.Command(bin, "dev", "--listen", listen, "--admin", admin, "--grpc", "",
		"--drain-delay", drain.String(), "--shutdown-timeout", grace.String())
	cmd.Env = append(os.Environ(), "MCPGW_ADMIN_TOKEN="+adminToken, "MCPGW_DEV_PASSWORD=shutdown-test-pw", "MCPGW_CONFIG=")
	var out, logs logtest.Buffer
	cmd.Stdout, cmd.Stderr = &out, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("stdout:\n%s\nlogs:\n%s", out.String(), logs.String())
		}
	})
	c := &http.Client{Timeout: 5 * time.Second}
	base, adminURL := "http://"+listen, "http://"+admin

	readyz := func() int {
		resp, err := c.Get(adminURL + "/readyz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	deadline := time.Now().Add(30 * time.Second)
	for readyz() != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("dev mode never became ready")
		}
		select {
		case err := <-exited:
			t.Fatalf("dev mode exited early: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}

	// An agent key for the demo agent, through the admin API.
	req, _ := http.NewRequest(http.MethodPost, adminURL+"/admin/v1/keys", strings.NewReader(`{"kind":"agent","agent":"demo","name":"shutdown test"}`))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var created struct{ Key string }
	_ = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || !strings.HasPrefix(created.Key, "bak_") {
		t.Fatalf("create key: %d %+v", resp.StatusCode, created)
	}
	key := created.Key

	// A stream that stays open, through the gateway: the demo agent is
	// stateless, so the long-lived one is a 2026-07-28 subscriptions/listen
	// POST (its first event acknowledges the subscription).
	mcpURL := base + "/demo/mcp"
	streamClient := &http.Client{} // no timeout: the stream is meant to stay open
	sreq, _ := http.NewRequest(http.MethodPost, mcpURL, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"toolsListChanged":true},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"shutdown-test","version":"1"}}}}`))
	sreq.Header.Set("Authorization", "Bearer "+key)
	sreq.Header.Set("Content-Type", "application/json")
	sreq.Header.Set("Accept", "application/json, text/event-stream")
	sreq.Header.Set("MCP-Protocol-Version", "2026-07-28")
	sreq.Header.Set("Mcp-Method", "subscriptions/listen")
	sresp, err := streamClient.Do(sreq)
	if err != nil {
		t.Fatal(err)
	}
	defer sresp.Body.Close()
	if sresp.StatusCode != http.StatusOK || !strings.HasPrefix(sresp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(sresp.Body)
		t.Fatalf("SSE stream: %d %s: %s", sresp.StatusCode, sresp.Header.Get("Content-Type"), b)
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
	type streamEnd struct {
		err error
		at  time.Time
	}
	ended := make(chan streamEnd, 1)
	go func() {
		_, err := io.Copy(io.Discard, sbody)
		ended <- streamEnd{err, time.Now()}
	}()
	select {
	case e := <-ended:
		t.Fatalf("the SSE stream ended before SIGTERM: %v", e.err)
	case <-time.After(200 * time.Millisecond):
	}

	// SIGTERM: readiness must fail while the listeners still serve.
	sigAt := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var notReadyAt time.Time
	for {
		st := readyz()
		if st == http.StatusServiceUnavailable {
			notReadyAt = time.Now()
			break
		}
		if st != http.StatusOK || time.Since(sigAt) > drain {
			t.Fatalf("readyz after SIGTERM: %d (%v later), want 503 during the drain delay", st, time.Since(sigAt))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r, err := c.Get(base + "/.well-known/oauth-authorization-server"); err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("the HTTP listener stopped before the drain delay ended: %v %v", r, err)
	} else {
		r.Body.Close()
	}
	call := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"still here"}}}`
	if resp, body := mcpPost(t, c, mcpURL, key, "", call); resp.StatusCode != http.StatusOK || !strings.Contains(body, "still here") {
		t.Fatalf("tool call during the drain delay: %d %s", resp.StatusCode, body)
	}
	if time.Since(sigAt) >= drain {
		t.Logf("note: the checks during the drain took %v (drain %v)", time.Since(sigAt), drain)
	}

	// The open stream is closed, then the process exits 0, all within the deadline.
	limit := drain + grace + 2*time.Second
	var e streamEnd
	select {
	case e = <-ended:
	case <-time.After(limit):
		t.Fatalf("the SSE stream is still open %v after SIGTERM", limit)
	}
	if e.err != nil && !errors.Is(e.err, io.ErrUnexpectedEOF) {
		t.Errorf("the SSE stream ended with %v, want a clean close (EOF or the connection closed)", e.err)
	}
	var exitErr error
	select {
	case exitErr = <-exited:
	case <-time.After(limit - time.Since(sigAt)):
		t.Fatalf("the process is still running %v after SIGTERM", limit)
	}
	exitAt := time.Now()
	if exitErr != nil {
		t.Fatalf("exit: %v", exitErr)
	}
	if !notReadyAt.Before(e.at) || e.at.After(exitAt) {
		t.Errorf("order: not ready at %v, stream closed at %v, exit at %v (want that order)", notReadyAt.Sub(sigAt), e.at.Sub(sigAt), exitAt.Sub(sigAt))
	}
	if _, err := net.DialTimeout("tcp", listen, time.Second); err == nil {
		t.Error("the HTTP port still accepts connections after exit")
	}
	if !strings.Contains(logs.String(), `"msg":"stopped"`) {
		t.Error(`no "stopped" log line`)
	}
	t.Logf("SIGTERM → not ready %v, stream closed %v (%v), exit 0 at %v", notReadyAt.Sub(sigAt), e.at.Sub(sigAt), errString(e.err), exitAt.Sub(sigAt))
}

func errString(err error) string {
	if err == nil {
		return "EOF"
	}
	return fmt.Sprint(err)
}
