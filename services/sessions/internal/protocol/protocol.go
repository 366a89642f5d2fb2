// Package protocol defines the agent websocket protocol, version 1 (see
// services/sessions/PROTOCOL.md): the envelope, the message types and the
// JSON objects they carry.
package protocol

import (
	"encoding/json"
	"strings"
	"time"

	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"
)

// Version is the protocol version this server speaks.
const Version = 1

// MaxFrameBytes bounds one frame.
const MaxFrameBytes = 64 << 10

// Client frame types.
const (
	TypeAuth             = "auth"
	TypePresenceSet      = "presence.set"
	TypeOfferAccept      = "offer.accept"
	TypeOfferDecline     = "offer.decline"
	TypeMessageSend      = "message.send"
	TypeSessionTerminate = "session.terminate"
	TypePing             = "ping"
	// TypeMessageResend resends a failed outbound message as a new one.
	TypeMessageResend = "message.resend"
	// TypeMessageCount asks what a draft costs in SMS segments.
	TypeMessageCount = "message.count"
	// Desk: transfer a chat, the tenant's services to transfer to, and
	// the after-call work form's submission.
	TypeSessionTransfer = "session.transfer"
	// Park the agent's chat (set it aside; no replies until resumed) and
	// resume it.
	TypeSessionPark   = "session.park"
	TypeSessionResume = "session.resume"
	// Dismiss an ended chat from the agent's desk (a reconnect no longer
	// shows it).
	TypeSessionDismiss = "session.dismiss"
	TypeServicesList   = "services.list"
	TypeWrapUpSubmit   = "wrapup.submit"
	// An agent's internal note in their chat; the canned responses they
	// can insert in it.
	TypeNoteAdd    = "note.add"
	TypeCannedList = "canned.list"
	// The customer's earlier chats, and one of them with its transcript.
	TypeSessionHistory = "session.history"
	TypeSessionEarlier = "session.earlier"
	// The WhatsApp templates the agent may send in a chat (when its
	// 24-hour window has closed); message.send with content_sid sends one.
	TypeTemplateList = "template.list"
	// Business-initiated WhatsApp conversations: the entries an agent may
	// start one from, and the start (a template as the first message).
	TypeEntriesList       = "entries.list"
	TypeConversationStart = "conversation.start"
	// Supervisors (role supervisor): watch the tenant's queues and agents,
	// an agent's chats, monitor a chat, whisper to its agent, write to its
	// customer, end it, reset an agent's RONA flag.
	TypeSupervisorWatch     = "supervisor.watch"
	TypeSupervisorUnwatch   = "supervisor.unwatch"
	TypeSupervisorChats     = "supervisor.agent_chats"
	TypeSupervisorMonitor   = "supervisor.monitor"
	TypeSupervisorUnmonitor = "supervisor.unmonitor"
	TypeSupervisorWhisper   = "supervisor.whisper"
	TypeSupervisorBarge     = "supervisor.barge"
	TypeSupervisorEnd       = "supervisor.end"
	TypeSupervisorResetRona = "supervisor.reset_rona"
)

// ClientType reports whether typ is a client frame type this server
// knows: what a client sends may name anything, and only known types may
// name spans and metrics.
func ClientType(typ string) bool { return clientTypes[typ] }

var clientTypes = map[string]bool{
	TypeAuth: true, TypePresenceSet: true, TypeOfferAccept: true, TypeOfferDecline: true, TypeMessageSend: true,
	TypeSessionTerminate: true, TypePing: true, TypeMessageResend: true, TypeMessageCount: true, TypeSessionTransfer: true,
	TypeSessionPark: true, TypeSessionResume: true, TypeSessionDismiss: true, TypeServicesList: true, TypeWrapUpSubmit: true, TypeNoteAdd: true,
	TypeCannedList: true, TypeSessionHistory: true, TypeSessionEarlier: true, TypeTemplateList: true, TypeEntriesList: true,
	TypeConversationStart: true, TypeSupervisorWatch: true,
	TypeSupervisorUnwatch: true, TypeSupervisorChats: true, TypeSupervisorMonitor: true, TypeSupervisorUnmonitor: true,
	TypeSupervisorWhisper: true, TypeSupervisorBarge: true, TypeSupervisorEnd: true, TypeSupervisorResetRona: true,
}

