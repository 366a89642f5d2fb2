// Package chatwebhook names chat-handler's webhook URLs, the Conversations
// events it acts on, its self-test and its reconciliation endpoint: what
// chat-handler serves, what the config service's connector check expects
// Twilio to be configured with, and what switchboardctl reconcile reads.
package chatwebhook

import (
	"strings"
	"time"
)

// TenantPrefix is the path every tenant's webhook URLs start with.
const TenantPrefix = "/api/acs/chat-handler/tenants/"

// Paths of the webhook endpoints below a tenant's prefix.
const (
	PathConversations = "/twilio-callbacks"
	PathInbound       = "/messaging/inbound"
	PathFallback      = "/messaging/fallback"
	PathStatus        = "/messaging/status"
	// PathReconcile is not Twilio's: a tenant admin's POST asking for a
	// reconciliation from Twilio's history (ReconcileRequest), answered
	// with its ReconcileReport.
	PathReconcile = "/reconcile"
)

// ReconcileRequest is the body of a POST to PathReconcile.
type ReconcileRequest struct {
	// Since and Until are RFC 3339; Until defaults to now.
	Since string `json:"since"`
	Until string `json:"until,omitempty"`
}

// ReconcileReport says what one reconciliation did.
type ReconcileReport struct {
	Tenant  string    `json:"tenant"`
	Since   time.Time `json:"since"`
	Until   time.Time `json:"until"`
	Entries int       `json:"entries"`
	// Listed is every message Twilio listed in the window.
	Listed int `json:"messages_listed"`
	// CustomerMessages were published as received; those Switchboard had
	// already are dropped downstream.
	CustomerMessages int `json:"customer_messages_published"`
	// Statuses are outbound messages' current delivery statuses published.
	Statuses int `json:"delivery_statuses_published"`
	// Refused are customer messages on a route that takes none (an entry
	// disabled, without a service, or a channel switched off): the webhook
	// would have refused them too.
	Refused int `json:"refused_disabled_route"`
	// Problems lists what could not be read or published; the run goes on
	// with the next entry, and can be repeated.
	Problems []string `json:"problems,omitempty"`
}

// TenantURL is the webhook URL of one endpoint for a tenant below base
// (scheme://host[:port][/prefix]).
func TenantURL(base, tenant, path string) string {
	return strings.TrimRight(base, "/") + TenantPrefix + tenant + path
}

// Conversations post-event types chat-handler acts on.
const (
	EventMessageAdded             = "onMessageAdded"
	EventConversationAdded        = "onConversationAdded"
	EventParticipantAdded         = "onParticipantAdded"
	EventConversationStateUpdated = "onConversationStateUpdated"
	EventDeliveryUpdated          = "onDeliveryUpdated"
)

// Events are the post-event filters a Conversations service sending to
// chat-handler should have, onMessageAdded (customers' messages) first.
var Events = []string{EventMessageAdded, EventConversationAdded, EventParticipantAdded, EventConversationStateUpdated, EventDeliveryUpdated}

// The self-test: a webhook signed like Twilio's, whose signed parameters
// include SelfTestParam with a nonce. Once its route and signature check
// out, chat-handler answers 200 with the nonce in SelfTestHeader and
// publishes nothing, so no session starts. Twilio never sends the
// parameter, and it is covered by the signature, so it cannot be added to
// a captured webhook.
const (
	SelfTestParam  = "SwitchboardSelfTest"
	SelfTestHeader = "X-Switchboard-Self-Test"
)

// ValidSelfTestNonce: 1-64 characters of A-Z, a-z, 0-9, '-' and '_'.
func ValidSelfTestNonce(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
