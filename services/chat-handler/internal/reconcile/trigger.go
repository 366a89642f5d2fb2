package reconcile

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/chatwebhook"
	"github.com/switchboard-cc/switchboard/pkg/kvcas"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// Entries lists what a run covers: the tenants and their messaging
// entries (the config service, called with chat-handler's identity).
type Entries interface {
	Tenants(ctx context.Context) ([]string, error)
	Entries(ctx context.Context, tenant string) ([]*configv1.MessagingEntry, error)
}

// ConfigEntries pages through the config service.
type ConfigEntries struct {
	TenantsClient configv1.TenantServiceClient
	Channels      configv1.ChannelServiceClient
}

// Tenants implements Entries.
func (c ConfigEntries) Tenants(ctx context.Context) ([]string, error) {
	var out []string
	token := ""
	for {
		res, err := c.TenantsClient.ListTenants(ctx, &configv1.ListTenantsRequest{PageSize: 1000, PageToken: token})
		if err != nil {
			return nil, fmt.Errorf("list tenants: %w", err)
		}
		for _, t := range res.GetTenants() {
			out = append(out, t.GetId())
		}
		if token = res.GetNextPageToken(); token == "" {
			return out, nil
		}
	}
}

// Entries implements Entries.
func (c ConfigEntries) Entries(ctx context.Context, tenant string) ([]*configv1.MessagingEntry, error) {
	var out []*configv1.MessagingEntry
	token := ""
	for {
		res, err := c.Channels.ListMessagingEntries(ctx, &configv1.ListMessagingEntriesRequest{TenantId: tenant, PageSize: 1000, PageToken: token})
		if err != nil {
			return nil, fmt.Errorf("list messaging entries of %s: %w", tenant, err)
		}
		out = append(out, res.GetMessagingEntries()...)
		if token = res.GetNextPageToken(); token == "" {
			return out, nil
		}
	}
}

// Tenant runs one tenant's reconciliation over every messaging entry.
func (r *Reconciler) Tenant(ctx context.Context, entries Entries, tenant string, since, until time.Time) (*Report, error) {
	es, err := entries.Entries(ctx, tenant)
	if err != nil {
		return nil, err
	}
	return r.Run(ctx, tenant, es, since, until)
}

// Handler serves POST /api/acs/chat-handler/tenants/{tenant}/reconcile: a
// tenant admin (or the platform) asks for a run over a window, and gets
// its Report when it is done. One run per tenant at a time per replica.
type Handler struct {
	r       *Reconciler
	entries Entries
	keys    *authn.Keys
	now     func() time.Time
	log     *slog.Logger

	mu      sync.Mutex
	running map[string]bool
}

// NewHandler returns the on-demand endpoint.
func NewHandler(r *Reconciler, entries Entries, keys *authn.Keys, log *slog.Logger) *Handler {
	return &Handler{r: r, entries: entries, keys: keys, now: time.Now, log: log, running: map[string]bool{}}
}

// Path is the endpoint's route pattern.
const Path = "POST " + chatwebhook.TenantPrefix + "{tenant}" + chatwebhook.PathReconcile

// Request is the endpoint's JSON body.
type Request = chatwebhook.ReconcileRequest

func httpError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		httpError(w, http.StatusUnauthorized, "a bearer token is required")
		return
	}
	claims, err := h.keys.Verify(token)
	if err != nil {
		httpError(w, http.StatusUnauthorized, "token refused: "+err.Error())
		return
	}
	if !claims.CanAccessTenant(tenant) || !(claims.Has(authn.RoleAdmin) || claims.Has(authn.RolePlatform)) {
		httpError(w, http.StatusForbidden, fmt.Sprintf("reconciling tenant %q needs an admin of it or the platform", tenant))
		return
	}
	var req Request
	dec := json.NewDecoder(io.LimitReader(r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		httpError(w, http.StatusBadRequest, "body: "+err.Error()+` (want {"since": RFC 3339, "until": RFC 3339, optional})`)
		return
	}
	since, until, err := parseWindow(req, h.now())
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	h.mu.Lock()
	if h.running[tenant] {
		h.mu.Unlock()
		httpError(w, http.StatusConflict, fmt.Sprintf("a reconciliation of tenant %q is running; try again when it ends", tenant))
		return
	}
	h.running[tenant] = true
	h.mu.Unlock()
	defer func() { h.mu.Lock(); delete(h.running, tenant); h.mu.Unlock() }()

	h.log.InfoContext(r.Context(), "reconciliation requested", "tenant", tenant, "by", claims.Subject, "since", since, "until", until)
	rep, err := h.r.Tenant(r.Context(), h.entries, tenant, since, until)
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, "reconciliation stopped: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(rep)
}

func parseWindow(req Request, now time.Time) (time.Time, time.Time, error) {
	parse := func(name, v string) (time.Time, error) {
		if v == "" {
			return time.Time{}, nil
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return t, fmt.Errorf("%s %q is not an RFC 3339 time", name, v)
		}
		return t, nil
	}
	since, err := parse("since", req.Since)
	if err != nil {
		return since, since, err
	}
	until, err := parse("until", req.Until)
	if err != nil {
		return since, until, err
	}
	return Window(since, until, now)
}

