// Package webhook is chat-handler's HTTP edge: Twilio Conversations
// post-event webhooks and Programmable Messaging inbound and status
// callbacks. A request is answered 2xx only after its event is durable in
// JetStream; a broker that is down or slow gets Twilio a 503 so it retries.
package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	chatv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/chat/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/pkg/twiliosig"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/route"
)

// Emitter publishes one event durably under a dedupe id.
type Emitter interface {
	Emit(ctx context.Context, subject string, event proto.Message, msgID string) error
}

// Options of the handler.
type Options struct {
	// PublicBaseURL is the scheme://host[:port] Twilio calls; when empty it
	// is rebuilt from the request (and trusted proxy headers).
	PublicBaseURL string
	// TrustedProxies may set X-Forwarded-Proto and X-Forwarded-Host.
	TrustedProxies []netip.Prefix
	MaxBodyBytes   int64
	// PublishTimeout bounds the wait for JetStream before answering 503.
	PublishTimeout time.Duration
}

// Handler serves the webhook routes.
type Handler struct {
	routes route.Resolver
	pub    Emitter
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
	return &Handler{routes: routes, pub: pub, opts: opts, log: log, now: time.Now}
}

// Path prefix of every tenant route.
const prefix = "/api/acs/chat-handler/tenants/{tenantId}"

// Routes registers the handler's routes on mux.
func (h *Handler) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+prefix+"/twilio-callbacks", h.conversations)
	mux.HandleFunc("GET "+prefix+"/twilio-callbacks", h.conversations)
	mux.HandleFunc("POST "+prefix+"/messaging/inbound", h.messagingInbound)
	mux.HandleFunc("GET "+prefix+"/messaging/inbound", h.messagingInbound)
	mux.HandleFunc("POST "+prefix+"/messaging/fallback", h.messagingInbound)
	mux.HandleFunc("GET "+prefix+"/messaging/fallback", h.messagingInbound)
	mux.HandleFunc("POST "+prefix+"/messaging/status", h.messagingStatus)
}

// reject answers with a status and a short plain-text reason, and logs why.
func (h *Handler) reject(w http.ResponseWriter, r *http.Request, code int, reason string, args ...any) {
	h.log.Warn("webhook rejected", append([]any{"status", code, "reason", reason, "path", r.URL.Path}, args...)...)
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	http.Error(w, reason, code)
}

// request is a parsed webhook.
type request struct {
	tenant string
	params url.Values
	// signed is what the signature covers besides the URL: the form for
	// POST, nothing for GET (the parameters are in the URL).
	signed url.Values
}

func (h *Handler) parse(w http.ResponseWriter, r *http.Request) (*request, bool) {
	tenant := r.PathValue("tenantId")
	if !subjects.ValidTenantID(tenant) {
		h.reject(w, r, http.StatusNotFound, "unknown tenant")
		return nil, false
	}
	req := &request{tenant: tenant}
	switch r.Method {
	case http.MethodGet:
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			h.reject(w, r, http.StatusBadRequest, "malformed query string", "tenant", tenant)
			return nil, false
		}
		req.params = q
	default:
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
			h.reject(w, r, http.StatusUnsupportedMediaType, "expected application/x-www-form-urlencoded", "tenant", tenant)
			return nil, false
		}
		r.Body = http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes)
		if err := r.ParseForm(); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				h.reject(w, r, http.StatusRequestEntityTooLarge, "body too large", "tenant", tenant)
			} else {
				h.reject(w, r, http.StatusBadRequest, "malformed form body", "tenant", tenant)
			}
			return nil, false
		}
		req.params, req.signed = r.PostForm, r.PostForm
	}
	return req, true
}

// publicURL is the URL Twilio signed: the configured public base, or the
// request's own scheme and host (from forwarding headers only when the
// direct peer is a trusted proxy), plus the path and query as received.
func (h *Handler) publicURL(r *http.Request) string {
	if h.opts.PublicBaseURL != "" {
		return strings.TrimRight(h.opts.PublicBaseURL, "/") + r.URL.RequestURI()
	}
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if h.trusted(r) {
		if p := firstValue(r.Header.Get("X-Forwarded-Proto")); p == "http" || p == "https" {
			scheme = p
		}
		if fh := firstValue(r.Header.Get("X-Forwarded-Host")); fh != "" {
			host = fh
		}
	}
	return scheme + "://" + host + r.URL.RequestURI()
}

func firstValue(v string) string {
	first, _, _ := strings.Cut(v, ",")
	return strings.TrimSpace(first)
}

