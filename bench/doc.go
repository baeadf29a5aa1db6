// Package bench holds the load tooling measured in BENCHMARKS.md: the no-op
// Check server that is the floor (bench/noop), the glue of bench/run.sh
// (bench/benchtool) and, behind the "soak" build tag, the bounded soak test
// (go test -tags soak ./bench/, or make soak).
package bench
