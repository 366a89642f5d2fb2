// Package simapi holds the JSON shapes of the emulator's own API (the /sim
// endpoints) and of its account configuration. The public packages twiliosim
// and simclient re-export them as aliases so both ends share one definition.
package simapi

import (
	"strings"
	"time"
)

// Account is one emulated Twilio account: its credentials and the numbers
// and services it owns.
type Account struct {
	AccountSID string `json:"account_sid" yaml:"account_sid"`
	// AuthToken authenticates REST calls as AccountSID and signs every webhook.
	AuthToken string `json:"auth_token" yaml:"auth_token"`
	// APIKeys maps API key SIDs (SK…) to their secrets.
	APIKeys map[string]string `json:"api_keys,omitempty" yaml:"api_keys,omitempty"`
	// FriendlyName and Status (active, suspended or closed; active when
	// empty) are what fetching the account shows.
	FriendlyName string `json:"friendly_name,omitempty" yaml:"friendly_name,omitempty"`
	Status       string `json:"status,omitempty" yaml:"status,omitempty"`
	// Region (us1, ie1, au1, jp1) makes the account regional: a REST call
	// whose X-Original-Host names another region is refused as Twilio
	// refuses credentials outside their region (401, 20003). Empty: calls
	// on any region's host are taken.
	Region string `json:"region,omitempty" yaml:"region,omitempty"`
	// DefaultConversationsServiceSID is the service behind /v1/Conversations
	// (no Services/{IS} in the path); the first service when empty.
	DefaultConversationsServiceSID string                 `json:"default_conversations_service_sid,omitempty" yaml:"default_conversations_service_sid,omitempty"`
	Numbers                        []PhoneNumber          `json:"numbers,omitempty" yaml:"numbers,omitempty"`
	ConversationsServices          []ConversationsService `json:"conversations_services,omitempty" yaml:"conversations_services,omitempty"`
	MessagingServices              []MessagingService     `json:"messaging_services,omitempty" yaml:"messaging_services,omitempty"`
	// ContentTemplates are the account's Content API templates, listed by
	// GET /v1/Content in this order.
	ContentTemplates []ContentTemplate `json:"content_templates,omitempty" yaml:"content_templates,omitempty"`
}

// ContentTemplate is one Content API resource (content.twilio.com/v1/Content).
type ContentTemplate struct {
	// SID is HX followed by 32 hex digits.
	SID          string `json:"sid" yaml:"sid"`
	FriendlyName string `json:"friendly_name,omitempty" yaml:"friendly_name,omitempty"`
	// Language is an ISO 639-1 code ("en").
	Language string `json:"language,omitempty" yaml:"language,omitempty"`
	// Variables are the placeholders' default values: {"1": "Customer_Name"}.
	Variables map[string]string `json:"variables,omitempty" yaml:"variables,omitempty"`
	// Types maps a content type ("twilio/text", "twilio/quick-reply", …)
	// to its object as the Content API shows it ({"body": "Hi {{1}}"}).
	Types map[string]any `json:"types" yaml:"types"`
}

// PhoneNumber is a business sender: an SMS number (E.164) or a WhatsApp
// sender (whatsapp:+E164).
type PhoneNumber struct {
	Address string `json:"address" yaml:"address"`
	// SmsURL receives Programmable Messaging webhooks for inbound messages that
	// do not belong to a conversation.
	SmsURL         string `json:"sms_url,omitempty" yaml:"sms_url,omitempty"`
	SmsMethod      string `json:"sms_method,omitempty" yaml:"sms_method,omitempty"` // GET or POST (default)
	SmsFallbackURL string `json:"sms_fallback_url,omitempty" yaml:"sms_fallback_url,omitempty"`
	// SmsFallbackMethod defaults to POST.
	SmsFallbackMethod   string `json:"sms_fallback_method,omitempty" yaml:"sms_fallback_method,omitempty"`
	MessagingServiceSID string `json:"messaging_service_sid,omitempty" yaml:"messaging_service_sid,omitempty"`
	// ConversationsServiceSID switches on inbound autocreation: a message from
	// a customer without an active conversation on this number creates one in
	// that service.
	ConversationsServiceSID string `json:"conversations_service_sid,omitempty" yaml:"conversations_service_sid,omitempty"`
}

