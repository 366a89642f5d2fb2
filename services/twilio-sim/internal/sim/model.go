package sim

import (
	"fmt"
	"strconv"
	"time"

	"github.com/switchboard-cc/switchboard/services/twilio-sim/internal/segments"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/internal/simapi"
)

// Paths a message can take.
const (
	pathMessaging     = "messaging"
	pathConversations = "conversations"
	pathTwiML         = "twiml"
	pathAutoReply     = "auto_reply"
)

// message is a Programmable Messaging message (SM/MM) or a conversation
// message (IM). Guarded by Engine.mu.
type message struct {
	sid        string
	path       string
	direction  string // outbound-api, outbound-reply, inbound
	accountSID string
	from, to   string
	author     string
	body       string
	hasBody    bool
	media      []simapi.Media
	mediaSIDs  []string
	contentSID string
	contentVar string
	mgSID      string
	// fromChosen is false while a Messaging Service has not picked a sender.
	fromChosen     bool
	statusCallback string
	status         string
	errorCode      int
	seg            segments.Info
	created        time.Time
	updated        time.Time
	sent           time.Time
	// seq orders messages by arrival (Engine.addMessage).
	seq uint64

	// Conversations only.
	chatServiceSID  string
	conversationSID string
	participantSID  string
	index           int
	attributes      string
	channelSID      string // the SM… the message travels as
	receipt         *receipt
}

// receipt is the delivery of a conversation message to the customer.
type receipt struct {
	sid            string
	participantSID string
	status         string
	errorCode      int
	created        time.Time
	updated        time.Time
}

type conversation struct {
	sid          string
	accountSID   string
	serviceSID   string
	mgSID        string
	friendlyName string
	uniqueName   string
	attributes   string
	state        string
	created      time.Time
	updated      time.Time
	participants []*participant
	messages     []*message
	nextIndex    int
	// seq orders conversations by creation (Engine.addConversation).
	seq uint64
}

// customer returns the conversation's SMS/WhatsApp participant.
func (c *conversation) customer() *participant {
	for _, p := range c.participants {
		if p.address != "" {
			return p
		}
	}
	return nil
}

type participant struct {
	sid          string
	identity     string
	address      string
	proxyAddress string
	roleSID      string
	attributes   string
	created      time.Time
	updated      time.Time
}

// media is an attachment: uploaded to or received through the Media
// Content Service (serviceSID set), or of a Programmable Messaging message
// (messageSID set).
type media struct {
	sid         string
	accountSID  string
	serviceSID  string
	messageSID  string
	contentType string
	filename    string
	size        int
	data        []byte // uploaded content
	url         string // or where the customer's phone fetched it from
	created     time.Time
}

func ptr[T any](v T) *T { return &v }

func strOrNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// apiMessage is the 2010-04-01 Message resource. Counters are strings, dates
// RFC 2822, as Twilio returns them.
type apiMessage struct {
	AccountSID          string            `json:"account_sid"`
	APIVersion          string            `json:"api_version"`
	Body                string            `json:"body"`
	DateCreated         string            `json:"date_created"`
	DateSent            *string           `json:"date_sent"`
	DateUpdated         string            `json:"date_updated"`
	Direction           string            `json:"direction"`
	ErrorCode           *int              `json:"error_code"`
	ErrorMessage        *string           `json:"error_message"`
	From                *string           `json:"from"`
	MessagingServiceSID *string           `json:"messaging_service_sid"`
	NumMedia            string            `json:"num_media"`
	NumSegments         string            `json:"num_segments"`
	Price               *string           `json:"price"`
	PriceUnit           string            `json:"price_unit"`
	SID                 string            `json:"sid"`
	Status              string            `json:"status"`
	SubresourceURIs     map[string]string `json:"subresource_uris"`
	To                  string            `json:"to"`
	URI                 string            `json:"uri"`
}

