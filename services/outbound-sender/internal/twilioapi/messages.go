package twilioapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	twilio "github.com/twilio/twilio-go"
	twapi "github.com/twilio/twilio-go/rest/api/v2010"
	conversations "github.com/twilio/twilio-go/rest/conversations/v1"
)

// Message is one message to create.
type Message struct {
	// Conversations path: the service (IS…) and conversation (CH…).
	// Otherwise Programmable Messaging.
	Conversations   bool
	ChatServiceSID  string
	ConversationSID string
	// Messaging path: the customer, and the business number or the
	// Messaging Service (MG…) to send from.
	To, From, MessagingServiceSID string

	Body      string
	MediaURLs []string
	// MediaSIDs (Conversations path): media uploaded to the Media Content
	// Service (ME…), sent as MediaSid.
	MediaSIDs []string
	// Template (HX…) and its variables (a JSON object string).
	ContentSID, ContentVariables string
	// Conversations author (the agent's display name); "system" when empty.
	Author string
	// RequestID goes into the Conversations message's Attributes, so a
	// message Twilio created can be found again after a crash.
	RequestID string
	// StatusCallback asks Twilio to post status changes (Messaging path).
	StatusCallback string
}

// Accepted is a message Twilio created.
type Accepted struct {
	SID    string
	Status string
	// Segments as Twilio counted them (Messaging path; 0 when not known yet).
	Segments int
	// MediaSIDs the message carries (Conversations path).
	MediaSIDs []string
}

// AttributesKey is the key under which the request id is stored in a
// Conversations message's Attributes.
const AttributesKey = "switchboard_request_id"

// API calls Twilio with cached clients.
type API struct {
	clients *Clients
	// raw makes the calls twilio-go has no client for (media uploads).
	raw *http.Client
}

// New returns the adapter.
func New(o Options) *API {
	if o.Transport == nil {
		o.Transport = NewTransport()
	}
	return &API{clients: NewClients(o), raw: rawClient(o)}
}

// Send creates the message. Errors are *Error.
func (a *API) Send(creds Credentials, m Message) (Accepted, error) {
	c := a.clients.For(creds)
	if m.Conversations {
		return sendConversation(c, m)
	}
	return sendMessaging(c, m)
}

func sendConversation(c *twilio.RestClient, m Message) (Accepted, error) {
	p := &conversations.CreateServiceConversationMessageParams{}
	if m.ContentSID != "" {
		p.SetContentSid(m.ContentSID)
		if m.ContentVariables != "" {
			p.SetContentVariables(m.ContentVariables)
		}
	} else {
		if m.Body != "" || len(m.MediaSIDs) == 0 {
			p.SetBody(m.Body)
		}
		if len(m.MediaSIDs) > 0 {
			// One media per message: Twilio's MediaSid takes one SID.
			p.SetMediaSid(m.MediaSIDs[0])
		}
	}
	if m.Author != "" {
		p.SetAuthor(m.Author)
	}
	attrs, _ := json.Marshal(map[string]string{AttributesKey: m.RequestID})
	p.SetAttributes(string(attrs))
	msg, err := c.ConversationsV1.CreateServiceConversationMessage(m.ChatServiceSID, m.ConversationSID, p)
	if err != nil {
		return Accepted{}, classify(err)
	}
	// Twilio accepted the message into the conversation; each recipient's
	// delivery receipt then moves on its own (onDeliveryUpdated).
	return Accepted{SID: deref(msg.Sid), Status: "accepted", MediaSIDs: mediaSIDs(msg.Media)}, nil
}

// mediaSIDs are the SIDs in a conversation message's media list.
func mediaSIDs(media *[]interface{}) []string {
	if media == nil {
		return nil
	}
	var out []string
	for _, m := range *media {
		if o, ok := m.(map[string]interface{}); ok {
			if sid, _ := o["sid"].(string); sid != "" {
				out = append(out, sid)
			}
		}
	}
	return out
}

func messagingParams(m Message) *twapi.CreateMessageParams {
	p := &twapi.CreateMessageParams{}
	p.SetTo(m.To)
	if m.MessagingServiceSID != "" {
		p.SetMessagingServiceSid(m.MessagingServiceSID)
	} else {
		p.SetFrom(m.From)
	}
	if m.ContentSID != "" {
		// Twilio ignores Body/MediaUrl with a template and WhatsApp
		// refuses template text sent as Body (63016): send only the SID.
		p.SetContentSid(m.ContentSID)
		if m.ContentVariables != "" {
			p.SetContentVariables(m.ContentVariables)
		}
	} else {
		if m.Body != "" {
			p.SetBody(m.Body)
		}
		if len(m.MediaURLs) > 0 {
			p.SetMediaUrl(m.MediaURLs)
		}
	}
	if m.StatusCallback != "" {
		p.SetStatusCallback(m.StatusCallback)
	}
	return p
}

