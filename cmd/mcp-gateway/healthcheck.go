package main

import (
	"context"
	"io"

	"github.com/mcpgateway/mcp-gateway/cmd/mcp-gateway/cli"
)

// runHealthcheck is `mcp-gateway healthcheck`; the logic lives in package cli.
func runHealthcheck(ctx context.Context, args []string, stdout io.Writer) error {
	return cli.RunHealthcheck(ctx, args, stdout)
}
