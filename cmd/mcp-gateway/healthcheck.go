package main

import (
	"context"
	"io"

	"github.com/mcpgateway/mcp-gateway/admin"
)

// runHealthcheck is `mcp-gateway healthcheck`; the logic lives in package admin.
func runHealthcheck(ctx context.Context, args []string, stdout io.Writer) error {
	return admin.RunHealthcheck(ctx, args, stdout)
}
