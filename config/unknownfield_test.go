package config

import (
	"strconv"
	"strings"
	"testing"
)

// TestUnknownFieldNamesLine: a typo in the config is reported by key and
// line, not as the YAML→JSON decoder's "error unmarshaling JSON".
func TestUnknownFieldNamesLine(t *testing.T) {
	body := validYAML + "xds:\n  mode: ads\n  listn: 127.0.0.1:18000\n"
	_, err := Load(write(t, body), false)
	if err == nil {
		t.Fatal("unknown field accepted")
	}
	want := "line " + strconv.Itoa(strings.Count(validYAML, "\n")+3) + `: unknown field "listn"`
	if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "JSON") {
		t.Fatalf("got %v, want it to contain %q and no JSON", err, want)
	}
}
