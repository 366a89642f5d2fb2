package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	chatv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/chat/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"

	"github.com/switchboard-cc/switchboard/pkg/chatwebhook"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/route"
)

// Event is what one webhook becomes on the CHAT stream.
type Event struct {
	Subject string
	Msg     proto.Message
	// ID is the Nats-Msg-Id JetStream dedupes on.
	ID string
	// Inbound events are new customer activity, refused on a disabled route;
	// delivery and state updates of existing conversations are not.
	Inbound bool
	// Warning is logged: the webhook was taken but something in it was not.
	Warning string
}

// dedupeID scopes a natural key to its tenant. JetStream's duplicate
// window spans the whole CHAT stream, so a bare Twilio SID (or idempotency
// token) would let one tenant's webhook suppress another tenant's genuine
// one that happens to carry the same value. Tenant ids are slugs without
// ':', so the prefix is unambiguous.
func dedupeID(tenant, key string) string { return tenant + ":" + key }

// Input is a routed, authenticated webhook.
type Input struct {
	Params url.Values
	Route  *route.Route
	// Token is the I-Twilio-Idempotency-Token header, possibly empty.
	Token string
	Now   time.Time
	// AllowHTTPMedia keeps http media URLs (the emulator); otherwise only
	// https ones are taken.
	AllowHTTPMedia bool
}

// errMissing marks a webhook that lacks a required parameter: a 400.
var errMissing = errors.New("missing parameter")

func missing(event string, names ...string) error {
	return fmt.Errorf("%w: %s needs %s", errMissing, event, strings.Join(names, ", "))
}

// Conversations post-event types chat-handler acts on.
const (
	EventMessageAdded             = chatwebhook.EventMessageAdded
	EventConversationAdded        = chatwebhook.EventConversationAdded
	EventParticipantAdded         = chatwebhook.EventParticipantAdded
	EventConversationStateUpdated = chatwebhook.EventConversationStateUpdated
	EventDeliveryUpdated          = chatwebhook.EventDeliveryUpdated
)

// ConversationsEvent turns a Conversations post-event webhook into an
// event. A nil Event with a nil error means the webhook is acknowledged
// without publishing anything (an event type or message source that is not
// customer activity).
func ConversationsEvent(in Input) (*Event, error) {
	switch in.Params.Get("EventType") {
	case EventMessageAdded:
		return messageAdded(in)
	case EventConversationAdded:
		return conversationAdded(in)
	case EventParticipantAdded:
		return participantAdded(in)
	case EventConversationStateUpdated:
		return stateUpdated(in)
	case EventDeliveryUpdated:
		return deliveryUpdated(in)
	}
	return nil, nil
}

// customerSource reports whether an onMessageAdded came from a customer's
// phone: Source SMS or WHATSAPP, or no Source and a phone-like author.
func customerSource(source, author string) bool {
	switch source {
	case "SMS", "WHATSAPP":
		return true
	case "":
		return strings.HasPrefix(author, "+") || strings.HasPrefix(strings.ToLower(author), "whatsapp:")
	}
	return false
}

func channelOf(source, address string, fallback messagingv1.Channel) messagingv1.Channel {
	switch {
	case source == "WHATSAPP" || strings.HasPrefix(strings.ToLower(address), "whatsapp:"):
		return messagingv1.Channel_CHANNEL_WHATSAPP
	case source == "SMS" || strings.HasPrefix(address, "+"):
		return messagingv1.Channel_CHANNEL_SMS
	case fallback != messagingv1.Channel_CHANNEL_UNSPECIFIED:
		return fallback
	}
	return messagingv1.Channel_CHANNEL_SMS
}

func timeParam(p url.Values, name string) *timestamppb.Timestamp {
	v := p.Get(name)
	if v == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return nil
	}
	return timestamppb.New(t)
}

func timeOr(ts *timestamppb.Timestamp, now time.Time) *timestamppb.Timestamp {
	if ts != nil {
		return ts
	}
	return timestamppb.New(now)
}

// conversationMedia is one item of onMessageAdded's Media parameter.
type conversationMedia struct {
	Sid         string `json:"Sid"`
	Filename    string `json:"Filename"`
	ContentType string `json:"ContentType"`
	Size        int64  `json:"Size"`
}

