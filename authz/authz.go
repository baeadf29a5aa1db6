package authz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/mem"

	"github.com/mcpgateway/mcp-gateway/assertion"
	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/internal/metrics"
	"github.com/mcpgateway/mcp-gateway/internal/resource"
	"github.com/mcpgateway/mcp-gateway/internal/ttlcache"
	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

// Store is the part of the store the decision needs. Every backend
// (memstore, redisstore) satisfies it.
type Store interface {
	GetKeyByHash(ctx context.Context, hash string) (*store.APIKey, error)
	GetAgent(ctx context.Context, id string) (*store.Agent, error)
	RevokedJTIs(ctx context.Context) (map[string]time.Time, error)
	TouchKeys(ctx context.Context, used map[string]time.Time) error
	Subscribe(ctx context.Context, fn func(store.Event)) error
}

// Options configure an Authorizer. PublicURL, Scopes, Ring and Store are
// required; zero durations and sizes take the defaults noted.
type Options struct {
	// PublicURL is the gateway's external base URL (config public_url). Every
	// URL in a challenge is built from it, never from Host or X-Forwarded-*.
	PublicURL string
	// Scopes are the gateway's scopes (config scopes): the scope advertised
	// in 401 challenges and the scopes an agent without its own requires.
	Scopes []string
	// ScopeImplies is the declared scope hierarchy (config scopes[].implies):
	// a grant of a key scope covers the scopes it lists, transitively.
	ScopeImplies map[string][]string
	Ring         *token.Ring
	Store        Store
	// Limiter counts agents' per-user limits (store.Limits); default: the
	// Store, when it is one (memstore, redisstore). Only agents with limits
	// use it: the decision of every other stays free of store calls.
	Limiter Limiter
	// Assertions signs the x-mcp-identity assertion added on every allow;
	// nil: none is added (and a client-sent one is still removed).
	Assertions *assertion.Signer
	// UpstreamSecretsDir holds the files agents' upstream_auth secret_file
	// names; UpstreamSecretsRefresh is how often one is re-read (default 10s).
	UpstreamSecretsDir     string
	UpstreamSecretsRefresh time.Duration
	// StaticAgents come from the config file and win over the store.
	StaticAgents []store.Agent
	// AgentOrigins are the Origin values admitted on /<agent>/mcp besides
	// PublicURL's own (config agent_origins); "*" admits any.
	AgentOrigins []string

	CacheTTL         time.Duration // API-key and agent cache TTL; default 30s
	NegativeCacheTTL time.Duration // "not found" entries; default min(5s, CacheTTL)
	CacheSize        int           // entries per cache; default 10000
	StoreTimeout     time.Duration // one store call; default 2s
	TouchInterval    time.Duration // key last-used batching; default 5s
	// ResyncInterval re-reads the whole denylist so a missed pub/sub event
	// (subscription dropped during a Redis restart) is healed; default 30s.
	ResyncInterval time.Duration

	// Tracer, when set, traces each Check (tracing.go); nil: off.
	Tracer trace.Tracer

	Logger *slog.Logger     // default slog.Default()
	Now    func() time.Time // default time.Now; judges API-key expiry
}

// Authorizer makes decisions. Create with New, call Start once, then call
// Decide from any number of goroutines.
type Authorizer struct {
	res      resource.Base // the public URL: the gateway's resource and every agent's prefix
	prmBase  string        // res.MetadataPrefix(): <origin>/.well-known/oauth-protected-resource<path>/
	ch401    string        // `Bearer realm="MCP", resource_metadata="<prmBase>`
	scopes   []string
	scopeStr string
	implies  map[string][]string
	// baseScopes (store.GatewayBaseScopes) are what an agent without its
	// own scopes is based on.
	baseScopes []string

	// Origins admitted on agent paths (OriginAllowed).
	origins   []string // PublicURL's origin first
	anyOrigin bool

	ring    *token.Ring
	assert  *assertion.Signer
	upsec   *secrets
	store   Store
	limiter Limiter
	static  map[string]*agentInfo
	keys    *ttlcache.Cache[keyInfo]
	agents  *ttlcache.Cache[agentInfo]
	jtis    mirror

	storeTimeout, touchEvery, resyncEvery time.Duration

	started atomic.Bool
	done    atomic.Pointer[chan struct{}] // closed when background work has stopped
	// resyncNow asks the background loop to re-read the denylist at once.
	resyncNow chan struct{}
	loaded    atomic.Bool // denylist mirror filled and subscription live
	ready     atomic.Bool

	readyMu  sync.Mutex
	readyFns []func(bool)

	touchMu sync.Mutex
	pending map[string]time.Time

	counters [nReasons][nCreds]prometheus.Counter
	// otherAgent counts decisions for paths naming no registered agent:
	// [0] deny, [1] allow.
	otherAgent [2]prometheus.Counter
	latency    [4]prometheus.Observer

	tracer    trace.Tracer // nil: tracing off
	log       *slog.Logger
	now       func() time.Time
	realClock bool // now is time.Now: reuse Decide's start time
}

