// Package chatwebhook names chat-handler's webhook URLs, the Conversations
// events it acts on, and its self-test: what chat-handler serves and what
// the config service's connector check expects Twilio to be configured
// with.
package chatwebhook

import "strings"

// TenantPrefix is the path every tenant's webhook URLs start with.
const TenantPrefix = "/api/acs/chat-handler/tenants/"

// Paths of the webhook endpoints below a tenant's prefix.
const (
	PathConversations = "/twilio-callbacks"
	PathInbound       = "/messaging/inbound"
	PathFallback      = "/messaging/fallback"
	PathStatus        = "/messaging/status"
)

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