// parseConversationMedia reads the Media parameter (a JSON array). A value
// that is not such an array yields nothing: the message is still taken.
func parseConversationMedia(raw string) ([]*messagingv1.Media, bool) {
	if raw == "" {
		return nil, true
	}
	var items []conversationMedia
	if err := json.Unmarshal([]byte(raw), &items); err != nil {
		return nil, false
	}
	out := make([]*messagingv1.Media, 0, len(items))
	for _, m := range items {
		out = append(out, &messagingv1.Media{Sid: m.Sid, Filename: m.Filename, ContentType: m.ContentType, SizeBytes: m.Size})
	}
	return out, true
}

func messageAdded(in Input) (*Event, error) {
	p, rt := in.Params, in.Route
	sid, conv := p.Get("MessageSid"), p.Get("ConversationSid")
	if sid == "" || conv == "" {
		return nil, missing(EventMessageAdded, "MessageSid", "ConversationSid")
	}
	source, author := strings.ToUpper(p.Get("Source")), p.Get("Author")
	if !customerSource(source, author) {
		// Messages written through the API or SDK are ours (agent replies
		// and workflow messages), already known to Switchboard.
		return nil, nil
	}
	index, _ := strconv.ParseInt(p.Get("Index"), 10, 64)
	media, mediaOK := parseConversationMedia(p.Get("Media"))
	ev := &chatv1.MessageReceived{
		TenantId: rt.Tenant, MessageSid: sid, AccountSid: p.Get("AccountSid"), EntryId: rt.EntryID, ServiceId: rt.ServiceID,
		Conversation: &messagingv1.ConversationRef{
			Channel: channelOf(source, author, rt.Channel), Path: messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS,
			CustomerAddress: author, ChatServiceSid: p.Get("ChatServiceSid"), ConversationSid: conv,
			MessagingServiceSid: p.Get("MessagingServiceSid"),
		},
		Body: p.Get("Body"), Media: media, ParticipantSid: p.Get("ParticipantSid"), Index: index,
		Source: source, Attributes: p.Get("Attributes"), CreatedAt: timeParam(p, "DateCreated"),
		ReceivedAt: timestamppb.New(in.Now), IdempotencyToken: in.Token,
	}
	out := &Event{Subject: subjects.ChatMessageReceived(rt.Tenant), Msg: ev, ID: dedupeID(rt.Tenant, sid), Inbound: true}
	if !mediaOK {
		out.Warning = "Media parameter is not a JSON array of media; message taken without its media"
	}
	return out, nil
}

func conversationAdded(in Input) (*Event, error) {
	p, rt := in.Params, in.Route
	conv := p.Get("ConversationSid")
	if conv == "" {
		return nil, missing(EventConversationAdded, "ConversationSid")
	}
	source, customer := strings.ToUpper(p.Get("Source")), p.Get("MessagingBinding.Address")
	ev := &chatv1.ConversationAdded{
		TenantId: rt.Tenant, AccountSid: p.Get("AccountSid"), EntryId: rt.EntryID, ServiceId: rt.ServiceID,
		Conversation: &messagingv1.ConversationRef{
			Channel: channelOf(source, customer, rt.Channel), Path: messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS,
			CustomerAddress: customer, BusinessAddress: p.Get("MessagingBinding.ProxyAddress"),
			ChatServiceSid: p.Get("ChatServiceSid"), ConversationSid: conv, MessagingServiceSid: p.Get("MessagingServiceSid"),
		},
		FriendlyName: p.Get("FriendlyName"), UniqueName: p.Get("UniqueName"), State: ConversationState(p.Get("State")),
		Attributes: p.Get("Attributes"), Source: source, CreatedAt: timeParam(p, "DateCreated"),
		ReceivedAt: timestamppb.New(in.Now), IdempotencyToken: in.Token,
	}
	return &Event{Subject: subjects.ChatConversationAdded(rt.Tenant), Msg: ev, ID: dedupeID(rt.Tenant, "conversation.added:"+conv), Inbound: true}, nil
}

func participantAdded(in Input) (*Event, error) {
	p, rt := in.Params, in.Route
	conv, part := p.Get("ConversationSid"), p.Get("ParticipantSid")
	if conv == "" || part == "" {
		return nil, missing(EventParticipantAdded, "ConversationSid", "ParticipantSid")
	}
	source, addr := strings.ToUpper(p.Get("Source")), p.Get("MessagingBinding.Address")
	ev := &chatv1.ParticipantAdded{
		TenantId: rt.Tenant, AccountSid: p.Get("AccountSid"), EntryId: rt.EntryID, ServiceId: rt.ServiceID,
		ChatServiceSid: p.Get("ChatServiceSid"), ConversationSid: conv, ParticipantSid: part,
		Identity: p.Get("Identity"), Address: addr, ProxyAddress: p.Get("MessagingBinding.ProxyAddress"),
		RoleSid: p.Get("RoleSid"), Attributes: p.Get("Attributes"), Source: source,
		CreatedAt: timeParam(p, "DateCreated"), ReceivedAt: timestamppb.New(in.Now), IdempotencyToken: in.Token,
	}
	if addr != "" {
		ev.Channel = channelOf("", addr, rt.Channel)
	}
	// A chat identity joining (an agent added through the API) is not new
	// customer activity.
	return &Event{Subject: subjects.ChatParticipantAdded(rt.Tenant), Msg: ev, ID: dedupeID(rt.Tenant, "participant.added:"+part), Inbound: addr != ""}, nil
}