// agentInfo is an agent plus what its decisions need precomputed.
type agentInfo struct {
	agent       *store.Agent
	required    []string // scopes a credential must overlap: the base scopes and those implying them
	requiredStr string   // the base scopes
	ch401       string   // 401 challenge up to its error part
	chScope     string   // 403 challenge
	resource    string   // <public>/<id>/mcp: the assertion's audience
	// upstream is the agent's upstream credential, validated; upstreamBad:
	// the stored reference is invalid, so every allow fails closed.
	upstream    *store.UpstreamAuth
	upstreamBad bool
	rules       []ruleInfo
	badPolicy   bool          // the stored rules are invalid: refuse (503) rather than guess
	limits      *store.Limits // nil when the agent has none
	// Policy metrics: no rule matched (allow), rate limited.
	cNoRule, cLimited prometheus.Counter
	// cDecisions counts this agent's decisions: [0] deny, [1] allow.
	cDecisions [2]prometheus.Counter
	// denied holds the encoded gRPC answers of the 401s that name no
	// caller (deniedSlot), filled on first use. They live and die with this
	// agentInfo, so an agent change (a new agentInfo) or a new public URL (a
	// new Authorizer) can never serve an old one, and only registered
	// agents have any: at most nDenied answers of ~0.5 KiB per agent.
	denied [nDenied]atomic.Pointer[mem.SliceBuffer]
}

// OtherAgentLabel is the agent label of decisions for paths naming no
// registered agent; no agent id can take it (ids are [A-Za-z0-9._-]).
const OtherAgentLabel = "(other)"

// Limiter is the store's fixed-window counter (store.RateLimiter).
type Limiter interface {
	Allow(ctx context.Context, key string, limit int, window time.Duration) (bool, time.Duration, error)
}

// keyInfo is a cached API-key record.
type keyInfo struct {
	key      *store.APIKey
	hash     string
	scopeStr string       // the key's well-formed scopes, joined
	touched  atomic.Int64 // unix ns of the last queued last-used update
}

// maxPendingTouches bounds the last-used batch if the store stays down.
const maxPendingTouches = 100000

