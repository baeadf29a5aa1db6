package main

import (
	"context"
	"io"

	"github.com/mcpgateway/mcp-gateway/cmd/mcp-gateway/cli"
)

// runAgents is `mcp-gateway agents`; the logic lives in package cli.
func runAgents(ctx context.Context, args []string, stdout io.Writer) error {
	return cli.RunAgents(ctx, args, stdout)
}
