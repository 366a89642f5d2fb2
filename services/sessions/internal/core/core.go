// Package core is the sessions service's domain: it opens a session for the
// first message of a conversation, keeps the transcript, follows the task
// through distribution, carries agents' commands out, and ends sessions.
// Every change is made durable first and then pushed to the agent's sockets.
package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	chatv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/chat/v1"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"
	workflowv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/workflow/v1"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/ids"
	"github.com/switchboard-cc/switchboard/pkg/segments"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/pkg/telemetry"
	"github.com/switchboard-cc/switchboard/services/sessions/internal/protocol"
	"github.com/switchboard-cc/switchboard/services/sessions/internal/store"
)

// Errors agent commands return; the gateway maps them to protocol codes.
var (
	ErrInvalid     = errors.New("invalid")
	ErrNotFound    = errors.New("not found")
	ErrForbidden   = errors.New("forbidden")
	ErrConflict    = errors.New("conflict")
	ErrUnavailable = errors.New("unavailable")
	// ErrParked: a reply to a parked chat (resume it first).
	ErrParked = fmt.Errorf("%w: the chat is parked", ErrConflict)
)

// MaxBodyRunes is Twilio's limit for one message body.
const MaxBodyRunes = 1600

// Emitter publishes one event under a dedupe id.
type Emitter interface {
	Emit(ctx context.Context, subject string, event proto.Message, msgID string) error
}

// Pusher delivers a frame to every socket of an agent, on any replica.
type Pusher interface {
	// The frame's span continues the trace of ctx.
	Push(ctx context.Context, tenant, agentID string, frame []byte)
	// PushSession sends a session's frame to the supervisors monitoring it.
	PushSession(ctx context.Context, tenant, sessionID string, frame []byte)
}

// Agent is the authenticated user behind a socket.
type Agent struct {
	Tenant      string
	ID          string
	DisplayName string
	// IsAgent: the user takes chats (role agent with an IM license);
	// Supervisor: they may watch the tenant's queues and chats.
	IsAgent, Supervisor bool
}

// Core holds the sessions domain.
type Core struct {
	store *store.Store
	pub   Emitter
	push  Pusher
	dist  distributionv1.DistributionServiceClient
	// outbound answers what may be sent to a customer (opt-out, WhatsApp
	// window); nil when not configured.
	outbound outboundv1.OutboundServiceClient
	// publicURL: where Twilio fetches agents' attachments (SetPublicURL).
	publicURL string
	// services lists the tenant's services and their wrap-up codes; nil
	// when not configured (SetServices).
	services configv1.ServiceServiceClient
	tenants  configv1.TenantServiceClient
	// lookup lists the tenant's messaging entries for conversations agents
	// start (start.go); nil when not configured (SetLookup).
	lookup configv1.LookupServiceClient
	log    *slog.Logger
	tracer trace.Tracer
	now    func() time.Time
	// convs: conversation → active session, a hint checked by the session
	// read (convcache.go).
	convs *convCache
	// life bounds background work; finishing holds the interrupted ends
	// being retried (tenant/session).
	life      context.Context
	finishing sync.Map
}

// convCacheSize bounds the conversations remembered (about 100 bytes each).
const convCacheSize = 200_000

// New returns the domain. out may be nil: replies are then not checked
// before they are requested (outbound-sender still refuses what it must).
func New(st *store.Store, pub Emitter, push Pusher, dist distributionv1.DistributionServiceClient, out outboundv1.OutboundServiceClient, log *slog.Logger) *Core {
	c := &Core{store: st, pub: pub, push: push, dist: dist, outbound: out, log: log, now: time.Now, convs: newConvCache(convCacheSize), life: context.Background()}
	c.SetTracing(otel.GetTracerProvider())
	return c
}

// SetTracing sets where the domain's spans go (the global provider until
// set).
func (c *Core) SetTracing(tp trace.TracerProvider) {
	c.tracer = tp.Tracer("github.com/switchboard-cc/switchboard/services/sessions")
}

// ConversationKey identifies a customer conversation: the Conversations
// conversation, or the (business number, customer) pair.
func ConversationKey(c *messagingv1.ConversationRef) string {
	if c.GetPath() == messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS && c.GetConversationSid() != "" {
		return "c:" + c.GetConversationSid()
	}
	return "m:" + c.GetBusinessAddress() + "|" + c.GetCustomerAddress()
}

func toStore(c *messagingv1.ConversationRef) store.Conversation {
	path := "messaging"
	if c.GetPath() == messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS {
		path = "conversations"
	}
	return store.Conversation{
		Channel: protocol.ChannelName(c.GetChannel()), Path: path,
		Customer: c.GetCustomerAddress(), Business: c.GetBusinessAddress(),
		ChatServiceSID: c.GetChatServiceSid(), ConversationSID: c.GetConversationSid(),
		MessagingServiceSID: c.GetMessagingServiceSid(),
	}
}

// FromStore converts back to the proto form.
func FromStore(c store.Conversation) *messagingv1.ConversationRef {
	ref := &messagingv1.ConversationRef{
		CustomerAddress: c.Customer, BusinessAddress: c.Business,
		ChatServiceSid: c.ChatServiceSID, ConversationSid: c.ConversationSID,
		MessagingServiceSid: c.MessagingServiceSID,
		Path:                messagingv1.TwilioPath_TWILIO_PATH_MESSAGING,
	}
	if c.Path == "conversations" {
		ref.Path = messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS
	}
	switch c.Channel {
	case "sms":
		ref.Channel = messagingv1.Channel_CHANNEL_SMS
	case "whatsapp":
		ref.Channel = messagingv1.Channel_CHANNEL_WHATSAPP
	}
	return ref
}

// ChatKey orders the CHAT stream per customer conversation: messages of
// one conversation are handled in order, different conversations at once.
func ChatKey(m *bus.Message) (string, error) {
	switch m.Kind() {
	case subjects.KindChatMessageReceived:
		var ev chatv1.MessageReceived
		if err := m.Decode(&ev); err != nil {
			return "", err
		}
		return ev.GetTenantId() + "/" + ConversationKey(ev.GetConversation()), nil
	case subjects.KindChatConversationStateUpdated:
		var ev chatv1.ConversationStateUpdated
		if err := m.Decode(&ev); err != nil {
			return "", err
		}
		ref := &messagingv1.ConversationRef{Path: messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS, ConversationSid: ev.GetConversationSid()}
		return ev.GetTenantId() + "/" + ConversationKey(ref), nil
	}
	return m.Subject, nil
}

