// Package gateway is the agent-facing edge of the sessions service: sign-in,
// the agent websocket (protocol v1, see PROTOCOL.md) and the console page.
// Frames for an agent travel over core NATS (push.agent.<tenant>.<agent>),
// so whichever replica holds the agent's socket delivers them.
package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/httpserver"
	"github.com/switchboard-cc/switchboard/pkg/ids"
	"github.com/switchboard-cc/switchboard/pkg/segments"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/sessions/internal/core"
	"github.com/switchboard-cc/switchboard/services/sessions/internal/protocol"
)

// Gateway serves agents.
type Gateway struct {
	id       string // this replica's, on its pushes (headerOrigin)
	core     *core.Core
	keys     *authn.Keys
	lookup   configv1.LookupServiceClient
	nc       *nats.Conn
	log      *slog.Logger
	tracer   trace.Tracer
	console  fs.FS
	tokenTTL time.Duration
	origins  []string

	authTimeout  time.Duration
	recheckEvery time.Duration
	proxies      []netip.Prefix

	mu         sync.Mutex
	sessionSub *nats.Subscription
	conns      map[string]map[*conn]struct{} // tenant/agent -> sockets
	// monitors: tenant/session -> supervisors' sockets watching it.
	monitors map[string]map[*conn]struct{}
	// logs: tenant/agent -> the frames last pushed to the agent, numbered,
	// for a dropped socket to resume from (resume.go).
	logs   map[string]*agentLog
	epochs uint64 // the last log epoch started

	// pushed: tenant/agent -> when this replica last pushed that agent a
	// frame (askResync); one entry per agent, older ones dropped at each
	// reconnect.
	pmu    sync.Mutex
	pushed map[string]time.Time

	// Sockets are hijacked, so HTTP shutdown does not wait for them: Close
	// cancels them and waits.
	done    context.Context
	stop    context.CancelFunc
	sockets sync.WaitGroup
}

// Options of the gateway.
type Options struct {
	// TokenTTL of console tokens (8 hours, a shift; at most authn.MaxTTL).
	TokenTTL time.Duration
	// AuthTimeout is how long a new socket may take to authenticate (10 s).
	AuthTimeout time.Duration
	// TrustedProxies may name the client in X-Forwarded-For (sign-in
	// throttling per address).
	TrustedProxies []netip.Prefix
	// RecheckEvery is how often open sockets' tokens are checked against
	// expiry and the revocation list (1 s).
	RecheckEvery time.Duration
	// OriginPatterns allowed to open the websocket besides the page's own host.
	OriginPatterns []string
	Console        fs.FS
	// Tracing receives a span per websocket frame; nil: the global provider.
	Tracing trace.TracerProvider
}

// New returns a gateway.
func New(c *core.Core, keys *authn.Keys, lookup configv1.LookupServiceClient, nc *nats.Conn, log *slog.Logger, o Options) *Gateway {
	if o.TokenTTL <= 0 {
		o.TokenTTL = 8 * time.Hour
	}
	o.TokenTTL = min(o.TokenTTL, authn.MaxTTL)
	if o.AuthTimeout <= 0 {
		o.AuthTimeout = 10 * time.Second
	}
	if o.RecheckEvery <= 0 {
		o.RecheckEvery = time.Second
	}
	if o.Tracing == nil {
		o.Tracing = otel.GetTracerProvider()
	}
	done, stop := context.WithCancel(context.Background())
	g := &Gateway{
		id:   ids.New("gw_"),
		core: c, keys: keys, lookup: lookup, nc: nc, log: log, console: o.Console,
		tracer:   o.Tracing.Tracer("github.com/switchboard-cc/switchboard/services/sessions/gateway"),
		tokenTTL: o.TokenTTL, authTimeout: o.AuthTimeout, recheckEvery: o.RecheckEvery, proxies: o.TrustedProxies, origins: o.OriginPatterns, conns: map[string]map[*conn]struct{}{},
		monitors: map[string]map[*conn]struct{}{}, pushed: map[string]time.Time{}, logs: map[string]*agentLog{},
		done: done, stop: stop,
	}
	go g.runSweep()
	return g
}

// Close ends every agent socket (agents reconnect to another replica) and
// waits for their handlers, including marking the agents offline.
func (g *Gateway) Close() {
	g.stop()
	g.sockets.Wait()
	g.mu.Lock()
	if g.sessionSub != nil {
		_ = g.sessionSub.Unsubscribe()
	}
	g.mu.Unlock()
}

// Handler routes the gateway's HTTP endpoints.
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/agent/v1/login", g.login)
	mux.HandleFunc("GET /api/agent/v1/ws", g.websocket)
	mux.HandleFunc("GET /api/agent/v1/media/{session}/{message}/{n}", g.media)
	mux.HandleFunc("POST /api/agent/v1/media/{session}", g.attach)
	mux.HandleFunc("GET /media/{id}", g.publicAttachment)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	if g.console != nil {
		mux.Handle("GET /", http.FileServerFS(g.console))
	}
	return securityHeaders(mux)
}

func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob: https: http:; media-src 'self' blob:; style-src 'self'; script-src 'self'")
		h.ServeHTTP(w, r)
	})
}

// Push sends a frame to an agent's sockets on every replica. The trace
// context of ctx travels in the message's headers: the frame's span on
// the socket continues it.
//
// This replica's own sockets get it at once, not over NATS: a frame never
// depends on the broker to reach a socket held where it was made (a
// message published just before the connection to a NATS node drops is
// lost; core NATS does not redeliver). The other replicas' sockets get
// the published copy; a replica whose connection dropped re-sends its
// sockets their state once it is back, and asks the replicas holding the
// sockets it pushed to just before the drop to do the same
// (resyncAfterReconnect).
func (g *Gateway) Push(ctx context.Context, tenant, agentID string, frame []byte) {
	key := tenant + "/" + agentID
	g.deliver(key, trace.SpanContextFromContext(ctx), frame)
	g.pmu.Lock()
	g.pushed[key] = time.Now()
	g.pmu.Unlock()
	if err := g.nc.PublishMsg(g.pushMsg(ctx, subjects.AgentPush(tenant, agentID), frame)); err != nil {
		g.log.WarnContext(ctx, "push to agent", "tenant", tenant, "agent", agentID, "err", err)
	}
}

// PushSession sends a session's frame to the supervisors monitoring it on
// every replica (this one's directly, as Push).
func (g *Gateway) PushSession(ctx context.Context, tenant, sessionID string, frame []byte) {
	g.deliverMonitors(tenant+"/"+sessionID, trace.SpanContextFromContext(ctx), frame)
	if err := g.nc.PublishMsg(g.pushMsg(ctx, subjects.SessionPush(tenant, sessionID), frame)); err != nil {
		g.log.WarnContext(ctx, "push to monitors", "tenant", tenant, "session_id", sessionID, "err", err)
	}
}

// headerOrigin names the replica that published a push: it delivered the
// frame to its own sockets already and ignores its copy.
const headerOrigin = "Sb-Push-Origin"

