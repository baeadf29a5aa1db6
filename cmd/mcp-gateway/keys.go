package main

import (
	"context"
	"io"

	"github.com/mcpgateway/mcp-gateway/admin"
)

// runKeys is `mcp-gateway keys`; the logic lives in package admin.
func runKeys(ctx context.Context, args []string, stdout io.Writer) error {
	return admin.RunKeys(ctx, args, stdout)
}
