package deploy

import (
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mcpgateway/mcp-gateway/deploy/deploytest"
)

// TestDockerfile: a multi-stage build of a static binary into distroless,
// non-root, with the entrypoint, command and ports compose and the README
// use; .dockerignore keeps what that build needs.
func TestDockerfile(t *testing.T) {
	root := deploytest.Root(t)
	lines := deploytest.DockerfileLines(t)
	var froms []int
	for i, l := range lines {
		if strings.HasPrefix(l, "FROM ") {
			froms = append(froms, i)
		}
	}
	if len(froms) < 2 {
		t.Fatalf("want a multi-stage build, have %d FROM", len(froms))
	}
	if !strings.HasPrefix(lines[froms[0]], "FROM golang:1.26") {
		t.Errorf("builder is %q, want golang:1.26", lines[froms[0]])
	}
	final := lines[froms[len(froms)-1]:]
	if !strings.Contains(final[0], "distroless/static") || !strings.HasSuffix(final[0], ":nonroot") {
		t.Errorf("final stage %q, want distroless static :nonroot", final[0])
	}
	has := func(lines []string, prefix string) string {
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return l
			}
		}
		return ""
	}
	if u := has(final, "USER "); !strings.HasPrefix(u, "USER nonroot") {
		t.Errorf("final stage runs as %q, want USER nonroot", u)
	}
	if e := has(final, "ENTRYPOINT "); e != `ENTRYPOINT ["/mcp-gateway"]` || deploytest.DockerBinary(t) != "/mcp-gateway" {
		t.Errorf("entrypoint %q, binary at %q", e, deploytest.DockerBinary(t))
	}
	if c := has(final, "CMD "); c != `CMD ["serve", "--config", "/etc/mcp-gateway/config.yaml"]` {
		t.Errorf("CMD %q", c)
	}
	exposed := strings.Fields(strings.TrimPrefix(has(final, "EXPOSE "), "EXPOSE "))
	for _, p := range []string{"8080", "9191", "9090", "18000"} {
		if !slices.Contains(exposed, p) {
			t.Errorf("EXPOSE lacks %s", p)
		}
	}
	build := has(lines[:froms[len(froms)-1]], "RUN --mount=type=cache,target=/go/pkg/mod --mount")
	if !strings.Contains(build, "CGO_ENABLED=0") || !strings.Contains(build, "./cmd/mcp-gateway") {
		t.Errorf("build step %q: want a static (CGO_ENABLED=0) build of ./cmd/mcp-gateway", build)
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "mcp-gateway")); err != nil {
		t.Errorf("./cmd/mcp-gateway: %v", err)
	}

	// .dockerignore must keep what the build needs.
	ig, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, pat := range strings.Split(string(ig), "\n") {
		pat = strings.TrimSpace(pat)
		if pat == "" || strings.HasPrefix(pat, "#") {
			continue
		}
		for _, need := range []string{"go.mod", "go.sum", "cmd", "cmd/mcp-gateway", "config", "envoy", "deploy/nginx", "deploy/nginx/mcp-gateway.conf.template"} {
			dir := strings.TrimSuffix(pat, "/")
			if ok, _ := path.Match(strings.TrimPrefix(pat, "**/"), need); ok || dir == need || strings.HasPrefix(need, dir+"/") {
				t.Errorf(".dockerignore pattern %q excludes %s, which the build needs", pat, need)
			}
		}
	}
}
