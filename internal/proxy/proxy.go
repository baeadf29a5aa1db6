// Package proxy is the dev-mode stand-in for Envoy's data plane: every
// request goes through the authz decision; denials are answered as decided,
// allowed requests are reverse-proxied to the agent's upstream with the
// identity headers set and the client's credential removed.
package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/mcpgateway/mcp-gateway/authz"
	"github.com/mcpgateway/mcp-gateway/internal/routes"
	"github.com/mcpgateway/mcp-gateway/internal/slowbody"
)

// Decider is the authz decision core.
type Decider interface {
	Decide(ctx context.Context, r *authz.Request) *authz.Decision
}

// Options configures New.
type Options struct {
	Decider Decider
	// Upstream returns the full MCP endpoint of an agent, e.g.
	// http://127.0.0.1:3000/mcp. Allowed requests for /<agent>/mcp go there.
	Upstream func(ctx context.Context, agentID string) (*url.URL, error)
	Logger   *slog.Logger
	// Transport to the upstreams; nil uses a transport without response
	// timeouts, so long-lived SSE streams are never cut.
	Transport http.RoundTripper
	// MaxRequestBytes bounds a request body; 0 means DefaultMaxRequestBytes,
	// negative disables the limit.
	MaxRequestBytes int64
	// OriginAllowed names the browser origins that get CORS on agent paths
	// (preflights answered, responses readable); nil: no CORS. The decision
	// refuses the others on its own.
	OriginAllowed func(origin string) bool
}

// DefaultMaxRequestBytes is the request body limit when Options leaves it 0.
const DefaultMaxRequestBytes = 8 << 20

type ctxKey struct{}

// route is what ServeHTTP resolved for Rewrite.
type route struct {
	target   *url.URL
	decision *authz.Decision
}

type handler struct {
	opts  Options
	log   *slog.Logger
	proxy *httputil.ReverseProxy
}

// New returns the proxy handler. It panics if Decider or Upstream is nil
// (a wiring bug, caught at startup).
func New(opts Options) http.Handler {
	if opts.Decider == nil || opts.Upstream == nil {
		panic("proxy.New: Decider and Upstream are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Transport == nil {
		opts.Transport = newTransport()
	}
	if opts.MaxRequestBytes == 0 {
		opts.MaxRequestBytes = DefaultMaxRequestBytes
	}
	h := &handler{opts: opts, log: opts.Logger}
	h.proxy = &httputil.ReverseProxy{
		Rewrite:   rewrite,
		Transport: opts.Transport,
		// Flush every write at once: SSE events must reach the client as
		// soon as the upstream sends them.
		FlushInterval: -1,
		ErrorHandler:  h.upstreamError,
		// The agent's own CORS headers give way to the gateway's.
		ModifyResponse: func(resp *http.Response) error {
			for _, k := range corsHeaders {
				resp.Header.Del(k)
			}
			h.cors(resp.Header, resp.Request)
			return nil
		},
		ErrorLog: slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
	}
	return h
}

// newTransport has connect/TLS timeouts only: a response (an SSE stream) may
// legitimately take any time to start and never end.
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil, // never route gateway→agent traffic through an env proxy
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == routes.Favicon {
		w.WriteHeader(http.StatusNoContent) // a browser's own request: no decision
		return
	}
	if h.preflight(w, r) {
		return
	}
	ar := authzRequest(r)
	var bodyErr error
	if r.Method == http.MethodPost && r.Body != nil && r.Body != http.NoBody {
		// The tool policy reads the JSON-RPC body, as Envoy's
		// with_request_body passes it, but only for an agent with rules and
		// a caller already authenticated: up to authz.MaxMCPBody (larger is
		// flagged); what was read is put back in front of the rest.
		ar.LoadBody = func() ([]byte, bool) {
			buf, err := io.ReadAll(io.LimitReader(r.Body, authz.MaxMCPBody+1))
			r.Body = struct {
				io.Reader
				io.Closer
			}{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
			if err != nil {
				bodyErr = err
				return nil, false
			}
			if len(buf) > authz.MaxMCPBody {
				return nil, true
			}
			return buf, false
		}
	}
	d := h.opts.Decider.Decide(r.Context(), ar)
	if bodyErr != nil {
		if slowbody.TimedOut(r.Context()) {
			writeJSONError(w, http.StatusRequestTimeout, "request_timeout", "the request body was not received in time")
			return
		}
		writeJSONError(w, http.StatusBadRequest, "invalid_request", "the request body could not be read")
		return
	}
	if d == nil {
		h.log.Error("proxy: decider returned no decision", "method", r.Method)
		writeJSONError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "authorization decision unavailable")
		return
	}
	if !d.Allow {
		h.cors(w.Header(), r)
		writeDenial(w, d)
		return
	}
	agent := d.Identity.Agent
	if agent == "" {
		h.log.Error("proxy: allow decision without an agent", "reason", d.Reason)
		writeJSONError(w, http.StatusBadGateway, "bad_gateway", "no upstream for this request")
		return
	}
	target, err := h.opts.Upstream(r.Context(), agent)
	if err == nil {
		err = checkUpstream(target)
	}
	if err != nil {
		h.log.Warn("proxy: no upstream", "agent", agent, "err", err)
		writeJSONError(w, http.StatusBadGateway, "bad_gateway", "agent upstream unavailable")
		return
	}
	if h.opts.MaxRequestBytes > 0 && r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(w, r.Body, h.opts.MaxRequestBytes)
	}
	if r.ContentLength > 0 {
		r.Body = &exactBody{ReadCloser: r.Body, left: r.ContentLength}
	}
	ctx := context.WithValue(r.Context(), ctxKey{}, &route{target: target, decision: d})
	h.proxy.ServeHTTP(w, r.WithContext(ctx))
}

