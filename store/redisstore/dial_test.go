package redisstore_test

import (
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/mcpgateway/mcp-gateway/store/redisstore"
)

// Each URL form yields its client; TLS and auth reach go-redis's options;
// what would read from replicas or break hash tags is refused.
func TestDial(t *testing.T) {
	rdb, mode, err := redisstore.Dial("rediss-cluster://u:pw@n1:7000?addr=n2:7001&addr=n3:7002")
	if err != nil || mode != redisstore.Cluster {
		t.Fatalf("cluster: %v %v", mode, err)
	}
	co := rdb.(*redis.ClusterClient).Options()
	if len(co.Addrs) != 3 || co.Username != "u" || co.Password != "pw" || co.TLSConfig == nil || co.ReadOnly {
		t.Fatalf("cluster options: %+v", co)
	}
	_ = rdb.Close()

	rdb, mode, err = redisstore.Dial("rediss-sentinel://su:spw@s1:26379/2?master_name=m&addr=s2:26379&password=dpw")
	if err != nil || mode != redisstore.Sentinel {
		t.Fatalf("sentinel: %v %v", mode, err)
	}
	if _, ok := rdb.(*redis.Client); !ok { // NewFailoverClient: the primary only
		t.Fatalf("sentinel client is %T", rdb)
	}
	_ = rdb.Close()

	for _, bad := range []string{
		"redis-cluster://n1:7000/1",
		"redis-cluster://n1:7000?read_only=true",
		"redis-cluster://n1:7000?route_randomly=true",
		"redis-sentinel://s1:26379",
		"redis-sentinel://s1:26379?master_name=m&replica_only=true",
		"redis-sentinel://s1:26379?master_name=m&route_by_latency=true",
		"redis+cluster://n1:7000",
	} {
		if rdb, _, err := redisstore.Dial(bad); err == nil {
			_ = rdb.Close()
			t.Errorf("Dial(%q) accepted", bad)
		}
	}
	if _, err := redisstore.New(t.Context(), "redis-cluster://127.0.0.1:1", "gw{x}:"); err == nil || !strings.Contains(err.Error(), "prefix") {
		t.Errorf("a '{' prefix on a cluster: %v", err)
	}
}
