#!/usr/bin/env bash
# bench/h2load.sh — the Check at the limit of its transport: h2load (Debian's
# nghttp2-client), a load generator far cheaper per request than ghz, sends
# one prepared gRPC frame (-d) on one HTTP/2 connection with many streams to
# the gateway's gRPC listener and to the tuned no-op floor (bench/noop
# -tuned), each server pinned to core 0 and h2load to core 1. Prints a
# markdown table: requests/s and the ratio to the floor for the JWT, API-key
# and 401 Checks (memory store). Part of `make bench` when h2load is
# installed; BENCHMARKS.md explains it.
#
# Environment: REQUESTS=200000 per run, STREAMS=100, ROUNDS=3 (medians).
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${REQUESTS:-200000}
STREAMS=${STREAMS:-100}
ROUNDS=${ROUNDS:-3}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/mcpgw-h2load.XXXXXX")}
log() { echo "--- $*" >&2; }
command -v h2load >/dev/null || { log "h2load not installed (apt-get install nghttp2-client): skipped"; exit 0; }
# pin CORE CMD…: CMD on one core; exec, so that a backgrounded pin's $! is CMD itself.
pin() { if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then exec taskset -c "$1" "${@:2}"; else exec "${@:2}"; fi; }

go build -o "$OUT/mcp-gateway" ./cmd/mcp-gateway
go build -o "$OUT/noop" ./bench/noop
go build -o "$OUT/benchtool" ./bench/benchtool
bt=$OUT/benchtool
mapfile -t ports < <("$bt" ports 4)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT

secret=$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=')
admin_token=$(head -c 32 /dev/urandom | base64 | tr -d '\n/+=')
cat >"$OUT/gateway.yaml" <<YAML
public_url: http://127.0.0.1:8000
listen: {http: "127.0.0.1:${ports[0]}", grpc: "127.0.0.1:${ports[1]}", admin: "127.0.0.1:${ports[2]}"}
xds: {listen: ""}  # the ADS server is not what is measured (and :18000 may be taken)
store: {url: memory}
signing_keys: [{id: bench-1, secret: "$secret"}]
admin_token: "$admin_token"
agents: [{id: demo, owner: alice}]
YAML
pin 0 "$OUT/mcp-gateway" serve --config "$OUT/gateway.yaml" --drain-delay 0s >/dev/null 2>"$OUT/gateway.log" &
pids+=($!)
pin 0 "$OUT/noop" -tuned -listen "127.0.0.1:${ports[3]}" >/dev/null 2>"$OUT/noop.log" &
pids+=($!)
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:${ports[2]}/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

key=$(MCPGW_ADMIN_URL="http://127.0.0.1:${ports[2]}" MCPGW_ADMIN_TOKEN="$admin_token" \
  "$OUT/mcp-gateway" keys create --kind agent --agent demo --name h2load --json | sed -n 's/.*"key": *"\([^"]*\)".*/\1/p')
declare -A auth=([jwt]="Bearer $("$bt" mint -config "$OUT/gateway.yaml")" [key]="Bearer $key" [none]="")
declare -A want=([jwt]=200 [key]=200 [none]=401)
for s in jwt key none; do
  "$bt" request -binary -auth "${auth[$s]}" -o "$OUT/$s.bin"
  "$bt" check -addr "127.0.0.1:${ports[1]}" -data "$OUT/$s.bin" -want "${want[$s]}"
  "$bt" request -grpc-frame -auth "${auth[$s]}" -o "$OUT/$s.frame"
done

# rps ADDR FRAME: requests/s of one h2load run; every request must succeed.
rps() {
  local out
  out=$(pin 1 h2load -n "$REQUESTS" -c 1 -m "$STREAMS" -d "$2" \
    -H 'content-type: application/grpc' -H 'te: trailers' \
    "http://$1/envoy.service.auth.v3.Authorization/Check")
  grep -q " $REQUESTS succeeded, 0 failed, 0 errored" <<<"$out" || { echo "$out" >&2; return 1; }
  sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' <<<"$out"
}
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

echo "## The Check under h2load (1 connection, $STREAMS streams, $REQUESTS requests per run, median of $ROUNDS; servers on core 0, h2load on core 1)"
echo
echo "| Check | gateway req/s | tuned no-op floor req/s | gateway / floor |"
echo "|---|---:|---:|---:|"
for s in jwt key none; do
  g=(); f=()
  for _ in $(seq "$ROUNDS"); do
    f+=("$(rps "127.0.0.1:${ports[3]}" "$OUT/$s.frame")")
    g+=("$(rps "127.0.0.1:${ports[1]}" "$OUT/$s.frame")")
  done
  gm=$(printf '%s\n' "${g[@]}" | median); fm=$(printf '%s\n' "${f[@]}" | median)
  printf '| %s | %.0f | %.0f | %.2f |\n' "$s" "$gm" "$fm" "$(awk -v a="$gm" -v b="$fm" 'BEGIN {print a / b}')"
done
echo
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
