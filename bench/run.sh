#!/usr/bin/env bash
# bench/run.sh — `make bench`: the gateway's Check against three floors — a
# plain no-op Check server answering an empty OK (the floor), the same no-op
# on the gateway's tuned transport, and that tuned no-op answering with the
# gateway's own recorded answers — driven by ghz with Envoy-shaped
# CheckRequests, then the in-process Go benchmarks. One command; prints
# markdown to stdout (BENCHMARKS.md explains it) and keeps the raw ghz reports
# in $OUT (default: a new directory under $TMPDIR).
#
# Environment:
#   DURATION=3s        length of one ghz run (ghz -z)
#   ROUNDS=3           rounds of the whole ghz matrix; figures are medians
#   CONCURRENCY="16 64"
#   CONNECTIONS=1      gRPC connections ghz opens (ghz --connections)
#   GO_BENCH=1         0 skips the Go benchmarks
#   MCPGW_TEST_REDIS_URL  Redis for the Redis variant; when unset a private
#                      redis-server is started if one is installed, else the
#                      Redis variant is skipped.
#   GHZ                path to a ghz binary (default: bin/tools/ghz, installed
#                      with `go install github.com/bojand/ghz/cmd/ghz@v0.120.0`)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

DURATION=${DURATION:-3s}
ROUNDS=${ROUNDS:-3}
CONCURRENCY=${CONCURRENCY:-16 64}
CONNECTIONS=${CONNECTIONS:-1}
GO_BENCH=${GO_BENCH:-1}
GHZ_VERSION=v0.120.0
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/mcpgw-bench.XXXXXX")}
mkdir -p "$OUT" bin/tools
log() { echo "--- $*" >&2; }

# ghz is a tool, not a dependency of our module: installed into bin/tools.
GHZ=${GHZ:-$root/bin/tools/ghz}
if [ ! -x "$GHZ" ]; then
  log "installing ghz $GHZ_VERSION into bin/tools (once)"
  GOBIN="$root/bin/tools" GOFLAGS= go install "github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION"
  GHZ=$root/bin/tools/ghz
fi

log "building mcp-gateway, the noop floor and benchtool"
go build -o "$OUT/mcp-gateway" ./cmd/mcp-gateway
go build -o "$OUT/noop" ./bench/noop
go build -o "$OUT/benchtool" ./bench/benchtool
bt=$OUT/benchtool
"$bt" protoset -o "$OUT/auth.protoset"

pids=()
redis_pid=
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT

mapfile -t ports < <("$bt" ports 6)
noop_addr=127.0.0.1:${ports[0]}
"$OUT/noop" -listen "$noop_addr" 2>"$OUT/noop.log" &
noop_pid=$!
pids+=("$noop_pid")
tuned_addr=127.0.0.1:${ports[5]}
"$OUT/noop" -tuned -listen "$tuned_addr" 2>"$OUT/noop-tuned.log" &
tuned_pid=$!
pids+=("$tuned_pid")

secret=$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=')
admin_token=$(head -c 32 /dev/urandom | base64 | tr -d '\n/+=')

# write_config FILE STORE_URL PREFIX: the gateway's config, agent demo owned by alice.
write_config() {
  cat >"$1" <<EOF
public_url: http://127.0.0.1:8000
listen:
  http: 127.0.0.1:${ports[1]}
  grpc: 127.0.0.1:${ports[2]}
  admin: 127.0.0.1:${ports[3]}
xds:
  listen: ""   # the ADS server is not what is measured (and :18000 may be taken)
store:
  url: "$2"
  prefix: "$3"
signing_keys:
  - id: bench-1
    secret: "$secret"
admin_token: "$admin_token"
agents:
  - id: demo
    owner: alice
EOF
}

gw_pid=
# start_gateway CONFIG LOG: mcp-gateway serve, waits for /readyz.
start_gateway() {
  "$OUT/mcp-gateway" serve --config "$1" --drain-delay 0s 2>"$2" &
  gw_pid=$!
  pids+=("$gw_pid")
  for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:${ports[3]}/readyz" >/dev/null 2>&1 && return 0
    kill -0 "$gw_pid" 2>/dev/null || { cat "$2" >&2; return 1; }
    sleep 0.1
  done
  cat "$2" >&2
  return 1
}

stop_gateway() {
  kill "$gw_pid" 2>/dev/null || true
  wait "$gw_pid" 2>/dev/null || true
}

