package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// The shipped Envoy files are the builder's output: one source of truth.
// Each is compared byte for byte with what the command its header names
// prints now; regenerate a stale one with that command.
func TestShippedEnvoyFilesAreGenerated(t *testing.T) {
	t.Chdir("../..")
	for _, c := range []struct {
		file string
		args []string
	}{
		{"envoy/envoy.yaml", []string{"--config", "deploy/compose/gateway.yaml", "--no-store"}},
		{"envoy/envoy-http-service.yaml", []string{"--config", "deploy/compose/gateway.yaml", "--no-store", "--mode", "http-service"}},
		{"envoy/envoy-xds.yaml", []string{"--ads"}},
	} {
		t.Run(c.file, func(t *testing.T) {
			for _, k := range []string{"MCPGW_CONFIG", "MCPGW_XDS_MODE", "MCPGW_XDS_GATEWAY_HTTP", "MCPGW_XDS_GATEWAY_GRPC", "MCPGW_AGENTS", "MCPGW_STORE_URL"} {
				t.Setenv(k, "")
				os.Unsetenv(k)
			}
			var out bytes.Buffer
			if err := runEnvoyConfig(t.Context(), c.args, &out); err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(c.file)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Errorf("%s differs from the builder's output: regenerate with\n  go run ./cmd/mcp-gateway envoy-config %s > %s", c.file, strings.Join(c.args, " "), c.file)
			}
		})
	}
}
