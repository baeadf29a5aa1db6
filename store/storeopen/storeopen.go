// Package storeopen picks a store.Store backend from a URL. It lives apart
// from package store because the backends import store.
package storeopen

import (
	"context"
	"fmt"
	"net/url"

	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/store/memstore"
	"github.com/mcpgateway/mcp-gateway/store/redisstore"
)

// Open returns the in-memory store for "memory", or a Redis store for a
// redis://, rediss:// (TLS) or unix:// URL, using prefix for its keys.
// A Redis that cannot be reached yields an error wrapping
// store.ErrUnavailable.
func Open(ctx context.Context, rawURL, prefix string) (store.Store, error) {
	if rawURL == "memory" {
		return memstore.New(), nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("store url: want \"memory\" or a redis://, rediss:// or unix:// URL")
	}
	switch u.Scheme {
	case "redis", "rediss", "unix":
		return redisstore.New(ctx, rawURL, prefix)
	}
	return nil, fmt.Errorf("store url: unsupported scheme %q: want \"memory\" or a redis://, rediss:// or unix:// URL", u.Scheme)
}