// New checks opts and builds an Authorizer. It does not touch the store.
func New(opts Options) (*Authorizer, error) {
	pub := strings.TrimRight(opts.PublicURL, "/")
	if u, err := url.Parse(pub); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("authz: public URL %q is not an absolute http(s) URL", opts.PublicURL)
	}
	if opts.Ring == nil {
		return nil, errors.New("authz: a token ring is required")
	}
	if opts.Store == nil {
		return nil, errors.New("authz: a store is required")
	}
	if len(opts.Scopes) == 0 {
		return nil, errors.New("authz: at least one scope is required")
	}
	for _, s := range opts.Scopes {
		if !store.ValidScopeToken(s) {
			return nil, fmt.Errorf("authz: invalid scope %q", s)
		}
	}
	def := func(d, v time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return v
	}
	ttl := def(opts.CacheTTL, 30*time.Second)
	neg := def(opts.NegativeCacheTTL, min(5*time.Second, ttl))
	size := opts.CacheSize
	if size <= 0 {
		size = 10000
	}
	a := &Authorizer{
		resyncNow: make(chan struct{}, 1),
		res:       resource.New(pub),
		prmBase:   resource.New(pub).MetadataPrefix(),
		scopes:    append([]string(nil), opts.Scopes...),
		scopeStr:  strings.Join(opts.Scopes, " "),
		implies:   opts.ScopeImplies,
		ring:      opts.Ring,
		assert:    opts.Assertions,
		upsec: &secrets{dir: opts.UpstreamSecretsDir, refresh: def(opts.UpstreamSecretsRefresh, 10*time.Second),
			getenv: os.Getenv, m: make(map[secretKey]*secretEntry)},
		store:        opts.Store,
		static:       make(map[string]*agentInfo, len(opts.StaticAgents)),
		keys:         newCache[keyInfo]("api_key", ttl, neg, size),
		agents:       newCache[agentInfo]("agent", ttl, neg, size),
		storeTimeout: def(opts.StoreTimeout, 2*time.Second),
		touchEvery:   def(opts.TouchInterval, 5*time.Second),
		resyncEvery:  def(opts.ResyncInterval, 30*time.Second),
		pending:      make(map[string]time.Time),
		log:          opts.Logger,
		now:          opts.Now,
		tracer:       opts.Tracer,
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	a.upsec.log = a.log
	a.limiter = opts.Limiter
	if l, ok := opts.Store.(Limiter); ok && a.limiter == nil {
		a.limiter = l
	}
	if a.now == nil {
		a.now, a.realClock = time.Now, true
	}
	a.baseScopes = store.GatewayBaseScopes(a.scopes, opts.StaticAgents)
	a.ch401 = `Bearer realm="MCP", resource_metadata="` + a.prmBase
	a.origins = append([]string{config.OriginOf(pub)}, opts.AgentOrigins...)
	a.anyOrigin = slices.Contains(opts.AgentOrigins, "*")
	for i := range opts.StaticAgents {
		ag := opts.StaticAgents[i] // copy: the caller's slice stays theirs
		if !config.ValidAgentID(ag.ID) {
			return nil, fmt.Errorf("authz: static agent id %q: want 1–128 of [A-Za-z0-9._-]", ag.ID)
		}
		if _, dup := a.static[ag.ID]; dup {
			return nil, fmt.Errorf("authz: static agent %q declared twice", ag.ID)
		}
		ag.Static = true
		a.static[ag.ID] = a.newAgentInfo(ag.ID, &ag)
	}
	for r := range nReasons {
		for c := range nCreds {
			a.counters[r][c] = metrics.Decisions.WithLabelValues(reasons[r].decision, reasons[r].name, credNames[c])
		}
	}
	for i, n := range adapterNames {
		a.latency[i] = metrics.DecisionSeconds.WithLabelValues(n)
	}
	a.otherAgent = [2]prometheus.Counter{metrics.AgentDecisions.WithLabelValues(OtherAgentLabel, "deny"), metrics.AgentDecisions.WithLabelValues(OtherAgentLabel, "allow")}
	return a, nil
}

func (a *Authorizer) newAgentInfo(id string, ag *store.Agent) *agentInfo {
	// Only well-formed scope tokens: they end up in a quoted challenge.
	var base []string
	for _, s := range ag.BaseScopes(a.baseScopes) {
		if store.ValidScopeToken(s) {
			base = append(base, s)
		}
	}
	ai := &agentInfo{agent: ag, requiredStr: strings.Join(base, " "), resource: a.res.For(id)}
	ai.cDecisions = [2]prometheus.Counter{metrics.AgentDecisions.WithLabelValues(id, "deny"), metrics.AgentDecisions.WithLabelValues(id, "allow")}
	// Empty after filtering: nothing can match, deny.
	for _, s := range base {
		for _, sat := range a.satisfiers(s) {
			if !slices.Contains(ai.required, sat) {
				ai.required = append(ai.required, sat)
			}
		}
	}
	if ag.UpstreamAuth != nil {
		norm, err := ag.UpstreamAuth.Validate()
		ai.upstream, ai.upstreamBad = &norm, err != nil
	}
	ai.ch401 = a.ch401 + resource.Rel(id, false) + `", scope="` + ai.requiredStr + `"`
	ai.chScope = `Bearer realm="MCP", error="insufficient_scope", error_description="` + reasons[rInsufficientScope].desc +
		`", scope="` + ai.requiredStr + `", resource_metadata="` + a.prmBase + resource.Rel(id, false) + `"`
	a.buildRules(id, ai, base)
	if l := ag.Limits; l != nil && (l.PerUser > 0 || l.PerTool > 0) {
		ai.limits = l
	}
	if len(ai.rules) > 0 || ai.limits != nil {
		ai.cNoRule = metrics.PolicyDecisions.WithLabelValues(id, "none", "allow")
		ai.cLimited = metrics.PolicyDecisions.WithLabelValues(id, "limits", "rate_limited")
	}
	return ai
}

