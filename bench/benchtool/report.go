package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ghzReport is the part of ghz's JSON report (-O json) used here.
type ghzReport struct {
	Count   uint64         `json:"count"`
	RPS     float64        `json:"rps"`
	Errors  map[string]int `json:"errorDistribution"`
	Status  map[string]int `json:"statusCodeDistribution"`
	Latency []struct {
		Percentage int           `json:"percentage"`
		Latency    time.Duration `json:"latency"`
	} `json:"latencyDistribution"`
}

func (r *ghzReport) pct(p int) time.Duration {
	for _, l := range r.Latency {
		if l.Percentage == p {
			return l.Latency
		}
	}
	return 0
}

// run is one ghz run named in the manifest.
type run struct {
	section, scenario, target string
	conc, round               int
	cpu                       float64 // server CPU seconds during the run
	rep                       ghzReport
}

// cpuPerCheck is the server's CPU time per answered Check, in µs.
func (r *run) cpuPerCheck() float64 {
	if r.rep.Count == 0 {
		return 0
	}
	return r.cpu / float64(r.rep.Count) * 1e6
}

// cmdReport reads a manifest (tab-separated: section, scenario,
// concurrency, target, round, ghz JSON file, server CPU seconds during the
// run) and prints one markdown table per section. Targets: "floor" (empty
// OK, plain gRPC server), "tuned" (empty OK on the gateway's transport),
// "same" (the gateway's own answers, canned, on that transport) and
// "gateway". Every
// gateway run is paired with the floor runs of the same scenario,
// concurrency and round, made next to it; figures are medians over rounds
// and ratios are medians of the paired ratios (pairing cancels most of the
// drift of a shared machine).
func cmdReport(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: benchtool report MANIFEST")
	}
	f, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer f.Close()
	type key struct {
		section, scenario string
		conc              int
	}
	var order []key
	runs := map[key]map[string]map[int]*run{} // key → target → round
	floorByConc := map[key][]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p := strings.Split(line, "\t")
		if len(p) != 7 {
			return fmt.Errorf("manifest line %q: want 7 tab-separated fields", line)
		}
		r := &run{section: p[0], scenario: p[1], target: p[3]}
		if r.conc, err = strconv.Atoi(p[2]); err != nil {
			return fmt.Errorf("manifest line %q: %w", line, err)
		}
		if r.round, err = strconv.Atoi(p[4]); err != nil {
			return fmt.Errorf("manifest line %q: %w", line, err)
		}
		if r.cpu, err = strconv.ParseFloat(p[6], 64); err != nil {
			return fmt.Errorf("manifest line %q: %w", line, err)
		}
		raw, err := os.ReadFile(p[5])
		if err != nil {
			return err
		}
		if err := json.Unmarshal(raw, &r.rep); err != nil {
			return fmt.Errorf("%s: %w", p[5], err)
		}
		if err := cutOffOnly(r.rep.Errors, r.conc); err != nil {
			return fmt.Errorf("%s: %w", p[5], err)
		}
		k := key{r.section, r.scenario, r.conc}
		if runs[k] == nil {
			runs[k] = map[string]map[int]*run{}
			order = append(order, k)
		}
		if runs[k][r.target] == nil {
			runs[k][r.target] = map[int]*run{}
		}
		runs[k][r.target][r.round] = r
		if r.target == "floor" {
			fk := key{r.section, "", r.conc}
			floorByConc[fk] = append(floorByConc[fk], r.rep.RPS)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}

	section := ""
	for _, k := range order {
		if k.section != section {
			section = k.section
			fmt.Printf("\n#### %s\n\n", section)
			fmt.Println("| scenario | c | gateway req/s | p50 | p99 | floor req/s | **ratio to floor** | tuned floor req/s | ratio to tuned floor | same-answer floor req/s | ratio to same-answer floor | CPU/Check: gateway | floor | tuned floor | same-answer floor | rounds |")
			fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
		}
		var rps, p50, p99, frps, ratio, trps, tratio, srps, sratio, gcpu, fcpu, tcpu, scpu []float64
		for round, g := range runs[k]["gateway"] {
			rps = append(rps, g.rep.RPS)
			p50 = append(p50, float64(g.rep.pct(50)))
			p99 = append(p99, float64(g.rep.pct(99)))
			gcpu = append(gcpu, g.cpuPerCheck())
			if fl := runs[k]["floor"][round]; fl != nil && fl.rep.RPS > 0 {
				frps = append(frps, fl.rep.RPS)
				ratio = append(ratio, g.rep.RPS/fl.rep.RPS)
				fcpu = append(fcpu, fl.cpuPerCheck())
			}
			if tu := runs[k]["tuned"][round]; tu != nil && tu.rep.RPS > 0 {
				trps = append(trps, tu.rep.RPS)
				tratio = append(tratio, g.rep.RPS/tu.rep.RPS)
				tcpu = append(tcpu, tu.cpuPerCheck())
			}
			if sm := runs[k]["same"][round]; sm != nil && sm.rep.RPS > 0 {
				srps = append(srps, sm.rep.RPS)
				sratio = append(sratio, g.rep.RPS/sm.rep.RPS)
				scpu = append(scpu, sm.cpuPerCheck())
			}
		}
		fmt.Printf("| %s | %d | %.0f | %s | %s | %.0f | **%.2f** | %.0f | %.2f | %.0f | %.2f | %.0f µs | %.0f µs | %.0f µs | %.0f µs | %d |\n",
			k.scenario, k.conc, median(rps), dur(median(p50)), dur(median(p99)),
			median(frps), median(ratio), median(trps), median(tratio), median(srps), median(sratio),
			median(gcpu), median(fcpu), median(tcpu), median(scpu), len(rps))
	}
	fmt.Println()
	for _, fk := range slices.SortedFunc(maps.Keys(floorByConc), func(a, b key) int {
		if c := strings.Compare(a.section, b.section); c != 0 {
			return c
		}
		return a.conc - b.conc
	}) {
		v := floorByConc[fk]
		fmt.Printf("- floor (%s, c=%d): median %.0f req/s over %d runs (min %.0f, max %.0f)\n",
			fk.section, fk.conc, median(v), len(v), slices.Min(v), slices.Max(v))
	}
	return nil
}

// cutOffOnly accepts the errors ghz reports for the calls still in flight
// when -z ends the run (at most one per worker: the connection is closed
// under them) and nothing else.
func cutOffOnly(errs map[string]int, conc int) error {
	n := 0
	for msg, c := range errs {
		if !strings.Contains(msg, "use of closed network connection") && !strings.Contains(msg, "transport is closing") &&
			!strings.Contains(msg, "context canceled") && !strings.Contains(msg, "code = Canceled") {
			return fmt.Errorf("ghz saw errors: %v", errs)
		}
		n += c
	}
	if n > conc {
		return fmt.Errorf("ghz saw %d cut-off errors, more than the %d calls in flight: %v", n, conc, errs)
	}
	return nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

func dur(ns float64) string {
	d := time.Duration(ns)
	switch {
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	}
}