// ConversationsService is a Conversations (chat) service, IS….
type ConversationsService struct {
	SID            string `json:"sid" yaml:"sid"`
	PostWebhookURL string `json:"post_webhook_url,omitempty" yaml:"post_webhook_url,omitempty"`
	// Method is GET or POST (default).
	Method string `json:"method,omitempty" yaml:"method,omitempty"`
	// Filters lists the post-action events sent to PostWebhookURL; empty means
	// DefaultFilters.
	Filters []string `json:"filters,omitempty" yaml:"filters,omitempty"`
	// MessagingServiceSID is the service's default Messaging Service, put on
	// conversations it autocreates when the number has none.
	MessagingServiceSID string `json:"messaging_service_sid,omitempty" yaml:"messaging_service_sid,omitempty"`
}

// DefaultFilters are the events a Conversations service posts when it has no
// explicit filter list.
var DefaultFilters = []string{
	"onMessageAdded", "onConversationAdded", "onParticipantAdded",
	"onConversationStateUpdated", "onDeliveryUpdated",
}

// MessagingService is a Messaging Service, MG…, with its sender pool.
type MessagingService struct {
	SID            string `json:"sid" yaml:"sid"`
	StatusCallback string `json:"status_callback,omitempty" yaml:"status_callback,omitempty"`
	// Numbers are addresses in the sender pool, in addition to numbers that
	// name this service in their own MessagingServiceSID.
	Numbers []string `json:"numbers,omitempty" yaml:"numbers,omitempty"`
	// AdvancedOptOut adds OptOutType to inbound keyword webhooks.
	AdvancedOptOut bool `json:"advanced_opt_out,omitempty" yaml:"advanced_opt_out,omitempty"`
	// InboundURL, when set, receives inbound webhooks for the pool instead of
	// each number's SmsURL (the "send a webhook" integration).
	InboundURL     string `json:"inbound_url,omitempty" yaml:"inbound_url,omitempty"`
	InboundMethod  string `json:"inbound_method,omitempty" yaml:"inbound_method,omitempty"`
	FallbackURL    string `json:"fallback_url,omitempty" yaml:"fallback_url,omitempty"`
	FallbackMethod string `json:"fallback_method,omitempty" yaml:"fallback_method,omitempty"`
}

// File is the layout of an accounts file (JSON or YAML).
type File struct {
	Accounts []Account `json:"accounts" yaml:"accounts"`
}

// Media is one attachment of a customer message: a URL the file lives at,
// or the file itself in Data (base64 in JSON), which the emulator keeps and
// serves at the media's Twilio URL. With Data, URL may be empty and
// ContentType is required; Size defaults to the length of Data.
type Media struct {
	URL         string `json:"url"`
	ContentType string `json:"content_type,omitempty"`
	Filename    string `json:"filename,omitempty"`
	Size        int    `json:"size,omitempty"`
	Data        []byte `json:"data,omitempty"`
}

// CustomerMessage is a message a customer's phone sends to a business number.
type CustomerMessage struct {
	From        string  `json:"from"`
	To          string  `json:"to"`
	Body        string  `json:"body,omitempty"`
	Media       []Media `json:"media,omitempty"`
	ProfileName string  `json:"profile_name,omitempty"`
	// Deliveries makes the emulator deliver each webhook of this message that
	// many times (same SIDs and idempotency token). Default 1.
	Deliveries int `json:"deliveries,omitempty"`
	// OutOfOrder delivers the webhooks this message causes in reverse order
	// (for an autocreated conversation: onMessageAdded first).
	OutOfOrder bool `json:"out_of_order,omitempty"`
}

