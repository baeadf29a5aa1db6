package main

import (
	"context"
	"fmt"
	"log/slog"
)

// redisLogger sends go-redis's own log lines to slog at debug level. go-redis
// logs every failed pool dial ("failed to dial after 5 attempts") to stderr
// before the store's Ping returns, so a Redis that is down at start printed
// four such lines ahead of the one error that explains it; the store reports
// the failure itself (ErrUnavailable, /readyz), and MCPGW_LOG_LEVEL=debug
// still shows go-redis's detail.
type redisLogger struct{ log *slog.Logger }

// Printf implements go-redis's internal.Logging.
func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	r.log.DebugContext(ctx, "redis client", "detail", fmt.Sprintf(format, v...))
}
