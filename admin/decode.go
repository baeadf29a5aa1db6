package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mcpgateway/mcp-gateway/internal/strictjson"
	"github.com/mcpgateway/mcp-gateway/store"
)

// Input limits for request fields.
const (
	maxNameLen   = 256
	maxUserLen   = 256
	maxURLLen    = 2048
	maxListLen   = 100
	maxScopeLen  = 128
	maxKeyIDLen  = 128
	maxClientLen = 2048 // CIMD client ids are URLs
)

// decodeBody reads one JSON object of at most MaxBodyBytes into v, refusing
// unknown fields, any other JSON value and trailing data. On failure it has written the 4xx answer.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	err := strictjson.DecodeObject(http.MaxBytesReader(w, r.Body, MaxBodyBytes), v, strictjson.RefuseUnknown)
	if err == nil {
		return true
	}
	var (
		mbe *http.MaxBytesError
		se  *json.SyntaxError
		te  *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", MaxBodyBytes))
	case errors.Is(err, os.ErrDeadlineExceeded): // http_limits.body_timeout
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusRequestTimeout, "the request body was not received in time")
	case errors.Is(err, io.EOF):
		writeError(w, http.StatusBadRequest, "request body is empty: want a JSON object")
	case errors.Is(err, strictjson.ErrNotObject):
		writeError(w, http.StatusBadRequest, "request body: want a JSON object")
	case errors.Is(err, strictjson.ErrTrailing):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, io.ErrUnexpectedEOF):
		writeError(w, http.StatusBadRequest, "invalid JSON: unexpected end of body")
	case errors.As(err, &se):
		writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid JSON at byte %d: %s", se.Offset, se.Error()))
	case errors.As(err, &te):
		if te.Field == "" {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("request body: want a JSON object, got %s", te.Value))
		} else {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("%s: want %s, got %s", te.Field, describeType(te.Type), te.Value))
		}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		writeError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), "json: "))
	default:
		writeError(w, http.StatusBadRequest, "invalid JSON: "+err.Error())
	}
	return false
}

func describeType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.Slice:
		return "an array of " + strings.TrimPrefix(describeType(t.Elem()), "a ") + "s"
	case reflect.Bool:
		return "a boolean"
	default:
		return t.String()
	}
}

// fieldError names the offending field in a 400 answer.
type fieldError struct {
	Field string
	Msg   string
}

func (e *fieldError) Error() string { return e.Field + ": " + e.Msg }

func badField(field, format string, a ...any) error {
	return &fieldError{Field: field, Msg: fmt.Sprintf(format, a...)}
}

// checkText accepts printable UTF-8 up to max bytes (names, user ids).
func checkText(field, s string, max int, required bool) error {
	if s == "" {
		if required {
			return badField(field, "required")
		}
		return nil
	}
	if len(s) > max {
		return badField(field, "longer than %d bytes", max)
	}
	if !utf8.ValidString(s) {
		return badField(field, "not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return badField(field, "contains a control character")
		}
	}
	return nil
}

// checkScopes: RFC 6749 §3.3 scope-tokens, no duplicates.
func checkScopes(field string, scopes []string) error {
	if len(scopes) > maxListLen {
		return badField(field, "more than %d entries", maxListLen)
	}
	seen := make(map[string]bool, len(scopes))
	for i, sc := range scopes {
		f := fmt.Sprintf("%s[%d]", field, i)
		if sc == "" || len(sc) > maxScopeLen {
			return badField(f, "want 1–%d characters", maxScopeLen)
		}
		if !store.ValidScopeToken(sc) {
			return badField(f, "%q is not a valid scope (no spaces, quotes or backslashes)", sc)
		}
		if seen[sc] {
			return badField(f, "%q listed twice", sc)
		}
		seen[sc] = true
	}
	return nil
}

func checkUsers(field string, users []string) error {
	if len(users) > maxListLen {
		return badField(field, "more than %d entries", maxListLen)
	}
	for i, u := range users {
		if err := checkText(fmt.Sprintf("%s[%d]", field, i), u, maxUserLen, true); err != nil {
			return err
		}
	}
	return nil
}