// CustomerMessageResult reports what the emulator did with a customer message.
type CustomerMessageResult struct {
	MessageSID      string `json:"message_sid"`
	Path            string `json:"path"` // "conversations", "messaging" or "none"
	ConversationSID string `json:"conversation_sid,omitempty"`
	ParticipantSID  string `json:"participant_sid,omitempty"`
	// OptOutType is STOP, START or HELP when the body was a keyword.
	OptOutType string `json:"opt_out_type,omitempty"`
	// Webhook summarises the delivery of the message webhook (onMessageAdded
	// or the Messaging webhook); nil when nothing was configured to receive it.
	Webhook *WebhookSummary `json:"webhook"`
	// Events lists every webhook the message caused, in the order sent.
	Events []WebhookSummary `json:"events,omitempty"`
	// Replies are SIDs of messages the TwiML answer asked Twilio to send.
	Replies []string `json:"replies,omitempty"`
}

// WebhookSummary is the outcome of delivering one event.
type WebhookSummary struct {
	Event string `json:"event"`
	URL   string `json:"url"`
	// Status is the HTTP status of the last answer (0 when none came).
	Status   int    `json:"status"`
	Attempts int    `json:"attempts"`
	Error    string `json:"error,omitempty"`
	// Fallback is the status of the fallback URL call, when one was made.
	FallbackStatus int `json:"fallback_status,omitempty"`
}

// OutboundMessage is a message the business sent, as the customer's phone
// (and the emulator's log) sees it.
type OutboundMessage struct {
	SID string `json:"sid"`
	// Path is "messaging" (REST Messages.json), "conversations" (a
	// conversation message), "twiml" (a <Message> answer to a webhook) or
	// "auto_reply" (Twilio's opt-out keyword replies).
	Path                string    `json:"path"`
	AccountSID          string    `json:"account_sid"`
	From                string    `json:"from"`
	To                  string    `json:"to"`
	Author              string    `json:"author,omitempty"`
	Body                string    `json:"body"`
	Media               []Media   `json:"media,omitempty"`
	ContentSID          string    `json:"content_sid,omitempty"`
	ContentVariables    string    `json:"content_variables,omitempty"`
	MessagingServiceSID string    `json:"messaging_service_sid,omitempty"`
	ConversationSID     string    `json:"conversation_sid,omitempty"`
	ChannelMessageSID   string    `json:"channel_message_sid,omitempty"`
	Status              string    `json:"status"`
	ErrorCode           int       `json:"error_code,omitempty"`
	NumSegments         int       `json:"num_segments"`
	Encoding            string    `json:"encoding"`
	DateCreated         time.Time `json:"date_created"`
	DateUpdated         time.Time `json:"date_updated"`
}

// WebhookAttempt is one HTTP request the emulator made to an application.
type WebhookAttempt struct {
	ID int64 `json:"id"`
	// Kind is "messaging", "conversations", "status_callback" or "fallback".
	Kind       string              `json:"kind"`
	Event      string              `json:"event"`
	AccountSID string              `json:"account_sid"`
	MessageSID string              `json:"message_sid,omitempty"`
	Method     string              `json:"method"`
	URL        string              `json:"url"` // exactly as requested and signed
	Params     map[string][]string `json:"params"`
	Signature  string              `json:"signature"`
	// IdempotencyToken is the I-Twilio-Idempotency-Token header.
	IdempotencyToken string    `json:"idempotency_token"`
	RetryCount       int       `json:"retry_count"`
	StatusCode       int       `json:"status_code"`
	DurationMS       float64   `json:"duration_ms"`
	Error            string    `json:"error,omitempty"`
	Time             time.Time `json:"time"`
}