// corsHeaders are the response headers the gateway's CORS decides alone.
var corsHeaders = []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Expose-Headers", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers", "Access-Control-Max-Age"}

// preflight answers a CORS preflight to an agent path from an admitted
// origin: it carries no credential, so the decision would only challenge it.
// Others (no origin, another origin, not an agent path) go on to the
// decision, which refuses a foreign Origin with 403.
func (h *handler) preflight(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" || !h.corsOrigin(r) {
		return false
	}
	if _, ok := authz.AgentFromPath(authzRequest(r).Path); !ok {
		return false
	}
	hdr := w.Header()
	h.cors(hdr, r)
	hdr.Set("Access-Control-Allow-Methods", routes.AgentCORSMethods)
	hdr.Set("Access-Control-Allow-Headers", routes.AgentCORSAllowHeaders)
	hdr.Set("Access-Control-Max-Age", routes.AgentCORSMaxAge)
	w.WriteHeader(http.StatusNoContent)
	return true
}

func (h *handler) corsOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	return h.opts.OriginAllowed != nil && o != "" && len(r.Header.Values("Origin")) == 1 && h.opts.OriginAllowed(o)
}

// cors lets an admitted origin read the response (the challenge included).
func (h *handler) cors(hdr http.Header, r *http.Request) {
	if h.opts.OriginAllowed == nil {
		return
	}
	hdr.Add("Vary", "Origin")
	if !h.corsOrigin(r) {
		return
	}
	hdr.Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
	hdr.Set("Access-Control-Expose-Headers", routes.AgentCORSExposeHeaders)
}

// authzRequest maps the client request to the decision input. Path is the
// request target exactly as sent, so encoded slashes and dot segments reach
// the decision unnormalised.
func authzRequest(r *http.Request) *authz.Request {
	path := r.RequestURI
	if path == "" { // a handler called directly, not by net/http's server
		path = r.URL.RequestURI()
	}
	return &authz.Request{
		Adapter: "proxy",
		Method:  r.Method,
		Path:    path,
		Header: func(name string) string {
			switch strings.ToLower(name) {
			case "host", ":authority":
				return r.Host
			}
			// Repeated headers are joined with "," as Envoy does for ext_authz,
			// so two Authorization headers are ambiguous to the decision here too.
			return strings.Join(r.Header.Values(name), ",")
		},
	}
}