// headerResync marks a push without a frame: the replica holding the
// agent's sockets sends them a fresh snapshot (askResync).
const headerResync = "Sb-Push-Resync"

// pushMsg is a frame on its way to the other replicas' sockets, with this
// replica's name and the trace context of ctx (if any) in its headers.
func (g *Gateway) pushMsg(ctx context.Context, subject string, frame []byte) *nats.Msg {
	m := &nats.Msg{Subject: subject, Data: frame, Header: nats.Header{}}
	m.Header.Set(headerOrigin, g.id)
	if trace.SpanContextFromContext(ctx).IsValid() {
		propagation.TraceContext{}.Inject(ctx, bus.HeaderCarrier(m.Header))
	}
	return m
}

// pushedTrace is the trace context a pushed frame carries.
func pushedTrace(m *nats.Msg) trace.SpanContext {
	if m.Header == nil {
		return trace.SpanContext{}
	}
	return trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), bus.HeaderCarrier(m.Header)))
}

// Subscribe delivers pushed frames to this replica's sockets until
// unsubscribed: agents' frames, and the frames of monitored sessions.
func (g *Gateway) Subscribe() (*nats.Subscription, error) {
	sessions, err := g.nc.Subscribe(subjects.SessionPushAll, func(m *nats.Msg) {
		parts := strings.SplitN(m.Subject, ".", 4) // push.session.<tenant>.<session>
		if len(parts) != 4 {
			return
		}
		if m.Header.Get(headerOrigin) == g.id {
			return // delivered when it was pushed
		}
		g.deliverMonitors(parts[2]+"/"+parts[3], pushedTrace(m), m.Data)
	})
	if err != nil {
		return nil, err
	}
	agents, err := g.nc.Subscribe(subjects.AgentPushAll, func(m *nats.Msg) {
		parts := strings.SplitN(m.Subject, ".", 4) // push.agent.<tenant>.<agent>
		if len(parts) != 4 || m.Header.Get(headerOrigin) == g.id {
			return
		}
		if m.Header.Get(headerResync) != "" {
			go g.resync(parts[2] + "/" + parts[3])
			return
		}
		g.deliver(parts[2]+"/"+parts[3], pushedTrace(m), m.Data)
	})
	if err != nil {
		_ = sessions.Unsubscribe()
		return nil, err
	}
	g.mu.Lock()
	g.sessionSub = sessions
	g.mu.Unlock()
	go g.resyncAfterReconnect()
	return agents, nil
}

// monitor adds or removes a supervisor's socket from a session's watchers.
func (g *Gateway) monitor(c *conn, sessionID string, on bool) {
	key := c.agent.Tenant + "/" + sessionID
	g.mu.Lock()
	defer g.mu.Unlock()
	if !on {
		delete(g.monitors[key], c)
		if len(g.monitors[key]) == 0 {
			delete(g.monitors, key)
		}
		delete(c.monitoring, sessionID)
		return
	}
	if len(c.monitoring) >= maxMonitored {
		return
	}
	if g.monitors[key] == nil {
		g.monitors[key] = map[*conn]struct{}{}
	}
	g.monitors[key][c] = struct{}{}
	if c.monitoring == nil {
		c.monitoring = map[string]bool{}
	}
	c.monitoring[sessionID] = true
}

// maxMonitored bounds the chats one supervisor socket watches at once.
const maxMonitored = 50

// deliver hands an agent's frame to their sockets here, numbered in their
// log (kept for a resume while the agent has a socket here, and for a
// while after).
func (g *Gateway) deliver(key string, parent trace.SpanContext, frame []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	cs := g.conns[key]
	if len(cs) == 0 && g.logs[key] == nil {
		return
	}
	frame = g.logFor(key).add(frame)
	for c := range cs {
		c.sendTraced(parent, frame)
	}
}

func (g *Gateway) deliverMonitors(key string, parent trace.SpanContext, frame []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for c := range g.monitors[key] {
		c.sendTraced(parent, frame)
	}
}

// resyncAfterReconnect follows this replica's NATS connection: once it is
// back after a drop, frames other replicas pushed meanwhile are lost (core
// NATS keeps nothing for a subscriber that is away), so every agent
// socket here is sent its state again (a snapshot, as on a reconnect of
// the socket itself; clients replace what they show with it). Frames this
// replica published just before the drop may be lost too (written to a
// connection whose server died before passing them on): the replicas
// holding the sockets it pushed to from a little before the drop are
// asked to send those a snapshot as well.
func (g *Gateway) resyncAfterReconnect() {
	ch := g.nc.StatusChanged(nats.RECONNECTING, nats.CONNECTED)
	defer g.nc.RemoveStatusListener(ch)
	var dropped time.Time
	for {
		select {
		case <-g.done.Done():
			return
		case st := <-ch:
			switch st {
			case nats.RECONNECTING:
				if dropped.IsZero() {
					dropped = time.Now()
				}
			case nats.CONNECTED:
				if !dropped.IsZero() {
					g.askResync(dropped.Add(-lostBeforeDrop))
					dropped = time.Time{}
					g.resync("")
				}
			}
		}
	}
}

// lostBeforeDrop is how long before a connection is seen dropping a
// frame published on it may have been lost with it.
const lostBeforeDrop = 10 * time.Second

// askResync asks, for every agent this replica pushed a frame to since
// since, the replica holding that agent's sockets to send them a
// snapshot; the record of older pushes is dropped.
func (g *Gateway) askResync(since time.Time) {
	g.pmu.Lock()
	var keys []string
	for k, at := range g.pushed {
		if at.Before(since) {
			delete(g.pushed, k)
			continue
		}
		keys = append(keys, k)
	}
	g.pmu.Unlock()
	for _, k := range keys {
		tenant, agent, _ := strings.Cut(k, "/")
		m := &nats.Msg{Subject: subjects.AgentPush(tenant, agent), Header: nats.Header{}}
		m.Header.Set(headerOrigin, g.id)
		m.Header.Set(headerResync, "1")
		if err := g.nc.PublishMsg(m); err != nil {
			g.log.Warn("ask for an agent's resync", "tenant", tenant, "agent", agent, "err", err)
		}
	}
	if len(keys) > 0 {
		g.log.Info("NATS connection back: asked the replicas holding the agents pushed to before the drop to re-send their state", "agents", len(keys))
	}
}

// snapshotTimeout bounds one attempt at reading a socket's snapshot.
const snapshotTimeout = 10 * time.Second

// resync sends the agent sockets of this replica for key (tenant/agent;
// every agent's when empty) a fresh snapshot.
//
// Each agent's sockets are held while their snapshot is read, and the
// agent's frame log starts again under a new stream: frames pushed while
// the connection was down never reached it, so no resume may cross the
// gap.
func (g *Gateway) resync(key string) {
	g.mu.Lock()
	keys := []string{key}
	if key == "" {
		keys = make([]string, 0, len(g.conns))
		for k := range g.conns {
			keys = append(keys, k)
		}
	}
	g.mu.Unlock()
	if key == "" {
		g.log.Info("NATS connection back: re-sending agents their state", "agents", len(keys))
	}
	for _, k := range keys {
		g.resyncAgent(k)
	}
}