// Start subscribes to store events, fills the revocation mirror and starts
// the background work (last-used batching, periodic denylist resync), all
// stopped when ctx ends — so ctx should outlive the servers using Decide.
// It returns once the mirror is live; until then JWT decisions answer 503.
// On error nothing keeps running and Start may be called again.
func (a *Authorizer) Start(ctx context.Context) error {
	if !a.started.CompareAndSwap(false, true) {
		return errors.New("authz: already started")
	}
	bg, cancel := context.WithCancel(ctx)
	fail := func(err error) error {
		cancel()
		a.started.Store(false)
		return err
	}
	if err := a.store.Subscribe(bg, a.onEvent); err != nil {
		return fail(fmt.Errorf("authz: subscribe to store events: %w", err))
	}
	lctx, lcancel := context.WithTimeout(ctx, a.storeTimeout)
	all, err := a.store.RevokedJTIs(lctx)
	lcancel()
	if err != nil {
		metrics.StoreErrors.WithLabelValues("revoked_jtis").Inc()
		return fail(fmt.Errorf("authz: load revoked tokens: %w", err))
	}
	a.jtis.merge(all, a.now())
	a.loaded.Store(true)
	done := make(chan struct{})
	a.done.Store(&done)
	go func() { defer close(done); a.background(bg, cancel) }()
	a.setReady(true)
	return nil
}

// Wait blocks until the work Start began has stopped (its context ended and
// the last batch of key last-used times was written), so the store can be
// closed after it.
func (a *Authorizer) Wait() {
	if d := a.done.Load(); d != nil {
		<-*d
	}
}

// Ready reports whether Start has completed and Drain was not called: the
// revocation mirror is loaded and the event subscription is live.
func (a *Authorizer) Ready() bool { return a.ready.Load() }

// Drain marks the Authorizer not ready (Ready false, gRPC health
// NOT_SERVING) while it keeps answering, so load balancers stop sending
// traffic before shutdown.
func (a *Authorizer) Drain() { a.setReady(false) }

func (a *Authorizer) setReady(v bool) {
	a.readyMu.Lock()
	defer a.readyMu.Unlock()
	a.ready.Store(v)
	for _, fn := range a.readyFns {
		fn(v)
	}
}

// watchReady calls fn with the current readiness and on every change.
func (a *Authorizer) watchReady(fn func(bool)) {
	a.readyMu.Lock()
	defer a.readyMu.Unlock()
	a.readyFns = append(a.readyFns, fn)
	fn(a.ready.Load())
}

func (a *Authorizer) onEvent(e store.Event) {
	switch e.Kind {
	case store.EventRevokedJTI:
		if e.ID != "" {
			a.jtis.add(e.ID, e.Exp, a.now())
		}
	case store.EventKey:
		a.keys.Invalidate(e.ID) // "" (unknown which) drops all
	case store.EventAgent:
		a.agents.Invalidate(e.ID)
	case store.EventResync:
		// The subscription was lost and is back: events may have been
		// missed. Drop what they could have invalidated and re-read the
		// denylist now rather than at the next resync tick.
		a.keys.Invalidate("")
		a.agents.Invalidate("")
		select {
		case a.resyncNow <- struct{}{}:
		default: // one is already queued
		}
	}
}

func (a *Authorizer) background(ctx context.Context, cancel context.CancelFunc) {
	defer cancel()
	touch := time.NewTicker(a.touchEvery)
	defer touch.Stop()
	resync := time.NewTicker(a.resyncEvery)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			a.setReady(false)
			// Last batch: the caller's context is over, give it a moment anyway.
			a.flushTouches(context.WithoutCancel(ctx))
			a.started.Store(false)
			return
		case <-touch.C:
			a.flushTouches(ctx)
		case <-resync.C:
			a.resync(ctx)
		case <-a.resyncNow:
			a.resync(ctx)
		}
	}
}

