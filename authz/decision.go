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
	// Repeated headers are joined with "," (as Envoy does).
	Header func(name string) string
	// HeaderNames yields the name of every request header, in any case; the
	// core uses it to find incoming x-mcp-* headers to strip. Optional.
	HeaderNames func(yield func(name string) bool)
	// Headers, when set, replaces Header and HeaderNames: lower-case name →
	// value (repeats joined with ","), as Envoy sends them. Allocation-free.
	Headers map[string]string
	// RouteAgent, when not nil, is the agent the data plane's route was
	// built for (the gRPC Check's context_extensions[ContextExtensionAgent]):
	// the path's agent must equal it, byte for byte. A pointer, as "absent"
	// and "empty" differ, and the struct stays in its size class.
	RouteAgent *string
	// Body is the request body when the adapter has it (the dev proxy;
	// Envoy with with_request_body), up to MaxMCPBody; read only for agents
	// with a tool policy. nginx sends none.
	Body []byte
	// BodyTooLarge says the body exceeded what the adapter passes (413).
	BodyTooLarge bool
	// LoadBody, when set and Body is empty, reads the body on demand: the
	// tool policy calls it only for an agent with rules, once the caller
	// is authenticated (the dev proxy). It returns the body, or tooLarge.
	LoadBody func() (body []byte, tooLarge bool)
	// Adapter names the caller for the latency metric: "grpc", "http",
	// "proxy"… ("direct" when empty).
	Adapter string
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

// Decision is the outcome; callers treat it as read-only (its slices may be
// shared between decisions). Allow: Status 200, UpstreamHeaders set on the
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

	// KeyID is the API key's id for key credentials (audit, access logs).
	KeyID string
	// MCPMethod and MCPName are the MCP operation, and Rule the label of
	// the tool-policy rule that decided it; set only for agents with rules.
	MCPMethod, MCPName, Rule string

	// rsn is the refusal's reason (its body, error and description).
	rsn reason

	// ai is the agent the decision looked up (nil before that step): its
	// per-agent counter is bumped without a second lookup.
	ai *agentInfo

	// sharedChallenge: d carries its agent's (d.ai) precomputed 401
	// challenge, so the encoded answer of such a denial can be shared
	// (agentInfo.denied, deniedSlot).
	sharedChallenge bool

	// hdr and rm back UpstreamHeaders/Headers and RemoveHeaders so a
	// decision usually costs one allocation.
	hdr [7]HeaderValue
	rm  [4]string
}
