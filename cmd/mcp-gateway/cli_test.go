package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHelpAndVersion: --help and every command's -h exit 0, list the
// command's flags and the environment variables it reads; --version works.
func TestHelpAndVersion(t *testing.T) {
	ctx := context.Background()
	for _, a := range []string{"--help", "-h", "help"} {
		var out, errb bytes.Buffer
		if code := run(ctx, []string{a}, &out, &errb); code != 0 || !strings.Contains(out.String(), "serve") {
			t.Errorf("%s: exit %d, stdout %q", a, code, out.String())
		}
	}
	for _, a := range []string{"--version", "-version", "version"} {
		var out bytes.Buffer
		if code := run(ctx, []string{a}, &out, &bytes.Buffer{}); code != 0 || out.String() != "mcp-gateway "+version+"\n" {
			t.Errorf("%s: exit %d, %q", a, code, out.String())
		}
	}
	if code := run(ctx, nil, &bytes.Buffer{}, &bytes.Buffer{}); code != 2 {
		t.Errorf("no command: exit %d, want 2", code)
	}
	wantFlag := map[string]string{
		"serve": "-config", "dev": "-listen", "demo-agent": "-issuer", "agents": "create",
		"keys": "create", "clients": "list", "envoy-config": "-ads", "nginx-config": "-out",
		"istio-config": "-host", "healthcheck": "-url", "hash-password": "stdin",
	}
	for name, cmd := range commands {
		if name == "version" {
			continue
		}
		var out, errb bytes.Buffer
		code := run(ctx, []string{name, "--help"}, &out, &errb)
		all := out.String() + errb.String()
		if code != 0 {
			t.Errorf("%s --help: exit %d\n%s", name, code, all)
		}
		if f := wantFlag[name]; f == "" || !strings.Contains(all, f) {
			t.Errorf("%s --help lists no %q:\n%s", name, f, all)
		}
		for _, e := range cmd.env {
			v, _, _ := strings.Cut(e, " ")
			if !strings.Contains(all, v) {
				t.Errorf("%s --help does not name %s:\n%s", name, v, all)
			}
		}
	}
	for _, name := range []string{"serve", "agents", "keys", "nginx-config"} {
		if len(commands[name].env) == 0 {
			t.Errorf("%s lists no environment variables", name)
		}
	}
}

// TestErrorsOnePrefix: an error names the command once ("mcp-gateway keys:
// create: no admin token"), not "keys: keys create: keys: …".
func TestErrorsOnePrefix(t *testing.T) {
	t.Setenv("MCPGW_ADMIN_TOKEN", "")
	var errb bytes.Buffer
	if code := run(context.Background(), []string{"keys", "create", "--agent", "x"}, &bytes.Buffer{}, &errb); code != 1 {
		t.Fatalf("exit %d", code)
	}
	if got := errb.String(); got != "mcp-gateway keys: create: no admin token: set --admin-token or MCPGW_ADMIN_TOKEN\n" {
		t.Errorf("got %q", got)
	}
	errb.Reset()
	run(context.Background(), []string{"healthcheck", "--url", "http://127.0.0.1:1/healthz"}, &bytes.Buffer{}, &errb)
	if strings.Count(errb.String(), "healthcheck") != 1 {
		t.Errorf("healthcheck error: %q", errb.String())
	}
}

// TestServeRedisDownOneLine runs the binary against a closed Redis port:
// stderr holds one error line naming the store, without go-redis's pool
// logs or a doubled "store: store:", and serve logs nothing else failing.
func TestServeRedisDownOneLine(t *testing.T) {
	bin := buildBinary(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	body := "public_url: http://127.0.0.1:8080\nstore: {url: \"redis://" + addr + "/0?dial_timeout=200ms\"}\nassertion_keys: []\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--config", cfg)
	cmd.Env = append(os.Environ(), `MCPGW_SIGNING_KEYS=[{"id":"k","secret":"0123456789abcdef0123456789abcdef"}]`, "MCPGW_LOG_LEVEL=")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err == nil {
		t.Fatal("serve started without its Redis")
	}
	var errLines []string
	for _, ln := range strings.Split(strings.TrimSpace(errb.String()), "\n") {
		if !strings.HasPrefix(ln, `{"time"`) || strings.Contains(ln, "redis") {
			errLines = append(errLines, ln)
		}
	}
	if len(errLines) != 1 || !strings.HasPrefix(errLines[0], "mcp-gateway serve: ") ||
		!strings.Contains(errLines[0], "store: unavailable") || strings.Contains(errLines[0], "store: store:") {
		t.Fatalf("error lines %q; stderr:\n%s", errLines, errb.String())
	}
}

// TestServeLogsEveryListener: the gRPC Check listener is logged like the
// others, so an operator sees each port serve opened.
func TestServeLogsEveryListener(t *testing.T) {
	bin := buildBinary(t)
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	body := "public_url: http://127.0.0.1:8080\nstore: {url: memory}\nlisten: {http: \"127.0.0.1:0\", grpc: \"127.0.0.1:0\", admin: \"127.0.0.1:0\"}\nxds: {listen: \"127.0.0.1:0\", gateway_http: \"127.0.0.1:8080\", gateway_grpc: \"127.0.0.1:9191\"}\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "serve", "--config", cfg, "--drain-delay", "0s")
	cmd.Env = append(os.Environ(), `MCPGW_SIGNING_KEYS=[{"id":"k","secret":"0123456789abcdef0123456789abcdef"}]`)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	// A guard against a hang, not a speed check: serve that never logs a
	// listener is stopped, and the read below ends in a failure.
	stopper := time.AfterFunc(time.Minute, cancel)
	defer stopper.Stop()
	seen := map[string]bool{}
	buf := make([]byte, 64<<10)
	var all bytes.Buffer
	for len(seen) < 4 {
		n, err := stderr.Read(buf)
		all.Write(buf[:n])
		if err != nil {
			t.Fatalf("serve ended; listeners logged %v\n%s", seen, all.String())
		}
		for _, name := range []string{"http", "grpc", "admin", "xds"} {
			if strings.Contains(all.String(), `"msg":"listening","listener":"`+name+`"`) {
				seen[name] = true
			}
		}
	}
}
