// Package storeopen picks a store.Store backend from a URL. It lives apart
// from package store because the backends import store.
package storeopen

import (
	"context"
	"fmt"

	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/store/memstore"
	"github.com/mcpgateway/mcp-gateway/store/redisstore"
)

// Open returns the in-memory store for "memory", or a Redis store for a
// URL redisstore.Dial reads (one server: redis://, rediss:// for TLS,
// unix://; a cluster: redis-cluster://, rediss-cluster://; a Sentinel-managed
// primary: redis-sentinel://, rediss-sentinel://), using prefix for its keys.
// A Redis that cannot be reached yields an error wrapping
// store.ErrUnavailable.
func Open(ctx context.Context, rawURL, prefix string) (store.Store, error) {
	if rawURL == "memory" {
		return memstore.New(), nil
	}
	if _, _, err := redisstore.ParseMode(rawURL); err != nil {
		return nil, fmt.Errorf("store url: want \"memory\" or a %s URL", redisstore.Schemes)
	}
	return redisstore.New(ctx, rawURL, prefix)
}