func (m *message) api() apiMessage {
	base := fmt.Sprintf("/2010-04-01/Accounts/%s/Messages/%s", m.accountSID, m.sid)
	out := apiMessage{
		AccountSID:          m.accountSID,
		APIVersion:          "2010-04-01",
		Body:                m.body,
		DateCreated:         m.created.Format(rfc2822),
		DateUpdated:         m.updated.Format(rfc2822),
		Direction:           m.direction,
		MessagingServiceSID: strOrNil(m.mgSID),
		NumMedia:            strconv.Itoa(len(m.media)),
		NumSegments:         strconv.Itoa(m.numSegments()),
		PriceUnit:           "USD",
		SID:                 m.sid,
		Status:              m.status,
		SubresourceURIs:     map[string]string{"media": base + "/Media.json"},
		To:                  m.to,
		URI:                 base + ".json",
	}
	if m.fromChosen {
		out.From = ptr(m.from)
	}
	if !m.sent.IsZero() {
		out.DateSent = ptr(m.sent.Format(rfc2822))
	}
	if m.errorCode != 0 {
		out.ErrorCode = ptr(m.errorCode)
		out.ErrorMessage = ptr(errorText(m.errorCode))
	}
	return out
}

// numSegments is 0 while a Messaging Service has not chosen a sender, as
// Twilio reports, and 1 for WhatsApp, which is not segmented.
func (m *message) numSegments() int {
	if !m.fromChosen {
		return 0
	}
	if ch, _ := channelOf(m.to); ch == "whatsapp" {
		return 1
	}
	return m.seg.Segments
}

// convMessage is the Conversations Message resource.
type convMessage struct {
	SID             string      `json:"sid"`
	AccountSID      string      `json:"account_sid"`
	ChatServiceSID  string      `json:"chat_service_sid,omitempty"`
	ConversationSID string      `json:"conversation_sid"`
	Body            *string     `json:"body"`
	Media           []convMedia `json:"media"`
	Author          string      `json:"author"`
	ParticipantSID  *string     `json:"participant_sid"`
	Attributes      string      `json:"attributes"`
	DateCreated     string      `json:"date_created"`
	DateUpdated     string      `json:"date_updated"`
	Index           int         `json:"index"`
	Delivery        *delivery   `json:"delivery"`
	ContentSID      *string     `json:"content_sid"`
	URL             string      `json:"url"`
	Links           struct {
		DeliveryReceipts string `json:"delivery_receipts"`
		ChannelMetadata  string `json:"channel_metadata"`
	} `json:"links"`
}

type convMedia struct {
	SID         string `json:"sid"`
	Size        int    `json:"size"`
	ContentType string `json:"content_type"`
	Filename    string `json:"filename"`
}

// delivery summarises receipts: "all", "some" or "none" per status.
type delivery struct {
	Total       int    `json:"total"`
	Sent        string `json:"sent"`
	Delivered   string `json:"delivered"`
	Read        string `json:"read"`
	Failed      string `json:"failed"`
	Undelivered string `json:"undelivered"`
}

const convBase = "https://conversations.twilio.com/v1"

// convPrefix is the URL of a conversation, service-scoped or not.
func convPrefix(serviceScoped bool, serviceSID, convSID string) string {
	if serviceScoped {
		return fmt.Sprintf("%s/Services/%s/Conversations/%s", convBase, serviceSID, convSID)
	}
	return fmt.Sprintf("%s/Conversations/%s", convBase, convSID)
}

