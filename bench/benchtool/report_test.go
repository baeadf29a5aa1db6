package main

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestCutOffOnly(t *testing.T) {
	closed := "rpc error: code = Unavailable desc = error reading from server: read tcp 1->2: use of closed network connection"
	for _, c := range []struct {
		errs map[string]int
		conc int
		ok   bool
	}{
		{nil, 16, true},
		{map[string]int{closed: 16}, 16, true},
		{map[string]int{closed: 10, "rpc error: code = Canceled desc = grpc: the client connection is closing": 6}, 16, true},
		{map[string]int{closed: 17}, 16, false}, // more than were in flight
		{map[string]int{"rpc error: code = Internal desc = boom": 1}, 16, false},
	} {
		if err := cutOffOnly(c.errs, c.conc); (err == nil) != c.ok {
			t.Errorf("%v (c=%d): err = %v, want ok=%v", c.errs, c.conc, err, c.ok)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

// report pairs each gateway run with the floors of the same round and
// prints medians.
func TestReport(t *testing.T) {
	dir := t.TempDir()
	ghz := func(name string, count int, rps float64, p50 int) string {
		p := filepath.Join(dir, name)
		body := `{"count":` + itoa(count) + `,"rps":` + ftoa(rps) + `,"errorDistribution":{},` +
			`"latencyDistribution":[{"percentage":50,"latency":` + itoa(p50) + `},{"percentage":99,"latency":` + itoa(4*p50) + `}]}`
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	manifest := strings.Join([]string{
		"mem\tjwt\t16\tfloor\t1\t" + ghz("f1", 10000, 1000, 1000000) + "\t1.0",
		"mem\tjwt\t16\tsame\t1\t" + ghz("s1", 9000, 900, 1000000) + "\t0.9",
		"mem\tjwt\t16\ttuned\t1\t" + ghz("t1", 10000, 1000, 1000000) + "\t0.8",
		"mem\tjwt\t16\tgateway\t1\t" + ghz("g1", 8000, 800, 2000000) + "\t1.2",
		"mem\tjwt\t16\tfloor\t2\t" + ghz("f2", 10000, 2000, 1000000) + "\t1.0",
		"mem\tjwt\t16\tsame\t2\t" + ghz("s2", 9000, 1800, 1000000) + "\t0.9",
		"mem\tjwt\t16\ttuned\t2\t" + ghz("t2", 10000, 3000, 1000000) + "\t0.8",
		"mem\tjwt\t16\tgateway\t2\t" + ghz("g2", 8000, 1800, 4000000) + "\t1.2",
	}, "\n")
	mf := filepath.Join(dir, "manifest.tsv")
	if err := os.WriteFile(mf, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	out := captureStdout(t, func() error { return cmdReport([]string{mf}) })
	// rps median (800, 1800) = 1300; ratios 0.8 and 0.9 → 0.85; vs same 0.889, 1.0 → 0.94;
	// tuned (1000, 3000) → 2000, ratios 0.8 and 0.6 → 0.70;
	// p50 median 3 ms; CPU per Check 1.2 s / 8000 = 150 µs, floor 100 µs, tuned 80 µs, same 100 µs.
	want := "| jwt | 16 | 1300 | 3.00 ms | 12.00 ms | 1500 | **0.85** | 2000 | 0.70 | 1350 | 0.94 | 150 µs | 100 µs | 80 µs | 100 µs | 2 |"
	if !strings.Contains(out, want) {
		t.Fatalf("report:\n%s\nwant a row\n%s", out, want)
	}
	if !strings.Contains(out, "floor (mem, c=16): median 1500 req/s over 2 runs") {
		t.Fatalf("no floor summary in:\n%s", out)
	}
}

func itoa(n int) string     { return strconv.Itoa(n) }
func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func captureStdout(t *testing.T, fn func() error) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	err = fn()
	os.Stdout = old
	w.Close()
	out := <-done
	if err != nil {
		t.Fatal(err)
	}
	return out
}
