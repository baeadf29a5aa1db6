package main

import (
	"context"
	"io"

	"github.com/mcpgateway/mcp-gateway/admin"
)

// runClients is `mcp-gateway clients`; the logic lives in package admin.
func runClients(ctx context.Context, args []string, stdout io.Writer) error {
	return admin.RunClients(ctx, args, stdout)
}