# create_key KIND: a bak_ (agent) or oag_ (user) key through the admin CLI.
create_key() {
  local args=(--kind "$1" --name bench --json)
  if [ "$1" = agent ]; then args+=(--agent demo); else args+=(--user alice); fi
  MCPGW_ADMIN_URL="http://127.0.0.1:${ports[3]}" MCPGW_ADMIN_TOKEN="$admin_token" \
    "$OUT/mcp-gateway" keys create "${args[@]}" | sed -n 's/.*"key": *"\([^"]*\)".*/\1/p'
}

scenarios=(jwt bak oag none badsig)
declare -A want=([jwt]=200 [bak]=200 [oag]=200 [none]=401 [badsig]=401)

same_addr=127.0.0.1:${ports[4]}
same_pid=
# prepare_requests CONFIG DIR: credentials and one request file per
# scenario; checks every answer, records the gateway's answers and starts
# the same-answer floor on them.
prepare_requests() {
  local cfg=$1 dir=$2 s
  mkdir -p "$dir"
  declare -A authz=(
    [jwt]="Bearer $("$bt" mint -config "$cfg")"
    [bak]="Bearer $(create_key agent)"
    [oag]="Bearer $(create_key user)"
    [none]=""
    [badsig]="Bearer $("$bt" mint -config "$cfg" -bad-signature)"
  )
  [ "${authz[bak]}" != "Bearer " ] && [ "${authz[oag]}" != "Bearer " ] || { log "could not create API keys"; return 1; }
  : >"$dir/answers.tsv"
  for s in "${scenarios[@]}"; do
    "$bt" request -binary -auth "${authz[$s]}" -o "$dir/$s.bin"
    "$bt" check -addr "127.0.0.1:${ports[2]}" -data "$dir/$s.bin" -want "${want[$s]}" -save "$dir/$s.answer"
    "$bt" check -addr "$noop_addr" -data "$dir/$s.bin" -want 200
    "$bt" check -addr "$tuned_addr" -data "$dir/$s.bin" -want 200
    printf '%s\t%s\n' "${authz[$s]}" "$dir/$s.answer" >>"$dir/answers.tsv"
  done
  "$OUT/noop" -tuned -listen "$same_addr" -answers "$dir/answers.tsv" 2>>"$OUT/noop-same.log" &
  same_pid=$!
  pids+=("$same_pid")
  for s in "${scenarios[@]}"; do
    "$bt" check -addr "$same_addr" -data "$dir/$s.bin" -want "${want[$s]}"
  done
}

stop_same() {
  kill "$same_pid" 2>/dev/null || true
  wait "$same_pid" 2>/dev/null || true
}

manifest=$OUT/manifest.tsv
: >"$manifest"
# ghz_run ADDR DATA CONC OUTFILE
ghz_run() {
  "$GHZ" --insecure --protoset "$OUT/auth.protoset" \
    --call envoy.service.auth.v3.Authorization.Check \
    -B "$2" -c "$3" --connections "$CONNECTIONS" -z "$DURATION" -O json "$1" >"$4"
}

