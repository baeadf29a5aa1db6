package strictjson

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestDecodeObject(t *testing.T) {
	type doc struct {
		A int `json:"a"`
	}
	cases := []struct {
		name, body string
		unknown    Unknown
		want       error // nil: success; errAny: some other error
	}{
		{"object", `{"a":1}`, RefuseUnknown, nil},
		{"surrounding whitespace", " \n{\"a\":1}\t\r\n ", RefuseUnknown, nil},
		{"unknown ignored", `{"a":1,"b":2}`, IgnoreUnknown, nil},
		{"unknown refused", `{"a":1,"b":2}`, RefuseUnknown, errAny},
		{"empty", ``, IgnoreUnknown, io.EOF},
		{"blank", "  \n", IgnoreUnknown, io.EOF},
		{"array", `[{"a":1}]`, IgnoreUnknown, ErrNotObject},
		{"null", `null`, IgnoreUnknown, ErrNotObject},
		{"string", `"x"`, IgnoreUnknown, ErrNotObject},
		{"trailing brace", `{"a":1}}`, IgnoreUnknown, ErrTrailing},
		{"trailing bracket", `{"a":1}]`, IgnoreUnknown, ErrTrailing},
		{"second object", `{"a":1} {}`, IgnoreUnknown, ErrTrailing},
		{"trailing word", `{"a":1} x`, IgnoreUnknown, ErrTrailing},
		{"truncated", `{"a":`, IgnoreUnknown, io.ErrUnexpectedEOF},
		{"wrong type", `{"a":"x"}`, IgnoreUnknown, errAny},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var d doc
			err := DecodeObject(strings.NewReader(c.body), &d, c.unknown)
			switch {
			case c.want == nil && err != nil:
				t.Fatalf("err = %v, want success", err)
			case c.want == errAny && err == nil:
				t.Fatal("err = nil, want an error")
			case c.want != nil && c.want != errAny && !errors.Is(err, c.want):
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

var errAny = errors.New("any error")
