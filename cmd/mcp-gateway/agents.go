package main

import (
	"context"
	"io"

	"github.com/mcpgateway/mcp-gateway/admin"
)

// runAgents is `mcp-gateway agents`; the logic lives in package admin.
func runAgents(ctx context.Context, args []string, stdout io.Writer) error {
	return admin.RunAgents(ctx, args, stdout)
}
