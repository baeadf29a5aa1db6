package redisstore_test

import (
	"context"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/mcpgateway/mcp-gateway/internal/metrics"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/store/redistest"
)

// Under Sentinel a revocation, a redemption and a rotation return only once
// the replica has them (WAIT 1 on the write's own connection), so a
// failover right after cannot undo them. With the replica gone the write
// still succeeds on the primary and the missed acknowledgement is counted.
func TestSentinelWritesWaitForTheReplica(t *testing.T) {
	set := redistest.StartSentinel(t)
	s := redistest.OpenURL(t, set.URL, "wait")
	ctx := t.Context()
	missed := func() float64 {
		var m dto.Metric
		if err := metrics.StoreErrors.WithLabelValues("WaitReplica").Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	replica := redis.NewClient(&redis.Options{Addr: set.Replica.Addr()})
	defer replica.Close()

	// A write that WAIT acknowledged is on the replica. WAIT may time out on
	// a loaded machine (the write then succeeds and the miss is counted), so
	// timing is not asserted: only that every acknowledged write is there,
	// and that most are acknowledged with a healthy replica.
	acked := 0
	for i := range 20 {
		jti := "jti-" + time.Now().Format("150405.000000000") + string(rune('a'+i))
		m0 := missed()
		if err := s.RevokeJTI(ctx, jti, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if missed() != m0 {
			continue // not acknowledged in time: counted, as it must be
		}
		acked++
		n, err := replica.Exists(context.Background(), s.Prefix()+"revoked:"+jti).Result()
		if err != nil || n != 1 {
			t.Fatalf("revocation %d acknowledged but not on the replica: %d %v", i, n, err)
		}
	}
	if acked == 0 {
		t.Fatal("no write was acknowledged by a healthy replica")
	}
	t.Logf("%d of 20 writes acknowledged by the replica within the wait", acked)

	before := missed() // the miss counted below is this write's, not a timed-out one above
	set.Replica.Kill()
	if err := s.RevokeJTI(ctx, "after-replica-loss", time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("a revocation with the replica down: %v (the primary applied it)", err)
	}
	if ok, err := s.IsRevoked(ctx, "after-replica-loss"); err != nil || !ok {
		t.Fatalf("revoked: %v %v", ok, err)
	}
	if _, err := s.RedeemCode(ctx, "nope", store.CodeBinding{}); err == nil {
		t.Fatal("redeemed a missing code")
	}
	if got := missed() - before; got < 1 {
		t.Fatalf("the missed acknowledgement was not counted (%v)", got)
	}
}
