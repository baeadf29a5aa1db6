// Package demoagent is the demo MCP server started by `mcp-gateway dev` and
// `mcp-gateway demo-agent`: a real Streamable HTTP server (official Go SDK)
// whose tools show what the gateway passed upstream.
package demoagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgateway/mcp-gateway/agentauth"
)

// Version is reported in the MCP server info.
const Version = "1.0.0"

// Identity header names the gateway sets on allowed requests.
const (
	HeaderUser       = "x-mcp-user"
	HeaderAgent      = "x-mcp-agent"
	HeaderClientID   = "x-mcp-client-id"
	HeaderScope      = "x-mcp-scope"
	HeaderCredential = "x-mcp-credential"
)

// maxEchoBytes bounds the echo tool's input; the SDK already bounds the body.
const maxEchoBytes = 64 << 10

// WhoAmI is the structured output of the whoami tool.
type WhoAmI struct {
	User       string `json:"user" jsonschema:"x-mcp-user: the authenticated user"`
	Agent      string `json:"agent" jsonschema:"x-mcp-agent: the agent id the gateway routed to"`
	ClientID   string `json:"client_id" jsonschema:"x-mcp-client-id: the OAuth client or API key id"`
	Scope      string `json:"scope" jsonschema:"x-mcp-scope: granted scopes, space separated"`
	Credential string `json:"credential" jsonschema:"x-mcp-credential: oauth, agent_key or user_key"`
	// AuthorizationPresent must be false behind the gateway: the client's
	// token is never passed upstream.
	AuthorizationPresent bool `json:"authorization_present" jsonschema:"whether an Authorization header reached the agent (it must not)"`
	// MCPHeaders holds every x-mcp-* header received (lower-case names), so a
	// spoofed header that slipped through would show up here.
	MCPHeaders map[string]string `json:"mcp_headers" jsonschema:"every x-mcp-* header received"`
}

// EchoInput is the echo tool's input.
type EchoInput struct {
	Text string `json:"text" jsonschema:"the text to send back"`
}

// EchoOutput is the echo tool's structured output.
type EchoOutput struct {
	Text string `json:"text" jsonschema:"the text that was sent"`
}

// NewServer returns the demo MCP server with its tools.
func NewServer(logger *slog.Logger) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{
		Name:    "mcp-gateway-demo",
		Title:   "MCP Gateway demo agent",
		Version: Version,
	}, &mcp.ServerOptions{
		Logger:       logger,
		Instructions: "Demo agent behind MCP Gateway. Call whoami to see the identity the gateway passed upstream.",
		// No logging capability: nothing is ever logged to clients.
		Capabilities: &mcp.ServerCapabilities{},
	})
	mcp.AddTool(s, &mcp.Tool{
		Name:        "whoami",
		Title:       "Who am I",
		Description: "Returns the identity headers (x-mcp-*) the gateway sent with this request, and whether an Authorization header reached the agent.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: new(false)},
	}, whoami)
	mcp.AddTool(s, &mcp.Tool{
		Name:        "echo",
		Title:       "Echo",
		Description: "Returns the given text.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: new(false)},
	}, echo)
	mcp.AddTool(s, &mcp.Tool{
		Name:        "admin_echo",
		Title:       "Admin echo",
		Description: "Returns the given text, like echo. In dev mode the gateway's tool policy lets only callers holding the mcp:admin scope call it.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: new(false)},
	}, echo)
	return s
}

// Handler serves the demo agent over Streamable HTTP at whatever path it is
// mounted on.
//
// It is stateless (no Mcp-Session-Id; GET and DELETE answer 405), so the
// first request may be any method, as in the sessionless 2026-07-28
// transport, while clients that initialize first keep working: the SDK
// answers initialize on every protocol version it knows and ignores the
// handshake's state. Answers are plain JSON rather than one-event SSE
// streams, which every client must accept and curl | jq can read.
func Handler(logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// The SDK logs every ephemeral session at Info: once per request here.
	quiet := slog.New(minLevel{logger.Handler(), slog.LevelWarn})
	s := NewServer(quiet)
	return anyAcceptWhenAbsent(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{
		Logger:       quiet,
		Stateless:    true,
		JSONResponse: true,
	}))
}

// streamableAccept is the Accept the Streamable HTTP transport asks clients
// to send with a POST.
const streamableAccept = "application/json, text/event-stream"

// anyAcceptWhenAbsent gives a POST without any Accept header the one the
// transport asks for. RFC 9110 §12.5.1: no Accept means any media type is
// acceptable, so the SDK's 400 for it only turns away plain HTTP clients
// (curl -H 'Accept:', scripts). The demo agent is lenient on purpose; real
// agents may not be, so the gateway forwards requests as they came and
// leaves content negotiation to the agent. An Accept that is present,
// however narrow, is left for the SDK to judge.
func anyAcceptWhenAbsent(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && len(r.Header.Values("Accept")) == 0 {
			r = r.Clone(r.Context())
			r.Header.Set("Accept", streamableAccept)
		}
		next.ServeHTTP(w, r)
	})
}