func (e *Engine) convMessageJSON(m *message, serviceScoped bool) convMessage {
	url := convPrefix(serviceScoped, m.chatServiceSID, m.conversationSID) + "/Messages/" + m.sid
	out := convMessage{
		SID:             m.sid,
		AccountSID:      m.accountSID,
		ConversationSID: m.conversationSID,
		Author:          m.author,
		ParticipantSID:  strOrNil(m.participantSID),
		Attributes:      m.attributes,
		DateCreated:     m.created.Format(iso8601),
		DateUpdated:     m.updated.Format(iso8601),
		Index:           m.index,
		ContentSID:      strOrNil(m.contentSID),
		URL:             url,
	}
	if serviceScoped {
		out.ChatServiceSID = m.chatServiceSID
	}
	if m.hasBody {
		out.Body = ptr(m.body)
	}
	for _, sid := range m.mediaSIDs {
		if md := e.media[sid]; md != nil {
			out.Media = append(out.Media, convMedia{SID: md.sid, Size: md.size, ContentType: md.contentType, Filename: md.filename})
		}
	}
	out.Links.DeliveryReceipts = url + "/Receipts"
	out.Links.ChannelMetadata = url + "/ChannelMetadata"
	if r := m.receipt; r != nil {
		d := &delivery{Total: 1, Sent: "none", Delivered: "none", Read: "none", Failed: "none", Undelivered: "none"}
		switch r.status {
		case "sent":
			d.Sent = "all"
		case "delivered":
			d.Sent, d.Delivered = "all", "all"
		case "read":
			d.Sent, d.Delivered, d.Read = "all", "all", "all"
		case "failed":
			d.Failed = "all"
		case "undelivered":
			d.Sent, d.Undelivered = "all", "all"
		}
		out.Delivery = d
	}
	return out
}

type convJSON struct {
	SID                 string            `json:"sid"`
	AccountSID          string            `json:"account_sid"`
	ChatServiceSID      string            `json:"chat_service_sid"`
	MessagingServiceSID *string           `json:"messaging_service_sid"`
	FriendlyName        *string           `json:"friendly_name"`
	UniqueName          *string           `json:"unique_name"`
	Attributes          string            `json:"attributes"`
	State               string            `json:"state"`
	DateCreated         string            `json:"date_created"`
	DateUpdated         string            `json:"date_updated"`
	Timers              map[string]string `json:"timers"`
	Bindings            map[string]any    `json:"bindings"`
	URL                 string            `json:"url"`
	Links               map[string]string `json:"links"`
}

func (c *conversation) json(serviceScoped bool) convJSON {
	url := convPrefix(serviceScoped, c.serviceSID, c.sid)
	return convJSON{
		SID:                 c.sid,
		AccountSID:          c.accountSID,
		ChatServiceSID:      c.serviceSID,
		MessagingServiceSID: strOrNil(c.mgSID),
		FriendlyName:        strOrNil(c.friendlyName),
		UniqueName:          strOrNil(c.uniqueName),
		Attributes:          c.attributes,
		State:               c.state,
		DateCreated:         c.created.Format(iso8601),
		DateUpdated:         c.updated.Format(iso8601),
		Timers:              map[string]string{},
		Bindings:            map[string]any{},
		URL:                 url,
		Links: map[string]string{
			"participants": url + "/Participants",
			"messages":     url + "/Messages",
			"webhooks":     url + "/Webhooks",
			"export":       url + "/Export",
		},
	}
}

type participantJSON struct {
	AccountSID           string            `json:"account_sid"`
	ChatServiceSID       string            `json:"chat_service_sid,omitempty"`
	ConversationSID      string            `json:"conversation_sid"`
	SID                  string            `json:"sid"`
	Identity             *string           `json:"identity"`
	Attributes           string            `json:"attributes"`
	MessagingBinding     map[string]string `json:"messaging_binding"`
	RoleSID              string            `json:"role_sid"`
	DateCreated          string            `json:"date_created"`
	DateUpdated          string            `json:"date_updated"`
	URL                  string            `json:"url"`
	LastReadMessageIndex *int              `json:"last_read_message_index"`
	LastReadTimestamp    *string           `json:"last_read_timestamp"`
}

