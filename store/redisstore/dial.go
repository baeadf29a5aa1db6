package redisstore

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Mode is how the store reaches Redis, named by the URL's scheme.
type Mode int

const (
	// Single is one Redis server (redis://, rediss://, unix://).
	Single Mode = iota
	// Cluster is a Redis Cluster (redis-cluster://, rediss-cluster://).
	Cluster
	// Sentinel is a primary managed by Redis Sentinel (redis-sentinel://,
	// rediss-sentinel://); the URL names the sentinels.
	Sentinel
)

func (m Mode) String() string {
	switch m {
	case Cluster:
		return "cluster"
	case Sentinel:
		return "sentinel"
	}
	return "single"
}

// Schemes lists the URL schemes New accepts, for error messages.
const Schemes = "redis://, rediss://, unix://, redis-cluster://, rediss-cluster://, redis-sentinel:// or rediss-sentinel://"

// ParseMode returns the mode a URL's scheme names, and the scheme go-redis's
// parsers expect (redis or rediss; unix stays unix).
func ParseMode(rawURL string) (Mode, string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return 0, "", fmt.Errorf("redisstore: bad url: want a %s URL", Schemes)
	}
	switch u.Scheme {
	case "redis", "rediss", "unix":
		return Single, u.Scheme, nil
	case "redis-cluster", "rediss-cluster":
		return Cluster, strings.TrimSuffix(u.Scheme, "-cluster"), nil
	case "redis-sentinel", "rediss-sentinel":
		return Sentinel, strings.TrimSuffix(u.Scheme, "-sentinel"), nil
	}
	return 0, "", fmt.Errorf("redisstore: unsupported scheme %q: want a %s URL", u.Scheme, Schemes)
}

// Dial builds (without connecting) the go-redis client a URL names:
//
//	redis://[user:pass@]host:6379/0           one server (rediss:// for TLS)
//	redis-cluster://[user:pass@]host:7000?addr=host2:7001&addr=host3:7002
//	redis-sentinel://[user:pass@]sentinel:26379/0?master_name=mymaster&addr=sentinel2:26379&password=...
//
// Cluster and Sentinel URLs are read by go-redis's ParseClusterURL and
// ParseFailoverURL (in a Sentinel URL the user info is the sentinels'
// credentials; username= and password= are the data nodes'). Options that
// would send reads to replicas are refused: codes, refresh rotation, keys
// and revocations are decided by what a read returns, and a replica may lag
// the primary. A cluster has only DB 0.
func Dial(rawURL string) (redis.UniversalClient, Mode, error) {
	mode, scheme, err := ParseMode(rawURL)
	if err != nil {
		return nil, 0, err
	}
	u, _ := url.Parse(rawURL) // ParseMode parsed it
	u.Scheme = scheme
	switch mode {
	case Cluster:
		if p := strings.Trim(u.Path, "/"); p != "" && p != "0" {
			return nil, 0, errors.New("redisstore: a Redis Cluster has only database 0: drop the /" + p + " path")
		}
		u.Path = ""
		o, err := redis.ParseClusterURL(u.String())
		if err != nil {
			return nil, 0, fmt.Errorf("redisstore: bad cluster url: %w", err)
		}
		if o.ReadOnly || o.RouteByLatency || o.RouteRandomly {
			return nil, 0, errors.New("redisstore: read_only, route_by_latency and route_randomly would read from replicas: refused")
		}
		return redis.NewClusterClient(o), Cluster, nil
	case Sentinel:
		o, err := redis.ParseFailoverURL(u.String())
		if err != nil {
			return nil, 0, fmt.Errorf("redisstore: bad sentinel url: %w", err)
		}
		if o.MasterName == "" {
			return nil, 0, errors.New("redisstore: a sentinel url needs master_name=")
		}
		if o.ReplicaOnly || o.RouteByLatency || o.RouteRandomly || o.UseDisconnectedReplicas {
			return nil, 0, errors.New("redisstore: replica_only, route_by_latency, route_randomly and use_disconnected_replicas would read from replicas: refused")
		}
		// NewFailoverClient talks to the primary only.
		return redis.NewFailoverClient(o), Sentinel, nil
	}
	o, err := redis.ParseURL(u.String())
	if err != nil {
		return nil, 0, fmt.Errorf("redisstore: bad url: %w", err)
	}
	return redis.NewClient(o), Single, nil
}

// CheckPrefix refuses a key prefix that would break hash tags on a cluster:
// the first "{…}" in a key picks its slot, and it must be the store's own.
func CheckPrefix(mode Mode, prefix string) error {
	if mode == Cluster && strings.ContainsAny(prefix, "{}") {
		return errors.New("redisstore: store.prefix must not contain '{' or '}' on a Redis Cluster (they would pick the keys' hash slot)")
	}
	return nil
}