// minLevel drops records below min, whatever the wrapped handler enables.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
}

func whoami(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, WhoAmI, error) {
	var h http.Header
	if req != nil && req.Extra != nil {
		h = req.Extra.Header
	}
	out := WhoAmI{
		User:                 h.Get(HeaderUser),
		Agent:                h.Get(HeaderAgent),
		ClientID:             h.Get(HeaderClientID),
		Scope:                h.Get(HeaderScope),
		Credential:           h.Get(HeaderCredential),
		AuthorizationPresent: len(h.Values("Authorization")) > 0,
		MCPHeaders:           map[string]string{},
	}
	for k, v := range h {
		if name := strings.ToLower(k); strings.HasPrefix(name, "x-mcp-") {
			out.MCPHeaders[name] = strings.Join(v, ", ")
		}
	}
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: whoamiText(out)}}}, out, nil
}

func whoamiText(w WhoAmI) string {
	var b strings.Builder
	if w.User == "" && w.Credential == "" {
		b.WriteString("No identity headers: this request did not come through MCP Gateway.\n")
	} else {
		fmt.Fprintf(&b, "You are %q, calling agent %q with credential %q.\n", w.User, w.Agent, w.Credential)
	}
	keys := make([]string, 0, len(w.MCPHeaders))
	for k := range w.MCPHeaders {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %s\n", k, w.MCPHeaders[k])
	}
	if w.AuthorizationPresent {
		b.WriteString("WARNING: an Authorization header reached the agent.\n")
	} else {
		b.WriteString("No Authorization header reached the agent.\n")
	}
	return b.String()
}

func echo(_ context.Context, _ *mcp.CallToolRequest, in EchoInput) (*mcp.CallToolResult, EchoOutput, error) {
	if len(in.Text) > maxEchoBytes {
		return nil, EchoOutput{}, fmt.Errorf("text longer than %d bytes", maxEchoBytes)
	}
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Text}}}, EchoOutput{Text: in.Text}, nil
}

// ListenAndServe serves the demo agent on addr (at /mcp, /, and any other
// path; /healthz answers "ok") until ctx is done, then shuts down gracefully.
// Every MCP request must carry the gateway's identity assertion, checked by v.
func ListenAndServe(ctx context.Context, addr string, v *agentauth.Verifier) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("demo agent: listen %s: %w", addr, err)
	}
	return Serve(ctx, ln, slog.Default(), v)
}

// shutdownGrace bounds how long Serve waits for in-flight requests.
const shutdownGrace = 5 * time.Second

// Serve is ListenAndServe on an existing listener, which it closes.
func Serve(ctx context.Context, ln net.Listener, logger *slog.Logger, v *agentauth.Verifier) error {
	if v == nil {
		_ = ln.Close()
		return errors.New("demo agent: a verifier of the gateway's identity assertion is required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// A subscriptions/listen stream never ends by itself; closing is
	// cancelled at shutdown so such streams end at once while other POSTs in
	// flight finish gracefully.
	closing, closeStreams := context.WithCancel(context.WithoutCancel(ctx))
	defer closeStreams()
	// Only requests the gateway let through (a valid x-mcp-identity) reach
	// the tools, and a session serves only the user who opened it.
	mcpHandler := endStreamsOn(closing, v.Middleware(agentauth.BindSessions(Handler(logger), agentauth.SessionOptions{})))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("/", mcpHandler)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		// No ReadTimeout/WriteTimeout: they would cut long-lived SSE streams.
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("demo agent listening", "addr", ln.Addr().String())

	select {
	case err := <-errc:
		return fmt.Errorf("demo agent: serve: %w", err)
	case <-ctx.Done():
	}
	closeStreams()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = srv.Close()
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return fmt.Errorf("demo agent: serve: %w", serr)
	}
	if err != nil {
		return fmt.Errorf("demo agent: shutdown: %w", err)
	}
	return nil
}

// endStreamsOn cancels subscriptions/listen requests (2026-07-28: the
// Mcp-Method header, which the SDK checks against the body, names them)
// when ctx is done.
func endStreamsOn(ctx context.Context, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Mcp-Method") == "subscriptions/listen" {
			rctx, cancel := context.WithCancel(r.Context())
			defer cancel()
			stop := context.AfterFunc(ctx, cancel)
			defer stop()
			r = r.WithContext(rctx)
		}
		next.ServeHTTP(w, r)
	})
}