func (h *Handler) trusted(r *http.Request) bool {
	if len(h.opts.TrustedProxies) == 0 {
		return false
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range h.opts.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// authorize resolves the route and checks the signature.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request, req *request, chatServiceSID, business string) (*route.Route, bool) {
	rt, err := h.routes.Resolve(r.Context(), req.tenant, chatServiceSID, business)
	if errors.Is(err, route.ErrUnknown) {
		what := "conversations service " + chatServiceSID
		if chatServiceSID == "" {
			what = "number " + business
		}
		h.reject(w, r, http.StatusNotFound, "no messaging entry for "+what+" in this tenant", "tenant", req.tenant, "chat_service_sid", chatServiceSID)
		return nil, false
	}
	if err != nil {
		h.log.Error("resolve webhook route", "tenant", req.tenant, "err", err)
		h.reject(w, r, http.StatusServiceUnavailable, "routing is unavailable", "tenant", req.tenant)
		return nil, false
	}
	if !twiliosig.Validate(rt.AuthTokens, h.publicURL(r), req.signed, r.Header.Get("X-Twilio-Signature")) {
		h.reject(w, r, http.StatusForbidden, "invalid X-Twilio-Signature", "tenant", req.tenant, "entry", rt.EntryID)
		return nil, false
	}
	if acct := req.params.Get("AccountSid"); acct != "" && rt.AccountSID != "" && acct != rt.AccountSID {
		h.reject(w, r, http.StatusForbidden, "AccountSid does not match the entry's connector", "tenant", req.tenant, "entry", rt.EntryID)
		return nil, false
	}
	return rt, true
}

// publish waits for the PubAck within the publish timeout.
func (h *Handler) publish(w http.ResponseWriter, r *http.Request, subject string, ev proto.Message, msgID string) bool {
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.PublishTimeout)
	defer cancel()
	if err := h.pub.Emit(ctx, subject, ev, msgID); err != nil {
		h.log.Error("publish webhook event", "subject", subject, "msg_id", msgID, "err", err)
		h.reject(w, r, http.StatusServiceUnavailable, "could not store the event; retry")
		return false
	}
	return true
}

func channelOf(address string, fallback messagingv1.Channel) messagingv1.Channel {
	if strings.HasPrefix(address, "whatsapp:") {
		return messagingv1.Channel_CHANNEL_WHATSAPP
	}
	if fallback != messagingv1.Channel_CHANNEL_UNSPECIFIED {
		return fallback
	}
	return messagingv1.Channel_CHANNEL_SMS
}

// conversations handles Conversations post-event webhooks.
func (h *Handler) conversations(w http.ResponseWriter, r *http.Request) {
	req, ok := h.parse(w, r)
	if !ok {
		return
	}
	p := req.params
	event := p.Get("EventType")
	if event == "" {
		h.reject(w, r, http.StatusBadRequest, "EventType is required", "tenant", req.tenant)
		return
	}
	svc := p.Get("ChatServiceSid")
	if svc == "" {
		h.reject(w, r, http.StatusBadRequest, "ChatServiceSid is required to route the event", "tenant", req.tenant, "event", event)
		return
	}
	rt, ok := h.authorize(w, r, req, svc, "")
	if !ok {
		return
	}
	switch event {
	case "onMessageAdded":
		h.messageAdded(w, r, req, rt)
	default:
		// Events this version does not act on are acknowledged so Twilio
		// does not retry them.
		w.WriteHeader(http.StatusOK)
	}
}

func (h *Handler) messageAdded(w http.ResponseWriter, r *http.Request, req *request, rt *route.Route) {
	p := req.params
	sid := p.Get("MessageSid")
	if sid == "" || p.Get("ConversationSid") == "" {
		h.reject(w, r, http.StatusBadRequest, "onMessageAdded needs MessageSid and ConversationSid", "tenant", req.tenant)
		return
	}
	source := strings.ToUpper(p.Get("Source"))
	if source != "SMS" && source != "WHATSAPP" {
		// Messages written through the API or SDK are ours (agent replies).
		w.WriteHeader(http.StatusOK)
		return
	}
	if rt.Disabled {
		h.reject(w, r, http.StatusForbidden, rt.DisabledReason, "tenant", req.tenant, "entry", rt.EntryID)
		return
	}
	author := p.Get("Author")
	ch := channelOf(author, rt.Channel)
	if source == "WHATSAPP" {
		ch = messagingv1.Channel_CHANNEL_WHATSAPP
	}
	index, _ := strconv.ParseInt(p.Get("Index"), 10, 64)
	ev := &chatv1.MessageReceived{
		TenantId: req.tenant, MessageSid: sid, AccountSid: p.Get("AccountSid"), EntryId: rt.EntryID, ServiceId: rt.ServiceID,
		Conversation: &messagingv1.ConversationRef{
			Channel: ch, Path: messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS, CustomerAddress: author,
			ChatServiceSid: p.Get("ChatServiceSid"), ConversationSid: p.Get("ConversationSid"),
			MessagingServiceSid: p.Get("MessagingServiceSid"),
		},
		Body: p.Get("Body"), ParticipantSid: p.Get("ParticipantSid"), Index: index,
		ReceivedAt: timestamppb.New(h.now()),
	}
	if !h.publish(w, r, subjects.ChatMessageReceived(req.tenant), ev, sid) {
		return
	}
	w.WriteHeader(http.StatusOK)
}

