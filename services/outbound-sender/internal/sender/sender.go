// Package sender is outbound-sender's domain: it turns outbound message
// requests into Twilio calls exactly once, enforces what Twilio would
// enforce (opt-out, the WhatsApp window, per-sender rates) before calling,
// keeps the delivery ledger, and follows delivery reports.
//
// Exactly once. A request is written to the ledger before Twilio is called
// (with the attempt it is about to make), and its outcome after. A
// redelivered request whose outcome is recorded is answered from the ledger.
// A redelivered request with an attempt but no outcome may have reached
// Twilio before the process died: it is looked up at Twilio first (its
// request id is in the Conversations message's Attributes; on the Messaging
// path the recipient's recent messages are matched by body) and only sent
// when Twilio has no such message. The same lookup follows every ambiguous
// answer (5xx, timeout, broken connection); 429 is retried without one
// because Twilio never processed it. See README.md for the window that
// remains. A Conversations send with media uploads the file first
// (media.go); the upload makes no message, so a retry may upload again
// but never creates the message without the lookup.
package sender

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/segments"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/pkg/telemetry"
	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/attachment"
	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/contacts"
	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/lanes"
	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/ledger"
	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/ratelimit"
	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/twilioapi"
)

// Emitter publishes one event under a dedupe id.
type Emitter interface {
	Emit(ctx context.Context, subject string, event proto.Message, msgID string) error
}

// Credentials answers which Twilio account sends for a messaging entry
// (pkg/configcache in production).
type Credentials interface {
	SendingCredentials(ctx context.Context, tenant, entryID string) (*configv1.GetSendingCredentialsResponse, error)
}

// Twilio creates and finds messages, and uploads media for the
// Conversations path (internal/twilioapi).
type Twilio interface {
	Send(creds twilioapi.Credentials, m twilioapi.Message) (twilioapi.Accepted, error)
	Find(creds twilioapi.Credentials, m twilioapi.Message, since time.Time, claimed twilioapi.Claimed) (twilioapi.Accepted, bool, error)
	UploadMedia(creds twilioapi.Credentials, chatServiceSID string, f twilioapi.File) (string, error)
}

// Attachments downloads the files a request names by URL
// (internal/attachment); errors are *attachment.Error.
type Attachments interface {
	Fetch(ctx context.Context, url string, max int64) (attachment.File, error)
}

// InboundProgress tells whether every customer message of a tenant
// published so far has been applied to the contacts (opt-outs, windows),
// so a refusal is never based on a message still in flight.
type InboundProgress interface {
	CaughtUp(ctx context.Context, tenant string) (bool, error)
}