func (a *Authorizer) resync(ctx context.Context) {
	now := a.now()
	a.jtis.prune(now, token.Leeway)
	cctx, cancel := context.WithTimeout(ctx, a.storeTimeout)
	defer cancel()
	all, err := a.store.RevokedJTIs(cctx)
	if err != nil {
		metrics.StoreErrors.WithLabelValues("revoked_jtis").Inc()
		a.log.Warn("authz: denylist resync failed; serving the last copy", "err", err)
		return
	}
	a.jtis.merge(all, now)
}

// touch queues a last-used update; at most one per key per TouchInterval
// reaches the batch, and none blocks on the store.
func (a *Authorizer) touch(ki *keyInfo, now time.Time) {
	n := now.UnixNano()
	last := ki.touched.Load()
	if n-last < int64(a.touchEvery) || !ki.touched.CompareAndSwap(last, n) {
		return
	}
	a.touchMu.Lock()
	if len(a.pending) < maxPendingTouches {
		a.pending[ki.hash] = now
	}
	a.touchMu.Unlock()
}

func (a *Authorizer) flushTouches(ctx context.Context) {
	a.touchMu.Lock()
	if len(a.pending) == 0 {
		a.touchMu.Unlock()
		return
	}
	batch := a.pending
	a.pending = make(map[string]time.Time, len(batch))
	a.touchMu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, a.storeTimeout)
	defer cancel()
	if err := a.store.TouchKeys(cctx, batch); err != nil {
		// Last-used is informational: drop the batch rather than pile up.
		metrics.StoreErrors.WithLabelValues("touch_keys").Inc()
		a.log.Warn("authz: recording API-key last use failed", "keys", len(batch), "err", err)
	}
}

// lookupAgent returns agent id from the static agents first, then the
// cache or store; (nil, nil) means unknown.
func (a *Authorizer) lookupAgent(ctx context.Context, id string, now time.Time) (*agentInfo, error) {
	if ai, ok := a.static[id]; ok {
		return ai, nil
	}
	if ai, ok := a.agents.Peek(id, now); ok {
		return ai, nil // checked first: building the loader below allocates
	}
	return a.agents.Get(ctx, id, now, func(ctx context.Context) (*agentInfo, error) {
		ctx, cancel := context.WithTimeout(ctx, a.storeTimeout)
		defer cancel()
		ag, err := a.store.GetAgent(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			metrics.StoreErrors.WithLabelValues("get_agent").Inc()
			return nil, fmt.Errorf("authz: get agent %q: %w", id, err)
		}
		return a.newAgentInfo(id, ag), nil
	})
}

// lookupKey returns the record of a key hash; (nil, nil) = unknown.
func (a *Authorizer) lookupKey(ctx context.Context, hash []byte, now time.Time) (*keyInfo, error) {
	if ki, ok := a.keys.PeekBytes(hash, now); ok {
		return ki, nil
	}
	h := string(hash)
	return a.keys.Get(ctx, h, now, func(ctx context.Context) (*keyInfo, error) {
		ctx, cancel := context.WithTimeout(ctx, a.storeTimeout)
		defer cancel()
		k, err := a.store.GetKeyByHash(ctx, h)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			metrics.StoreErrors.WithLabelValues("get_key").Inc()
			return nil, fmt.Errorf("authz: get API key: %w", err)
		}
		ki := &keyInfo{key: k, hash: h}
		for _, s := range k.Scopes {
			if store.ValidScopeToken(s) {
				if ki.scopeStr != "" {
					ki.scopeStr += " "
				}
				ki.scopeStr += s
			}
		}
		return ki, nil
	})
}

// GetAgent returns an agent (static first, then the cached store) for the
// authorization server and the dev proxy, so they share the Check's view and
// cache. Unknown agents are store.ErrNotFound. The record is shared: read-only.
func (a *Authorizer) GetAgent(ctx context.Context, id string) (*store.Agent, error) {
	ai, err := a.lookupAgent(ctx, id, a.now())
	if err != nil {
		return nil, err
	}
	if ai == nil {
		return nil, fmt.Errorf("authz: agent %q: %w", id, store.ErrNotFound)
	}
	return ai.agent, nil
}