// resyncAgent sends key's agent sockets here a fresh snapshot, on a new
// stream.
func (g *Gateway) resyncAgent(key string) {
	g.mu.Lock()
	var conns []*conn
	for c := range g.conns[key] {
		if c.agent.IsAgent {
			conns = append(conns, c)
		}
	}
	if len(conns) == 0 {
		g.mu.Unlock()
		return
	}
	for _, c := range conns {
		c.hold()
	}
	l := g.resetLog(key)
	base, epoch := l.last, g.streamName(l)
	g.mu.Unlock()
	ctx, cancel := context.WithTimeout(g.done, snapshotTimeout)
	snap, err := g.core.Snapshot(ctx, conns[0].agent)
	cancel()
	for _, c := range conns {
		if err != nil {
			// The socket is closed: its client reconnects to a snapshot.
			g.log.Warn("resync an agent's socket", "tenant", c.agent.Tenant, "agent", c.agent.ID, "err", err)
			c.unavailable(err)
			c.release(nil)
			continue
		}
		c.release(stamp(snap, base, epoch))
	}
}

type loginRequest struct {
	TenantID string `json:"tenant_id"`
	Email    string `json:"email"`
	Password string `json:"password"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func problem(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func (g *Gateway) login(w http.ResponseWriter, r *http.Request) {
	var req loginRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
	if err := dec.Decode(&req); err != nil {
		problem(w, http.StatusBadRequest, "body must be JSON {\"tenant_id\",\"email\",\"password\"}")
		return
	}
	var missing []string
	if !subjects.ValidTenantID(req.TenantID) {
		missing = append(missing, "tenant_id (a lower-case slug)")
	}
	if req.Email == "" {
		missing = append(missing, "email")
	}
	if req.Password == "" {
		missing = append(missing, "password")
	}
	if len(missing) > 0 {
		problem(w, http.StatusBadRequest, "missing or invalid: "+strings.Join(missing, ", "))
		return
	}
	res, err := g.lookup.AuthenticateUser(r.Context(), &configv1.AuthenticateUserRequest{
		TenantId: req.TenantID, Email: req.Email, Password: req.Password,
		SourceAddress: httpserver.ClientIP(r, g.proxies),
	})
	switch st := status.Convert(err); st.Code() {
	case codes.OK:
	case codes.ResourceExhausted:
		retry := time.Second
		for _, d := range st.Details() {
			if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay().AsDuration() > 0 {
				retry = ri.GetRetryDelay().AsDuration()
			}
		}
		secs := int(math.Ceil(retry.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeJSON(w, http.StatusTooManyRequests, map[string]any{"error": st.Message(), "retry_after_seconds": secs})
		return
	case codes.NotFound, codes.Unauthenticated, codes.PermissionDenied, codes.InvalidArgument:
		problem(w, http.StatusUnauthorized, "wrong tenant, email or password")
		return
	default:
		g.log.Error("authenticate user", "tenant", req.TenantID, "err", err)
		problem(w, http.StatusServiceUnavailable, "sign-in is unavailable, try again")
		return
	}
	u := res.GetUser()
	roles := tokenRoles(u)
	if len(roles) == 0 || u.GetDisabled() {
		// Answered as a wrong password, so the sign-in confirms nothing.
		problem(w, http.StatusUnauthorized, "wrong tenant, email or password")
		return
	}
	exp := time.Now().Add(g.tokenTTL)
	tok, err := g.keys.Mint(authn.Claims{
		Tenant: req.TenantID, Roles: roles, Name: u.GetDisplayName(),
		RegisteredClaims: jwt.RegisteredClaims{Subject: u.GetId()},
	}, g.tokenTTL)
	if err != nil {
		problem(w, http.StatusInternalServerError, "could not issue a token")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"token":      tok,
		"expires_at": exp.UTC().Format(time.RFC3339),
		"agent":      map[string]string{"id": u.GetId(), "display_name": u.GetDisplayName(), "tenant_id": req.TenantID},
		"roles":      roles,
	})
}

// tokenRoles are the roles of u a sign-in's token carries: agent (with the
// IM license), supervisor (the console), analyst (reporting) and admin
// (config's tenant administration, reporting). None: the sign-in is
// refused.
func tokenRoles(u *configv1.User) []string {
	roles := []string{}
	for _, r := range []struct {
		role configv1.Role
		name string
		ok   bool
	}{
		{configv1.Role_ROLE_AGENT, authn.RoleAgent, u.GetImLicense()},
		{configv1.Role_ROLE_SUPERVISOR, authn.RoleSupervisor, true},
		{configv1.Role_ROLE_ANALYST, authn.RoleAnalyst, true},
		{configv1.Role_ROLE_ADMIN, authn.RoleAdmin, true},
	} {
		if r.ok && slices.Contains(u.GetRoles(), r.role) {
			roles = append(roles, r.name)
		}
	}
	return roles
}

// conn is one agent socket.
type conn struct {
	ws     *websocket.Conn
	agent  core.Agent
	claims *authn.Claims
	// revoked is set when the token stops holding; the socket then closes
	// with closeUnauthenticated.
	revoked atomic.Pointer[string]
	// stale is set when the socket's state (its snapshot) could not be
	// read: frames after it would build on a state the client does not
	// have, so the socket closes with 1013 and the client reconnects to
	// a snapshot (unavailable).
	stale atomic.Pointer[string]
	// ctx is the socket's; cancel ends it (and closes the socket).
	ctx    context.Context
	cancel context.CancelFunc
	gw     *Gateway
	slow   atomic.Bool
	// kicked: the socket is being closed with the code its reason calls
	// for (kick). Cancelling the socket's context instead would make the
	// pending read drop the connection before the close frame is sent.
	kicked   atomic.Bool
	kickOnce sync.Once
	// monitoring: sessions this supervisor's socket watches (under the
	// gateway's mu; nil until the first); stopWatch ends its queue watch.
	monitoring map[string]bool
	stopWatch  context.CancelFunc

	// While a snapshot is being read for this socket, frames pushed
	// meanwhile are held and follow it: sent before it, a frame whose
	// change the snapshot's reads missed (an assignment pushed while
	// the snapshot read the agent's chats) would be undone by it, and
	// the client would drop a chat it holds. Clients take a frame the
	// snapshot already reflects as a repeat.
	holdMu  sync.Mutex
	holding int
	held    []outFrame
	// queue: frames waiting for the socket's writer (under holdMu), at
	// most outQueue. The writer is a goroutine started when a frame is
	// queued and gone once the queue is empty (writing): an idle socket,
	// nearly all of them, holds no writer stack and no queue.
	queue   []outFrame
	writing bool
}

// kick closes the socket with the code its reason calls for: 4401 with the
// reason when the token stopped holding, 1013 when its state could not be
// read (the client reconnects for a fresh snapshot), else 4408 (too slow).
func (c *conn) kick() {
	c.kickOnce.Do(func() {
		c.kicked.Store(true)
		if c.ws != nil {
			go c.closeKicked()
		}
	})
}

func (c *conn) closeKicked() {
	if why := c.revoked.Load(); why != nil {
		wctx, cancel := context.WithTimeout(c.ctx, 2*time.Second)
		_ = c.ws.Write(wctx, websocket.MessageText, protocol.ErrorFrame("", protocol.CodeUnauthenticated, *why))
		cancel()
		_ = c.ws.Close(closeUnauthenticated, *why)
	} else if why := c.stale.Load(); why != nil {
		wctx, cancel := context.WithTimeout(c.ctx, 2*time.Second)
		_ = c.ws.Write(wctx, websocket.MessageText, protocol.ErrorFrame("", protocol.CodeUnavailable, *why))
		cancel()
		_ = c.ws.Close(websocket.StatusTryAgainLater, "could not load your state; reconnect")
	} else {
		_ = c.ws.Close(closeSlowConsumer, "too many frames queued; reconnect for a fresh snapshot")
	}
	c.cancel()
}

// outFrame is a frame waiting for the socket's writer, with the trace its
// span continues (none: the span starts a trace).
type outFrame struct {
	data   []byte
	parent trace.SpanContext
}

// send queues a frame; a socket that cannot keep up is closed and its
// client reconnects to a fresh snapshot.
func (c *conn) send(frame []byte) { c.sendTraced(trace.SpanContext{}, frame) }

// sendTraced queues a frame whose span continues the trace of parent.
func (c *conn) sendTraced(parent trace.SpanContext, frame []byte) {
	c.holdMu.Lock()
	defer c.holdMu.Unlock()
	f := outFrame{data: frame, parent: parent}
	if c.holding > 0 {
		if len(c.held) >= outQueue {
			c.tooSlow()
			return
		}
		c.held = append(c.held, f)
		return
	}
	c.enqueue(f)
}

// enqueue hands a frame to the writer (under holdMu).
func (c *conn) enqueue(f outFrame) {
	if len(c.queue) >= outQueue {
		c.tooSlow()
		return
	}
	c.queue = append(c.queue, f)
	if !c.writing && c.ws != nil {
		c.writing = true
		go c.drain()
	}
}

// drain writes the queued frames in order until none is left (or the
// socket is closing), then ends.
func (c *conn) drain() {
	for {
		c.holdMu.Lock()
		if len(c.queue) == 0 || c.ctx.Err() != nil || c.kicked.Load() {
			c.queue, c.writing = nil, false
			c.holdMu.Unlock()
			return
		}
		f := c.queue[0]
		c.queue[0] = outFrame{}
		c.queue = c.queue[1:]
		c.holdMu.Unlock()
		if err := c.gw.write(c.ctx, c, f); err != nil {
			c.cancel()
		}
	}
}

func (c *conn) tooSlow() {
	c.slow.Store(true)
	c.kick()
}

// hold starts a snapshot's read: frames pushed from now on wait for it.
func (c *conn) hold() {
	c.holdMu.Lock()
	c.holding++
	c.holdMu.Unlock()
}

// release sends the snapshot (or, when it could not be read, the frame
// saying so; nil: nothing), then the frames held while it was read.
func (c *conn) release(frame []byte) {
	c.holdMu.Lock()
	defer c.holdMu.Unlock()
	c.holding--
	if frame != nil {
		c.enqueue(outFrame{data: frame})
	}
	if c.holding == 0 {
		for _, f := range c.held {
			c.enqueue(f)
		}
		c.held = nil
	}
}

// outQueue bounds the frames waiting for one socket's writer: a client
// that stops reading has its socket closed (4408) once they are queued,
// rather than an unbounded buffer. 64 holds any burst a healthy client
// sees (an accept's frames, a supervisor's monitored chats); the queue
// takes memory only while frames wait.
const outQueue = 64

// Close codes beyond the standard ones.
const (
	closeUnauthenticated websocket.StatusCode = 4401
	closeSlowConsumer    websocket.StatusCode = 4408
)

func (g *Gateway) websocket(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(smallBuffers{w}, r, &websocket.AcceptOptions{OriginPatterns: g.origins})
	if err != nil {
		return // Accept wrote the response
	}
	ws.SetReadLimit(protocol.MaxFrameBytes)
	g.sockets.Add(1)
	// The connection is hijacked: it outlives this handler, whose
	// goroutine (the HTTP server's, its middleware's frames on its stack)
	// ends here. The socket's goroutine starts with a small stack and
	// keeps one while it waits for frames.
	go g.serveSocket(ws)
}

// serveSocket runs an accepted websocket until it closes, or the gateway
// does (the socket's context is the gateway's).
func (g *Gateway) serveSocket(ws *websocket.Conn) {
	defer g.sockets.Done()
	wsConnections.Add(context.Background(), 1)
	defer wsConnections.Add(context.Background(), -1)
	ctx, cancel := context.WithCancel(g.done)
	defer cancel()

	// The sign-in and the snapshot (gRPC, database and JSON work, deep
	// stacks) run on a goroutine of their own: this one then only reads
	// frames for the socket's whole life, and its stack stays small.
	var c *conn
	setup := make(chan bool, 1)
	go func() { c = g.open(ctx, cancel, ws); setup <- c != nil }()
	if !<-setup {
		return
	}
	defer func() {
		if last := g.unregister(c); last && c.agent.IsAgent {
			g.agentGone(c.agent)
		}
	}()
	// Whatever ended the reads (the client left, the gateway stops, a
	// write failed; after a kick it is closed already), the socket is
	// closed normally.
	defer func() { _ = ws.Close(websocket.StatusNormalClosure, "") }()
	g.readLoop(ctx, c)
}

// open authenticates a new socket, registers it, and sends its welcome and
// snapshot; nil: the socket was refused (and closed).
func (g *Gateway) open(ctx context.Context, cancel context.CancelFunc, ws *websocket.Conn) *conn {
	agent, claims, ref, resume, err := g.authenticate(ctx, ws)
	if err != nil {
		wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
		_ = ws.Write(wctx, websocket.MessageText, protocol.ErrorFrame(ref, protocol.CodeUnauthenticated, err.Error()))
		wcancel()
		_ = ws.Close(closeUnauthenticated, "authentication failed")
		return nil
	}
	c := &conn{ws: ws, agent: agent, claims: claims, ctx: ctx, cancel: cancel, gw: g}
	roles := []string{}
	if agent.IsAgent {
		roles = append(roles, authn.RoleAgent)
	}
	if agent.Supervisor {
		roles = append(roles, authn.RoleSupervisor)
	}
	welcome := func(resumed bool) [][]byte {
		return [][]byte{protocol.Ack(ref, nil), protocol.Frame(protocol.TypeWelcome, map[string]any{
			"agent":    map[string]string{"id": agent.ID, "display_name": agent.DisplayName, "tenant_id": agent.Tenant},
			"roles":    roles,
			"protocol": protocol.Version,
			"resumed":  resumed,
		})}
	}
	// The ack and welcome (and on a resume, the frames the client missed)
	// are queued as the socket is registered: every frame pushed to it
	// comes after them.
	first, resumed := g.register(c, resume, welcome)
	if !agent.IsAgent {
		// A supervisor who takes no chats: nothing to restore.
		c.send(protocol.Frame(protocol.TypeSnapshot, map[string]any{
			"presence": "offline", "rona": false, "offers": []any{}, "sessions": []any{}, "wrapups": []any{},
		}))
		return c
	}
	if first {
		g.agentArrived(ctx, c)
	}
	if resumed {
		return c
	}
	// Frames pushed meanwhile wait for the snapshot, so each attempt is
	// bounded: a read the broker never answers must not hold them for ever.
	c.hold()
	base, stream := g.place(c)
	if snap, err := retryUnavailable(ctx, func() ([]byte, error) {
		actx, cancel := context.WithTimeout(ctx, snapshotTimeout)
		defer cancel()
		return g.core.Snapshot(actx, agent)
	}); err != nil {
		// Without its snapshot the client would show a desk the frames
		// that follow do not complete (a chat assigned while it was away
		// never shown): the socket is closed, and the client reconnects.
		g.log.WarnContext(ctx, "snapshot for a new socket", "tenant", agent.Tenant, "agent", agent.ID, "err", err)
		c.unavailable(err)
		c.release(nil)
	} else {
		c.release(stamp(snap, base, stream))
	}
	return c
}

// unavailable closes a socket whose snapshot could not be read, saying
// why, with 1013: its client reconnects to a fresh one.
func (c *conn) unavailable(err error) {
	why := "could not load your offers and sessions: " + err.Error()
	c.stale.Store(&why)
	c.kick()
}

// authenticate reads the auth frame. A socket that sends none within
// authTimeout is answered and closed with closeUnauthenticated: the read
// itself is not given the deadline, because an expired read context makes
// the websocket library drop the connection without a close code.
func (g *Gateway) authenticate(ctx context.Context, ws *websocket.Conn) (core.Agent, *authn.Claims, string, *Resume, error) {
	type read struct {
		typ  websocket.MessageType
		data []byte
		err  error
	}
	got := make(chan read, 1)
	go func() {
		typ, data, err := ws.Read(ctx)
		got <- read{typ, data, err}
	}()
	timer := time.NewTimer(g.authTimeout)
	defer timer.Stop()
	var r read
	select {
	case r = <-got:
	case <-timer.C:
		return core.Agent{}, nil, "", nil, fmt.Errorf("no auth frame within %v", g.authTimeout)
	}
	if r.err != nil {
		return core.Agent{}, nil, "", nil, errors.New("no auth frame")
	}
	env, perr := parse(r.typ, r.data)
	if perr != nil {
		return core.Agent{}, nil, "", nil, errors.New(perr.message)
	}
	if env.Type != protocol.TypeAuth {
		return core.Agent{}, nil, env.ID, nil, errors.New("the first frame must be auth")
	}
	var d struct {
		Token  string  `json:"token"`
		Resume *Resume `json:"resume"`
	}
	if err := json.Unmarshal(env.Data, &d); err != nil || d.Token == "" {
		return core.Agent{}, nil, env.ID, nil, errors.New("auth needs data.token")
	}
	claims, err := g.keys.Verify(d.Token)
	if err != nil {
		if errors.Is(err, authn.ErrRevoked) {
			return core.Agent{}, nil, env.ID, nil, errors.New("access was revoked; sign in again")
		}
		return core.Agent{}, nil, env.ID, nil, errors.New("token is invalid or expired; sign in again")
	}
	if !(claims.Has(authn.RoleAgent) || claims.Has(authn.RoleSupervisor)) || claims.Tenant == "" {
		return core.Agent{}, nil, env.ID, nil, errors.New("token is not an agent's or a supervisor's")
	}
	return core.Agent{
		Tenant: claims.Tenant, ID: claims.Subject, DisplayName: claims.Name,
		IsAgent: claims.Has(authn.RoleAgent), Supervisor: claims.Has(authn.RoleSupervisor),
	}, claims, env.ID, d.Resume, nil
}

// Recheck closes every socket whose token no longer holds: it expired, or
// the agent's access was revoked (deleted, disabled, role or license
// removed, password changed). Run calls it every RecheckEvery.
func (g *Gateway) Recheck() {
	g.mu.Lock()
	var drop []*conn
	for _, cs := range g.conns {
		for c := range cs {
			if err := g.keys.Recheck(c.claims); err != nil {
				why := "token expired; sign in again"
				if errors.Is(err, authn.ErrRevoked) {
					why = "access was revoked; sign in again"
				}
				if c.revoked.CompareAndSwap(nil, &why) {
					drop = append(drop, c)
				}
			}
		}
	}
	g.mu.Unlock()
	for _, c := range drop {
		g.log.Info("closing agent socket", "tenant", c.agent.Tenant, "agent", c.agent.ID, "why", *c.revoked.Load())
		c.kick()
	}
}

// RunRecheck calls Recheck every interval until ctx ends.
func (g *Gateway) RunRecheck(ctx context.Context) {
	t := time.NewTicker(g.recheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			g.Recheck()
		}
	}
}

// register adds a socket to its agent's here and queues its first frames,
// welcome(resumed): before any frame pushed to the agent can reach it.
// When the client's resume names this replica's stream for the agent and
// the log still holds every frame after the one it names, those frames
// follow the welcome (resumed). first: the agent's only socket here.
func (g *Gateway) register(c *conn, resume *Resume, welcome func(resumed bool) [][]byte) (first, resumed bool) {
	key := c.agent.Tenant + "/" + c.agent.ID
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.conns[key] == nil {
		g.conns[key] = map[*conn]struct{}{}
	}
	g.conns[key][c] = struct{}{}
	first = len(g.conns[key]) == 1
	var missed [][]byte
	if c.agent.IsAgent {
		l := g.logFor(key)
		l.idleSince = time.Time{}
		if resume != nil {
			if resume.Stream == g.streamName(l) {
				missed, resumed = l.since(resume.After)
			}
			resumes.Add(context.Background(), 1, metric.WithAttributes(attribute.Bool("resumed", resumed)))
		}
	}
	for _, f := range append(welcome(resumed), missed...) {
		c.send(f)
	}
	return first, resumed
}

// place is where the agent's log stands as a snapshot starts to be read
// for c, held: the snapshot reflects every frame up to it, and the frames
// after it wait for the snapshot.
func (g *Gateway) place(c *conn) (base uint64, stream string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	l := g.logFor(c.agent.Tenant + "/" + c.agent.ID)
	return l.last, g.streamName(l)
}

func (g *Gateway) unregister(c *conn) (last bool) {
	key := c.agent.Tenant + "/" + c.agent.ID
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.conns[key], c)
	for sid := range c.monitoring {
		mk := c.agent.Tenant + "/" + sid
		delete(g.monitors[mk], c)
		if len(g.monitors[mk]) == 0 {
			delete(g.monitors, mk)
		}
	}
	if c.stopWatch != nil {
		c.stopWatch()
	}
	if len(g.conns[key]) == 0 {
		delete(g.conns, key)
		if l := g.logs[key]; l != nil {
			l.idleSince = time.Now()
		}
		return true
	}
	return false
}

// watch streams the tenant's queues and agents to a supervisor's socket
// (replacing an earlier watch of the socket) until it closes or unwatches.
func (g *Gateway) watch(c *conn, serviceIDs []string) {
	ctx, cancel := context.WithCancel(g.done)
	g.mu.Lock()
	if c.stopWatch != nil {
		c.stopWatch()
	}
	c.stopWatch = cancel
	g.mu.Unlock()
	go func() {
		defer cancel()
		err := g.core.WatchQueues(ctx, c.agent, serviceIDs, c.send)
		if err != nil && ctx.Err() == nil {
			c.send(protocol.ErrorFrame("", codeOf(err), "queue watch ended: "+err.Error()))
		}
	}()
}

// handOverWait bounds the retries of a call distribution answered with
// "unavailable": while a tenant's partition moves between distribution
// replicas (at start-up, or when one stops) nobody holds it for a moment.
const handOverWait = 20 * time.Second

// retryUnavailable calls f until it succeeds, fails otherwise than with
// core.ErrUnavailable, handOverWait passes or ctx ends.
func retryUnavailable[T any](ctx context.Context, f func() (T, error)) (T, error) {
	deadline := time.Now().Add(handOverWait)
	delay := 100 * time.Millisecond
	for {
		v, err := f()
		if err == nil || !errors.Is(err, core.ErrUnavailable) || time.Now().Add(delay).After(deadline) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// agentArrived makes a freshly connected agent available, unless they are
// away on purpose or flagged by RONA (which only they may reset).
func (g *Gateway) agentArrived(ctx context.Context, c *conn) {
	st, err := retryUnavailable(ctx, func() (*distributionv1.AgentState, error) { return g.core.AgentState(ctx, c.agent) })
	if err != nil {
		g.log.WarnContext(ctx, "agent state on connect", "tenant", c.agent.Tenant, "agent", c.agent.ID, "err", err)
		return
	}
	if st.GetPresence() != distributionv1.Presence_PRESENCE_OFFLINE && st.GetPresence() != distributionv1.Presence_PRESENCE_UNSPECIFIED {
		return
	}
	if st.GetRona() {
		return
	}
	if _, err := retryUnavailable(ctx, func() (*distributionv1.AgentState, error) {
		return g.core.SetPresence(ctx, c.agent, distributionv1.Presence_PRESENCE_AVAILABLE)
	}); err != nil {
		g.log.WarnContext(ctx, "set presence on connect", "tenant", c.agent.Tenant, "agent", c.agent.ID, "err", err)
	}
}

// agentGone marks an agent with no socket left offline. The close's time
// goes with it: retried while distribution is unavailable, the report may
// arrive after the agent reconnected (here or to another replica) and set
// themselves available again, and distribution then ignores it.
func (g *Gateway) agentGone(a core.Agent) {
	closedAt := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), handOverWait+5*time.Second)
	defer cancel()
	if _, err := retryUnavailable(ctx, func() (*distributionv1.AgentState, error) {
		if g.connected(a) {
			return nil, nil // back on this replica: nothing to report
		}
		return g.core.ConsoleClosed(ctx, a, closedAt)
	}); err != nil {
		g.log.Warn("set presence offline", "tenant", a.Tenant, "agent", a.ID, "err", err)
	}
}

// connected reports whether the agent has a socket on this replica.
func (g *Gateway) connected(a core.Agent) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns[a.Tenant+"/"+a.ID]) > 0
}

// write writes one frame to the socket under a span "websocket send
// <type>" that continues the frame's trace. The span names the frame's
// type and the agent, never its content.
func (g *Gateway) write(ctx context.Context, c *conn, f outFrame) error {
	sctx := context.WithoutCancel(ctx)
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(
		attribute.String("sb.frame.type", protocol.FrameType(f.data)), attribute.String("sb.agent.id", c.agent.ID))}
	if f.parent.IsValid() {
		sctx = trace.ContextWithRemoteSpanContext(sctx, f.parent)
	} else {
		opts = append(opts, trace.WithNewRoot())
	}
	_, span := g.tracer.Start(sctx, "websocket send "+protocol.FrameType(f.data), opts...)
	defer span.End()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := c.ws.Write(wctx, websocket.MessageText, f.data)
	if err != nil {
		span.SetStatus(otelcodes.Error, err.Error())
	}
	return err
}

type frameError struct{ code, message string }

func parse(typ websocket.MessageType, data []byte) (*protocol.Envelope, *frameError) {
	if typ != websocket.MessageText {
		return nil, &frameError{protocol.CodeBadFrame, "frames must be JSON text"}
	}
	var env protocol.Envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, &frameError{protocol.CodeBadFrame, "frame is not a JSON envelope: " + err.Error()}
	}
	if env.V != protocol.Version {
		return &env, &frameError{protocol.CodeUnsupportedVersion, "this server speaks protocol version 1"}
	}
	if env.Type == "" {
		return &env, &frameError{protocol.CodeBadFrame, "frame has no type"}
	}
	if len(env.ID) > 64 {
		return &env, &frameError{protocol.CodeBadFrame, "id is longer than 64 characters"}
	}
	return &env, nil
}

func (g *Gateway) readLoop(ctx context.Context, c *conn) {
	for {
		typ, data, err := c.ws.Read(ctx)
		if err != nil {
			return
		}
		env, perr := parse(typ, data)
		if perr != nil {
			ref := ""
			if env != nil {
				ref = env.ID
			}
			c.send(protocol.ErrorFrame(ref, perr.code, perr.message))
			continue
		}
		if env.ID == "" && env.Type != protocol.TypePing {
			c.send(protocol.ErrorFrame("", protocol.CodeInvalid, "client frames need an id"))
			continue
		}
		// Each frame is the agent's own action: a new trace, which the
		// work it does on a session links to that session's trace.
		// Only a known type names the span: a client may send any.
		frameType := env.Type
		if !protocol.ClientType(frameType) {
			frameType = "unknown"
		}
		fctx, span := g.tracer.Start(ctx, "websocket receive "+frameType, trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("sb.frame.type", frameType), attribute.String("sb.agent.id", c.agent.ID)))
		g.dispatch(fctx, c, env)
		span.End()
	}
}

// decodeOr decodes the frame's data, or answers the frame with the
// decoding error (bad) and reports false.
func decodeOr[T any](env *protocol.Envelope, bad func(error)) (*T, bool) {
	v, err := decode[T](env)
	if err != nil {
		bad(err)
		return nil, false
	}
	return v, true
}

func decode[T any](env *protocol.Envelope) (*T, error) {
	var v T
	if len(env.Data) == 0 {
		return &v, nil
	}
	dec := json.NewDecoder(strings.NewReader(string(env.Data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return &v, nil
}

func (g *Gateway) dispatch(ctx context.Context, c *conn, env *protocol.Envelope) {
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	frame := trace.SpanContextFromContext(ctx)
	reply := func(extra map[string]any, err error) {
		if err != nil {
			trace.SpanFromContext(ctx).SetStatus(otelcodes.Error, codeOf(err))
			c.sendTraced(frame, protocol.ErrorFrame(env.ID, codeOf(err), err.Error()))
			return
		}
		c.sendTraced(frame, protocol.Ack(env.ID, extra))
	}
	bad := func(err error) { c.send(protocol.ErrorFrame(env.ID, protocol.CodeInvalid, "data: "+err.Error())) }
	a := c.agent
	switch env.Type {
	case protocol.TypePing:
		if env.ID != "" {
			reply(nil, nil)
		}
	case protocol.TypeAuth:
		c.send(protocol.ErrorFrame(env.ID, protocol.CodeInvalid, "already authenticated"))
	case protocol.TypePresenceSet:
		d, ok := decodeOr[struct {
			Presence string `json:"presence"`
		}](env, bad)
		if !ok {
			return
		}
		p := map[string]distributionv1.Presence{"available": distributionv1.Presence_PRESENCE_AVAILABLE, "away": distributionv1.Presence_PRESENCE_AWAY}[d.Presence]
		if p == distributionv1.Presence_PRESENCE_UNSPECIFIED {
			reply(nil, errors.Join(core.ErrInvalid, errors.New("presence must be \"available\" or \"away\"")))
			return
		}
		st, err := g.core.SetPresence(cctx, a, p)
		if err != nil {
			reply(nil, err)
			return
		}
		g.Push(cctx, a.Tenant, a.ID, protocol.Frame(protocol.TypePresence, map[string]any{"presence": core.PresenceName(st.GetPresence()), "rona": st.GetRona()}))
		reply(map[string]any{"presence": core.PresenceName(st.GetPresence()), "rona": st.GetRona()}, nil)
	case protocol.TypeOfferAccept, protocol.TypeOfferDecline:
		d, ok := decodeOr[struct {
			OfferID string `json:"offer_id"`
		}](env, bad)
		if !ok {
			return
		}
		if env.Type == protocol.TypeOfferDecline {
			reply(nil, g.core.Decline(cctx, a, d.OfferID))
			return
		}
		sid, err := g.core.Accept(cctx, a, d.OfferID)
		reply(map[string]any{"session_id": sid}, err)
	case protocol.TypeMessageSend:
		d, ok := decodeOr[struct {
			SessionID   string `json:"session_id"`
			Body        string `json:"body"`
			ClientMsgID string `json:"client_msg_id"`
			// A WhatsApp template instead of a body.
			ContentSID       string            `json:"content_sid"`
			ContentVariables map[string]string `json:"content_variables"`
			// Attachments uploaded in the chat (POST /api/agent/v1/media/{session}).
			MediaIDs []string `json:"media_ids"`
		}](env, bad)
		if !ok {
			return
		}
		var id string
		var err error
		switch {
		case d.ContentSID == "" && d.ContentVariables != nil:
			err = errors.Join(core.ErrInvalid, errors.New("content_variables needs content_sid"))
		case d.ContentSID != "" && d.Body != "":
			err = errors.Join(core.ErrInvalid, errors.New("body must be empty with content_sid: the template's text is sent"))
		case d.ContentSID != "" && len(d.MediaIDs) > 0:
			err = errors.Join(core.ErrInvalid, errors.New("media_ids cannot go with content_sid"))
		case d.ContentSID != "":
			id, err = g.core.SendTemplate(cctx, a, d.SessionID, d.ContentSID, d.ContentVariables, d.ClientMsgID)
		default:
			id, err = g.core.Send(cctx, a, d.SessionID, d.Body, d.ClientMsgID, d.MediaIDs...)
		}
		reply(map[string]any{"message_id": id}, err)
	case protocol.TypeTemplateList:
		d, ok := decodeOr[struct {
			SessionID string `json:"session_id"`
			// Or the entry a conversation is being started from.
			EntryID string `json:"entry_id"`
		}](env, bad)
		if !ok {
			return
		}
		if d.EntryID != "" {
			if d.SessionID != "" {
				reply(nil, errors.Join(core.ErrInvalid, errors.New("name session_id or entry_id, not both")))
				return
			}
			list, err := g.core.EntryTemplates(cctx, a, d.EntryID)
			reply(map[string]any{"entry_id": d.EntryID, "templates": list}, err)
			return
		}
		list, err := g.core.Templates(cctx, a, d.SessionID)
		reply(map[string]any{"session_id": d.SessionID, "templates": list}, err)
	case protocol.TypeEntriesList:
		list, err := g.core.StartEntries(cctx, a)
		reply(map[string]any{"entries": list}, err)
	case protocol.TypeConversationStart:
		d, ok := decodeOr[struct {
			EntryID          string            `json:"entry_id"`
			Customer         string            `json:"customer"`
			ContentSID       string            `json:"content_sid"`
			ContentVariables map[string]string `json:"content_variables"`
			ClientMsgID      string            `json:"client_msg_id"`
		}](env, bad)
		if !ok {
			return
		}
		sid, mid, err := g.core.StartConversation(cctx, a, d.EntryID, d.Customer, d.ContentSID, d.ContentVariables, d.ClientMsgID)
		reply(map[string]any{"session_id": sid, "message_id": mid}, err)
	case protocol.TypeMessageResend:
		d, ok := decodeOr[struct {
			SessionID   string `json:"session_id"`
			MessageID   string `json:"message_id"`
			ClientMsgID string `json:"client_msg_id"`
		}](env, bad)
		if !ok {
			return
		}
		id, err := g.core.Resend(cctx, a, d.SessionID, d.MessageID, d.ClientMsgID)
		reply(map[string]any{"message_id": id, "resend_of": d.MessageID}, err)
	case protocol.TypeMessageCount:
		d, ok := decodeOr[struct {
			Body string `json:"body"`
		}](env, bad)
		if !ok {
			return
		}
		res, err := core.Count(d.Body)
		out := map[string]any{
			"encoding": res.Encoding, "segments": res.Segments, "units": res.Units, "characters": res.Characters,
			"per_segment": res.PerSegment, "remaining": res.Remaining, "non_gsm": res.NonGSM,
		}
		if err == nil {
			// Typography alone forced UCS-2: offer the GSM-7 look-alike.
			if gsm, ok := segments.GSM7Rewrite(d.Body); ok {
				out["gsm7_rewrite"] = gsm
				out["gsm7_segments"] = segments.Count(gsm).Segments
			}
		}
		reply(out, err)
	case protocol.TypeSessionTerminate:
		d, ok := decodeOr[struct {
			SessionID string `json:"session_id"`
		}](env, bad)
		if !ok {
			return
		}
		reply(nil, g.core.Terminate(cctx, a, d.SessionID))
	case protocol.TypeSessionTransfer:
		d, ok := decodeOr[struct {
			SessionID   string `json:"session_id"`
			ToServiceID string `json:"to_service_id"`
			ToAgentID   string `json:"to_agent_id"`
			Note        string `json:"note"`
		}](env, bad)
		if !ok {
			return
		}
		reply(nil, g.core.Transfer(cctx, a, d.SessionID, d.ToServiceID, d.ToAgentID, d.Note))
	case protocol.TypeSessionPark, protocol.TypeSessionResume:
		d, ok := decodeOr[struct {
			SessionID string `json:"session_id"`
		}](env, bad)
		if !ok {
			return
		}
		reply(nil, g.core.Park(cctx, a, d.SessionID, env.Type == protocol.TypeSessionPark))
	case protocol.TypeSessionDismiss:
		d, ok := decodeOr[struct {
			SessionID string `json:"session_id"`
		}](env, bad)
		if !ok {
			return
		}
		reply(nil, g.core.Dismiss(cctx, a, d.SessionID))
	case protocol.TypeServicesList:
		svcs, err := g.core.Services(cctx, a)
		reply(map[string]any{"services": svcs}, err)
	case protocol.TypeWrapUpSubmit:
		d, ok := decodeOr[struct {
			TaskID       string   `json:"task_id"`
			ServiceCodes []string `json:"service_codes"`
			SalesCodes   []string `json:"sales_codes"`
			Tags         []string `json:"tags"`
		}](env, bad)
		if !ok {
			return
		}
		reply(nil, g.core.SubmitWrapUp(cctx, a, d.TaskID, d.ServiceCodes, d.SalesCodes, d.Tags))
	case protocol.TypeNoteAdd:
		d, ok := decodeOr[struct {
			SessionID string `json:"session_id"`
			Body      string `json:"body"`
		}](env, bad)
		if !ok {
			return
		}
		id, err := g.core.AddNote(cctx, a, d.SessionID, d.Body)
		reply(map[string]any{"message_id": id}, err)
	case protocol.TypeCannedList:
		d, ok := decodeOr[struct {
			SessionID string `json:"session_id"`
		}](env, bad)
		if !ok {
			return
		}
		list, err := g.core.CannedResponses(cctx, a, d.SessionID)
		reply(map[string]any{"session_id": d.SessionID, "responses": list}, err)
	case protocol.TypeSessionHistory:
		d, ok := decodeOr[struct {
			SessionID string `json:"session_id"`
		}](env, bad)
		if !ok {
			return
		}
		list, err := g.core.History(cctx, a, d.SessionID)
		reply(map[string]any{"session_id": d.SessionID, "sessions": list}, err)
	case protocol.TypeSessionEarlier:
		d, ok := decodeOr[struct {
			SessionID        string `json:"session_id"`
			EarlierSessionID string `json:"earlier_session_id"`
		}](env, bad)
		if !ok {
			return
		}
		view, err := g.core.EarlierTranscript(cctx, a, d.SessionID, d.EarlierSessionID)
		reply(map[string]any{"session": view}, err)
	case protocol.TypeSupervisorWatch:
		d, ok := decodeOr[struct {
			ServiceIDs []string `json:"service_ids"`
		}](env, bad)
		if !ok {
			return
		}
		if !a.Supervisor {
			reply(nil, errors.Join(core.ErrForbidden, errors.New("watching queues needs the supervisor role")))
			return
		}
		g.watch(c, d.ServiceIDs)
		reply(nil, nil)
	case protocol.TypeSupervisorUnwatch:
		g.mu.Lock()
		if c.stopWatch != nil {
			c.stopWatch()
			c.stopWatch = nil
		}
		g.mu.Unlock()
		reply(nil, nil)
	case protocol.TypeSupervisorChats:
		d, ok := decodeOr[struct {
			AgentID string `json:"agent_id"`
		}](env, bad)
		if !ok {
			return
		}
		chats, err := g.core.AgentChats(cctx, a, d.AgentID)
		reply(map[string]any{"agent_id": d.AgentID, "sessions": chats}, err)
	case protocol.TypeSupervisorMonitor, protocol.TypeSupervisorUnmonitor:
		d, ok := decodeOr[struct {
			SessionID string `json:"session_id"`
		}](env, bad)
		if !ok {
			return
		}
		if env.Type == protocol.TypeSupervisorUnmonitor {
			g.monitor(c, d.SessionID, false)
			reply(nil, nil)
			return
		}
		g.mu.Lock()
		full := len(c.monitoring) >= maxMonitored && !c.monitoring[d.SessionID]
		g.mu.Unlock()
		if full {
			reply(nil, errors.Join(core.ErrConflict, fmt.Errorf("at most %d chats can be monitored at once", maxMonitored)))
			return
		}
		// Watch first, then read: a message added in between is shown
		// twice at worst (the console keeps one), never missed.
		if a.Supervisor {
			g.monitor(c, d.SessionID, true)
		}
		view, err := g.core.Monitor(cctx, a, d.SessionID)
		if err != nil {
			g.monitor(c, d.SessionID, false)
		}
		reply(map[string]any{"session": view}, err)
	case protocol.TypeSupervisorWhisper:
		d, ok := decodeOr[struct {
			SessionID string `json:"session_id"`
			Body      string `json:"body"`
		}](env, bad)
		if !ok {
			return
		}
		id, err := g.core.Whisper(cctx, a, d.SessionID, d.Body)
		reply(map[string]any{"message_id": id}, err)
	case protocol.TypeSupervisorBarge:
		d, ok := decodeOr[struct {
			SessionID   string `json:"session_id"`
			Body        string `json:"body"`
			ClientMsgID string `json:"client_msg_id"`
		}](env, bad)
		if !ok {
			return
		}
		id, err := g.core.Barge(cctx, a, d.SessionID, d.Body, d.ClientMsgID)
		reply(map[string]any{"message_id": id}, err)
	case protocol.TypeSupervisorEnd:
		d, ok := decodeOr[struct {
			SessionID string `json:"session_id"`
		}](env, bad)
		if !ok {
			return
		}
		reply(nil, g.core.SupervisorEnd(cctx, a, d.SessionID))
	case protocol.TypeSupervisorResetRona:
		d, ok := decodeOr[struct {
			AgentID string `json:"agent_id"`
		}](env, bad)
		if !ok {
			return
		}
		st, err := g.core.ResetRona(cctx, a, d.AgentID)
		if err != nil {
			reply(nil, err)
			return
		}
		reply(map[string]any{"agent_id": d.AgentID, "presence": core.PresenceName(st.GetPresence()), "rona": st.GetRona()}, nil)
	default:
		c.send(protocol.ErrorFrame(env.ID, protocol.CodeUnknownType, "unknown type "+env.Type))
	}
}

func codeOf(err error) string {
	switch {
	case errors.Is(err, core.ErrInvalid):
		return protocol.CodeInvalid
	case errors.Is(err, core.ErrNotFound):
		return protocol.CodeNotFound
	case errors.Is(err, core.ErrForbidden):
		return protocol.CodeForbidden
	case errors.Is(err, core.ErrConflict):
		return protocol.CodeConflict
	case errors.Is(err, core.ErrOptedOut):
		return protocol.CodeOptedOut
	case errors.Is(err, core.ErrWindowClosed):
		return protocol.CodeWindowClosed
	default:
		return protocol.CodeUnavailable
	}
}