func stateUpdated(in Input) (*Event, error) {
	p, rt := in.Params, in.Route
	conv, to := p.Get("ConversationSid"), p.Get("StateTo")
	if conv == "" || to == "" {
		return nil, missing(EventConversationStateUpdated, "ConversationSid", "StateTo")
	}
	from := p.Get("StateFrom")
	updated := timeParam(p, "DateUpdated")
	ev := &chatv1.ConversationStateUpdated{
		TenantId: rt.Tenant, AccountSid: p.Get("AccountSid"), EntryId: rt.EntryID, ServiceId: rt.ServiceID,
		ChatServiceSid: p.Get("ChatServiceSid"), ConversationSid: conv,
		StateFrom: ConversationState(from), StateTo: ConversationState(to), Reason: p.Get("Reason"),
		UpdatedAt: timeOr(updated, in.Now), ReceivedAt: timestamppb.New(in.Now), IdempotencyToken: in.Token,
		MessagingServiceSid: p.Get("MessagingServiceSid"),
	}
	id := "conversation.state:" + conv + ":" + from + ":" + to + ":" + p.Get("DateUpdated")
	if in.Token != "" {
		id = "token:" + in.Token
	}
	return &Event{Subject: subjects.ChatConversationStateUpdated(rt.Tenant), Msg: ev, ID: dedupeID(rt.Tenant, id)}, nil
}

func deliveryUpdated(in Input) (*Event, error) {
	p, rt := in.Params, in.Route
	sid, st := p.Get("MessageSid"), p.Get("Status")
	if sid == "" || st == "" {
		return nil, missing(EventDeliveryUpdated, "MessageSid", "Status")
	}
	code, _ := strconv.Atoi(p.Get("ErrorCode"))
	receipt := p.Get("DeliveryReceiptSid")
	ev := &chatv1.DeliveryUpdated{
		TenantId: rt.Tenant, MessageSid: sid, Status: DeliveryStatus(st), ErrorCode: int32(code), AccountSid: p.Get("AccountSid"),
		DeliveryReceiptSid: receipt, ConversationSid: p.Get("ConversationSid"),
		OccurredAt: timeOr(timeParam(p, "DateUpdated"), in.Now), RawStatus: st, EntryId: rt.EntryID,
		Path: messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS, ChatServiceSid: p.Get("ChatServiceSid"),
		ParticipantSid: p.Get("ParticipantSid"), ChannelMessageSid: p.Get("ChannelMessageSid"),
		MessagingServiceSid: p.Get("MessagingServiceSid"), IdempotencyToken: in.Token,
	}
	return &Event{Subject: subjects.ChatDeliveryUpdated(rt.Tenant), Msg: ev, ID: dedupeID(rt.Tenant, "delivery:"+sid+":"+receipt+":"+st)}, nil
}

// maxMedia bounds the MediaUrlN parameters read (Twilio sends at most 10).
const maxMedia = 20

