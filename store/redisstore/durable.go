package redisstore

import (
	"context"
	"crypto/rand"
	"time"

	"github.com/redis/go-redis/v9"
)

// takenTTL is how long a taken record's value stays for a resend of the
// call that took it (takeOnce): longer than go-redis's retries.
const takenTTL = 30 * time.Second

// attemptID names one store call, so that a resend of it (go-redis retries
// a command whose reply a broken connection lost) is told from another
// call: see scripts.go.
func attemptID() string { return rand.Text() }

// waitTimeout bounds how long a decisive write waits for a replica.
const waitTimeout = 250 * time.Millisecond

// run runs a script. With a Sentinel-managed primary it is a decisive write
// (code redemption, refresh rotation, revocations) and is followed, on the
// same connection, by WAIT 1: Redis replicates asynchronously, so without it
// a failover right after the answer could promote a replica that never saw
// the write (a redeemed code redeemable again, a revocation undone). A
// replica that does not answer in waitTimeout is counted
// (mcpgw_store_errors_total{op="WaitReplica"}) but does not fail the call:
// the primary applied the write, and refusing every revocation while a
// replica is down would be worse than the window it leaves.
func (s *Store) run(ctx context.Context, sc *redis.Script, keys []string, args ...any) *redis.Cmd {
	if !s.wait {
		return sc.Run(ctx, s.rdb, keys, args...)
	}
	cmd, acked := s.runWait(ctx, sc.EvalSha, keys, args)
	if cmd.Err() != nil && redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
		cmd, acked = s.runWait(ctx, sc.Eval, keys, args)
	}
	if cmd.Err() == nil && acked < 1 {
		metricsFor("WaitReplica").errors.Inc()
	}
	return cmd
}

// runWait sends the script and WAIT in one pipeline: one connection, whose
// write WAIT then counts.
func (s *Store) runWait(ctx context.Context, eval func(context.Context, redis.Scripter, []string, ...any) *redis.Cmd, keys []string, args []any) (*redis.Cmd, int64) {
	pipe := s.rdb.Pipeline()
	cmd := eval(ctx, pipe, keys, args...)
	w := redis.NewIntCmd(ctx, "wait", 1, waitTimeout.Milliseconds())
	_ = pipe.Process(ctx, w)
	_, _ = pipe.Exec(ctx) // errors are on cmd and w
	return cmd, w.Val()
}
