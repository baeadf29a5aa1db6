// Package authz is the decision: credential → identity → agent access → allow
// (identity headers for the upstream) or deny (401/403/404/503 + challenge).
// The Envoy gRPC Check and the HTTP check are thin adapters over Decide.
package authz

// Credential kinds, as sent upstream in x-mcp-credential.
const (
	CredOAuth = "oauth"
	CredAgent = "agent_key"
	CredUser  = "user_key"
	CredNone  = "none"
)

// Request is what an adapter extracts from the original client request.
type Request struct {
	Method string
	// Path is the original request path including any query string, as the
	// client sent it (Envoy :path, nginx X-Original-URI).
	Path string
	// Header looks up a request header by lower-case name ("" when absent).
	Header func(name string) string
}

// Identity is who the caller is once allowed.
type Identity struct {
	User       string
	Agent      string
	ClientID   string
	Scope      string
	Credential string
}

// HeaderValue is one response or upstream header.
type HeaderValue struct {
	Key   string // lower-case
	Value string
}

// Decision is the outcome. Allow: Status 200, UpstreamHeaders set on the
// request to the upstream, RemoveHeaders removed from it. Deny: Status is
// 401/403/404/503, Headers go on the response to the client (challenge,
// content type) and Body is a small JSON error.
type Decision struct {
	Allow           bool
	Status          int
	Reason          string // metric/audit reason, e.g. "ok", "invalid_token"
	Identity        Identity
	UpstreamHeaders []HeaderValue
	RemoveHeaders   []string
	Headers         []HeaderValue
	Body            []byte
}