// OutboundKey orders the outbound events sessions follows: a message's
// request and statuses by their session; a contact's consent and window
// changes by their conversation (they name no session, and keying them by
// subject would put every contact of a tenant in one lane behind each
// other).
func OutboundKey(m *bus.Message) (string, error) {
	if m.Kind() == subjects.KindOutboundContactUpdated {
		var ev outboundv1.OutboundContactUpdated
		if err := m.Decode(&ev); err != nil {
			return "", err
		}
		return ev.GetTenantId() + "/" + ConversationKey(ev.GetConversation()), nil
	}
	return byOutboundSession(m)
}

var byOutboundSession = bus.KeyByField("session_id")

// HandleChat follows the CHAT stream: customer messages, and conversations
// Twilio closed.
func (c *Core) HandleChat(ctx context.Context, m *bus.Message) error {
	switch m.Kind() {
	case subjects.KindChatMessageReceived:
		return c.handleInbound(ctx, m)
	case subjects.KindChatConversationStateUpdated:
		var ev chatv1.ConversationStateUpdated
		if err := m.Decode(&ev); err != nil {
			return err
		}
		if ev.GetStateTo() != chatv1.ConversationState_CONVERSATION_STATE_CLOSED || ev.GetConversationSid() == "" {
			return nil
		}
		return c.conversationClosed(ctx, &ev)
	}
	return nil
}

