package e2ebench

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

// The benchmark tenant: its own Twilio account in the emulator, several SMS
// numbers on the Conversations path (one Conversations service each) and
// several WhatsApp senders on the Programmable Messaging path, one service
// and enough agents with enough capacity that every customer of the run has
// a live, accepted session. outbound-sender paces each sender (a US long
// code 1 segment/s, a WhatsApp sender 10 messages/s), so several senders are
// what lets agents answer at a useful rate without queueing behind a limit.
const (
	tenantID      = "bench"
	agentPassword = "bench-agent-pw"
	accountSID    = "AC" + "be0c0000000000000000000000000001"
	apiKeySID     = "SK" + "be0c0000000000000000000000000001"
	apiKeySecret  = "benchSecret0123456789abcdefABCDE"
	authToken     = "be0c00000000000000000000000000aa"
)

// lane is one business sender: an SMS number with its Conversations
// service, or a WhatsApp sender.
type lane struct {
	business string // +E164 or whatsapp:+E164
	convSID  string // Conversations service (SMS lanes)
	whatsapp bool
}

func smsLane(i int) lane {
	return lane{business: fmt.Sprintf("+1202556%04d", 1000+i), convSID: fmt.Sprintf("IS%032x", 0xbe0c0000+i)}
}

func waLane(i int) lane {
	return lane{business: fmt.Sprintf("whatsapp:+1202557%04d", 1000+i), whatsapp: true}
}

func agentEmail(i int) string { return fmt.Sprintf("agent%03d@bench.example", i) }

func benchSpec(cfg Config) *tenantspec.Spec {
	s := &tenantspec.Spec{
		Tenant: tenantspec.Tenant{ID: tenantID, DisplayName: "Benchmark", Modalities: tenantspec.Modalities{
			InstantMessaging: true, Twilio: true, SMS: true, WhatsApp: true,
		}},
		OrganizationUnits: []tenantspec.OrgUnit{{ID: "root", Name: "Benchmark"}},
		Connectors: []tenantspec.Connector{{
			ID: "twilio", Name: "Benchmark account", OrgUnit: "root", AccountSID: accountSID,
			APIKeySID: apiKeySID, APIKeySecret: apiKeySecret, AuthToken: authToken, Region: "us1",
		}},
	}
	var entries []string
	for i := range cfg.SMSLanes {
		l := smsLane(i)
		id := fmt.Sprintf("sms-%d", i)
		s.MessagingEntries = append(s.MessagingEntries, tenantspec.Entry{
			ID: id, Name: "SMS " + l.business, OrgUnit: "root", Connector: "twilio", Channel: "sms",
			Path: "conversations", ConversationsServiceSID: l.convSID,
		})
		entries = append(entries, id)
	}
	if cfg.WhatsAppLanes > 0 {
		e := tenantspec.Entry{ID: "whatsapp", Name: "WhatsApp senders", OrgUnit: "root", Connector: "twilio", Channel: "whatsapp", Path: "messaging"}
		for i := range cfg.WhatsAppLanes {
			e.BusinessAddresses = append(e.BusinessAddresses, waLane(i).business)
		}
		s.MessagingEntries = append(s.MessagingEntries, e)
		entries = append(entries, e.ID)
	}
	capacity := int32((cfg.Customers+cfg.Agents-1)/cfg.Agents + 2)
	s.Services = []tenantspec.Service{{
		ID: "bench", Name: "Benchmark Support", OrgUnit: "root", IM: true, Channels: []string{"sms", "whatsapp"},
		MessagingEntries: entries, Greeting: cfg.Greeting,
		Distribution: tenantspec.Distribution{RONATimeout: tenantspec.Duration(5 * time.Minute), MaxParallelTasks: capacity},
	}}
	for i := range cfg.Agents {
		s.Users = append(s.Users, tenantspec.User{
			ID: fmt.Sprintf("agent%03d", i), DisplayName: fmt.Sprintf("Agent %d", i), Email: agentEmail(i),
			Roles: []string{"agent"}, IMLicense: true, Services: []string{"bench"}, Capacity: capacity, Password: agentPassword,
		})
	}
	return s
}

// simAccount is the benchmark tenant's Twilio account as the emulator
// holds it, set up the way devstack sets up the demo's.
func simAccount(cfg Config, chatURL string) simclient.Account {
	base := chatURL + "/api/acs/chat-handler/tenants/" + tenantID
	a := simclient.Account{AccountSID: accountSID, AuthToken: authToken, APIKeys: map[string]string{apiKeySID: apiKeySecret}}
	for i := range cfg.SMSLanes {
		l := smsLane(i)
		a.ConversationsServices = append(a.ConversationsServices, simclient.ConversationsService{SID: l.convSID, PostWebhookURL: base + "/twilio-callbacks"})
		a.Numbers = append(a.Numbers, simclient.PhoneNumber{Address: l.business, ConversationsServiceSID: l.convSID})
	}
	for i := range cfg.WhatsAppLanes {
		a.Numbers = append(a.Numbers, simclient.PhoneNumber{Address: waLane(i).business, SmsURL: base + "/messaging/inbound", SmsFallbackURL: base + "/messaging/fallback"})
	}
	return a
}

// applyTenant applies the benchmark tenant as a platform operator would
// with switchboardctl apply, and registers its account with the emulator.
func applyTenant(ctx context.Context, cfg Config, info devstack.Info) error {
	tok, err := info.AuthKeys.Mint(authn.Claims{Roles: []string{authn.RolePlatform}, Name: "e2e-bench",
		RegisteredClaims: jwt.RegisteredClaims{Subject: "e2e-bench"}}, time.Hour)
	if err != nil {
		return fmt.Errorf("mint platform token: %w", err)
	}
	conn, err := grpc.NewClient(info.ConfigAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(grpcserver.BearerToken(tok)))
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := tenantspec.Apply(ctx, conn, benchSpec(cfg)); err != nil {
		return fmt.Errorf("apply tenant %q: %w", tenantID, err)
	}
	sim := simclient.New(info.TwilioSimURL, nil)
	if err := sim.PutAccount(ctx, simAccount(cfg, info.ChatHandlerURL)); err != nil {
		return fmt.Errorf("emulator account: %w", err)
	}
	return nil
}
