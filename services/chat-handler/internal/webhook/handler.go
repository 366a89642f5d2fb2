// Package webhook is chat-handler's HTTP edge: Twilio Conversations
// post-event webhooks and Programmable Messaging inbound messages, fallback
// requests and status callbacks. A request is answered 2xx only after its
// event is durable in JetStream; a broker that is down or slow gets Twilio a
// 503 within the publish timeout so it retries or calls the fallback URL.
package webhook

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/switchboard-cc/switchboard/pkg/chatwebhook"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/route"
)

// Emitter publishes one event and returns once JetStream stored it (or
// reported a duplicate of msgID).
type Emitter interface {
	Emit(ctx context.Context, subject string, event proto.Message, msgID string) error
}

// Connectivity may be implemented by an Emitter that knows whether its
// broker connection is up: while it is down the handler answers 503 at once
// instead of waiting out the publish timeout.
type Connectivity interface {
	Connected() bool
}

// Options of the handler.
type Options struct {
	// PublicBaseURL is the scheme://host[:port][/prefix] Twilio calls; when
	// empty it is rebuilt from the request (and trusted proxy headers).
	PublicBaseURL string
	// TrustedProxies may set X-Forwarded-Proto/-Host/-Port and Forwarded.
	TrustedProxies []netip.Prefix
	MaxBodyBytes   int64
	// PublishTimeout bounds the wait for JetStream before answering 503.
	PublishTimeout time.Duration
	// AllowHTTPMedia takes http:// media URLs as well as https:// ones. Only
	// for a Twilio emulator served over http; Twilio's media URLs are https.
	AllowHTTPMedia bool
}

// Handler serves the webhook routes.
type Handler struct {
	routes route.Resolver
	pub    Emitter
	conn   Connectivity
	urls   URLBuilder
	opts   Options
	log    *slog.Logger
	now    func() time.Time
}

// New returns a handler.
func New(routes route.Resolver, pub Emitter, opts Options, log *slog.Logger) *Handler {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 64 << 10
	}
	if opts.PublishTimeout <= 0 {
		opts.PublishTimeout = 3 * time.Second
	}
	h := &Handler{
		routes: routes, pub: pub, opts: opts, log: log, now: time.Now,
		urls: URLBuilder{PublicBase: strings.TrimRight(opts.PublicBaseURL, "/"), Trusted: opts.TrustedProxies},
	}
	h.conn, _ = pub.(Connectivity)
	return h
}

// TenantPrefix is the path every tenant's webhook URLs start with.
const TenantPrefix = chatwebhook.TenantPrefix

// Paths of the webhook endpoints below a tenant's prefix.
const (
	PathConversations = chatwebhook.PathConversations
	PathInbound       = chatwebhook.PathInbound
	PathFallback      = chatwebhook.PathFallback
	PathStatus        = chatwebhook.PathStatus
)

// TenantURL is the webhook URL of one endpoint for a tenant below base
// (scheme://host[:port][/prefix]).
func TenantURL(base, tenant, path string) string { return chatwebhook.TenantURL(base, tenant, path) }

type endpoint int

const (
	epConversations endpoint = iota
	epInbound
	epFallback
	epStatus
)

// Routes registers the handler's routes on mux; each takes GET and POST,
// as Twilio can be configured to use either.
func (h *Handler) Routes(mux *http.ServeMux) {
	for _, e := range []struct {
		path string
		ep   endpoint
	}{
		{PathConversations, epConversations}, {PathInbound, epInbound}, {PathFallback, epFallback}, {PathStatus, epStatus},
	} {
		ep := e.ep
		fn := func(w http.ResponseWriter, r *http.Request) { h.serve(w, r, ep) }
		mux.HandleFunc("POST "+TenantPrefix+"{tenantId}"+e.path, fn)
		mux.HandleFunc("GET "+TenantPrefix+"{tenantId}"+e.path, fn)
	}
}

// rejection is a non-2xx answer and why.
type rejection struct {
	status int
	// reason goes to Twilio (and its debugger) and, unless cause is set,
	// to the log.
	reason string
	// cause, when set, is logged as the reason instead: what operators
	// need to know but the caller must not learn.
	cause string
	// attrs go to the log only.
	attrs []any
	err   error
	// metric is the reason label of the rejection's count, a word from a
	// short fixed list (metrics.go); empty derives it from status.
	metric string
}

func reject(status int, reason string, attrs ...any) *rejection {
	return &rejection{status: status, reason: reason, attrs: attrs}
}