// Server frame types.
const (
	TypeWelcome         = "welcome"
	TypeSnapshot        = "snapshot"
	TypeOfferCreated    = "offer.created"
	TypeOfferRevoked    = "offer.revoked"
	TypeSessionAssigned = "session.assigned"
	TypeMessageAdded    = "message.added"
	TypeMessageStatus   = "message.status"
	TypeSessionEnded    = "session.ended"
	TypePresence        = "presence"
	// TypeSessionCompliance: what may be sent to the session's customer
	// changed (opt-out, WhatsApp window).
	TypeSessionCompliance = "session.compliance"
	// A chat left the agent by transfer; after-call work began or ended.
	TypeSessionTransferred = "session.transferred"
	TypeWrapUpStarted      = "wrapup.started"
	TypeWrapUpEnded        = "wrapup.ended"
	// A chat was parked or resumed (by its agent, from any of their
	// consoles, or by a supervisor).
	TypeSessionParked  = "session.parked"
	TypeSessionResumed = "session.resumed"
	// Queues is a supervisor's live view of the tenant's queues and agents.
	TypeQueues = "queues"
	TypeAck    = "ack"
	TypeError  = "error"
)

// Error codes.
const (
	CodeBadFrame           = "bad_frame"
	CodeUnsupportedVersion = "unsupported_version"
	CodeUnknownType        = "unknown_type"
	CodeInvalid            = "invalid"
	CodeUnauthenticated    = "unauthenticated"
	CodeNotFound           = "not_found"
	CodeForbidden          = "forbidden"
	CodeConflict           = "conflict"
	CodeUnavailable        = "unavailable"
	// CodeOptedOut: the customer opted out (STOP); nothing may be sent
	// until they reply START.
	CodeOptedOut = "opted_out"
	// CodeWindowClosed: WhatsApp free-form text outside the customer's
	// 24-hour window.
	CodeWindowClosed = "window_closed"
)

// Envelope is every frame.
type Envelope struct {
	V    int             `json:"v"`
	Type string          `json:"type"`
	ID   string          `json:"id,omitempty"`
	Data json.RawMessage `json:"data,omitempty"`
}

// Frame builds a server frame.
func Frame(typ string, data any) []byte {
	raw, _ := json.Marshal(data)
	b, _ := json.Marshal(Envelope{V: Version, Type: typ, Data: raw})
	return b
}

// FrameType reads the type of a frame Frame built (its envelope starts
// with the version and the type), without decoding the rest; "" for
// another shape.
func FrameType(frame []byte) string {
	const prefix = `{"v":1,"type":"`
	if len(frame) <= len(prefix) || string(frame[:len(prefix)]) != prefix {
		return ""
	}
	rest := frame[len(prefix):]
	for i, b := range rest {
		if b == '"' {
			return string(rest[:i])
		}
	}
	return ""
}

// Ack answers a client frame.
func Ack(ref string, extra map[string]any) []byte {
	d := map[string]any{"ref": ref}
	for k, v := range extra {
		d[k] = v
	}
	return Frame(TypeAck, d)
}

// ErrorFrame answers a client frame with an error.
func ErrorFrame(ref, code, msg string) []byte {
	return Frame(TypeError, map[string]string{"ref": ref, "code": code, "message": msg})
}

// Offer is an offer card.
type Offer struct {
	OfferID      string    `json:"offer_id"`
	TaskID       string    `json:"task_id"`
	SessionID    string    `json:"session_id"`
	ServiceID    string    `json:"service_id"`
	ServiceName  string    `json:"service_name"`
	Channel      string    `json:"channel"`
	Customer     string    `json:"customer"`
	CustomerName string    `json:"customer_name,omitempty"`
	ExpiresAt    time.Time `json:"expires_at"`
	// Note is the transferring agent's note; TransferredBy is set when the
	// chat was transferred to this agent by name.
	Note          string `json:"note,omitempty"`
	TransferredBy string `json:"transferred_by,omitempty"`
	// Preview is the start of the customer's first message; WaitingSince
	// is when the session started (the card shows the wait).
	Preview      string     `json:"preview,omitempty"`
	WaitingSince *time.Time `json:"waiting_since,omitempty"`
	// Parameters: what the workflow collected before it queued the task
	// (name → value).
	Parameters map[string]string `json:"parameters,omitempty"`
}

// WrapUp is the after-call work form of one task: what the agent may
// choose from, and when distribution ends it without them.
type WrapUp struct {
	TaskID       string    `json:"task_id"`
	SessionID    string    `json:"session_id"`
	ServiceID    string    `json:"service_id"`
	ServiceName  string    `json:"service_name,omitempty"`
	EndsAt       time.Time `json:"ends_at"`
	ServiceCodes []string  `json:"service_codes"`
	SalesCodes   []string  `json:"sales_codes"`
	Tags         []string  `json:"tags"`
}

