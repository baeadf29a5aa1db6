package main

import (
	"context"
	"io"

	"github.com/mcpgateway/mcp-gateway/cmd/mcp-gateway/cli"
)

// runClients is `mcp-gateway clients`; the logic lives in package cli.
func runClients(ctx context.Context, args []string, stdout io.Writer) error {
	return cli.RunClients(ctx, args, stdout)
}