// InboundEvent turns a Programmable Messaging inbound webhook (or its
// fallback variant, fallback true) into a MessageReceived.
func InboundEvent(in Input, fallback bool) (*Event, error) {
	p, rt := in.Params, in.Route
	sid := messageSID(p)
	from, to := p.Get("From"), p.Get("To")
	if sid == "" || from == "" || to == "" {
		return nil, missing("inbound message", "MessageSid", "From", "To")
	}
	ch := channelOf("", to, rt.Channel)
	source := "SMS"
	if ch == messagingv1.Channel_CHANNEL_WHATSAPP {
		source = "WHATSAPP"
	}
	segs, _ := strconv.Atoi(p.Get("NumSegments"))
	ev := &chatv1.MessageReceived{
		TenantId: rt.Tenant, MessageSid: sid, AccountSid: p.Get("AccountSid"), EntryId: rt.EntryID, ServiceId: rt.ServiceID,
		Conversation: &messagingv1.ConversationRef{
			Channel: ch, Path: messagingv1.TwilioPath_TWILIO_PATH_MESSAGING,
			CustomerAddress: from, BusinessAddress: to, MessagingServiceSid: p.Get("MessagingServiceSid"),
		},
		Body: p.Get("Body"), ProfileName: p.Get("ProfileName"), WaId: p.Get("WaId"),
		ReceivedAt: timestamppb.New(in.Now), Source: source, NumSegments: int32(segs),
		IdempotencyToken: in.Token, MessageType: p.Get("MessageType"), Fallback: fallback,
	}
	if fallback {
		code, _ := strconv.Atoi(p.Get("ErrorCode"))
		ev.FallbackErrorCode = int32(code)
	}
	n, _ := strconv.Atoi(p.Get("NumMedia"))
	var dropped []string
	for i := 0; i < n && i < maxMedia; i++ {
		idx := strconv.Itoa(i)
		u := p.Get("MediaUrl" + idx)
		if u == "" {
			continue
		}
		// A URL that is not https (http for the emulator) is dropped, not
		// the message: the customer's text matters more than one link,
		// and an agent's console must never be handed javascript: or data:.
		if !validMediaURL(u, in.AllowHTTPMedia) {
			dropped = append(dropped, "MediaUrl"+idx)
			continue
		}
		ev.Media = append(ev.Media, &messagingv1.Media{Url: u, ContentType: p.Get("MediaContentType" + idx)})
	}
	switch strings.ToUpper(p.Get("OptOutType")) {
	case "STOP":
		ev.OptOutType = messagingv1.OptOutType_OPT_OUT_TYPE_STOP
	case "START":
		ev.OptOutType = messagingv1.OptOutType_OPT_OUT_TYPE_START
	case "HELP":
		ev.OptOutType = messagingv1.OptOutType_OPT_OUT_TYPE_HELP
	}
	out := &Event{Subject: subjects.ChatMessageReceived(rt.Tenant), Msg: ev, ID: dedupeID(rt.Tenant, sid), Inbound: true}
	if len(dropped) > 0 {
		out.Warning = strings.Join(dropped, ", ") + " not an https URL; message taken without it"
	}
	return out, nil
}

// StatusEvent turns a Programmable Messaging status callback into a
// DeliveryUpdated.
func StatusEvent(in Input) (*Event, error) {
	p, rt := in.Params, in.Route
	sid, st := messageSID(p), p.Get("MessageStatus")
	if st == "" {
		st = p.Get("SmsStatus")
	}
	if sid == "" || st == "" {
		return nil, missing("status callback", "MessageSid", "MessageStatus")
	}
	code, _ := strconv.Atoi(p.Get("ErrorCode"))
	ev := &chatv1.DeliveryUpdated{
		TenantId: rt.Tenant, MessageSid: sid, Status: DeliveryStatus(st), ErrorCode: int32(code),
		AccountSid: p.Get("AccountSid"), OccurredAt: timestamppb.New(in.Now), RawStatus: st, EntryId: rt.EntryID,
		Path: messagingv1.TwilioPath_TWILIO_PATH_MESSAGING, MessagingServiceSid: p.Get("MessagingServiceSid"),
		IdempotencyToken: in.Token,
	}
	return &Event{Subject: subjects.ChatDeliveryUpdated(rt.Tenant), Msg: ev, ID: dedupeID(rt.Tenant, "delivery:"+sid+"::"+st)}, nil
}

func messageSID(p url.Values) string {
	for _, k := range [...]string{"MessageSid", "SmsMessageSid", "SmsSid"} {
		if v := p.Get(k); v != "" {
			return v
		}
	}
	return ""
}

// DeliveryStatus maps Twilio's status string.
func DeliveryStatus(s string) messagingv1.DeliveryStatus {
	if v, ok := messagingv1.DeliveryStatus_value["DELIVERY_STATUS_"+strings.ToUpper(s)]; ok {
		return messagingv1.DeliveryStatus(v)
	}
	return messagingv1.DeliveryStatus_DELIVERY_STATUS_UNSPECIFIED
}

// ConversationState maps Twilio's conversation state string.
func ConversationState(s string) chatv1.ConversationState {
	if v, ok := chatv1.ConversationState_value["CONVERSATION_STATE_"+strings.ToUpper(s)]; ok {
		return chatv1.ConversationState(v)
	}
	return chatv1.ConversationState_CONVERSATION_STATE_UNSPECIFIED
}