func (h *Handler) writeRejection(w http.ResponseWriter, r *http.Request, tenant string, rj *rejection) {
	logReason := rj.reason
	if rj.cause != "" {
		logReason = rj.cause
	}
	attrs := append([]any{"status", rj.status, "reason", logReason, "tenant", tenant, "path", r.URL.Path}, rj.attrs...)
	level := slog.LevelWarn
	if rj.err != nil {
		attrs = append(attrs, "err", rj.err)
		level = slog.LevelError
	}
	h.log.Log(r.Context(), level, "webhook rejected", attrs...)
	if rj.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(rj.status)
	_, _ = w.Write([]byte(rj.reason + "\n"))
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, ep endpoint) {
	start := time.Now()
	tenant := r.PathValue("tenantId")
	if rj := h.process(w, r, tenant, ep); rj != nil {
		h.writeRejection(w, r, tenant, rj)
		recordWebhook(ep, start, rj)
		return
	}
	recordWebhook(ep, start, nil)
	switch ep {
	case epInbound, epFallback:
		w.Header().Set("Content-Type", "text/xml")
		_, _ = w.Write(emptyTwiML)
	default:
		w.WriteHeader(http.StatusOK)
	}
}

var emptyTwiML = []byte(`<?xml version="1.0" encoding="UTF-8"?><Response></Response>`)

func (h *Handler) process(w http.ResponseWriter, r *http.Request, tenant string, ep endpoint) *rejection {
	body := http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes)
	req, err := ParseRequest(r.Method, r.URL.RawQuery, r.Header.Get("Content-Type"), body, h.opts.MaxBodyBytes)
	switch {
	case errors.Is(err, errTooLarge):
		return reject(http.StatusRequestEntityTooLarge, "body too large", "limit_bytes", h.opts.MaxBodyBytes)
	case errors.Is(err, errUnsupported):
		return reject(http.StatusUnsupportedMediaType, "expected application/x-www-form-urlencoded")
	case err != nil:
		return reject(http.StatusBadRequest, "malformed request: "+err.Error())
	}
	p := req.Params

	var chatServiceSID, business string
	switch ep {
	case epConversations:
		if p.Get("EventType") == "" {
			return reject(http.StatusBadRequest, "EventType is required")
		}
		chatServiceSID = p.Get("ChatServiceSid")
		if chatServiceSID == "" {
			// Twilio has been seen leaving ChatServiceSid out; the webhook
			// URL may then name the service in its own query string.
			chatServiceSID = r.URL.Query().Get("chatServiceSid")
			if chatServiceSID == "" {
				return reject(http.StatusBadRequest, "ChatServiceSid is required to route the event (or add ?chatServiceSid=IS… to the webhook URL)",
					"event", p.Get("EventType"))
			}
			p.Set("ChatServiceSid", chatServiceSID)
		}
	case epInbound, epFallback:
		business = p.Get("To")
		if business == "" {
			return reject(http.StatusBadRequest, "To is required to route the message")
		}
	case epStatus:
		business = p.Get("From")
		if business == "" {
			return reject(http.StatusBadRequest, "From is required to route the status callback")
		}
	}

	// Invalid UTF-8 never reaches an event: identifiers are refused (they
	// cannot be repaired without naming something else), free text is
	// repaired so the message is not lost. Nothing here depends on the
	// tenant, so it may come before the signature check.
	repaired, bad := repairParams(p)
	if bad != "" {
		return reject(http.StatusBadRequest, bad+" is not valid UTF-8")
	}

	rt, rj := h.authorize(r, tenant, req, chatServiceSID, business)
	if rj != nil {
		return rj
	}
	if p.Has(chatwebhook.SelfTestParam) {
		return h.selfTest(w, r, p.Get(chatwebhook.SelfTestParam), rt)
	}

	in := Input{Params: p, Route: rt, Token: strings.ToValidUTF8(r.Header.Get("I-Twilio-Idempotency-Token"), "\uFFFD"), Now: h.now(),
		AllowHTTPMedia: h.opts.AllowHTTPMedia}
	var ev *Event
	switch ep {
	case epConversations:
		ev, err = ConversationsEvent(in)
	case epInbound:
		ev, err = InboundEvent(in, false)
	case epFallback:
		ev, err = InboundEvent(in, true)
	case epStatus:
		ev, err = StatusEvent(in)
	}
	if err != nil {
		return reject(http.StatusBadRequest, err.Error(), "entry", rt.EntryID)
	}
	if ev == nil {
		h.log.Debug("webhook acknowledged without an event", "tenant", tenant, "entry", rt.EntryID,
			"event", p.Get("EventType"), "source", p.Get("Source"))
		return nil
	}
	if ev.Inbound && rt.Disabled {
		rj := reject(http.StatusForbidden, rt.DisabledReason, "entry", rt.EntryID)
		rj.metric = "channel_disabled"
		return rj
	}
	if len(repaired) > 0 {
		ev.Warning = strings.TrimPrefix(ev.Warning+"; invalid UTF-8 replaced with U+FFFD in "+strings.Join(repaired, ", "), "; ")
	}
	if ev.Warning != "" {
		h.log.Warn("webhook taken with a problem", "tenant", tenant, "entry", rt.EntryID, "msg_id", ev.ID, "problem", ev.Warning)
	}
	return h.publish(r.Context(), ev)
}

