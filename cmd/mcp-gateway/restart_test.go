package main

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpgateway/mcp-gateway/internal/logtest"
)

// TestRestartDuringDrainExplains stops a gateway with SIGTERM and starts a
// second one on the same port at once: the first holds the port while it
// drains (on purpose), and both say so, the shutdown log line and the
// second process's "address already in use" error.
func TestRestartDuringDrainExplains(t *testing.T) {
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	listen, admin := freeAddr(t), freeAddr(t)
	env := append(os.Environ(), "MCPGW_DEV_PASSWORD=restart-test-pw", "MCPGW_CONFIG=", "MCPGW_ADMIN_TOKEN=")
	first := exec.Command(bin, "dev", "--listen", listen, "--admin", admin, "--grpc", "", "--drain-delay", "3s")
	first.Env = env
	var logs logtest.Buffer
	first.Stdout, first.Stderr = &logtest.Buffer{}, &logs
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- first.Wait() }()
	t.Cleanup(func() {
		if first.ProcessState == nil {
			_ = first.Process.Kill()
			<-exited
		}
	})
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.Get("http://" + admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("dev mode never became ready; logs:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := first.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(logs.String(), "shutting down") {
		if time.Now().After(deadline) {
			t.Fatalf("no shutdown log line; logs:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	second := exec.Command(bin, "dev", "--listen", listen, "--admin", "", "--grpc", "")
	second.Env = env
	var stderr bytes.Buffer
	second.Stdout, second.Stderr = &bytes.Buffer{}, &stderr
	done := make(chan error, 1)
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- second.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the second gateway started on a port the first still holds")
		}
	case <-time.After(20 * time.Second):
		_ = second.Process.Kill()
		t.Fatal("the second gateway neither failed nor stopped within 20s")
	}
	msg := stderr.String()
	for _, want := range []string{"address already in use", "a gateway that was just stopped keeps its ports while it drains", "--drain-delay", `"stopped"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("restart error lacks %q:\n%s", want, msg)
		}
	}
	var line string
	for _, r := range logs.Records(t) {
		if m, _ := r["msg"].(string); strings.HasPrefix(m, "shutting down") {
			line = m
			if r["drain"] != "3s" {
				t.Errorf("shutdown line: drain %v, want 3s", r["drain"])
			}
		}
	}
	if !strings.Contains(line, "keep their ports") || !strings.Contains(line, "cannot bind them") {
		t.Errorf("the shutdown line does not say the ports stay bound: %q", line)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("first gateway exit: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Error("the first gateway did not stop")
	}
}
