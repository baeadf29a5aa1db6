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

	"github.com/mcpgateway/mcp-gateway/internal/strictjson"
)

// Input limits for request fields.
const (
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