// selfTest answers a signed self-test (chatwebhook.SelfTestParam): the
// route and signature checked out, so it echoes the nonce and publishes
// nothing. A route that would refuse a customer's message refuses the
// self-test the same way, so the check sees it.
func (h *Handler) selfTest(w http.ResponseWriter, r *http.Request, nonce string, rt *route.Route) *rejection {
	if !chatwebhook.ValidSelfTestNonce(nonce) {
		return reject(http.StatusBadRequest, "malformed "+chatwebhook.SelfTestParam, "entry", rt.EntryID)
	}
	if rt.Disabled {
		rj := reject(http.StatusForbidden, rt.DisabledReason, "entry", rt.EntryID)
		rj.metric = "channel_disabled"
		return rj
	}
	h.log.Info("self-test webhook verified", "tenant", rt.Tenant, "entry", rt.EntryID, "path", r.URL.Path)
	w.Header().Set(chatwebhook.SelfTestHeader, nonce)
	return nil
}

// unauthenticated is the one answer to a webhook whose signature cannot
// be verified, whatever it names: an unknown tenant, Service SID or number
// and a missing or wrong signature for a known one are indistinguishable,
// so unsigned requests cannot enumerate tenants' numbers and services. The
// log keeps the actual cause.
const unauthenticated = "missing or invalid X-Twilio-Signature"

func rejectUnauthenticated(cause string, attrs ...any) *rejection {
	rj := reject(http.StatusForbidden, unauthenticated, attrs...)
	rj.cause = cause
	rj.metric = "unauthenticated"
	return rj
}

// decoyTokens stand in for a route's Auth Tokens when there is no route, so
// a request naming nothing costs the same signature check as one naming a
// real entry.
var decoyTokens = []string{"00000000000000000000000000000000"}

// authorize resolves the route and checks the signature and account.
func (h *Handler) authorize(r *http.Request, tenant string, req *Request, chatServiceSID, business string) (*route.Route, *rejection) {
	sig := r.Header.Get("X-Twilio-Signature")
	var rt *route.Route
	var cause string
	var attrs []any
	if !subjects.ValidTenantID(tenant) {
		cause = "tenant id that cannot exist"
	} else {
		var err error
		rt, err = h.routes.Resolve(r.Context(), tenant, chatServiceSID, business)
		switch {
		case errors.Is(err, route.ErrUnknown) || (err == nil && rt.Tenant != tenant):
			rt = nil
			if chatServiceSID != "" {
				cause = "unknown tenant or Conversations service " + chatServiceSID + " is not a messaging entry of this tenant"
				attrs = []any{"chat_service_sid", chatServiceSID}
			} else {
				cause = "unknown tenant or business number: no messaging entry of this tenant has it"
				attrs = []any{"number", RedactAddress(business)}
			}
		case err != nil:
			// Not a statement about the route: the config service did not
			// answer. Twilio retries.
			rj := reject(http.StatusServiceUnavailable, "routing is unavailable; retry")
			rj.err = err
			rj.metric = "routing_unavailable"
			return nil, rj
		}
	}
	if rt == nil {
		_ = req.VerifySignature(decoyTokens, h.urls.PublicURL(r), sig)
		return nil, rejectUnauthenticated(cause, attrs...)
	}
	if sig == "" {
		return nil, rejectUnauthenticated("missing X-Twilio-Signature", "entry", rt.EntryID)
	}
	if !req.VerifySignature(rt.AuthTokens, h.urls.PublicURL(r), sig) {
		return nil, rejectUnauthenticated("invalid X-Twilio-Signature", "entry", rt.EntryID,
			"remote", r.RemoteAddr, "json", req.IsJSON)
	}
	if acct := req.Params.Get("AccountSid"); acct != "" && rt.AccountSID != "" && acct != rt.AccountSID {
		rj := reject(http.StatusForbidden, "AccountSid does not match the messaging entry's connector", "entry", rt.EntryID)
		rj.metric = "account_mismatch"
		return nil, rj
	}
	return rt, nil
}

// publish waits for the PubAck within the publish timeout.
func (h *Handler) publish(ctx context.Context, ev *Event) *rejection {
	if h.conn != nil && !h.conn.Connected() {
		return reject(http.StatusServiceUnavailable, "event store unavailable; retry", "subject", ev.Subject, "msg_id", ev.ID)
	}
	ctx, cancel := context.WithTimeout(ctx, h.opts.PublishTimeout)
	defer cancel()
	if err := h.pub.Emit(ctx, ev.Subject, ev.Msg, ev.ID); err != nil {
		rj := reject(http.StatusServiceUnavailable, "could not store the event; retry", "subject", ev.Subject, "msg_id", ev.ID)
		rj.err = err
		return rj
	}
	return nil
}

// RedactAddress keeps a phone address recognisable in logs without writing
// the number: its channel prefix and last two digits.
func RedactAddress(a string) string {
	prefix := ""
	if i := strings.IndexByte(a, ':'); i >= 0 {
		prefix, a = a[:i+1], a[i+1:]
	}
	if len(a) <= 2 {
		return prefix + "…"
	}
	return prefix + "…" + a[len(a)-2:]
}