// Watch is the reconciliation after an outage: every replica marks, in a
// key-value bucket, that chat-handler was answering (Heartbeat). A replica
// starting finds when that was last true; when it is longer ago than a
// few heartbeats, no replica answered Twilio in between, and the first
// replica to claim that gap (a create on a key naming it) reconciles every
// tenant over it.
type Watch struct {
	R         *Reconciler
	Entries   Entries
	KV        jetstream.KeyValue
	Heartbeat time.Duration
	// Skew widens the gap at both ends (clocks, webhooks in flight).
	Skew time.Duration
	Now  func() time.Time
	Log  *slog.Logger
}

// Bucket is the key-value bucket of Watch.
const Bucket = subjects.BucketChatHandlerUp

const lastKey = "last"

// Run marks chat-handler up every Heartbeat until ctx ends, after
// reconciling the gap since the last mark if there was one.
func (w *Watch) Run(ctx context.Context) error {
	if w.Now == nil {
		w.Now = time.Now
	}
	start := w.Now()
	last, err := w.last(ctx)
	if err != nil {
		return err
	}
	if err := w.mark(ctx); err != nil {
		return err
	}
	if !last.IsZero() && start.Sub(last) > 3*w.Heartbeat {
		go w.fill(ctx, last.Add(-w.Skew), start.Add(w.Skew))
	}
	t := time.NewTicker(w.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := w.mark(ctx); err != nil && ctx.Err() == nil {
				w.Log.WarnContext(ctx, "could not mark chat-handler up", "err", err)
			}
		}
	}
}

func (w *Watch) last(ctx context.Context) (time.Time, error) {
	v, _, err := kvcas.Get(ctx, w.KV, lastKey)
	if err != nil || v == nil {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, string(v))
	if err != nil {
		return time.Time{}, nil // unreadable: treat as never marked
	}
	return t, nil
}

func (w *Watch) mark(ctx context.Context) error {
	_, err := w.KV.Put(ctx, lastKey, []byte(w.Now().UTC().Format(time.RFC3339Nano)))
	return err
}

// fill reconciles every tenant over the gap, once across replicas.
func (w *Watch) fill(ctx context.Context, since, until time.Time) {
	if until.Sub(since) > MaxWindow {
		w.Log.WarnContext(ctx, "chat-handler was down longer than a reconciliation covers; reconciling the most recent part",
			"down_since", since, "covered", MaxWindow)
		since = until.Add(-MaxWindow)
	}
	key := "gap." + since.UTC().Format("20060102T150405")
	if _, err := w.KV.Create(ctx, key, []byte(until.UTC().Format(time.RFC3339Nano))); err != nil {
		if !kvcas.IsConflict(err) {
			w.Log.WarnContext(ctx, "could not claim the reconciliation of an outage", "since", since, "err", err)
		}
		return
	}
	w.Log.WarnContext(ctx, "no chat-handler answered Twilio for a while: reconciling from Twilio's history", "since", since, "until", until)
	tenants, err := w.Entries.Tenants(ctx)
	if err != nil {
		w.Log.ErrorContext(ctx, "reconciliation after an outage: tenants unavailable; reconcile on demand", "since", since, "until", until, "err", err)
		return
	}
	var total Report
	for _, tenant := range tenants {
		rep, err := w.tenant(ctx, tenant, since, until)
		if err != nil {
			w.Log.ErrorContext(ctx, "reconciliation after an outage stopped; reconcile on demand", "tenant", tenant, "since", since, "until", until, "err", err)
			continue
		}
		total.Entries += rep.Entries
		total.Listed += rep.Listed
		total.CustomerMessages += rep.CustomerMessages
		total.Statuses += rep.Statuses
		for _, p := range rep.Problems {
			total.Problems = append(total.Problems, tenant+": "+p)
		}
	}
	// As loud as the outage's own line: whoever read that one wants this.
	w.Log.WarnContext(ctx, "outage reconciled from Twilio's history", "since", since, "until", until, "tenants", len(tenants),
		"entries", total.Entries, "listed", total.Listed, "customer_messages", total.CustomerMessages,
		"statuses", total.Statuses, "problems", total.Problems)
}

// fillAttempts bounds the runs of one tenant after an outage: NATS is
// often still electing leaders then, and a refused publish is a problem
// the next run, a few seconds later, does not have.
const fillAttempts = 5

// tenant runs one tenant's reconciliation after an outage, again while
// it reports problems (what it published before is dropped as a
// duplicate); the last report is returned.
func (w *Watch) tenant(ctx context.Context, tenant string, since, until time.Time) (*Report, error) {
	for attempt := 1; ; attempt++ {
		rep, err := w.R.Tenant(ctx, w.Entries, tenant, since, until)
		if (err == nil && len(rep.Problems) == 0) || attempt == fillAttempts || ctx.Err() != nil {
			return rep, err
		}
		select {
		case <-ctx.Done():
			return rep, ctx.Err()
		case <-time.After(time.Duration(attempt) * 3 * time.Second):
		}
	}
}