// conversationClosed ends the session bound to a conversation Twilio closed
// (its inactivity timers, or the API): no reply can reach the customer in
// it any more, and the customer's next message opens a new conversation.
func (c *Core) conversationClosed(ctx context.Context, ev *chatv1.ConversationStateUpdated) error {
	ref := &messagingv1.ConversationRef{Path: messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS, ConversationSid: ev.GetConversationSid()}
	id, err := c.store.ActiveSession(ctx, ev.GetTenantId(), ConversationKey(ref))
	if err != nil || id == "" {
		return err
	}
	sess, err := c.store.Session(ctx, ev.GetTenantId(), id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
	outcome := sessionv1.Outcome_OUTCOME_NOT_HANDLED
	if sess.AgentID != "" {
		outcome = sessionv1.Outcome_OUTCOME_HANDLED
	}
	reason := "conversation closed by Twilio"
	if r := ev.GetReason(); r != "" {
		reason += " (" + strings.ToLower(r) + ")"
	}
	return c.end(ctx, ev.GetTenantId(), id, outcome, reason)
}

// handleInbound attributes a customer message to its session, opening one
// for the first message of a conversation.
func (c *Core) handleInbound(ctx context.Context, m *bus.Message) error {
	var ev chatv1.MessageReceived
	if err := m.Decode(&ev); err != nil {
		return err
	}
	if ev.GetMessageSid() == "" || ev.GetTenantId() != m.Tenant() || ev.GetConversation() == nil {
		return bus.Permanentf("inbound message on %s lacks a SID or conversation, or names another tenant", m.Subject)
	}
	tenant, sid := ev.GetTenantId(), ev.GetMessageSid()
	sess, err := c.cachedSession(ctx, tenant, ConversationKey(ev.GetConversation()))
	if err != nil {
		return err
	}
	if sess != nil {
		// The conversation's session is known and active: claim at once. A
		// message never seen (nearly all) costs the insert alone; one seen
		// before finds its claim, and the session that claim names wins.
		claim, err := c.store.ClaimInbound(ctx, tenant, sid, sess.ID)
		if err != nil {
			return err
		}
		if claim.Done {
			return nil
		}
		if claim.SessionID != sess.ID {
			if sess, err = c.store.Session(ctx, tenant, claim.SessionID); err != nil {
				return err
			}
		}
	} else {
		// A message seen and fully processed before (a Twilio retry hours
		// later, past JetStream's dedupe window) is dropped here, before a
		// session could be opened for it.
		seen, err := c.store.InboundSeen(ctx, tenant, sid)
		if err != nil {
			return err
		}
		if seen != nil && seen.Done {
			return nil
		}
		if seen != nil {
			// An earlier delivery chose the session and stopped part way.
			if sess, err = c.store.Session(ctx, tenant, seen.SessionID); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		if sess == nil {
			if sess, err = c.sessionFor(ctx, &ev); err != nil {
				return err
			}
			claim, err := c.store.ClaimInbound(ctx, tenant, sid, sess.ID)
			if err != nil {
				return err
			}
			if claim.SessionID != sess.ID {
				if sess, err = c.store.Session(ctx, tenant, claim.SessionID); err != nil {
					return err
				}
			}
		}
	}
	at := ev.GetReceivedAt().AsTime()
	if ev.GetReceivedAt() == nil {
		at = c.now()
	}
	msg := &store.Message{
		Tenant: ev.GetTenantId(), ID: ev.GetMessageSid(), Direction: "inbound", Sender: "customer",
		Body: ev.GetBody(), At: at,
	}
	media := safeMedia(ev.GetMedia())
	if n := len(ev.GetMedia()) - len(media); n > 0 {
		c.log.WarnContext(ctx, "inbound media dropped: not an http(s) URL", "tenant", ev.GetTenantId(), "message_sid", ev.GetMessageSid(), "dropped", n)
	}
	for _, md := range media {
		msg.Media = append(msg.Media, storedMedia(md, ev.GetConversation().GetChatServiceSid()))
	}
	// A message goes to its conversation's active session. One whose
	// session has ended by the time it is handled (held up by an outage
	// past the agent's end, or the end landing between the read and the
	// append) goes to the conversation's next session, where someone sees
	// it, rather than into a chat no one will open again. The session is
	// read again after the append for that, and for its agent now.
	for moves := 0; ; moves++ {
		if sess.State != store.StateActive && moves < 3 {
			if sess, err = c.moveToNext(ctx, &ev, sess); err != nil {
				return err
			}
		}
		if sess.FirstMessageSID == ev.GetMessageSid() {
			// The customer's history names the session (once, whatever the
			// redeliveries), so their next chats can show this one.
			if err := c.store.RecordHistory(ctx, sess.Tenant, sess.Conversation.Customer, store.HistoryEntry{
				SessionID: sess.ID, StartedAt: sess.StartedAt, Channel: sess.Conversation.Channel,
			}); err != nil {
				return err
			}
			// Before the message's event: consumers see a session start first.
			if err := c.pub.Emit(ctx, subjects.SessionStarted(sess.Tenant), &sessionv1.SessionStarted{
				TenantId: sess.Tenant, SessionId: sess.ID, ServiceId: sess.ServiceID, EntryId: sess.EntryID,
				Conversation: ev.GetConversation(), FirstMessageSid: ev.GetMessageSid(),
				CustomerName: sess.CustomerName, StartedAt: timestamppb.New(sess.StartedAt),
			}, sess.ID+":started"); err != nil {
				return err
			}
		}
		// Whether the transcript already had the message does not tell
		// whether the agent was shown it: an earlier delivery may have
		// appended it and then failed before the frame (its
		// session.message.added publish refused while the SESSION stream's
		// leader was gone, or the append's PubAck lost), and the message is
		// not done until this delivery marks it so. Every delivery that gets
		// here pushes the frame (the console ignores a message it already
		// has); a message done before returned above.
		if _, err := c.addAndAnnounce(ctx, sess, msg, media); err != nil {
			return err
		}
		// An agent who accepted the session since it was read may have
		// loaded the transcript before this message was in it: the record,
		// read now that it is, names who to show it to.
		now, err := c.store.Session(ctx, sess.Tenant, sess.ID)
		if err != nil {
			return err
		}
		if now.State == store.StateActive || moves >= 3 {
			c.toSession(ctx, sess.Tenant, sess.ID, now.AgentID, protocol.Frame(protocol.TypeMessageAdded, map[string]any{
				"session_id": sess.ID, "message": messageView(msg),
			}))
			return c.store.InboundDone(ctx, ev.GetTenantId(), ev.GetMessageSid())
		}
		sess = now
	}
}

// addAndAnnounce appends a message to the transcript and publishes its
// session.message.added at once, and waits for both (two streams, so the
// two fsyncs overlap); it reports whether the transcript did not have it.
// Each publish is deduplicated, so a redelivery after a partial failure
// completes the pair.
func (c *Core) addAndAnnounce(ctx context.Context, sess *store.Session, msg *store.Message, media []*messagingv1.Media) (bool, error) {
	announced := make(chan error, 1)
	view := *msg
	go func() { announced <- c.emitMessageAdded(ctx, sess, &view, media) }()
	added, aerr := c.store.AddMessage(ctx, sess.ID, msg)
	if err := <-announced; err != nil {
		return false, err
	}
	return added, aerr
}

// moveToNext moves a message whose session has ended before it was shown
// to the conversation's next session (opened if need be), and returns that
// session; if another delivery moved it first, where it went wins. The
// ended chat's transcript may keep a copy (appended before the end was
// seen); its agent was not shown it.
func (c *Core) moveToNext(ctx context.Context, ev *chatv1.MessageReceived, ended *store.Session) (*store.Session, error) {
	next, err := c.sessionFor(ctx, ev)
	if err != nil {
		return nil, err
	}
	claim, err := c.store.MoveInbound(ctx, ev.GetTenantId(), ev.GetMessageSid(), ended.ID, next.ID)
	if err != nil {
		return nil, err
	}
	if claim.SessionID != next.ID && claim.SessionID != ended.ID {
		return c.store.Session(ctx, ev.GetTenantId(), claim.SessionID)
	}
	c.log.InfoContext(ctx, "a message whose session ended before it was shown goes to the conversation's next session",
		"tenant", ev.GetTenantId(), "message_sid", ev.GetMessageSid(), "ended", ended.ID, "session_id", next.ID)
	return next, nil
}

// cachedSession returns the active session of a conversation this replica
// remembers, read by _id; nil when none is remembered or it has ended
// since (the entry is then dropped). Not the state bucket's watched copy:
// it can show a session active for a while after another replica ended
// it (the watch lags while a NATS node is down), and the customer's next
// message would go into the ended chat, seen by no one, instead of
// opening a new one.
func (c *Core) cachedSession(ctx context.Context, tenant, key string) (*store.Session, error) {
	id := c.convs.get(tenant, key)
	if id == "" {
		return nil, nil
	}
	sess, err := c.store.Session(ctx, tenant, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, err
	case sess.State == store.StateActive:
		return sess, nil
	}
	c.convs.drop(tenant, key, id)
	return nil, nil
}

// session returns a session as the state bucket's watch last showed it
// when it is active there, else as stored: for the steps that need only
// who the customer is and which agent has the chat, not a fresh read.
func (c *Core) session(ctx context.Context, tenant, id string) (*store.Session, error) {
	if sess := c.store.WatchedSession(tenant, id); sess != nil {
		return sess, nil
	}
	return c.store.Session(ctx, tenant, id)
}

// sessionFor finds the active session of the message's conversation or
// opens one. Crash-safe: the conversation pointer is claimed first, and a
// pointer whose session record is missing gets it created by the retry.
func (c *Core) sessionFor(ctx context.Context, ev *chatv1.MessageReceived) (*store.Session, error) {
	tenant, key := ev.GetTenantId(), ConversationKey(ev.GetConversation())
	for attempt := 0; attempt < 3; attempt++ {
		id, err := c.store.ActiveSession(ctx, tenant, key)
		if err != nil {
			return nil, err
		}
		fresh := false // the pointer was claimed for a new id just now
		if id == "" {
			newID := ids.New("ss_")
			if id, err = c.store.ClaimActive(ctx, tenant, key, newID); err != nil {
				return nil, err
			}
			fresh = id == newID
		}
		var sess *store.Session
		if !fresh { // no session can have an id made here
			sess, err = c.store.Session(ctx, tenant, id)
		}
		if fresh || errors.Is(err, store.ErrNotFound) {
			sess = &store.Session{
				Tenant: tenant, ID: id, ServiceID: ev.GetServiceId(), EntryID: ev.GetEntryId(),
				Conversation: toStore(ev.GetConversation()), ConversationKey: key,
				CustomerName: ev.GetProfileName(), FirstMessageSID: ev.GetMessageSid(),
				State: store.StateActive, StartedAt: c.now(), Trace: telemetry.TraceParent(ctx),
			}
			// Another delivery may have created it first: what won.
			if sess, err = c.store.OpenSession(ctx, sess); err != nil {
				return nil, err
			}
			c.convs.put(tenant, key, id)
			return sess, nil
		}
		if err != nil {
			return nil, err
		}
		if sess.State == store.StateActive {
			c.convs.put(tenant, key, id)
			return sess, nil
		}
		// The pointer outlived its session (a crash while ending): drop it
		// and open a new session.
		if err := c.store.ReleaseActive(ctx, tenant, key, id); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("no active session for conversation %s after retries", key)
}

func (c *Core) emitMessageAdded(ctx context.Context, sess *store.Session, msg *store.Message, media []*messagingv1.Media) error {
	dir := sessionv1.Direction_DIRECTION_OUTBOUND
	if msg.Direction == "inbound" {
		dir = sessionv1.Direction_DIRECTION_INBOUND
	}
	sender := map[string]sessionv1.SenderKind{
		"customer": sessionv1.SenderKind_SENDER_KIND_CUSTOMER,
		"agent":    sessionv1.SenderKind_SENDER_KIND_AGENT,
		"workflow": sessionv1.SenderKind_SENDER_KIND_WORKFLOW,
	}[msg.Sender]
	return c.pub.Emit(ctx, subjects.SessionMessageAdded(sess.Tenant), &sessionv1.MessageAdded{
		TenantId: sess.Tenant, SessionId: sess.ID, MessageId: msg.ID, Direction: dir, Sender: sender,
		AgentId: msg.AgentID, Body: msg.Body, Media: media, OccurredAt: timestamppb.New(msg.At),
		NumSegments: inboundSegments(sess, msg),
	}, sess.ID+":"+msg.ID+":added")
}

// messageCounts counts the ended session's transcript as its
// session.message.added events did, one by one: customer messages (and
// their segments) and messages to the customer; internal entries are
// neither. SessionEnded carries them, so reporting counts each message
// once without keeping every id. A transcript too long for one read
// (store.MaxTranscript) is not counted here (nil): reporting keeps its
// own count of such a session.
func (c *Core) messageCounts(ctx context.Context, sess *store.Session) (*sessionv1.MessageCounts, error) {
	msgs, err := c.store.Transcript(ctx, sess.Tenant, sess.ID)
	if err != nil {
		return nil, fmt.Errorf("count the messages of session %s: %w", sess.ID, err)
	}
	if len(msgs) >= store.MaxTranscript {
		return nil, nil
	}
	n := &sessionv1.MessageCounts{}
	for _, m := range msgs {
		switch m.Direction {
		case "inbound":
			n.Inbound++
			n.SegmentsIn += int64(inboundSegments(sess, m))
		case "outbound":
			n.Outbound++
		}
	}
	return n, nil
}

// inboundSegments is what Twilio bills for a customer's message: its
// body's SMS segments (at least one: a media-only message is one), one
// on WhatsApp; 0 for the other entries (outbound ones are counted by
// outbound.message.sent).
func inboundSegments(sess *store.Session, msg *store.Message) int32 {
	switch {
	case msg.Direction != "inbound":
		return 0
	case sess.Conversation.Channel == "sms":
		return int32(max(segments.Segments(msg.Body), 1))
	}
	return 1
}

func messageView(m *store.Message) *protocol.Message {
	v := &protocol.Message{
		ID: m.ID, Direction: m.Direction, Sender: m.Sender, AgentID: m.AgentID, Body: m.Body, At: m.At,
		Status: m.Status, ErrorCode: m.ErrorCode, ErrorMessage: m.ErrorMessage, Reason: m.Reason, ResendOf: m.ResendOf,
		Visibility: m.Visibility, ContentSID: m.ContentSID,
	}
	for _, md := range m.Media {
		if md.URL != "" && !SafeMediaURL(md.URL) {
			continue // stored before the store checked
		}
		v.Media = append(v.Media, protocol.Media{URL: md.URL, ContentType: md.ContentType})
	}
	return v
}

func sessionView(s *store.Session, msgs []*store.Message) *protocol.Session {
	v := &protocol.Session{
		SessionID: s.ID, ServiceID: s.ServiceID, ServiceName: s.ServiceName, Channel: s.Conversation.Channel, Attachments: attachmentTypes[s.Conversation.Channel] != nil,
		Customer: s.Conversation.Customer, CustomerName: s.CustomerName, State: s.State, StartedAt: s.StartedAt,
		Parked: s.Parked, Messages: []*protocol.Message{}, Parameters: s.Parameters,
	}
	if s.State != store.StateActive {
		v.Outcome = outcomeName(sessionv1.Outcome(sessionv1.Outcome_value[s.Outcome]))
	}
	for _, m := range msgs {
		if m.Visibility == store.VisibleToSupervisors {
			continue // the audit trail is not the agent's
		}
		v.Messages = append(v.Messages, messageView(m))
	}
	return v
}

// supervisorView is a session as a supervisor sees it: every transcript
// entry, the audit trail too, and who handles it.
func supervisorView(s *store.Session, msgs []*store.Message) *protocol.Session {
	v := sessionView(s, nil)
	for _, m := range msgs {
		v.Messages = append(v.Messages, messageView(m))
	}
	v.AgentID = s.AgentID
	return v
}

// OfferView is the card for an offer.
func OfferView(o *distributionv1.Offer) *protocol.Offer {
	return &protocol.Offer{
		OfferID: o.GetOfferId(), TaskID: o.GetTaskId(), SessionID: o.GetSessionId(), ServiceID: o.GetServiceId(),
		ServiceName: o.GetServiceName(), Channel: protocol.ChannelName(o.GetConversation().GetChannel()),
		Customer: o.GetConversation().GetCustomerAddress(), CustomerName: o.GetCustomerName(),
		ExpiresAt: o.GetExpiresAt().AsTime(), Parameters: o.GetParameters(),
	}
}

// HandleDistribution follows a task: offers and their answers go to the
// agent, acceptance assigns the session.
func (c *Core) HandleDistribution(ctx context.Context, m *bus.Message) error {
	switch m.Kind() {
	case subjects.KindTaskOffered:
		var ev distributionv1.TaskOffered
		if err := m.Decode(&ev); err != nil {
			return err
		}
		// The session keeps what the workflow collected: the chat shows it
		// once the agent accepts, and after a reconnect.
		if err := c.store.SetOffered(ctx, ev.GetTenantId(), ev.GetSessionId(), ev.GetServiceName(), ev.GetParameters()); err != nil {
			return err
		}
		offer := OfferView(&distributionv1.Offer{
			OfferId: ev.GetOfferId(), TaskId: ev.GetTaskId(), SessionId: ev.GetSessionId(), ServiceId: ev.GetServiceId(),
			ServiceName: ev.GetServiceName(), Conversation: ev.GetConversation(), CustomerName: ev.GetCustomerName(),
			ExpiresAt: ev.GetExpiresAt(), Parameters: ev.GetParameters(),
		})
		offer.Note, offer.TransferredBy = ev.GetNote(), ev.GetTransferredBy()
		c.preview(ctx, ev.GetTenantId(), ev.GetSessionId(), offer)
		c.push.Push(ctx, ev.GetTenantId(), ev.GetAgentId(), protocol.Frame(protocol.TypeOfferCreated, offer))
	case subjects.KindTaskAccepted:
		var ev distributionv1.TaskAccepted
		if err := m.Decode(&ev); err != nil {
			return err
		}
		err := c.assigned(ctx, &ev)
		if errors.Is(err, errSessionNotYet) && !m.Stored.IsZero() && c.now().Sub(m.Stored) >= openWait {
			return bus.Permanentf("task %s accepted for unknown session %s", ev.GetTaskId(), ev.GetSessionId())
		}
		return err // errSessionNotYet is redelivered: a session an agent starts opens just after its task
	case subjects.KindTaskDeclined:
		var ev distributionv1.TaskDeclined
		if err := m.Decode(&ev); err != nil {
			return err
		}
		c.revoke(ctx, ev.GetTenantId(), ev.GetAgentId(), ev.GetOfferId(), ev.GetTaskId(), "declined")
	case subjects.KindTaskOfferTimedOut:
		var ev distributionv1.TaskOfferTimedOut
		if err := m.Decode(&ev); err != nil {
			return err
		}
		c.revoke(ctx, ev.GetTenantId(), ev.GetAgentId(), ev.GetOfferId(), ev.GetTaskId(), "timed_out")
		c.push.Push(ctx, ev.GetTenantId(), ev.GetAgentId(), protocol.Frame(protocol.TypePresence, map[string]any{"presence": "available", "rona": true}))
	case subjects.KindTaskCanceled:
		var ev distributionv1.TaskCanceled
		if err := m.Decode(&ev); err != nil {
			return err
		}
		if ev.GetAgentId() != "" {
			c.revoke(ctx, ev.GetTenantId(), ev.GetAgentId(), ev.GetOfferId(), ev.GetTaskId(), "canceled")
		}
	case subjects.KindTaskTransferred:
		var ev distributionv1.TaskTransferred
		if err := m.Decode(&ev); err != nil {
			return err
		}
		return c.transferred(ctx, &ev)
	case subjects.KindTaskParked:
		var ev distributionv1.TaskParked
		if err := m.Decode(&ev); err != nil {
			return err
		}
		return c.parked(ctx, ev.GetTenantId(), ev.GetSessionId(), ev.GetTaskId(), ev.GetAgentId(), ev.GetParkedBy(), true)
	case subjects.KindTaskResumed:
		var ev distributionv1.TaskResumed
		if err := m.Decode(&ev); err != nil {
			return err
		}
		return c.parked(ctx, ev.GetTenantId(), ev.GetSessionId(), ev.GetTaskId(), ev.GetAgentId(), ev.GetResumedBy(), false)
	case subjects.KindTaskWrapUpStarted:
		var ev distributionv1.TaskWrapUpStarted
		if err := m.Decode(&ev); err != nil {
			return err
		}
		c.push.Push(ctx, ev.GetTenantId(), ev.GetAgentId(), protocol.Frame(protocol.TypeWrapUpStarted,
			c.wrapUpView(ctx, ev.GetTenantId(), ev.GetTaskId(), ev.GetSessionId(), ev.GetServiceId(), ev.GetEndsAt().AsTime())))
	case subjects.KindTaskWrapUpEnded:
		var ev distributionv1.TaskWrapUpEnded
		if err := m.Decode(&ev); err != nil {
			return err
		}
		c.push.Push(ctx, ev.GetTenantId(), ev.GetAgentId(), protocol.Frame(protocol.TypeWrapUpEnded, map[string]any{
			"task_id": ev.GetTaskId(), "session_id": ev.GetSessionId(), "submitted": ev.GetSubmitted(),
		}))
	}
	return nil
}

// previewRunes bounds an offer's preview of the customer's first message;
// previewTimeout bounds reading it (the offer must not wait on it).
const (
	previewRunes   = 160
	previewTimeout = 2 * time.Second
)

// preview adds the customer's first message and the session's start to an
// offer card; an offer goes out without them if they cannot be read.
func (c *Core) preview(ctx context.Context, tenant, sessionID string, o *protocol.Offer) {
	ctx, cancel := context.WithTimeout(ctx, previewTimeout)
	defer cancel()
	if sess, err := c.store.Session(ctx, tenant, sessionID); err == nil && !sess.StartedAt.IsZero() {
		t := sess.StartedAt
		o.WaitingSince = &t
	}
	body, err := c.store.FirstCustomerMessage(ctx, tenant, sessionID)
	if err != nil {
		c.log.DebugContext(ctx, "offer preview unavailable", "tenant", tenant, "session_id", sessionID, "err", err)
		return
	}
	if r := []rune(body); len(r) > previewRunes {
		body = string(r[:previewRunes-1]) + "…"
	}
	o.Preview = body
}

// toSession sends a session's frame to its agent, if it has one, and to
// the supervisors monitoring it.
func (c *Core) toSession(ctx context.Context, tenant, sessionID, agentID string, frame []byte) {
	if agentID != "" {
		c.push.Push(ctx, tenant, agentID, frame)
	}
	c.push.PushSession(ctx, tenant, sessionID, frame)
}

func (c *Core) revoke(ctx context.Context, tenant, agent, offerID, taskID, reason string) {
	c.push.Push(ctx, tenant, agent, protocol.Frame(protocol.TypeOfferRevoked, map[string]string{
		"offer_id": offerID, "task_id": taskID, "reason": reason,
	}))
}

// errSessionNotYet: an acceptance of a session not opened (yet). The task
// of a conversation an agent starts is created, and its TaskAccepted
// published, just before the session opens (start.go), so the event is
// redelivered for up to openWait before it counts as an acceptance of an
// unknown session.
var errSessionNotYet = errors.New("session not opened")

const openWait = 2 * time.Minute

func (c *Core) assigned(ctx context.Context, ev *distributionv1.TaskAccepted) error {
	at := ev.GetAcceptedAt().AsTime()
	if err := c.store.Assign(ctx, ev.GetTenantId(), ev.GetSessionId(), ev.GetAgentId(), ev.GetTaskId(), at); err != nil {
		return err
	}
	sess, err := c.store.Session(ctx, ev.GetTenantId(), ev.GetSessionId())
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: task %s accepted for session %s", errSessionNotYet, ev.GetTaskId(), ev.GetSessionId())
	}
	if err != nil {
		return err
	}
	// The accepting agent's other sockets drop the card too.
	c.revoke(ctx, ev.GetTenantId(), ev.GetAgentId(), ev.GetOfferId(), ev.GetTaskId(), "accepted")
	if sess.State != store.StateActive {
		// The session ended while its offer was open (Assign left it
		// alone): the agent is told it ended, not given a chat they
		// cannot answer or end. Distribution completes the task on the
		// session's end.
		c.push.Push(ctx, ev.GetTenantId(), ev.GetAgentId(), endedFrame(sess))
		return nil
	}
	if sess.AgentID != ev.GetAgentId() {
		// Moved on since (transferred, or this is a stale acceptance
		// redelivered): not this agent's chat, so not on their desk.
		c.log.InfoContext(ctx, "acceptance of a session now another agent's, or no one's: not shown",
			"tenant", ev.GetTenantId(), "session_id", sess.ID, "accepted_by", ev.GetAgentId(), "agent_id", sess.AgentID)
		return nil
	}
	msgs, err := c.store.Transcript(ctx, sess.Tenant, sess.ID)
	if err != nil {
		return err
	}
	view := sessionView(sess, msgs)
	view.Compliance = c.compliance(ctx, sess)
	c.push.Push(ctx, ev.GetTenantId(), ev.GetAgentId(), protocol.Frame(protocol.TypeSessionAssigned, view))
	return nil
}

// HandleOutbound records outbound messages in the transcript and follows
// their delivery.
func (c *Core) HandleOutbound(ctx context.Context, m *bus.Message) error {
	switch m.Kind() {
	case subjects.KindOutboundRequested:
		var ev outboundv1.OutboundMessageRequested
		if err := m.Decode(&ev); err != nil {
			return err
		}
		return c.outboundRequested(ctx, &ev)
	case subjects.KindOutboundSent:
		var ev outboundv1.OutboundMessageSent
		if err := m.Decode(&ev); err != nil {
			return err
		}
		return c.status(ctx, ev.GetTenantId(), ev.GetSessionId(), ev.GetRequestId(), protocol.StatusName(ev.GetStatus()), 0, "", ev.GetTwilioSid(), "")
	case subjects.KindOutboundFailed:
		var ev outboundv1.OutboundMessageFailed
		if err := m.Decode(&ev); err != nil {
			return err
		}
		return c.status(ctx, ev.GetTenantId(), ev.GetSessionId(), ev.GetRequestId(), "failed", ev.GetErrorCode(), ev.GetErrorMessage(), "", protocol.ReasonName(ev.GetReason()))
	case subjects.KindOutboundDeliveryUpdate:
		var ev outboundv1.OutboundDeliveryUpdated
		if err := m.Decode(&ev); err != nil {
			return err
		}
		reason := ""
		if ev.GetErrorCode() != 0 {
			reason = protocol.ReasonName(outboundv1.FailureReason_FAILURE_REASON_TWILIO)
		}
		return c.status(ctx, ev.GetTenantId(), ev.GetSessionId(), ev.GetRequestId(), protocol.StatusName(ev.GetStatus()), ev.GetErrorCode(), ev.GetErrorMessage(), ev.GetTwilioSid(), reason)
	case subjects.KindOutboundContactUpdated:
		var ev outboundv1.OutboundContactUpdated
		if err := m.Decode(&ev); err != nil {
			return err
		}
		return c.contactUpdated(ctx, &ev)
	}
	return nil
}

func (c *Core) outboundRequested(ctx context.Context, ev *outboundv1.OutboundMessageRequested) error {
	if ev.GetSessionId() == "" {
		return nil // not part of a session (e.g. a business-initiated send)
	}
	sess, err := c.session(ctx, ev.GetTenantId(), ev.GetSessionId())
	if errors.Is(err, store.ErrNotFound) {
		return bus.Permanentf("outbound request %s for unknown session %s", ev.GetRequestId(), ev.GetSessionId())
	}
	if err != nil {
		return err
	}
	sender := "workflow"
	if ev.GetOrigin() == outboundv1.Origin_ORIGIN_AGENT {
		sender = "agent"
		if strings.HasPrefix(ev.GetRequestId(), ev.GetSessionId()+"-sv-") {
			sender = "supervisor" // a supervisor barged in (Barge)
		}
	}
	msg := &store.Message{
		Tenant: ev.GetTenantId(), ID: ev.GetRequestId(), Direction: "outbound", Sender: sender,
		AgentID: ev.GetAgentId(), Body: ev.GetBody(), At: ev.GetRequestedAt().AsTime(), Status: "pending",
		ResendOf: ev.GetResendOf(), ContentSID: ev.GetContentSid(), ContentVariables: ev.GetContentVariables(),
	}
	for _, u := range ev.GetMediaUrls() {
		if SafeMediaURL(u) {
			msg.Media = append(msg.Media, store.Media{URL: u})
		}
	}
	// Pushed on every delivery, not only when the transcript did not have
	// it: a delivery that appended it and then failed before the frame
	// would leave the agent without it (the console keeps one copy of
	// each message id), as for a customer's message.
	if _, err := c.addAndAnnounce(ctx, sess, msg, nil); err != nil {
		return err
	}
	c.toSession(ctx, sess.Tenant, sess.ID, sess.AgentID, protocol.Frame(protocol.TypeMessageAdded, map[string]any{
		"session_id": sess.ID, "message": messageView(msg),
	}))
	return nil
}

func (c *Core) status(ctx context.Context, tenant, sessionID, messageID, st string, code int32, errMsg, sid, reason string) error {
	if sessionID == "" || messageID == "" {
		return nil
	}
	changed, err := c.store.UpdateStatus(ctx, tenant, sessionID, messageID, st, code, errMsg, sid, reason)
	if err != nil || !changed {
		return err
	}
	sess, err := c.session(ctx, tenant, sessionID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
	c.toSession(ctx, tenant, sessionID, sess.AgentID, protocol.Frame(protocol.TypeMessageStatus, protocol.MessageStatus{
		SessionID: sessionID, MessageID: messageID, Status: st, ErrorCode: code, ErrorMessage: errMsg, Reason: reason,
	}))
	return nil
}

// HandleWorkflow ends sessions whose workflow failed or disconnected them.
func (c *Core) HandleWorkflow(ctx context.Context, m *bus.Message) error {
	switch m.Kind() {
	case subjects.KindWorkflowFailed:
		var ev workflowv1.WorkflowFailed
		if err := m.Decode(&ev); err != nil {
			return err
		}
		reason := fmt.Sprintf("workflow failed at %s: %s", ev.GetActivity(), ev.GetReason())
		return c.endKnown(ctx, ev.GetTenantId(), ev.GetSessionId(), sessionv1.Outcome_OUTCOME_FAILED, reason)
	case subjects.KindWorkflowEndRequested:
		var ev workflowv1.SessionEndRequested
		if err := m.Decode(&ev); err != nil {
			return err
		}
		outcome, reason := sessionv1.Outcome_OUTCOME_NOT_HANDLED, fmt.Sprintf("disconnected by the workflow (%s)", ev.GetActivity())
		switch ev.GetCause() {
		case workflowv1.EndCause_END_CAUSE_INACTIVITY:
			outcome, reason = sessionv1.Outcome_OUTCOME_ABANDONED, fmt.Sprintf("the customer did not answer in time (waiting at %s)", ev.GetActivity())
		case workflowv1.EndCause_END_CAUSE_NO_AGENT:
			outcome, reason = sessionv1.Outcome_OUTCOME_NO_AGENT, fmt.Sprintf("no agent took the chat in time; disconnected by the workflow (%s)", ev.GetActivity())
		case workflowv1.EndCause_END_CAUSE_OUT_OF_HOURS:
			outcome, reason = sessionv1.Outcome_OUTCOME_OUT_OF_HOURS, fmt.Sprintf("outside opening hours; disconnected by the workflow (%s)", ev.GetActivity())
		}
		return c.endKnown(ctx, ev.GetTenantId(), ev.GetSessionId(), outcome, reason)
	}
	return nil
}

// endKnown ends a session named by an event; an unknown session is a
// permanent error (dead-lettered with the reason).
func (c *Core) endKnown(ctx context.Context, tenant, sessionID string, outcome sessionv1.Outcome, reason string) error {
	err := c.end(ctx, tenant, sessionID, outcome, reason)
	if errors.Is(err, ErrNotFound) {
		return bus.Permanent(err)
	}
	return err
}

// end ends a session (idempotent: ending an ended session re-announces it).
func (c *Core) end(ctx context.Context, tenant, sessionID string, outcome sessionv1.Outcome, reason string) error {
	sess, err := c.store.Session(ctx, tenant, sessionID)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: session %s", ErrNotFound, sessionID)
	}
	if err != nil {
		return err
	}
	// Called for an ended session too: a retry after a failure part way
	// through still clears what the first attempt left.
	ended, err := c.store.End(ctx, tenant, sessionID, outcome.String(), reason, c.now())
	if err != nil {
		return err
	}
	if ended {
		if sess, err = c.store.Session(ctx, tenant, sessionID); err != nil {
			return err
		}
	}
	c.convs.drop(tenant, sess.ConversationKey, sessionID)
	if err := c.store.ReleaseActive(ctx, tenant, sess.ConversationKey, sessionID); err != nil {
		return err
	}
	out := sessionv1.Outcome(sessionv1.Outcome_value[sess.Outcome])
	counts, err := c.messageCounts(ctx, sess)
	if err != nil {
		return err
	}
	if err := c.pub.Emit(ctx, subjects.SessionEnded(tenant), &sessionv1.SessionEnded{
		TenantId: tenant, SessionId: sessionID, Outcome: out, Reason: sess.EndReason,
		AgentId: sess.AgentID, ServiceId: sess.ServiceID, EndedAt: timestamppb.New(sess.EndedAt),
		Messages: counts,
	}, sessionID+":ended"); err != nil {
		return err
	}
	// Off the agent's list only once announced: until then the agent's
	// next snapshot finishes the end (Snapshot).
	if err := c.store.ReleaseAgent(ctx, tenant, sess.AgentID, sessionID); err != nil {
		return err
	}
	c.toSession(ctx, tenant, sessionID, sess.AgentID, endedFrame(sess))
	return nil
}

// endAsked ends a session an agent or a supervisor asked to end. If the end
// fails part way (the session may be ended in the store but not announced),
// it is retried in the background while the process runs, as well as by
// the asker's next attempt and the agent's next snapshot: distribution
// frees the agent's capacity only on the announcement.
func (c *Core) endAsked(ctx context.Context, tenant, sessionID string, outcome sessionv1.Outcome, reason string) error {
	err := c.end(ctx, tenant, sessionID, outcome, reason)
	if err == nil || errors.Is(err, ErrNotFound) {
		return err
	}
	key := tenant + "/" + sessionID
	if _, busy := c.finishing.LoadOrStore(key, true); !busy {
		go func() {
			defer c.finishing.Delete(key)
			c.finishEnd(tenant, sessionID, outcome, reason)
		}()
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// finishEnd retries an interrupted end for up to finishFor, backing off.
func (c *Core) finishEnd(tenant, sessionID string, outcome sessionv1.Outcome, reason string) {
	ctx, cancel := context.WithTimeout(c.life, finishFor)
	defer cancel()
	wait := time.Second
	for {
		select {
		case <-ctx.Done():
			c.log.Warn("an interrupted session end is left to the agent's next snapshot", "tenant", tenant, "session_id", sessionID)
			return
		case <-time.After(wait):
		}
		err := c.end(ctx, tenant, sessionID, outcome, reason)
		if err == nil || errors.Is(err, ErrNotFound) {
			return
		}
		c.log.Debug("retry an interrupted session end", "tenant", tenant, "session_id", sessionID, "err", err)
		wait = min(2*wait, 30*time.Second)
	}
}

// finishFor bounds the background retries of one interrupted end.
const finishFor = 10 * time.Minute

// SetLifetime bounds the domain's background work (finishing interrupted
// ends) to ctx; the default is the process's life.
func (c *Core) SetLifetime(ctx context.Context) { c.life = ctx }

// endedFrame tells a console an ended session's outcome.
func endedFrame(sess *store.Session) []byte {
	out := sessionv1.Outcome(sessionv1.Outcome_value[sess.Outcome])
	return protocol.Frame(protocol.TypeSessionEnded, map[string]string{
		"session_id": sess.ID, "outcome": outcomeName(out), "reason": sess.EndReason,
	})
}

func outcomeName(o sessionv1.Outcome) string {
	return strings.ToLower(strings.TrimPrefix(o.String(), "OUTCOME_"))
}

// Accept accepts an offer for the agent.
func (c *Core) Accept(ctx context.Context, a Agent, offerID string) (string, error) {
	if offerID == "" {
		return "", fmt.Errorf("%w: offer_id is required", ErrInvalid)
	}
	res, err := c.dist.AcceptTask(ctx, &distributionv1.AcceptTaskRequest{TenantId: a.Tenant, AgentId: a.ID, OfferId: offerID})
	if err != nil {
		return "", fromStatus(err)
	}
	return res.GetSessionId(), nil
}

// Decline declines an offer for the agent.
func (c *Core) Decline(ctx context.Context, a Agent, offerID string) error {
	if offerID == "" {
		return fmt.Errorf("%w: offer_id is required", ErrInvalid)
	}
	_, err := c.dist.DeclineTask(ctx, &distributionv1.DeclineTaskRequest{TenantId: a.Tenant, AgentId: a.ID, OfferId: offerID})
	return fromStatus(err)
}

// SetPresence sets the agent's presence.
func (c *Core) SetPresence(ctx context.Context, a Agent, p distributionv1.Presence) (*distributionv1.AgentState, error) {
	res, err := c.dist.SetAgentPresence(ctx, &distributionv1.SetAgentPresenceRequest{TenantId: a.Tenant, AgentId: a.ID, Presence: p})
	if err != nil {
		return nil, fromStatus(err)
	}
	return res.GetState(), nil
}

// ConsoleClosed tells distribution the agent's last console closed at
// closedAt: offline (with distribution's grace), unless their presence was
// set since.
func (c *Core) ConsoleClosed(ctx context.Context, a Agent, closedAt time.Time) (*distributionv1.AgentState, error) {
	res, err := c.dist.SetAgentPresence(ctx, &distributionv1.SetAgentPresenceRequest{TenantId: a.Tenant, AgentId: a.ID,
		Presence: distributionv1.Presence_PRESENCE_OFFLINE, ConsoleClosedAt: timestamppb.New(closedAt)})
	if err != nil {
		return nil, fromStatus(err)
	}
	return res.GetState(), nil
}

func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	msg := status.Convert(err).Message()
	switch status.Code(err) {
	case codes.FailedPrecondition, codes.ResourceExhausted, codes.AlreadyExists:
		return fmt.Errorf("%w: %s", ErrConflict, msg)
	case codes.PermissionDenied:
		return fmt.Errorf("%w: %s", ErrForbidden, msg)
	case codes.NotFound:
		return fmt.Errorf("%w: %s", ErrNotFound, msg)
	case codes.InvalidArgument:
		return fmt.Errorf("%w: %s", ErrInvalid, msg)
	default:
		return fmt.Errorf("%w: %s", ErrUnavailable, msg)
	}
}

// ownSession loads a session the agent handles, as stored (by _id), and
// checks the agent handles it.
func (c *Core) ownSession(ctx context.Context, a Agent, sessionID string) (*store.Session, error) {
	if sessionID == "" {
		return nil, fmt.Errorf("%w: session_id is required", ErrInvalid)
	}
	sess, err := c.store.Session(ctx, a.Tenant, sessionID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: session %s", ErrNotFound, sessionID)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if sess.AgentID != a.ID {
		return nil, fmt.Errorf("%w: session %s is not assigned to you", ErrForbidden, sessionID)
	}
	return sess, nil
}

// Send asks outbound-sender to deliver an agent's reply. The request id is
// derived from the client's message id, so a retried send is one message.
// mediaIDs name the agent's attachments uploaded in the chat (Attach);
// with them, the body may be empty.
func (c *Core) Send(ctx context.Context, a Agent, sessionID, body, clientMsgID string, mediaIDs ...string) (string, error) {
	if err := validClientMsgID(clientMsgID); err != nil {
		return "", err
	}
	if body != "" || len(mediaIDs) == 0 {
		if err := checkBody(body); err != nil {
			return "", err
		}
	}
	// The stored record, by _id, not the watched state: the console may
	// already hold the frame of an assignment, a park or a resume whose
	// write this replica's watch does not show yet, and a reply must
	// follow what the agent sees.
	sess, err := c.ownSession(ctx, a, sessionID)
	if err != nil {
		return "", err
	}
	if sess.Parked {
		return "", ErrParked
	}
	media, err := c.attachmentURLs(ctx, a, sess, mediaIDs)
	if err != nil {
		return "", err
	}
	return c.request(ctx, a, sess, clientMsgID, body, media, "")
}

// checkBody refuses a reply Twilio could not take.
func checkBody(body string) error {
	switch {
	case strings.TrimSpace(body) == "":
		return fmt.Errorf("%w: body is empty", ErrInvalid)
	case !utf8.ValidString(body):
		return fmt.Errorf("%w: body is not valid UTF-8", ErrInvalid)
	case utf8.RuneCountInString(body) > MaxBodyRunes:
		return fmt.Errorf("%w: body has %d characters, at most %d are allowed", ErrInvalid, utf8.RuneCountInString(body), MaxBodyRunes)
	}
	return nil
}

// Terminate ends a session the agent handles, as handled.
func (c *Core) Terminate(ctx context.Context, a Agent, sessionID string) error {
	if _, err := c.ownSession(ctx, a, sessionID); err != nil {
		return err
	}
	return c.endAsked(ctx, a.Tenant, sessionID, sessionv1.Outcome_OUTCOME_HANDLED, "terminated by agent")
}

// Dismiss takes one of the agent's ended chats off their desk: their
// next snapshot no longer shows it (dismissing one already gone changes
// nothing). A chat still active is a conflict, another agent's forbidden.
func (c *Core) Dismiss(ctx context.Context, a Agent, sessionID string) error {
	sess, err := c.ownSession(ctx, a, sessionID)
	if err != nil {
		return err
	}
	if sess.State == store.StateActive {
		return fmt.Errorf("%w: session %s is still active; end or transfer it first", ErrConflict, sessionID)
	}
	if err := c.store.DismissEnded(ctx, a.Tenant, a.ID, sessionID); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// Snapshot is what a newly connected socket shows: presence, open offers,
// the agent's active sessions and their recently ended ones not yet
// dismissed, with their transcripts.
func (c *Core) Snapshot(ctx context.Context, a Agent) ([]byte, error) {
	st, err := c.dist.GetAgentState(ctx, &distributionv1.GetAgentStateRequest{TenantId: a.Tenant, AgentId: a.ID})
	if err != nil {
		return nil, fromStatus(err)
	}
	desk, err := c.store.AgentSessions(ctx, a.Tenant, a.ID)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	// An end interrupted before it was announced is finished now; until it
	// is, distribution holds the agent's capacity for it.
	for _, s := range desk.Unannounced {
		if err := c.end(ctx, a.Tenant, s.ID, sessionv1.Outcome(sessionv1.Outcome_value[s.Outcome]), s.EndReason); err != nil && !errors.Is(err, ErrNotFound) {
			c.log.Warn("finish an interrupted session end", "tenant", a.Tenant, "session_id", s.ID, "err", err)
		}
	}
	// Each chat's transcript and compliance state load at once; the
	// agent's recently ended chats come after the active ones, with their
	// transcripts (a message that arrived just before the end is there
	// even if the socket missed its frame) until the agent dismisses them.
	sessions := append(desk.Active, desk.Ended...)
	views := make([]*protocol.Session, len(sessions))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, s := range sessions {
		g.Go(func() error {
			msgs, err := c.store.Transcript(gctx, a.Tenant, s.ID)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrUnavailable, err)
			}
			view := sessionView(s, msgs)
			if s.State == store.StateActive {
				view.Compliance = c.compliance(gctx, s)
			}
			views[i] = view
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	offers := []*protocol.Offer{}
	for _, o := range st.GetState().GetOffers() {
		v := OfferView(o)
		c.preview(ctx, a.Tenant, o.GetSessionId(), v)
		offers = append(offers, v)
	}
	return protocol.Frame(protocol.TypeSnapshot, map[string]any{
		"presence": PresenceName(st.GetState().GetPresence()), "rona": st.GetState().GetRona(),
		"offers": offers, "sessions": views, "wrapups": c.wrapUps(ctx, a.Tenant, st.GetState()),
	}), nil
}

// PresenceName is the protocol's name for a presence.
func PresenceName(p distributionv1.Presence) string {
	return strings.ToLower(strings.TrimPrefix(p.String(), "PRESENCE_"))
}

// AgentState returns distribution's view of the agent.
func (c *Core) AgentState(ctx context.Context, a Agent) (*distributionv1.AgentState, error) {
	res, err := c.dist.GetAgentState(ctx, &distributionv1.GetAgentStateRequest{TenantId: a.Tenant, AgentId: a.ID})
	if err != nil {
		return nil, fromStatus(err)
	}
	return res.GetState(), nil
}
