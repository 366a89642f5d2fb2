// Package route finds which tenant, messaging entry and service a Twilio
// webhook belongs to, and the Auth Tokens that may have signed it.
package route

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
)

// ErrUnknown: no messaging entry of this tenant has that SID or number.
var ErrUnknown = errors.New("no messaging entry")

// Route is where a webhook goes.
type Route struct {
	Tenant              string
	EntryID             string
	ServiceID           string
	Channel             messagingv1.Channel
	AccountSID          string
	AuthTokens          []string
	MessagingServiceSID string
	// Disabled entries and tenants without the channel reject messages.
	Disabled       bool
	DisabledReason string
}

// Resolver looks routes up.
type Resolver interface {
	Resolve(ctx context.Context, tenant, chatServiceSID, businessAddress string) (*Route, error)
}

// Lookup resolves through the config service's LookupService.
type Lookup struct{ Client configv1.LookupServiceClient }

// Resolve implements Resolver.
func (l Lookup) Resolve(ctx context.Context, tenant, chatServiceSID, businessAddress string) (*Route, error) {
	res, err := l.Client.ResolveWebhook(ctx, &configv1.ResolveWebhookRequest{
		TenantId: tenant, ChatServiceSid: chatServiceSID, BusinessAddress: businessAddress,
	})
	switch status.Code(err) {
	case codes.OK:
	case codes.NotFound, codes.InvalidArgument, codes.PermissionDenied:
		return nil, fmt.Errorf("%w for %s%s in tenant %q", ErrUnknown, chatServiceSID, businessAddress, tenant)
	default:
		return nil, fmt.Errorf("resolve webhook: %w", err)
	}
	return FromResponse(res), nil
}

// FromResponse converts a ResolveWebhook answer.
func FromResponse(res *configv1.ResolveWebhookResponse) *Route {
	e, t := res.GetEntry(), res.GetTenant()
	r := &Route{
		Tenant: t.GetId(), EntryID: e.GetId(), ServiceID: res.GetService().GetId(), Channel: e.GetChannel(),
		AccountSID: res.GetAccountSid(), AuthTokens: res.GetAuthTokens(), MessagingServiceSID: e.GetMessagingServiceSid(),
	}
	m := t.GetModalities()
	switch {
	case e.GetDisabled():
		r.Disabled, r.DisabledReason = true, fmt.Sprintf("messaging entry %q is disabled", e.GetId())
	case !m.GetInstantMessaging() || !m.GetTwilio():
		r.Disabled, r.DisabledReason = true, fmt.Sprintf("tenant %q has Instant Messaging or Twilio switched off", t.GetId())
	case e.GetChannel() == messagingv1.Channel_CHANNEL_SMS && !m.GetSms():
		r.Disabled, r.DisabledReason = true, fmt.Sprintf("tenant %q has SMS switched off", t.GetId())
	case e.GetChannel() == messagingv1.Channel_CHANNEL_WHATSAPP && !m.GetWhatsapp():
		r.Disabled, r.DisabledReason = true, fmt.Sprintf("tenant %q has WhatsApp switched off", t.GetId())
	case r.ServiceID == "":
		r.Disabled, r.DisabledReason = true, fmt.Sprintf("messaging entry %q is not assigned to a service", e.GetId())
	}
	return r
}
