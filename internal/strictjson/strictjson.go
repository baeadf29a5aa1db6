// Package strictjson is the one JSON decoder for request and document
// bodies the gateway accepts from outside: client registration, CIMD
// metadata documents and the admin API. Each takes exactly one JSON object
// and nothing after it, so a body with a trailing "}" or "]" (which
// json.Decoder.More ignores) cannot slip past one of them.
package strictjson

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
)

var (
	// ErrNotObject: the body's first value is not a JSON object (an array,
	// null, a string…).
	ErrNotObject = errors.New("want a JSON object")
	// ErrTrailing: something other than whitespace follows the object.
	ErrTrailing = errors.New("trailing data after the JSON object")
)

// Unknown says what DecodeObject does with fields v does not declare.
type Unknown bool

const (
	// IgnoreUnknown drops them (RFC 7591 §2: unknown client metadata is ignored).
	IgnoreUnknown Unknown = false
	// RefuseUnknown fails with json's "unknown field" error.
	RefuseUnknown Unknown = true
)

// DecodeObject decodes exactly one JSON object from r into v. It returns
// io.EOF for an empty body, ErrNotObject when the body holds another JSON
// value, ErrTrailing when data follows the object, and otherwise the
// decoder's or the reader's error (an *http.MaxBytesError stays itself).
func DecodeObject(r io.Reader, v any, unknown Unknown) error {
	br := bufio.NewReader(r)
	if err := expectObject(br); err != nil {
		return err
	}
	dec := json.NewDecoder(br)
	if unknown == RefuseUnknown {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return err
	}
	// Token, not More: More reports false before a stray '}' or ']'.
	switch _, err := dec.Token(); {
	case errors.Is(err, io.EOF):
		return nil
	case err != nil && !isSyntax(err):
		return err // the reader's own failure (size limit, timeout)
	default:
		return ErrTrailing
	}
}

// expectObject skips leading JSON whitespace and checks that an object
// starts, leaving its '{' unread.
func expectObject(br *bufio.Reader) error {
	for {
		c, err := br.ReadByte()
		if err != nil {
			return err
		}
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return br.UnreadByte()
		default:
			return ErrNotObject
		}
	}
}

func isSyntax(err error) bool {
	var se *json.SyntaxError
	return errors.As(err, &se)
}