func (p *participant) json(c *conversation, serviceScoped bool) participantJSON {
	out := participantJSON{
		AccountSID:      c.accountSID,
		ConversationSID: c.sid,
		SID:             p.sid,
		Identity:        strOrNil(p.identity),
		Attributes:      p.attributes,
		RoleSID:         p.roleSID,
		DateCreated:     p.created.Format(iso8601),
		DateUpdated:     p.updated.Format(iso8601),
		URL:             convPrefix(serviceScoped, c.serviceSID, c.sid) + "/Participants/" + p.sid,
	}
	if serviceScoped {
		out.ChatServiceSID = c.serviceSID
	}
	if p.address != "" {
		ch, _ := channelOf(p.address)
		out.MessagingBinding = map[string]string{"type": ch, "address": p.address, "proxy_address": p.proxyAddress}
	}
	return out
}

type receiptJSON struct {
	SID               string `json:"sid"`
	AccountSID        string `json:"account_sid"`
	ChatServiceSID    string `json:"chat_service_sid"`
	ConversationSID   string `json:"conversation_sid"`
	MessageSID        string `json:"message_sid"`
	ChannelMessageSID string `json:"channel_message_sid"`
	ParticipantSID    string `json:"participant_sid"`
	Status            string `json:"status"`
	ErrorCode         int    `json:"error_code"`
	DateCreated       string `json:"date_created"`
	DateUpdated       string `json:"date_updated"`
	URL               string `json:"url"`
}

func (m *message) receiptJSON(serviceScoped bool) receiptJSON {
	r := m.receipt
	return receiptJSON{
		SID:               r.sid,
		AccountSID:        m.accountSID,
		ChatServiceSID:    m.chatServiceSID,
		ConversationSID:   m.conversationSID,
		MessageSID:        m.sid,
		ChannelMessageSID: m.channelSID,
		ParticipantSID:    r.participantSID,
		Status:            r.status,
		ErrorCode:         r.errorCode,
		DateCreated:       r.created.Format(iso8601),
		DateUpdated:       r.updated.Format(iso8601),
		URL:               convPrefix(serviceScoped, m.chatServiceSID, m.conversationSID) + "/Messages/" + m.sid + "/Receipts/" + r.sid,
	}
}

// outboundView is how the /sim API shows a message the business sent.
func (e *Engine) outboundView(m *message) simapi.OutboundMessage {
	v := simapi.OutboundMessage{
		SID:                 m.sid,
		Path:                m.path,
		AccountSID:          m.accountSID,
		From:                m.from,
		To:                  m.to,
		Author:              m.author,
		Body:                m.body,
		Media:               append([]simapi.Media(nil), m.media...),
		ContentSID:          m.contentSID,
		ContentVariables:    m.contentVar,
		MessagingServiceSID: m.mgSID,
		ConversationSID:     m.conversationSID,
		ChannelMessageSID:   m.channelSID,
		Status:              m.status,
		ErrorCode:           m.errorCode,
		NumSegments:         m.seg.Segments,
		Encoding:            string(m.seg.Encoding),
		DateCreated:         m.created,
		DateUpdated:         m.updated,
	}
	if ch, _ := channelOf(m.to); ch == "whatsapp" {
		v.NumSegments = 1
	}
	if m.receipt != nil {
		v.Status = m.receipt.status
		v.ErrorCode = m.receipt.errorCode
	}
	return v
}

// errorText is the error_message Twilio gives for the codes the emulator
// produces.
func errorText(code int) string {
	switch code {
	case 21610:
		return "Attempt to send to unsubscribed recipient"
	case 30003:
		return "Unreachable destination handset"
	case 30005:
		return "Unknown destination handset"
	case 30006:
		return "Landline or unreachable carrier"
	case 30007:
		return "Message filtered"
	case 30008:
		return "Unknown error"
	case 63016:
		return "Failed to send freeform message because you are outside the allowed window. If you are using WhatsApp, please use a Message Template."
	}
	return "Message delivery failed"
}
