package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Variables naming servers a CI run started; without them the helpers below
// start their own on free loopback ports.
const (
	EnvClusterURL  = "MCPGW_TEST_REDIS_CLUSTER_URL"
	EnvSentinelURL = "MCPGW_TEST_REDIS_SENTINEL_URL"
)

// needTool returns the path of a server binary. Without it the test is
// skipped, except when CI=true, where it is a failure.
func needTool(tb testing.TB, name string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("%s not found (required when CI=true)", name)
		}
		tb.Skipf("%s not found: skipping a test that needs it", name)
	}
	return p
}

// freePort returns a loopback port nothing listens on right now.
func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Server is one redis-server or redis-sentinel process a test started.
type Server struct {
	Port int
	cmd  *exec.Cmd
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// Kill stops the server at once (SIGKILL: a crash, not a shutdown).
func (s *Server) Kill() {
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_, _ = s.cmd.Process.Wait()
	}
}

// start runs bin with args (a config on the command line or a file), logs
// to dir, and stops it when the test ends; it waits until the port answers.
func start(tb testing.TB, bin, dir string, port int, args ...string) *Server {
	tb.Helper()
	log, err := os.Create(filepath.Join(dir, fmt.Sprintf("%d.log", port)))
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = dieWithParent()
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", bin, err)
	}
	s := &Server{Port: port, cmd: cmd}
	tb.Cleanup(func() { s.Kill(); _ = log.Close() })
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
	defer rdb.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if rdb.Ping(context.Background()).Err() == nil {
			return s
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(log.Name())
			tb.Fatalf("%s on port %d did not start: %s", bin, port, b)
		}
	}
}

// serverArgs are the flags every test redis-server gets: loopback only, no
// persistence, its files in dir.
func serverArgs(dir string, port int) []string {
	return []string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no",
		"--dir", dir, "--protected-mode", "no"}
}

// ClusterURL returns the URL of a 3-primary Redis Cluster: the one named by
// MCPGW_TEST_REDIS_CLUSTER_URL, or one started for this test (three
// redis-server --cluster-enabled yes on loopback ports, joined by
// redis-cli --cluster create) and stopped when it ends.
func ClusterURL(tb testing.TB) string {
	tb.Helper()
	if u := os.Getenv(EnvClusterURL); u != "" {
		return u
	}
	bin, cli := needTool(tb, "redis-server"), needTool(tb, "redis-cli")
	dir := tb.TempDir()
	var addrs []string
	for range 3 {
		port := freePort(tb)
		args := append(serverArgs(dir, port), "--cluster-enabled", "yes",
			"--cluster-config-file", fmt.Sprintf("nodes-%d.conf", port), "--cluster-node-timeout", "2000")
		addrs = append(addrs, start(tb, bin, dir, port, args...).Addr())
	}
	out, err := exec.Command(cli, append(append([]string{"--cluster", "create"}, addrs...),
		"--cluster-replicas", "0", "--cluster-yes")...).CombinedOutput()
	if err != nil {
		tb.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	waitClusterOK(tb, addrs)
	return "redis-cluster://" + addrs[0] + "?addr=" + addrs[1] + "&addr=" + addrs[2]
}

// waitClusterOK waits until every node reports cluster_state:ok.
func waitClusterOK(tb testing.TB, addrs []string) {
	tb.Helper()
	ctx := context.Background()
	for _, a := range addrs {
		rdb := redis.NewClient(&redis.Options{Addr: a})
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			info, _ := rdb.ClusterInfo(ctx).Result()
			if strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				_ = rdb.Close()
				tb.Fatalf("cluster node %s not ok: %s", a, info)
			}
		}
		_ = rdb.Close()
	}
}

// SentinelSetup is a primary, its replica and three sentinels watching them
// (master name "mymaster", failover after 1 s of silence).
type SentinelSetup struct {
	URL       string // redis-sentinel://… naming the three sentinels
	Primary   *Server
	Replica   *Server
	Sentinels []*Server
}

// StartSentinel starts a SentinelSetup that stops when the test ends.
func StartSentinel(tb testing.TB) *SentinelSetup {
	tb.Helper()
	bin, sbin := needTool(tb, "redis-server"), needTool(tb, "redis-sentinel")
	dir := tb.TempDir()
	pp := freePort(tb)
	primary := start(tb, bin, dir, pp, serverArgs(dir, pp)...)
	rp := freePort(tb)
	replica := start(tb, bin, dir, rp, append(serverArgs(dir, rp), "--replicaof", "127.0.0.1", strconv.Itoa(pp))...)
	set := &SentinelSetup{Primary: primary, Replica: replica}
	var addrs []string
	for range 3 {
		port := freePort(tb)
		conf := filepath.Join(dir, fmt.Sprintf("sentinel-%d.conf", port))
		// Sentinel rewrites its config file, so each gets its own.
		text := fmt.Sprintf("port %d\nbind 127.0.0.1\nprotected-mode no\ndir %s\n"+
			"sentinel monitor mymaster 127.0.0.1 %d 2\nsentinel down-after-milliseconds mymaster 1000\n"+
			"sentinel failover-timeout mymaster 5000\nsentinel parallel-syncs mymaster 1\n", port, dir, pp)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			tb.Fatal(err)
		}
		s := start(tb, sbin, dir, port, conf)
		set.Sentinels = append(set.Sentinels, s)
		addrs = append(addrs, s.Addr())
	}
	set.URL = "redis-sentinel://" + addrs[0] + "/0?master_name=mymaster&addr=" + addrs[1] + "&addr=" + addrs[2]
	waitReplicaSynced(tb, replica.Addr())
	return set
}

// waitReplicaSynced waits until the replica's link to its primary is up.
func waitReplicaSynced(tb testing.TB, addr string) {
	tb.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		info, _ := rdb.Info(context.Background(), "replication").Result()
		if strings.Contains(info, "master_link_status:up") {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("replica %s never synced: %s", addr, info)
		}
	}
}

// SentinelURL returns MCPGW_TEST_REDIS_SENTINEL_URL, or the URL of a
// SentinelSetup started for this test.
func SentinelURL(tb testing.TB) string {
	tb.Helper()
	if u := os.Getenv(EnvSentinelURL); u != "" {
		return u
	}
	return StartSentinel(tb).URL
}