func checkUpstream(u *url.URL) error {
	switch {
	case u == nil:
		return errors.New("nil upstream URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("upstream %q: scheme must be http or https", u.Redacted())
	case u.Host == "":
		return fmt.Errorf("upstream %q: no host", u.Redacted())
	}
	return nil
}

// rewrite builds the upstream request. ReverseProxy has already removed
// hop-by-hop headers and Forwarded/X-Forwarded-{For,Host,Proto}.
func rewrite(pr *httputil.ProxyRequest) {
	rt := pr.In.Context().Value(ctxKey{}).(*route)
	t := rt.target

	// /<agent>/mcp[/] → the upstream's MCP endpoint; the client's query is kept.
	out := pr.Out.URL
	out.Scheme = t.Scheme
	out.Host = t.Host
	out.Path = t.Path
	out.RawPath = t.RawPath
	switch {
	case t.RawQuery == "":
		out.RawQuery = pr.In.URL.RawQuery
	case pr.In.URL.RawQuery == "":
		out.RawQuery = t.RawQuery
	default:
		out.RawQuery = t.RawQuery + "&" + pr.In.URL.RawQuery
	}
	out.User = nil
	out.Fragment, out.RawFragment = "", ""
	pr.Out.Host = t.Host

	hdr := pr.Out.Header
	for name := range hdr {
		if stripped(name) {
			hdr.Del(name)
		}
	}
	for _, name := range rt.decision.RemoveHeaders {
		hdr.Del(name)
	}
	pr.SetXForwarded()
	for _, hv := range rt.decision.UpstreamHeaders {
		hdr.Set(hv.Key, hv.Value)
	}
}

// stripped reports whether a client header must not reach the upstream: the
// credential, anything that could pass for an identity header (also spelled
// with underscores, which CGI-style servers fold into the same name), and
// client-supplied forwarding headers.
func stripped(name string) bool {
	n := strings.ReplaceAll(strings.ToLower(name), "_", "-")
	return n == "authorization" ||
		strings.HasPrefix(n, "x-mcp-") ||
		strings.HasPrefix(n, "x-forwarded-") ||
		n == "forwarded" ||
		n == "x-real-ip"
}

func (h *handler) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		writeJSONError(w, http.StatusRequestEntityTooLarge, "request_too_large", fmt.Sprintf("request body exceeds %d bytes", mbe.Limit))
		return
	}
	if slowbody.TimedOut(r.Context()) { // the client's body, not the upstream, was too slow
		writeJSONError(w, http.StatusRequestTimeout, "request_timeout", "the request body was not received in time")
		return
	}
	if r.Context().Err() != nil {
		// The client went away; nobody reads the answer.
		h.log.Debug("proxy: client gone", "path", r.URL.Path, "err", err)
	} else {
		target := ""
		if rt, ok := r.Context().Value(ctxKey{}).(*route); ok {
			target = rt.target.Scheme + "://" + rt.target.Host + rt.target.Path
		}
		h.log.Warn("proxy: upstream error", "upstream", target, "err", err)
	}
	writeJSONError(w, http.StatusBadGateway, "bad_gateway", "agent upstream unavailable")
}

func writeDenial(w http.ResponseWriter, d *authz.Decision) {
	status := d.Status
	if status < 400 || status > 599 {
		status = http.StatusForbidden // a deny is never a success
	}
	h := w.Header()
	for _, hv := range d.Headers {
		h.Add(hv.Key, hv.Value)
	}
	if len(d.Body) > 0 && h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/json")
	}
	if h.Get("Cache-Control") == "" {
		h.Set("Cache-Control", "no-store")
	}
	w.WriteHeader(status)
	_, _ = w.Write(d.Body)
}

func writeJSONError(w http.ResponseWriter, status int, code, desc string) {
	body, _ := json.Marshal(map[string]string{"error": code, "error_description": desc})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// exactBody ends a body of known length with its last bytes. After them
// the transport reads once more, looking for bytes past Content-Length, and
// that read may come after the upstream's answer has started streaming,
// when net/http has closed the request body (an HTTP/1 exchange is not full
// duplex): the failed read made the transport drop the upstream connection,
// cutting an SSE stream after its first event. So the end is read here, in
// the call that delivers the last bytes, before the upstream can answer.
// Full duplex is no cure: it keeps a connection whose body was not read to
// its end, and the unread rest would be parsed as the next request.
type exactBody struct {
	io.ReadCloser
	left int64
}

func (b *exactBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	if err != nil || b.left > 0 {
		return n, err
	}
	// net/http's body (and slowbody's slot) see their end only on a read.
	var one [1]byte
	if m, err := b.ReadCloser.Read(one[:]); m > 0 || (err != nil && err != io.EOF) {
		return n, fmt.Errorf("proxy: request body longer than its Content-Length: %w", err)
	}
	return n, io.EOF
}
