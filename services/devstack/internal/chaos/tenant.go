package chaos

import (
	"context"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/services/config/tenantspec"
	"github.com/switchboard-cc/switchboard/services/devstack"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

// The harness's tenant: one Twilio account in the emulator with two SMS
// numbers (Conversations path) and two WhatsApp senders (Programmable
// Messaging path), one service without a greeting or workflow, and the
// agents.
const (
	tenantID      = "chaos"
	agentPassword = "chaos-agent-pw"
	accountSID    = "AC" + "c4a0500000000000000000000000000a"
	apiKeySID     = "SK" + "c4a0500000000000000000000000000a"
	apiKeySecret  = "chaosSecret0123456789abcdefABCDE"
	authToken     = "c4a050000000000000000000000000aa"
)

// The tenant's SMS numbers (each with its Conversations service) and
// WhatsApp senders. A US long code sends about one SMS segment a second
// (outbound-sender paces it so), so the agents' replies to SMS chats need
// enough numbers: the soak's agents answer about 3 SMS chats a second.
var (
	smsNumbers, smsServices = smsLines(8)
	waSenders               = []string{"whatsapp:+12025590001", "whatsapp:+12025590002"}
)

func smsLines(n int) (numbers, services []string) {
	for i := 1; i <= n; i++ {
		numbers = append(numbers, fmt.Sprintf("+120255800%02d", i))
		services = append(services, fmt.Sprintf("IS"+"c4a050000000000000000000000000%02d", i))
	}
	return numbers, services
}

func agentEmail(i int) string { return fmt.Sprintf("agent%02d@chaos.example", i) }

func spec(cfg Config) *tenantspec.Spec {
	s := &tenantspec.Spec{
		Tenant: tenantspec.Tenant{ID: tenantID, DisplayName: "Chaos", Modalities: tenantspec.Modalities{
			InstantMessaging: true, Twilio: true, SMS: true, WhatsApp: true,
		}},
		OrganizationUnits: []tenantspec.OrgUnit{{ID: "root", Name: "Chaos"}},
		Connectors: []tenantspec.Connector{{ID: "twilio", Name: "Chaos account", OrgUnit: "root", AccountSID: accountSID,
			APIKeySID: apiKeySID, APIKeySecret: apiKeySecret, AuthToken: authToken, Region: "us1"}},
	}
	var entries []string
	for i := range smsNumbers {
		id := fmt.Sprintf("sms-%d", i)
		s.MessagingEntries = append(s.MessagingEntries, tenantspec.Entry{ID: id, Name: "SMS " + smsNumbers[i], OrgUnit: "root",
			Connector: "twilio", Channel: "sms", Path: "conversations", ConversationsServiceSID: smsServices[i]})
		entries = append(entries, id)
	}
	s.MessagingEntries = append(s.MessagingEntries, tenantspec.Entry{ID: "whatsapp", Name: "WhatsApp", OrgUnit: "root",
		Connector: "twilio", Channel: "whatsapp", Path: "messaging", BusinessAddresses: waSenders})
	entries = append(entries, "whatsapp")
	s.Services = []tenantspec.Service{{ID: "support", Name: "Support", OrgUnit: "root", IM: true, Channels: []string{"sms", "whatsapp"},
		MessagingEntries: entries,
		Distribution:     tenantspec.Distribution{RONATimeout: tenantspec.Duration(30 * time.Second), MaxParallelTasks: int32(cfg.Capacity)}}}
	for i := range cfg.Agents {
		s.Users = append(s.Users, tenantspec.User{ID: fmt.Sprintf("agent%02d", i), DisplayName: fmt.Sprintf("Agent %d", i), Email: agentEmail(i),
			Roles: []string{"agent"}, IMLicense: true, Services: []string{"support"}, Capacity: int32(cfg.Capacity), Password: agentPassword})
	}
	return s
}

// dialAs connects to a service's gRPC address with a token of role for
// tenant (none for a platform operator).
func dialAs(info devstack.Info, addr, tenant, role string) (*grpc.ClientConn, error) {
	tok, err := info.AuthKeys.Mint(authn.Claims{Tenant: tenant, Roles: []string{role}, Name: "chaos",
		RegisteredClaims: jwt.RegisteredClaims{Subject: "chaos"}}, time.Hour)
	if err != nil {
		return nil, err
	}
	return grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(grpcserver.BearerToken(tok)))
}

// applyTenant applies the tenant as switchboardctl apply would (retrying
// while config starts) and registers the account with the emulator.
func applyTenant(ctx context.Context, cfg Config, info devstack.Info) error {
	conn, err := dialAs(info, info.ConfigAddr, "", authn.RolePlatform)
	if err != nil {
		return err
	}
	defer conn.Close()
	for {
		if _, err = tenantspec.Apply(ctx, conn, spec(cfg)); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("apply tenant: %w", err)
		case <-time.After(300 * time.Millisecond):
		}
	}
	base := info.ChatHandlerURL + "/api/acs/chat-handler/tenants/" + tenantID
	a := simclient.Account{AccountSID: accountSID, AuthToken: authToken, APIKeys: map[string]string{apiKeySID: apiKeySecret}}
	for i, n := range smsNumbers {
		a.ConversationsServices = append(a.ConversationsServices, simclient.ConversationsService{SID: smsServices[i], PostWebhookURL: base + "/twilio-callbacks"})
		a.Numbers = append(a.Numbers, simclient.PhoneNumber{Address: n, ConversationsServiceSID: smsServices[i]})
	}
	for _, w := range waSenders {
		a.Numbers = append(a.Numbers, simclient.PhoneNumber{Address: w, SmsURL: base + "/messaging/inbound", SmsFallbackURL: base + "/messaging/fallback"})
	}
	return simclient.New(info.TwilioSimURL, nil).PutAccount(ctx, a)
}