// Session is a session with its transcript.
type Session struct {
	SessionID   string `json:"session_id"`
	ServiceID   string `json:"service_id"`
	ServiceName string `json:"service_name,omitempty"`
	Channel     string `json:"channel"`
	// Attachments: the agent may attach files to replies (an SMS or
	// WhatsApp chat, on either Twilio path).
	Attachments  bool   `json:"attachments,omitempty"`
	Customer     string `json:"customer"`
	CustomerName string `json:"customer_name,omitempty"`
	State        string `json:"state"`
	// Outcome of an ended chat (handled, abandoned, …), as session.ended
	// names it.
	Outcome   string    `json:"outcome,omitempty"`
	StartedAt time.Time `json:"started_at"`
	// AgentID is set in supervisors' views: who handles the chat.
	AgentID string `json:"agent_id,omitempty"`
	// Parked: the agent set the chat aside; replies wait until it is
	// resumed.
	Parked   bool       `json:"parked,omitempty"`
	Messages []*Message `json:"messages"`
	// Compliance is what may be sent to the customer now; absent when
	// outbound-sender could not be asked.
	Compliance *Compliance `json:"compliance,omitempty"`
	// Parameters: what the workflow collected before it queued the task
	// (name → value): the chat's customer details.
	Parameters map[string]string `json:"parameters,omitempty"`
}

// Compliance is what outbound-sender will allow for a session's customer.
type Compliance struct {
	OptedOut      bool   `json:"opted_out"`
	ConsentSource string `json:"consent_source,omitempty"`
	WindowApplies bool   `json:"window_applies"`
	WindowOpen    bool   `json:"window_open"`
	// WindowExpiresAt is when free-form WhatsApp text stops being allowed
	// (the console counts down to it).
	WindowExpiresAt *time.Time `json:"window_expires_at,omitempty"`
	// Blocked is CodeOptedOut or CodeWindowClosed when a reply would be
	// refused now; Message says why, for the agent.
	Blocked string `json:"blocked,omitempty"`
	Message string `json:"message,omitempty"`
}

// Media is an attachment.
type Media struct {
	URL         string `json:"url"`
	ContentType string `json:"content_type,omitempty"`
}

// Message is a transcript entry.
type Message struct {
	ID           string    `json:"id"`
	Direction    string    `json:"direction"`
	Sender       string    `json:"sender"`
	AgentID      string    `json:"agent_id,omitempty"`
	Body         string    `json:"body"`
	Media        []Media   `json:"media,omitempty"`
	At           time.Time `json:"at"`
	Status       string    `json:"status,omitempty"`
	ErrorCode    int32     `json:"error_code,omitempty"`
	ErrorMessage string    `json:"error_message,omitempty"`
	Reason       string    `json:"reason,omitempty"`
	ResendOf     string    `json:"resend_of,omitempty"`
	// ContentSID names the WhatsApp template an outbound message sent
	// (Body is then its text as the agent previewed it).
	ContentSID string `json:"content_sid,omitempty"`
	// Visibility is "supervisors" for the audit trail (direction
	// "internal"); empty otherwise.
	Visibility string `json:"visibility,omitempty"`
}

// Template is a WhatsApp template (Twilio Content API) an agent may send.
type Template struct {
	SID          string `json:"sid"`
	FriendlyName string `json:"friendly_name"`
	Language     string `json:"language,omitempty"`
	// ContentType is the type Body comes from ("twilio/text", …).
	ContentType string `json:"content_type"`
	// Body is the text with its {{1}}-style placeholders.
	Body      string             `json:"body"`
	Variables []TemplateVariable `json:"variables"`
	// Actions are the titles of its buttons or list items.
	Actions []string `json:"actions,omitempty"`
}

// TemplateVariable is one placeholder of a template and its default
// value, which may name a session parameter ("customer_name").
type TemplateVariable struct {
	Name    string `json:"name"`
	Default string `json:"default,omitempty"`
}

// MessageStatus reports an outbound message's delivery status.
type MessageStatus struct {
	SessionID    string `json:"session_id"`
	MessageID    string `json:"message_id"`
	Status       string `json:"status"`
	ErrorCode    int32  `json:"error_code,omitempty"`
	ErrorMessage string `json:"error_message,omitempty"`
	Reason       string `json:"reason,omitempty"`
}

// ChannelName is the protocol's name for a channel.
func ChannelName(c messagingv1.Channel) string {
	switch c {
	case messagingv1.Channel_CHANNEL_SMS:
		return "sms"
	case messagingv1.Channel_CHANNEL_WHATSAPP:
		return "whatsapp"
	}
	return "unknown"
}

// ReasonName is the protocol's name for a failure reason: "opted_out",
// "whatsapp_window_closed", "twilio", "retries_exhausted", …
func ReasonName(r outboundv1.FailureReason) string {
	if r == outboundv1.FailureReason_FAILURE_REASON_UNSPECIFIED {
		return ""
	}
	return strings.ToLower(strings.TrimPrefix(r.String(), "FAILURE_REASON_"))
}

// StatusName is the protocol's name for a delivery status.
func StatusName(s messagingv1.DeliveryStatus) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "DELIVERY_STATUS_"))
}