# matrix SECTION DIR: every scenario × concurrency against the four
# servers, the order rotating from one run to the next so that no server
# always goes first.
matrix() {
  local section=$1 dir=$2 r c s i=0 k t
  local names=(floor tuned same gateway) addrs=("$noop_addr" "$tuned_addr" "$same_addr" "127.0.0.1:${ports[2]}")
  local procs=("$noop_pid" "$tuned_pid" "$same_pid" "$gw_pid")
  log "$section: warm-up"
  for k in 0 1 2 3; do ghz_run "${addrs[$k]}" "$dir/jwt.bin" 16 /dev/null; done
  for r in $(seq "$ROUNDS"); do
    for c in $CONCURRENCY; do
      for s in "${scenarios[@]}"; do
        log "$section: round $r, c=$c, $s  (load: $(cut -d' ' -f1-3 /proc/loadavg))"
        for k in 0 1 2 3; do
          t=$(( (k + i) % 4 ))
          f=$OUT/${section// /-}-$s-c$c-r$r-${names[$t]}.json
          t0=$(cpu_ticks "${procs[$t]}")
          ghz_run "${addrs[$t]}" "$dir/$s.bin" "$c" "$f"
          t1=$(cpu_ticks "${procs[$t]}")
          printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$section" "$s" "$c" "${names[$t]}" "$r" "$f" "$(ticks_s "$t0" "$t1")" >>"$manifest"
        done
        i=$((i + 1))
      done
    done
  done
}

# CPU time (user+system, clock ticks) a process has used: the server's own
# cost per Check, which other processes on the machine disturb far less
# than they disturb requests/s.
clk_tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ticks_s() { awk -v a="$1" -v b="$2" -v hz="$clk_tck" 'BEGIN {printf "%.3f", (b - a) / hz}'; }

hwm() { awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' "/proc/$1/status"; }
rss_lines=()

# --- memory store
write_config "$OUT/memory.yaml" memory "mcpgw:"
log "gateway on the memory store"
start_gateway "$OUT/memory.yaml" "$OUT/gateway-memory.log"
prepare_requests "$OUT/memory.yaml" "$OUT/req-memory"
matrix "memory store" "$OUT/req-memory"
rss_lines+=("gateway (memory store): peak RSS (VmHWM) $(hwm "$gw_pid")")
rss_lines+=("same-answer floor: peak RSS (VmHWM) $(hwm "$same_pid")")
stop_gateway
stop_same

# --- Redis store
redis_url=${MCPGW_TEST_REDIS_URL:-}
if [ -z "$redis_url" ] && command -v redis-server >/dev/null; then
  rport=$("$bt" ports 1)
  redis-server --bind 127.0.0.1 --port "$rport" --save '' --appendonly no --dir "$OUT" >"$OUT/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis_url=redis://127.0.0.1:$rport/0
fi
if [ -n "$redis_url" ]; then
  prefix="mcpgw-bench:$(head -c 6 /dev/urandom | base64 | tr -d '\n/+='):"
  write_config "$OUT/redis.yaml" "$redis_url" "$prefix"
  log "gateway on Redis ($redis_url, prefix $prefix)"
  start_gateway "$OUT/redis.yaml" "$OUT/gateway-redis.log"
  prepare_requests "$OUT/redis.yaml" "$OUT/req-redis"
  matrix "Redis store" "$OUT/req-redis"
  rss_lines+=("gateway (Redis store): peak RSS (VmHWM) $(hwm "$gw_pid")")
  stop_gateway
  stop_same
  redis-cli -u "$redis_url" --scan --pattern "$prefix*" | xargs -r -n 500 redis-cli -u "$redis_url" del >/dev/null || true
else
  log "no Redis (set MCPGW_TEST_REDIS_URL or install redis-server): Redis variant skipped"
fi
rss_lines+=("empty-OK floor: peak RSS (VmHWM) $(hwm "$noop_pid")")
rss_lines+=("tuned empty-OK floor: peak RSS (VmHWM) $(hwm "$tuned_pid")")

{
  echo "## gRPC Check under ghz $GHZ_VERSION (-z $DURATION per run, $ROUNDS round(s), --connections $CONNECTIONS)"
  echo
  echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(go version | cut -d' ' -f3-4);"
  echo "ghz, the gateway and the floor share these cores; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  "$bt" report "$manifest"
  echo
  for l in "${rss_lines[@]}"; do echo "- $l"; done
} | tee "$OUT/ghz.md"

if [ "$GO_BENCH" = 1 ]; then
  echo
  echo "## In-process Go benchmarks"
  echo
  echo '```'
  go test -run '^$' -bench . -benchmem ./token/ ./authz/ 2>&1 | grep -E '^(pkg:|Benchmark|ok|FAIL|---)' || true
  echo '```'
  if [ -n "$redis_url" ]; then
    echo
    echo "## Token endpoint and registration over HTTP, on Redis ($redis_url)"
    echo
    echo '```'
    MCPGW_TEST_REDIS_URL=$redis_url go test -run '^$' -bench 'CodeToToken|Register' -benchmem ./oauthsrv/ 2>&1 | grep -E '^(pkg:|Benchmark|ok|FAIL|---)' || true
    echo '```'
  fi
  echo
  echo "## Token endpoint and registration over HTTP, memory store"
  echo
  echo '```'
  MCPGW_TEST_REDIS_URL= go test -run '^$' -bench 'CodeToToken|Register' -benchmem ./oauthsrv/ 2>&1 | grep -E '^(pkg:|Benchmark|ok|FAIL|---)' || true
  echo '```'
fi | tee "$OUT/go.md"
log "raw reports in $OUT"