func sendMessaging(c *twilio.RestClient, m Message) (Accepted, error) {
	msg, err := c.Api.CreateMessage(messagingParams(m))
	if err != nil {
		return Accepted{}, classify(err)
	}
	acc := Accepted{SID: deref(msg.Sid), Status: deref(msg.Status)}
	if acc.Status == "" {
		acc.Status = "queued"
	}
	acc.Segments, _ = strconv.Atoi(deref(msg.NumSegments))
	return acc, nil
}

// Claimed reports whether a Twilio SID already belongs to another request.
type Claimed func(sid string) (bool, error)

// findLimit bounds how many recent messages a lookup reads.
const findLimit = 200

// Find looks for a message Twilio created for m at or after since (on
// Twilio's clock, within the caller's skew allowance) that no other
// request has claimed.
//
// Conversations: the conversation's recent messages are read newest first
// and matched on the request id in Attributes, which is exact.
// Messaging: Twilio keeps no client reference on a message, so the
// recipient's recent outbound messages (from the same sender) are matched
// on body, media count and template, and the oldest unclaimed match is
// taken. Two identical bodies sent to one customer from one sender within
// the lookup window by requests that both crashed cannot be told apart.
func (a *API) Find(creds Credentials, m Message, since time.Time, claimed Claimed) (Accepted, bool, error) {
	c := a.clients.For(creds)
	if m.Conversations {
		return findConversation(c, m, since)
	}
	return findMessaging(c, m, since, claimed)
}

func findConversation(c *twilio.RestClient, m Message, since time.Time) (Accepted, bool, error) {
	p := &conversations.ListServiceConversationMessageParams{}
	p.SetOrder("desc").SetPageSize(50).SetLimit(findLimit)
	list, err := c.ConversationsV1.ListServiceConversationMessage(m.ChatServiceSID, m.ConversationSID, p)
	if err != nil {
		return Accepted{}, false, classify(err)
	}
	for _, msg := range list {
		if msg.DateCreated != nil && msg.DateCreated.Before(since) {
			break // newest first: everything further is older
		}
		var attrs map[string]any
		if msg.Attributes == nil || json.Unmarshal([]byte(*msg.Attributes), &attrs) != nil {
			continue
		}
		if id, _ := attrs[AttributesKey].(string); id == m.RequestID && m.RequestID != "" {
			return Accepted{SID: deref(msg.Sid), Status: "accepted", MediaSIDs: mediaSIDs(msg.Media)}, true, nil
		}
	}
	return Accepted{}, false, nil
}

func findMessaging(c *twilio.RestClient, m Message, since time.Time, claimed Claimed) (Accepted, bool, error) {
	p := &twapi.ListMessageParams{}
	p.SetTo(m.To).SetPageSize(50).SetLimit(findLimit)
	if m.MessagingServiceSID == "" && m.From != "" {
		p.SetFrom(m.From)
	}
	list, err := c.Api.ListMessage(p)
	if err != nil {
		return Accepted{}, false, classify(err)
	}
	var match *twapi.ApiV2010Message
	for i := range list { // newest first; keep the oldest match
		msg := &list[i]
		created, err := time.Parse(time.RFC1123Z, deref(msg.DateCreated))
		if err == nil && created.Before(since) {
			break
		}
		if deref(msg.Direction) != "outbound-api" {
			continue
		}
		if m.MessagingServiceSID != "" && deref(msg.MessagingServiceSid) != m.MessagingServiceSID {
			continue
		}
		if !sameContent(m, msg) {
			continue
		}
		taken, err := claimed(deref(msg.Sid))
		if err != nil {
			return Accepted{}, false, fmt.Errorf("check claimed sid: %w", err)
		}
		if !taken {
			match = msg
		}
	}
	if match == nil {
		return Accepted{}, false, nil
	}
	acc := Accepted{SID: deref(match.Sid), Status: deref(match.Status)}
	acc.Segments, _ = strconv.Atoi(deref(match.NumSegments))
	return acc, true, nil
}

// sameContent compares what a Message resource shows of a send. A template
// send's body is the rendered template, which only Twilio knows: such a
// send matches on having no media.
func sameContent(m Message, msg *twapi.ApiV2010Message) bool {
	media, _ := strconv.Atoi(deref(msg.NumMedia))
	if m.ContentSID != "" {
		return media == 0
	}
	return deref(msg.Body) == m.Body && media == len(m.MediaURLs)
}

// IsError reports whether err is a classified Twilio error and returns it.
func IsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