// Options tune the sender; zero values take the defaults.
type Options struct {
	// StatusCallbackBaseURL is chat-handler's public base URL; Messaging
	// sends ask Twilio for status callbacks there.
	StatusCallbackBaseURL string
	// Timeout bounds one Twilio call; 10s.
	Timeout time.Duration
	// Rules pace senders; ratelimit.DefaultRules() when zero.
	Rules ratelimit.Rules
	// Retries of a 429/5xx/unreachable call within one delivery, with
	// jittered exponential backoff from RetryBase up to RetryMax; 4, 250ms,
	// 8s. After them the request goes back to JetStream.
	Retries   int
	RetryBase time.Duration
	RetryMax  time.Duration
	// MaxConcurrentCalls to Twilio at once; 64.
	MaxConcurrentCalls int
	// ReconcileSkew widens the lookup window for a message Twilio may have
	// created, for clock differences with Twilio; 10 minutes.
	ReconcileSkew time.Duration
	// CatchUpWait is how long a refusal waits for customer messages still
	// being applied (a STOP, START or WhatsApp message in flight); 5s.
	CatchUpWait time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Rules.SMS.IsZero() && o.Rules.WhatsApp.IsZero() && o.Rules.ByKey == nil {
		o.Rules = ratelimit.DefaultRules()
	}
	if o.Retries <= 0 {
		o.Retries = 4
	}
	if o.RetryBase <= 0 {
		o.RetryBase = 250 * time.Millisecond
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 8 * time.Second
	}
	if o.MaxConcurrentCalls <= 0 {
		o.MaxConcurrentCalls = 64
	}
	if o.ReconcileSkew <= 0 {
		o.ReconcileSkew = 10 * time.Minute
	}
	if o.CatchUpWait <= 0 {
		o.CatchUpWait = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Deps are the sender's collaborators.
type Deps struct {
	Pub         Emitter
	Credentials Credentials
	Twilio      Twilio
	Ledger      *ledger.Store
	Contacts    *contacts.Store
	Progress    InboundProgress
	Limiter     *ratelimit.Limiter
	// Attachments fetches the media of Conversations sends;
	// attachment.New(nil, 0) when nil.
	Attachments Attachments
	// Tracing receives a span per call to Twilio; nil: the global provider.
	Tracing trace.TracerProvider
}

// Sender handles outbound requests, delivery reports and customer messages.
type Sender struct {
	d      Deps
	opts   Options
	log    *slog.Logger
	tracer trace.Tracer
	calls  chan struct{}
	// media bounds the attachments held in memory between their download
	// and their upload.
	media chan struct{}
	stop  chan struct{}
}

// maxMediaInFlight is how many attachments are fetched and uploaded at
// once (each up to 16 MB).
const maxMediaInFlight = 8

// New returns a sender.
func New(d Deps, opts Options, log *slog.Logger) *Sender {
	opts.defaults()
	if d.Limiter == nil {
		d.Limiter = ratelimit.New(opts.Now)
	}
	if d.Tracing == nil {
		d.Tracing = otel.GetTracerProvider()
	}
	if d.Attachments == nil {
		d.Attachments = attachment.New(nil, 0)
	}
	return &Sender{d: d, opts: opts, log: log, tracer: d.Tracing.Tracer("github.com/switchboard-cc/switchboard/services/outbound-sender"),
		calls: make(chan struct{}, opts.MaxConcurrentCalls), media: make(chan struct{}, maxMediaInFlight), stop: make(chan struct{})}
}

// Stop makes waiting sends give their request back (redelivered later)
// instead of waiting out a rate limit or a backoff during shutdown.
func (s *Sender) Stop() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
}

var errStopping = errors.New("outbound-sender is stopping; the request will be redelivered")

// sleepUntil waits for t, or returns errStopping.
func (s *Sender) sleepUntil(ctx context.Context, t time.Time) error {
	d := t.Sub(s.opts.Now())
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-s.stop:
		return errStopping
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SenderOf identifies who sends a request, for its lane and rate limit: the
// Messaging Service, else the business number, else the Conversations
// service.
func SenderOf(c *messagingv1.ConversationRef) string {
	switch {
	case c.GetPath() != messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS && c.GetMessagingServiceSid() != "":
		return c.GetMessagingServiceSid()
	case c.GetBusinessAddress() != "":
		return c.GetBusinessAddress()
	case c.GetChatServiceSid() != "":
		return c.GetChatServiceSid()
	}
	return c.GetMessagingServiceSid()
}

// LaneKey puts requests of one sender in one lane.
func (s *Sender) LaneKey(m *bus.Message) (string, error) {
	var req outboundv1.OutboundMessageRequested
	if err := m.Decode(&req); err != nil {
		return "", err
	}
	return m.Tenant() + "|" + SenderOf(req.GetConversation()), nil
}

var (
	addressRe     = regexp.MustCompile(`^(whatsapp:)?\+[1-9][0-9]{1,14}$`)
	shortCodeRe   = regexp.MustCompile(`^[0-9]{3,8}$`)
	alphaSenderRe = regexp.MustCompile(`^[A-Za-z0-9 ]*[A-Za-z][A-Za-z0-9 ]*$`)
)

// invalid reports why a request cannot be sent at all.
func invalid(r *outboundv1.OutboundMessageRequested) error {
	var probs []string
	c := r.GetConversation()
	if r.GetEntryId() == "" {
		probs = append(probs, "entry_id is required")
	}
	switch c.GetPath() {
	case messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS:
		if c.GetChatServiceSid() == "" || c.GetConversationSid() == "" {
			probs = append(probs, "a Conversations reply needs chat_service_sid and conversation_sid")
		}
		if len(r.GetMediaUrls()) > 1 {
			// Twilio's MediaSid names one uploaded media.
			probs = append(probs, "a Conversations message takes one media item")
		}
	default:
		switch to := c.GetCustomerAddress(); {
		case to == "":
			probs = append(probs, "customer_address is required")
		case !addressRe.MatchString(to):
			// Twilio would answer 21211; its API takes only these forms.
			probs = append(probs, fmt.Sprintf("customer address %q is not E.164 (+15551234567) or whatsapp:+E.164", to))
		}
		switch from := c.GetBusinessAddress(); {
		case from == "" && c.GetMessagingServiceSid() == "":
			probs = append(probs, "business_address or messaging_service_sid is required")
		case from != "" && !addressRe.MatchString(from) && !shortCodeRe.MatchString(from) && !alphaSenderRe.MatchString(from):
			probs = append(probs, fmt.Sprintf("business address %q is not a phone number, short code or alphanumeric sender", from))
		}
		if c.GetChannel() == messagingv1.Channel_CHANNEL_WHATSAPP && len(r.GetMediaUrls()) > 1 {
			probs = append(probs, "WhatsApp takes one media item per message")
		}
	}
	if r.GetBody() == "" && len(r.GetMediaUrls()) == 0 && r.GetContentSid() == "" {
		probs = append(probs, "body, media or content_sid is required")
	}
	if n := utf8.RuneCountInString(r.GetBody()); n > segments.MaxBody {
		probs = append(probs, fmt.Sprintf("body has %d characters, Twilio takes at most %d", n, segments.MaxBody))
	}
	if len(r.GetMediaUrls()) > 10 {
		probs = append(probs, "at most 10 media items")
	}
	if len(probs) == 0 {
		return nil
	}
	return errors.New(strings.Join(probs, "; "))
}

// cost is what a request takes from its sender's limit.
func cost(r *outboundv1.OutboundMessageRequested, lim ratelimit.Limit) int {
	if lim.Unit != ratelimit.Segments || r.GetContentSid() != "" {
		return 1
	}
	return max(1, segments.Segments(r.GetBody()))
}

// numSegments is what the ledger reports: SMS segments, 1 otherwise.
func numSegments(r *outboundv1.OutboundMessageRequested) int {
	if r.GetConversation().GetChannel() == messagingv1.Channel_CHANNEL_WHATSAPP || r.GetContentSid() != "" {
		return 1
	}
	return max(1, segments.Segments(r.GetBody()))
}

func convToLedger(c *messagingv1.ConversationRef) ledger.Conversation {
	return ledger.Conversation{
		Channel: int32(c.GetChannel()), Path: int32(c.GetPath()), Customer: c.GetCustomerAddress(),
		Business: c.GetBusinessAddress(), ChatServiceSID: c.GetChatServiceSid(),
		ConversationSID: c.GetConversationSid(), MessagingServiceSID: c.GetMessagingServiceSid(),
	}
}

func convFromLedger(c ledger.Conversation) *messagingv1.ConversationRef {
	return &messagingv1.ConversationRef{
		Channel: messagingv1.Channel(c.Channel), Path: messagingv1.TwilioPath(c.Path), CustomerAddress: c.Customer,
		BusinessAddress: c.Business, ChatServiceSid: c.ChatServiceSID, ConversationSid: c.ConversationSID,
		MessagingServiceSid: c.MessagingServiceSID,
	}
}

func (s *Sender) record(r *outboundv1.OutboundMessageRequested, now time.Time) *ledger.Request {
	at := now
	if r.GetRequestedAt() != nil {
		at = r.GetRequestedAt().AsTime()
	}
	return &ledger.Request{
		Tenant: r.GetTenantId(), RequestID: r.GetRequestId(), SessionID: r.GetSessionId(), EntryID: r.GetEntryId(),
		Conversation: convToLedger(r.GetConversation()), Body: r.GetBody(), MediaURLs: r.GetMediaUrls(),
		ContentSID: r.GetContentSid(), ContentVariables: r.GetContentVariables(), Origin: int32(r.GetOrigin()),
		AgentID: r.GetAgentId(), Author: r.GetAuthor(), ResendOf: r.GetResendOf(), Segments: numSegments(r),
		RequestedAt: at, CreatedAt: now,
	}
}

func (s *Sender) twilioMessage(r *outboundv1.OutboundMessageRequested) twilioapi.Message {
	c := r.GetConversation()
	m := twilioapi.Message{
		Conversations:  c.GetPath() == messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS,
		ChatServiceSID: c.GetChatServiceSid(), ConversationSID: c.GetConversationSid(),
		To: c.GetCustomerAddress(), From: c.GetBusinessAddress(), MessagingServiceSID: c.GetMessagingServiceSid(),
		Body: r.GetBody(), MediaURLs: r.GetMediaUrls(), ContentSID: r.GetContentSid(), ContentVariables: r.GetContentVariables(),
		Author: r.GetAuthor(), RequestID: r.GetRequestId(),
	}
	if !m.Conversations && s.opts.StatusCallbackBaseURL != "" {
		m.StatusCallback = strings.TrimRight(s.opts.StatusCallbackBaseURL, "/") + "/api/acs/chat-handler/tenants/" + r.GetTenantId() + "/messaging/status"
	}
	return m
}

// job is one request on its way through the lane stages.
type job struct {
	req  *outboundv1.OutboundMessageRequested
	last bool
	rec  *ledger.Request
	tc   twilioapi.Credentials
	msg  twilioapi.Message
	lim  ratelimit.Limit
	lane string
	cost int
	// attempts made so far (the next call is attempt attempts).
	attempts int
	// Set by Call: what Twilio answered.
	acc        twilioapi.Accepted
	reconciled bool
	refused    *twilioapi.Error
}

// Stages returns the lane stages: Prepare writes the ledger and applies
// the rules, concurrently; Call paces and calls Twilio, in order per
// sender; Finish records and publishes the outcome, concurrently.
func (s *Sender) Stages() lanes.Stages[job] {
	return lanes.Stages[job]{Prepare: s.Prepare, Ordered: s.Call, Finish: s.Finish}
}

// Prepare decodes a request, writes it to the ledger with the attempt about
// to be made, and settles it when it needs no call: answered from the
// ledger, refused by a rule, unusable, or found already sent at Twilio.
// It returns a nil job when it settled the request (the lane then acks it
// without calling Twilio).
func (s *Sender) Prepare(ctx context.Context, m *bus.Message, last bool) (*job, error) {
	var req outboundv1.OutboundMessageRequested
	if err := m.Decode(&req); err != nil {
		return nil, err
	}
	if req.GetTenantId() != m.Tenant() || req.GetRequestId() == "" {
		return nil, bus.Permanentf("outbound request on %s names tenant %q and request %q", m.Subject, req.GetTenantId(), req.GetRequestId())
	}
	j, err := s.prepare(ctx, &req, last)
	if err != nil {
		return nil, s.giveUp(ctx, &req, err, last)
	}
	if j != nil {
		j.last = last
	}
	return j, nil
}

// Call makes the Twilio call of a prepared request, in the sender's order.
func (s *Sender) Call(ctx context.Context, j *job) error {
	return s.giveUp(ctx, j.req, s.callTwilio(ctx, j), j.last)
}

// Finish records and reports what Twilio answered.
func (s *Sender) Finish(ctx context.Context, j *job) error {
	var err error
	if j.refused != nil {
		err = s.twilioRefused(ctx, j.req, j.refused, j.attempts)
	} else {
		err = s.sent(ctx, j.req, j.acc, j.attempts, j.reconciled)
	}
	return s.giveUp(ctx, j.req, err, j.last)
}

// giveUp turns an error on the last delivery JetStream will make into a
// recorded failure, rather than leave the agent looking at "pending"
// forever.
func (s *Sender) giveUp(ctx context.Context, req *outboundv1.OutboundMessageRequested, err error, last bool) error {
	if err == nil || bus.IsPermanent(err) || !last || errors.Is(err, errStopping) {
		return err
	}
	msg := "Twilio could not be reached or kept refusing with 429/5xx: " + err.Error()
	var amb *ambiguousError
	if errors.As(err, &amb) {
		msg = "Twilio's answers were unclear and the message could not be confirmed; it may have been delivered: " + err.Error()
	} else if _, ok := attachment.IsError(err); ok {
		msg = "the message was not sent: " + err.Error()
	}
	return s.fail(ctx, req, false, 0, msg, outboundv1.FailureReason_FAILURE_REASON_RETRIES_EXHAUSTED, 0)
}

// ambiguousError: a call may have created the message and the lookup
// could not tell.
type ambiguousError struct{ err error }

func (e *ambiguousError) Error() string { return e.err.Error() }
func (e *ambiguousError) Unwrap() error { return e.err }

func (s *Sender) prepare(ctx context.Context, req *outboundv1.OutboundMessageRequested, last bool) (*job, error) {
	now := s.opts.Now()
	tenant := req.GetTenantId()
	if err := invalid(req); err != nil {
		return nil, s.fail(ctx, req, false, 0, "invalid request: "+err.Error(), outboundv1.FailureReason_FAILURE_REASON_INVALID_REQUEST, 0)
	}
	creds, err := s.d.Credentials.SendingCredentials(ctx, tenant, req.GetEntryId())
	if err != nil {
		if c := status.Code(err); c == codes.NotFound || c == codes.InvalidArgument || c == codes.FailedPrecondition {
			return nil, s.fail(ctx, req, false, 0, fmt.Sprintf("no sending credentials for messaging entry %q: %s", req.GetEntryId(), status.Convert(err).Message()),
				outboundv1.FailureReason_FAILURE_REASON_NO_CREDENTIALS, 0)
		}
		return nil, fmt.Errorf("get sending credentials of entry %q: %w", req.GetEntryId(), err)
	}
	conv := req.GetConversation()
	j := &job{
		req: req, msg: s.twilioMessage(req), lane: tenant + "|" + SenderOf(conv), attempts: 1,
		tc: twilioapi.Credentials{AccountSID: creds.GetAccountSid(), APIKeySID: creds.GetApiKeySid(), APIKeySecret: creds.GetApiKeySecret(), Region: creds.GetRegion(), Edge: creds.GetEdge()},
		lim: s.opts.Rules.For(conv.GetChannel() == messagingv1.Channel_CHANNEL_WHATSAPP,
			conv.GetBusinessAddress(), conv.GetMessagingServiceSid(), conv.GetChatServiceSid(), "connector:"+creds.GetEntry().GetConnectorId()),
	}
	j.cost = cost(req, j.lim)
	// The request and its first attempt go to the ledger in one insert,
	// before anything else: a redelivery finds it.
	rec := s.record(req, now)
	rec.Attempts, rec.FirstCallAt, rec.LeaseUntil = 1, now, now.Add(2*s.opts.Timeout)
	stored, fresh, err := s.d.Ledger.Begin(ctx, rec)
	if err != nil {
		return nil, err
	}
	j.rec = stored
	if !fresh {
		if done, err := s.answerDecided(ctx, req, stored); done || err != nil {
			return nil, err
		}
	}
	if req.GetResendOf() != "" {
		if why, err := s.resendRefusal(ctx, tenant, req.GetResendOf()); err != nil {
			return nil, err
		} else if why != "" {
			return nil, s.fail(ctx, req, true, 0, why, outboundv1.FailureReason_FAILURE_REASON_RESEND_NOT_ALLOWED, 0)
		}
	}
	if refused, err := s.refuse(ctx, req); refused || err != nil {
		return nil, err
	}
	if fresh {
		return s.withMedia(ctx, j)
	}
	// An attempt was recorded before: it may have reached Twilio.
	if stored.Attempts > 0 {
		if now.Before(stored.LeaseUntil) {
			if !last {
				return nil, fmt.Errorf("request %q: an attempt may still be in flight until %s", req.GetRequestId(), stored.LeaseUntil.Format(time.RFC3339))
			}
			// No redelivery will follow: wait the lease out here and look.
			if err := s.sleepUntil(ctx, stored.LeaseUntil); err != nil {
				return nil, err
			}
			now = s.opts.Now()
		}
		if acc, found, err := s.find(ctx, j.tc, j.msg, stored); err != nil {
			return nil, err
		} else if found {
			return nil, s.sent(ctx, req, acc, stored.Attempts, true)
		}
	}
	j.attempts = stored.Attempts + 1
	if stored.FirstCallAt.IsZero() {
		stored.FirstCallAt = now
	}
	if err := s.d.Ledger.StartAttempt(ctx, tenant, req.GetRequestId(), j.attempts, stored.FirstCallAt, now.Add(2*s.opts.Timeout)); err != nil {
		return nil, err
	}
	return s.withMedia(ctx, j)
}

// callTwilio waits for the sender's turn and calls Twilio, retrying 429s
// and, after a lookup, ambiguous failures. It leaves the answer in j.
func (s *Sender) callTwilio(ctx context.Context, j *job) error {
	at := s.d.Limiter.Reserve(j.lane, j.lim, j.cost)
	if err := s.sleepUntil(ctx, at); err != nil {
		return err
	}
	s.d.Limiter.Began(j.lane, j.lim, j.cost, s.opts.Now())
	tenant, id := j.req.GetTenantId(), j.req.GetRequestId()
	for try := 1; ; try++ {
		acc, err := s.call(ctx, j.tc, j.msg)
		if err == nil {
			j.acc = acc
			return nil
		}
		te, ok := twilioapi.IsError(err)
		if !ok {
			te = &twilioapi.Error{Class: twilioapi.Ambiguous, Message: err.Error()}
		}
		switch te.Class {
		case twilioapi.Final:
			j.refused = te
			return nil
		case twilioapi.Ambiguous:
			acc, found, ferr := s.find(ctx, j.tc, j.msg, j.rec)
			if ferr != nil {
				return &ambiguousError{fmt.Errorf("send %q: %w; and the lookup failed: %v", id, err, ferr)}
			}
			if found {
				j.acc, j.reconciled = acc, true
				return nil
			}
		}
		if try > s.opts.Retries {
			return fmt.Errorf("send %q after %d calls: %w", id, j.attempts, err)
		}
		s.log.DebugContext(ctx, "twilio call failed; retrying", "request_id", id, "attempt", j.attempts, "class", te.Class.String(), "code", te.Code)
		if err := s.sleepUntil(ctx, s.opts.Now().Add(s.backoff(try))); err != nil {
			return err
		}
		j.attempts++
		if err := s.d.Ledger.StartAttempt(ctx, tenant, id, j.attempts, j.rec.FirstCallAt, s.opts.Now().Add(2*s.opts.Timeout)); err != nil {
			return err
		}
	}
}

// backoff is full-jitter exponential: a random delay up to base·2^(n-1),
// capped.
func (s *Sender) backoff(n int) time.Duration {
	ceiling := min(s.opts.RetryBase<<min(n-1, 16), s.opts.RetryMax)
	return ceiling/2 + rand.N(ceiling/2+1)
}

// call makes one REST call to Twilio under a client span; the status
// callback URL carries the span's trace context (telemetry.TraceParam), so
// the delivery reports continue the message's trace.
func (s *Sender) call(ctx context.Context, tc twilioapi.Credentials, m twilioapi.Message) (twilioapi.Accepted, error) {
	s.calls <- struct{}{}
	defer func() { <-s.calls }()
	path := "messaging"
	if m.Conversations {
		path = "conversations"
	}
	ctx, span := s.tracer.Start(ctx, "twilio create message", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("twilio.path", path), attribute.String("sb.request_id", m.RequestID)))
	defer span.End()
	if m.StatusCallback != "" {
		m.StatusCallback = withTraceParam(ctx, m.StatusCallback)
	}
	start := time.Now()
	acc, err := s.d.Twilio.Send(tc, m)
	recordCall(start, err)
	if err != nil {
		if te, ok := twilioapi.IsError(err); ok {
			span.SetAttributes(attribute.Int("twilio.error_code", te.Code), attribute.String("twilio.error_class", te.Class.String()))
		}
		span.SetStatus(otelcodes.Error, "twilio refused or failed the call")
	}
	return acc, err
}

// withTraceParam adds the trace context of ctx to a callback URL.
func withTraceParam(ctx context.Context, callback string) string {
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	tp := carrier.Get("traceparent")
	if tp == "" {
		return callback
	}
	sep := "?"
	if strings.Contains(callback, "?") {
		sep = "&"
	}
	return callback + sep + telemetry.TraceParam + "=" + url.QueryEscape(tp)
}

func (s *Sender) find(ctx context.Context, tc twilioapi.Credentials, m twilioapi.Message, rec *ledger.Request) (twilioapi.Accepted, bool, error) {
	since := rec.FirstCallAt
	if since.IsZero() {
		since = rec.CreatedAt
	}
	claimed := func(sid string) (bool, error) {
		got, err := s.d.Ledger.Message(ctx, rec.Tenant, sid)
		if errors.Is(err, ledger.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		return got.RequestID != rec.RequestID, nil
	}
	s.calls <- struct{}{}
	acc, found, err := s.d.Twilio.Find(tc, m, since.Add(-s.opts.ReconcileSkew), claimed)
	<-s.calls
	if err != nil {
		return acc, false, fmt.Errorf("look up request %q at twilio: %w", rec.RequestID, err)
	}
	if found {
		s.log.InfoContext(ctx, "reconciled a message twilio had already accepted", "request_id", rec.RequestID, "twilio_sid", acc.SID)
	}
	return acc, found, nil
}

// answerDecided answers a redelivered request whose outcome is recorded.
func (s *Sender) answerDecided(ctx context.Context, req *outboundv1.OutboundMessageRequested, rec *ledger.Request) (bool, error) {
	out, err := s.d.Ledger.Outcome(ctx, req.GetTenantId(), req.GetRequestId())
	if errors.Is(err, ledger.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return true, err
	}
	if out.State == ledger.StateSent {
		// The outcome and its message are written together; a crash between
		// the two leaves the message to write now.
		if _, _, err := s.d.Ledger.Decide(ctx, out, s.messageDoc(req, out.TwilioSID, out.Status)); err != nil {
			return true, err
		}
	}
	return true, s.emitOutcome(ctx, req, out)
}

func (s *Sender) messageDoc(req *outboundv1.OutboundMessageRequested, sid, st string) *ledger.Message {
	return &ledger.Message{
		Tenant: req.GetTenantId(), SID: sid, RequestID: req.GetRequestId(), SessionID: req.GetSessionId(),
		ResendOf: req.GetResendOf(), Status: st,
	}
}

func (s *Sender) sent(ctx context.Context, req *outboundv1.OutboundMessageRequested, acc twilioapi.Accepted, attempts int, reconciled bool) error {
	now := s.opts.Now()
	out := &ledger.Outcome{
		Tenant: req.GetTenantId(), RequestID: req.GetRequestId(),
		State: ledger.StateSent, TwilioSID: acc.SID, Status: acc.Status, Attempts: attempts, Segments: numSegments(req),
		Reconciled: reconciled, DecidedAt: now,
	}
	if acc.Segments > 0 {
		out.Segments = acc.Segments
	}
	out.MediaSIDs = acc.MediaSIDs
	got, _, err := s.d.Ledger.Decide(ctx, out, s.messageDoc(req, acc.SID, acc.Status))
	if err != nil {
		// Twilio has the message but the ledger does not know: the
		// redelivery will find it at Twilio instead of sending again.
		return fmt.Errorf("record that twilio accepted %q as %s: %w", req.GetRequestId(), acc.SID, err)
	}
	recordOutcome(true, 0, 0)
	if req.GetResendOf() != "" {
		if err := s.d.Ledger.AddResend(ctx, req.GetTenantId(), req.GetResendOf(), req.GetRequestId()); err != nil {
			return err
		}
	}
	return s.emitOutcome(ctx, req, got)
}

// fail records a failed outcome (unless one is recorded) and reports it.
// begun says the request is in the ledger already.
func (s *Sender) fail(ctx context.Context, req *outboundv1.OutboundMessageRequested, begun bool, code int32, msg string, reason outboundv1.FailureReason, attempts int) error {
	recordOutcome(false, code, reason)
	if !begun {
		r := s.record(req, s.opts.Now())
		if _, _, err := s.d.Ledger.Begin(ctx, r); err != nil {
			return err
		}
	}
	out := &ledger.Outcome{
		Tenant: req.GetTenantId(), RequestID: req.GetRequestId(),
		State: ledger.StateFailed, Status: "failed", ErrorCode: code, ErrorMessage: msg, Reason: int32(reason),
		Attempts: attempts, Segments: numSegments(req), DecidedAt: s.opts.Now(),
	}
	got, _, err := s.d.Ledger.Decide(ctx, out, nil)
	if err != nil {
		return err
	}
	s.log.InfoContext(ctx, "outbound message failed", "tenant", req.GetTenantId(), "request_id", req.GetRequestId(),
		"reason", reason.String(), "error_code", got.ErrorCode)
	return s.emitOutcome(ctx, req, got)
}

func (s *Sender) twilioRefused(ctx context.Context, req *outboundv1.OutboundMessageRequested, te *twilioapi.Error, attempts int) error {
	msg := twilioapi.Describe(te.Code, te.Message)
	if te.Code == 21610 {
		if err := s.optOut(ctx, req.GetTenantId(), req.GetConversation(), "twilio:21610", "refused:"+req.GetRequestId()); err != nil {
			return err
		}
	}
	return s.fail(ctx, req, true, int32(te.Code), msg, outboundv1.FailureReason_FAILURE_REASON_TWILIO, attempts)
}

func (s *Sender) emitOutcome(ctx context.Context, req *outboundv1.OutboundMessageRequested, o *ledger.Outcome) error {
	tenant, id := req.GetTenantId(), req.GetRequestId()
	if o.State == ledger.StateSent {
		return s.d.Pub.Emit(ctx, subjects.OutboundSent(tenant), &outboundv1.OutboundMessageSent{
			TenantId: tenant, RequestId: id, SessionId: req.GetSessionId(), TwilioSid: o.TwilioSID,
			Status: DeliveryStatus(o.Status), Attempts: int32(o.Attempts), SentAt: timestamppb.New(o.DecidedAt),
			NumSegments: int32(o.Segments), ResendOf: req.GetResendOf(),
		}, eventID(tenant, id, "sent"))
	}
	return s.d.Pub.Emit(ctx, subjects.OutboundFailed(tenant), &outboundv1.OutboundMessageFailed{
		TenantId: tenant, RequestId: id, SessionId: req.GetSessionId(), ErrorCode: o.ErrorCode,
		ErrorMessage: o.ErrorMessage, Attempts: int32(o.Attempts), FailedAt: timestamppb.New(o.DecidedAt),
		Reason: outboundv1.FailureReason(o.Reason), ResendOf: req.GetResendOf(),
	}, eventID(tenant, id, "failed"))
}

// eventID is the Nats-Msg-Id of an event outbound-sender publishes. It
// starts with the tenant: request ids and Twilio SIDs are unique only
// within a tenant, and JetStream's dedupe window spans the whole stream, so
// an id without the tenant could drop one tenant's event as a repeat of
// another's.
func eventID(tenant string, parts ...string) string {
	return tenant + "/" + strings.Join(parts, ":")
}

// DeliveryStatus maps Twilio's status names to the enum.
func DeliveryStatus(s string) messagingv1.DeliveryStatus {
	if v, ok := messagingv1.DeliveryStatus_value["DELIVERY_STATUS_"+strings.ToUpper(s)]; ok {
		return messagingv1.DeliveryStatus(v)
	}
	if s == "scheduled" {
		return messagingv1.DeliveryStatus_DELIVERY_STATUS_QUEUED
	}
	return messagingv1.DeliveryStatus_DELIVERY_STATUS_UNSPECIFIED
}

// StatusName is the lower-case name of a status.
func StatusName(s messagingv1.DeliveryStatus) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "DELIVERY_STATUS_"))
}

// resendRefusal explains why a resend must not go out ("" when it may):
// only a request that failed may be resent, so nobody gets a message twice.
func (s *Sender) resendRefusal(ctx context.Context, tenant, orig string) (string, error) {
	out, err := s.d.Ledger.Outcome(ctx, tenant, orig)
	if errors.Is(err, ledger.ErrNotFound) {
		return fmt.Sprintf("request %q is not known to have failed, so it cannot be resent", orig), nil
	}
	if err != nil {
		return "", err
	}
	if out.State == ledger.StateFailed {
		return "", nil
	}
	msg, err := s.d.Ledger.Message(ctx, tenant, out.TwilioSID)
	if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return "", err
	}
	if msg != nil && (msg.Status == "failed" || msg.Status == "undelivered") {
		return "", nil
	}
	st := out.Status
	if msg != nil {
		st = msg.Status
	}
	return fmt.Sprintf("request %q did not fail (it is %s), so resending it could text the customer twice", orig, st), nil
}
