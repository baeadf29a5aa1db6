# The two commands a new user needs: `make run` and `make test`.
GO      ?= go
BIN     := bin/mcp-gateway
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: build run test lint e2e bench soak fuzz ci clean

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/mcp-gateway

# All-in-one dev mode: http://127.0.0.1:8000, demo agent at /demo/mcp.
run:
	$(GO) run ./cmd/mcp-gateway dev

# Unit, contract and integration tests. Redis-backed tests run against
# MCPGW_TEST_REDIS_URL when set (CI sets it; with CI=true it is required).
test: lint
	$(GO) test -race -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# End-to-end suites with real nginx, Chromium and the MCP SDK clients.
e2e:
	$(GO) test -count=1 -tags e2e -timeout 20m ./e2e/...

# The Check against the no-op floor under ghz, then the Go benchmarks
# (figures in BENCHMARKS.md). DURATION=3s ROUNDS=3 by default (~20 min).
bench:
	bash bench/run.sh

# 60 s of mixed load on real Redis (MCPGW_TEST_REDIS_URL, or a private
# redis-server); MCPGW_SOAK_DURATION shortens or lengthens it.
soak:
	bash .ci/soak

# Every go test -fuzz target for FUZZTIME (10s) each; crashes become seeds.
fuzz:
	bash .ci/fuzz

ci:
	bash .ci/run

clean:
	rm -rf bin e2e/out
