// Package logtest is a log sink for tests: server goroutines write slog JSON
// into it while the test reads what was logged.
package logtest

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
)

// Buffer is a goroutine-safe io.Writer that keeps everything written.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Records decodes every line as a JSON log record; a line that is not JSON
// fails the test.
func (s *Buffer) Records(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// Audit returns the records whose msg is "audit".
func (s *Buffer) Audit(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range s.Records(t) {
		if m["msg"] == "audit" {
			out = append(out, m)
		}
	}
	return out
}

// AuditEvents returns the audit records of one event.
func (s *Buffer) AuditEvents(t testing.TB, event string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range s.Audit(t) {
		if m["event"] == event {
			out = append(out, m)
		}
	}
	return out
}