const emptyTwiML = `<?xml version="1.0" encoding="UTF-8"?><Response></Response>`

// messagingInbound handles Programmable Messaging inbound messages (and the
// fallback URL, which carries the same parameters plus ErrorCode/ErrorUrl).
func (h *Handler) messagingInbound(w http.ResponseWriter, r *http.Request) {
	req, ok := h.parse(w, r)
	if !ok {
		return
	}
	p := req.params
	sid, to, from := p.Get("MessageSid"), p.Get("To"), p.Get("From")
	if sid == "" || to == "" || from == "" {
		h.reject(w, r, http.StatusBadRequest, "MessageSid, From and To are required", "tenant", req.tenant)
		return
	}
	rt, ok := h.authorize(w, r, req, "", to)
	if !ok {
		return
	}
	if rt.Disabled {
		h.reject(w, r, http.StatusForbidden, rt.DisabledReason, "tenant", req.tenant, "entry", rt.EntryID)
		return
	}
	ev := &chatv1.MessageReceived{
		TenantId: req.tenant, MessageSid: sid, AccountSid: p.Get("AccountSid"), EntryId: rt.EntryID, ServiceId: rt.ServiceID,
		Conversation: &messagingv1.ConversationRef{
			Channel: channelOf(to, rt.Channel), Path: messagingv1.TwilioPath_TWILIO_PATH_MESSAGING,
			CustomerAddress: from, BusinessAddress: to, MessagingServiceSid: p.Get("MessagingServiceSid"),
		},
		Body: p.Get("Body"), ProfileName: p.Get("ProfileName"), WaId: p.Get("WaId"),
		ReceivedAt: timestamppb.New(h.now()),
	}
	n, _ := strconv.Atoi(p.Get("NumMedia"))
	for i := 0; i < n && i < 10; i++ {
		u := p.Get(fmt.Sprintf("MediaUrl%d", i))
		if u == "" {
			continue
		}
		ev.Media = append(ev.Media, &messagingv1.Media{Url: u, ContentType: p.Get(fmt.Sprintf("MediaContentType%d", i))})
	}
	switch strings.ToUpper(p.Get("OptOutType")) {
	case "STOP":
		ev.OptOutType = messagingv1.OptOutType_OPT_OUT_TYPE_STOP
	case "START":
		ev.OptOutType = messagingv1.OptOutType_OPT_OUT_TYPE_START
	case "HELP":
		ev.OptOutType = messagingv1.OptOutType_OPT_OUT_TYPE_HELP
	}
	if !h.publish(w, r, subjects.ChatMessageReceived(req.tenant), ev, sid) {
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	_, _ = w.Write([]byte(emptyTwiML))
}

// messagingStatus handles status callbacks of outbound messages.
func (h *Handler) messagingStatus(w http.ResponseWriter, r *http.Request) {
	req, ok := h.parse(w, r)
	if !ok {
		return
	}
	p := req.params
	sid, st, from := p.Get("MessageSid"), p.Get("MessageStatus"), p.Get("From")
	if sid == "" || st == "" || from == "" {
		h.reject(w, r, http.StatusBadRequest, "MessageSid, MessageStatus and From are required", "tenant", req.tenant)
		return
	}
	if _, ok := h.authorize(w, r, req, "", from); !ok {
		return
	}
	code, _ := strconv.Atoi(p.Get("ErrorCode"))
	ev := &chatv1.DeliveryUpdated{
		TenantId: req.tenant, MessageSid: sid, Status: DeliveryStatus(st), ErrorCode: int32(code),
		AccountSid: p.Get("AccountSid"), OccurredAt: timestamppb.New(h.now()), RawStatus: st,
	}
	if !h.publish(w, r, subjects.ChatDeliveryUpdated(req.tenant), ev, sid+":"+st) {
		return
	}
	w.WriteHeader(http.StatusOK)
}

// DeliveryStatus maps Twilio's status string.
func DeliveryStatus(s string) messagingv1.DeliveryStatus {
	if v, ok := messagingv1.DeliveryStatus_value["DELIVERY_STATUS_"+strings.ToUpper(s)]; ok {
		return messagingv1.DeliveryStatus(v)
	}
	return messagingv1.DeliveryStatus_DELIVERY_STATUS_UNSPECIFIED
}