// Fault makes the next REST calls fail.
type Fault struct {
	// Count is how many matching calls fail; default 1.
	Count int `json:"count,omitempty"`
	// PathPrefix restricts the fault to request paths starting with it.
	PathPrefix string `json:"path_prefix,omitempty"`
	// Method restricts the fault to one HTTP method.
	Method string `json:"method,omitempty"`
	// Status is the HTTP status; default 429.
	Status int `json:"status,omitempty"`
	// Code and Message form Twilio's error body; defaults follow Status
	// (20429 for 429, 20500 for 5xx).
	Code    int    `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// DeliveryOptions shape the status progression of outbound messages.
type DeliveryOptions struct {
	// DelayMS is the wait before each status change; nil keeps the current.
	DelayMS *int `json:"delay_ms,omitempty"`
	// OutOfOrder sends the status callbacks of a message in reverse order.
	OutOfOrder *bool `json:"out_of_order,omitempty"`
	// ErrorCode forces a final failure with this code.
	ErrorCode *int `json:"error_code,omitempty"`
	// FinalStatus is "failed" or "undelivered" for a forced failure; the
	// default is "undelivered" for 30xxx carrier codes and "failed" otherwise.
	FinalStatus string `json:"final_status,omitempty"`
}

// DeliveryRule applies DeliveryOptions to the next matching sends.
type DeliveryRule struct {
	// To matches the recipient address; empty matches any.
	To string `json:"to,omitempty"`
	// Count is how many sends the rule applies to; default 1.
	Count int `json:"count,omitempty"`
	DeliveryOptions
}

// DeliveryState is the answer of GET /sim/delivery.
type DeliveryState struct {
	Default DeliveryDefaults `json:"default"`
	Rules   []DeliveryRule   `json:"rules"`
}

// DeliveryDefaults are the options applied when no rule matches.
type DeliveryDefaults struct {
	DelayMS     int    `json:"delay_ms"`
	OutOfOrder  bool   `json:"out_of_order"`
	ErrorCode   int    `json:"error_code,omitempty"`
	FinalStatus string `json:"final_status,omitempty"`
}

// Clock is the emulator's notion of now.
type Clock struct {
	Now           time.Time `json:"now"`
	OffsetSeconds float64   `json:"offset_seconds"`
}

// ClockAdvance moves the clock forward.
type ClockAdvance struct {
	Seconds float64 `json:"seconds"`
}

// Violation is a difference between a REST exchange and Twilio's OpenAPI
// description.
type Violation struct {
	Time      time.Time `json:"time"`
	Method    string    `json:"method"`
	Path      string    `json:"path"`
	Operation string    `json:"operation,omitempty"`
	// Direction is "request" or "response".
	Direction string `json:"direction"`
	Detail    string `json:"detail"`
}

// Exchange is one REST call as contract mode saw it: where the client
// meant to send it (X-Original-Host: api.dublin.ie1.twilio.com) and what it
// was answered.
type Exchange struct {
	Time         time.Time `json:"time"`
	Method       string    `json:"method"`
	Path         string    `json:"path"`
	Operation    string    `json:"operation,omitempty"`
	OriginalHost string    `json:"original_host"`
	Status       int       `json:"status"`
}

// HostRegion reads the region and edge from a Twilio host:
// product.twilio.com is us1 without an edge, product.<region>.twilio.com
// (deprecated) a region without an edge, product.<edge>.<region>.twilio.com
// both. ok is false for a host that is not Twilio's.
func HostRegion(host string) (region, edge string, ok bool) {
	host = strings.ToLower(host)
	if h, _, found := strings.Cut(host, ":"); found {
		host = h
	}
	rest, isTwilio := strings.CutSuffix(host, ".twilio.com")
	if !isTwilio {
		return "", "", false
	}
	labels := strings.Split(rest, ".")
	switch len(labels) {
	case 1:
		return "us1", "", true
	case 2:
		return labels[1], "", true
	case 3:
		return labels[2], labels[1], true
	}
	return "", "", false
}

// ConversationState changes a conversation's state as Twilio's timers would.
type ConversationState struct {
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"` // default TIMER
}

// Error is the body of every non-2xx answer of the /sim API.
type Error struct {
	Error string `json:"error"`
}
