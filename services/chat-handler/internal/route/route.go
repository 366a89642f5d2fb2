// Package route finds which tenant, messaging entry and service a Twilio
// webhook belongs to, and the Auth Tokens that may have signed it.
package route

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
)

// ErrUnknown: the tenant does not exist or none of its messaging entries
// has that Conversations service SID or business number.
var ErrUnknown = errors.New("no messaging entry")

// Route is where a webhook goes.
type Route struct {
	Tenant              string
	EntryID             string
	ServiceID           string
	Channel             messagingv1.Channel
	Path                messagingv1.TwilioPath
	AccountSID          string
	AuthTokens          []string
	MessagingServiceSID string
	// Disabled entries, entries without a service and tenants without the
	// channel take no new customer messages.
	Disabled       bool
	DisabledReason string
}

// Resolver looks routes up. Exactly one of chatServiceSID and
// businessAddress is set. It returns an error wrapping ErrUnknown when
// nothing matches; any other error means routing is unavailable.
type Resolver interface {
	Resolve(ctx context.Context, tenant, chatServiceSID, businessAddress string) (*Route, error)
}

// WebhookResolver is the config service's ResolveWebhook as the shared
// configuration cache (pkg/configcache) serves it.
type WebhookResolver interface {
	ResolveWebhook(ctx context.Context, tenant, chatServiceSID, businessAddress string) (*configv1.ResolveWebhookResponse, error)
}

// Cached resolves through the shared configuration cache: answers come
// from memory and are dropped on ConfigChanged events.
type Cached struct{ Cache WebhookResolver }

// Resolve implements Resolver.
func (c Cached) Resolve(ctx context.Context, tenant, chatServiceSID, businessAddress string) (*Route, error) {
	res, err := c.Cache.ResolveWebhook(ctx, tenant, chatServiceSID, businessAddress)
	if err := classify(err, tenant, chatServiceSID, businessAddress); err != nil {
		return nil, err
	}
	return FromResponse(res), nil
}

func classify(err error, tenant, chatServiceSID, businessAddress string) error {
	if err == nil {
		return nil
	}
	switch status.Code(err) {
	case codes.NotFound, codes.InvalidArgument:
		return fmt.Errorf("%w for %s%s in tenant %q", ErrUnknown, chatServiceSID, businessAddress, tenant)
	}
	if errors.Is(err, ErrUnknown) {
		return err
	}
	return fmt.Errorf("resolve webhook route: %w", err)
}

// FromResponse converts a ResolveWebhook answer.
func FromResponse(res *configv1.ResolveWebhookResponse) *Route {
	e, t := res.GetEntry(), res.GetTenant()
	r := &Route{
		Tenant: t.GetId(), EntryID: e.GetId(), ServiceID: res.GetService().GetId(), Channel: e.GetChannel(), Path: e.GetPath(),
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

// Static is an in-memory Resolver for tests and the benchmark.
type Static struct {
	mu     sync.RWMutex
	routes map[string]*Route
}

// NewStatic returns an empty Static resolver.
func NewStatic() *Static { return &Static{routes: map[string]*Route{}} }

func staticKey(tenant, chatServiceSID, businessAddress string) string {
	if chatServiceSID != "" {
		return tenant + "\x00sid\x00" + chatServiceSID
	}
	return tenant + "\x00addr\x00" + NormalizeAddress(businessAddress)
}

// AddService routes a Conversations service SID of r.Tenant to r.
func (s *Static) AddService(chatServiceSID string, r *Route) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routes[staticKey(r.Tenant, chatServiceSID, "")] = r
}

// AddAddress routes a business address of r.Tenant to r.
func (s *Static) AddAddress(address string, r *Route) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routes[staticKey(r.Tenant, "", address)] = r
}

// Resolve implements Resolver.
func (s *Static) Resolve(_ context.Context, tenant, chatServiceSID, businessAddress string) (*Route, error) {
	s.mu.RLock()
	r := s.routes[staticKey(tenant, chatServiceSID, businessAddress)]
	s.mu.RUnlock()
	if r == nil {
		return nil, fmt.Errorf("%w for %s%s in tenant %q", ErrUnknown, chatServiceSID, businessAddress, tenant)
	}
	return r, nil
}

// NormalizeAddress writes a business address the way the config service
// stores it: trimmed, with a lower-case "whatsapp:" prefix.
func NormalizeAddress(s string) string {
	const wa = "whatsapp:"
	s = strings.TrimSpace(s)
	if len(s) > len(wa) && strings.EqualFold(s[:len(wa)], wa) {
		return wa + strings.TrimSpace(s[len(wa):])
	}
	return s
}
