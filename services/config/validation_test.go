package configsvc_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
)

type rule[M proto.Message] struct {
	name   string
	change func(M)
	code   codes.Code
	field  string
}

func TestValidationRules(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)

	t.Run("tenant", func(t *testing.T) {
		base := &configv1.Tenant{Id: "fresh", DisplayName: "Fresh", Modalities: &configv1.ModalitySettings{InstantMessaging: true, Twilio: true, Sms: true}}
		for _, r := range []rule[*configv1.Tenant]{
			{"id not a slug", func(m *configv1.Tenant) { m.Id = "Not_A_Slug" }, codes.InvalidArgument, "tenant.id"},
			{"display name missing", func(m *configv1.Tenant) { m.DisplayName = " " }, codes.InvalidArgument, "tenant.display_name"},
			{"sms without twilio", func(m *configv1.Tenant) { m.Modalities.Twilio = false }, codes.InvalidArgument, "tenant.modalities.sms"},
			{"twilio without IM", func(m *configv1.Tenant) { m.Modalities.InstantMessaging = false }, codes.InvalidArgument, "tenant.modalities.twilio"},
			{"stale after too short", func(m *configv1.Tenant) { m.StaleAfter = durationpb.New(time.Minute) }, codes.InvalidArgument, "tenant.stale_after"},
			{"stale after too long", func(m *configv1.Tenant) { m.StaleAfter = durationpb.New(100 * 24 * time.Hour) }, codes.InvalidArgument, "tenant.stale_after"},
			{"time zone unknown", func(m *configv1.Tenant) { m.TimeZone = "Mars/Olympus" }, codes.InvalidArgument, "tenant.time_zone"},
			{"time zone an offset", func(m *configv1.Tenant) { m.TimeZone = "+01:00" }, codes.InvalidArgument, "tenant.time_zone"},
			{"time zone the server's", func(m *configv1.Tenant) { m.TimeZone = "Local" }, codes.InvalidArgument, "tenant.time_zone"},
			{"canned shortcut malformed", func(m *configv1.Tenant) {
				m.CannedResponses = []*configv1.CannedResponse{{Shortcut: "-x", Body: "Hi"}}
			}, codes.InvalidArgument, "tenant.canned_responses[0].shortcut"},
			{"id taken", func(m *configv1.Tenant) { m.Id = "acme" }, codes.AlreadyExists, "tenant.id"},
		} {
			t.Run(r.name, func(t *testing.T) {
				m := proto.Clone(base).(*configv1.Tenant)
				r.change(m)
				_, err := f.platform.tenants.CreateTenant(ctx, &configv1.CreateTenantRequest{Tenant: m})
				wantStatus(t, err, r.code, r.field)
			})
		}
	})

	t.Run("organization unit", func(t *testing.T) {
		base := &configv1.OrganizationUnit{Id: "new-ou", TenantId: "acme", Name: "New", ParentId: "root"}
		for _, r := range []rule[*configv1.OrganizationUnit]{
			{"name missing", func(m *configv1.OrganizationUnit) { m.Name = "" }, codes.InvalidArgument, "organization_unit.name"},
			{"id invalid", func(m *configv1.OrganizationUnit) { m.Id = "a/b" }, codes.InvalidArgument, "organization_unit.id"},
			{"second root", func(m *configv1.OrganizationUnit) { m.ParentId = "" }, codes.AlreadyExists, "organization_unit.parent_id"},
			{"parent missing", func(m *configv1.OrganizationUnit) { m.ParentId = "nowhere" }, codes.FailedPrecondition, "organization_unit.parent_id"},
			{"id taken", func(m *configv1.OrganizationUnit) { m.Id = "emea" }, codes.AlreadyExists, "organization_unit.id"},
		} {
			t.Run(r.name, func(t *testing.T) {
				m := proto.Clone(base).(*configv1.OrganizationUnit)
				r.change(m)
				_, err := f.admin.tenants.CreateOrganizationUnit(ctx, &configv1.CreateOrganizationUnitRequest{OrganizationUnit: m})
				wantStatus(t, err, r.code, r.field)
			})
		}
	})

	t.Run("provider connector", func(t *testing.T) {
		base := connector("c-new", "emea")
		for _, r := range []rule[*configv1.ProviderConnector]{
			{"account sid", func(m *configv1.ProviderConnector) { m.AccountSid = "AC123" }, codes.InvalidArgument, "provider_connector.account_sid"},
			{"account sid upper case", func(m *configv1.ProviderConnector) { m.AccountSid = "AC" + strings.Repeat("A", 32) }, codes.InvalidArgument, "provider_connector.account_sid"},
			{"api key sid", func(m *configv1.ProviderConnector) { m.ApiKeySid = sid("AC", 'b') }, codes.InvalidArgument, "provider_connector.api_key_sid"},
			{"api key secret missing", func(m *configv1.ProviderConnector) { m.ApiKeySecret = "" }, codes.InvalidArgument, "provider_connector.api_key_secret"},
			{"api key secret short", func(m *configv1.ProviderConnector) { m.ApiKeySecret = "short" }, codes.InvalidArgument, "provider_connector.api_key_secret"},
			{"auth token missing", func(m *configv1.ProviderConnector) { m.AuthToken = "" }, codes.InvalidArgument, "provider_connector.auth_token"},
			{"auth token not hex", func(m *configv1.ProviderConnector) { m.AuthToken = strings.Repeat("z", 32) }, codes.InvalidArgument, "provider_connector.auth_token"},
			{"secondary equals primary", func(m *configv1.ProviderConnector) { m.SecondaryAuthToken = m.AuthToken }, codes.InvalidArgument, "provider_connector.secondary_auth_token"},
			{"region unknown", func(m *configv1.ProviderConnector) { m.Region = "de1" }, codes.InvalidArgument, "provider_connector.region"},
			{"edge of another region", func(m *configv1.ProviderConnector) { m.Region, m.Edge = "ie1", "sydney" }, codes.InvalidArgument, "provider_connector.edge"},
			{"name missing", func(m *configv1.ProviderConnector) { m.Name = "" }, codes.InvalidArgument, "provider_connector.name"},
			{"org unit missing", func(m *configv1.ProviderConnector) { m.OrgUnitId = "" }, codes.InvalidArgument, "provider_connector.org_unit_id"},
			{"org unit unknown", func(m *configv1.ProviderConnector) { m.OrgUnitId = "nowhere" }, codes.FailedPrecondition, "provider_connector.org_unit_id"},
			{"id taken", func(m *configv1.ProviderConnector) { m.Id = "c-root" }, codes.AlreadyExists, "provider_connector.id"},
		} {
			t.Run(r.name, func(t *testing.T) {
				m := proto.Clone(base).(*configv1.ProviderConnector)
				r.change(m)
				_, err := f.admin.channels.CreateProviderConnector(ctx, &configv1.CreateProviderConnectorRequest{ProviderConnector: m})
				wantStatus(t, err, r.code, r.field)
			})
		}
		t.Run("tenant with Twilio off", func(t *testing.T) {
			m := proto.Clone(base).(*configv1.ProviderConnector)
			m.TenantId, m.OrgUnitId = "noim", "root"
			_, err := f.platform.channels.CreateProviderConnector(ctx, &configv1.CreateProviderConnectorRequest{ProviderConnector: m})
			wantStatus(t, err, codes.FailedPrecondition, "provider_connector.tenant_id")
		})
		t.Run("region defaults", func(t *testing.T) {
			for region, edge := range map[string]string{"": "", "ie1": "dublin", "au1": "sydney"} {
				m := proto.Clone(base).(*configv1.ProviderConnector)
				m.Id, m.Region = "c-region-"+map[string]string{"": "us", "ie1": "ie", "au1": "au"}[region], region
				r, err := f.admin.channels.CreateProviderConnector(ctx, &configv1.CreateProviderConnectorRequest{ProviderConnector: m})
				if err != nil {
					t.Fatalf("region %q: %v", region, err)
				}
				wantRegion := region
				if wantRegion == "" {
					wantRegion = "us1"
				}
				if got := r.GetProviderConnector(); got.GetRegion() != wantRegion || got.GetEdge() != edge {
					t.Errorf("region %q: got region %q edge %q, want %q %q", region, got.GetRegion(), got.GetEdge(), wantRegion, edge)
				}
			}
		})
	})

	t.Run("messaging entry", func(t *testing.T) {
		base := smsEntry("e-new", "zurich", "c-emea", '9')
		for _, r := range []rule[*configv1.MessagingEntry]{
			{"neither sid nor number", func(m *configv1.MessagingEntry) { m.ConversationsServiceSid = "" }, codes.InvalidArgument, "messaging_entry.business_addresses"},
			{"service sid format", func(m *configv1.MessagingEntry) { m.ConversationsServiceSid = "IS1234" }, codes.InvalidArgument, "messaging_entry.conversations_service_sid"},
			{"messaging service sid format", func(m *configv1.MessagingEntry) { m.MessagingServiceSid = "MGxyz" }, codes.InvalidArgument, "messaging_entry.messaging_service_sid"},
			{"number not E.164", func(m *configv1.MessagingEntry) { m.BusinessAddresses = []string{"044 555 01 01"} }, codes.InvalidArgument, "messaging_entry.business_addresses[0]"},
			{"whatsapp number on SMS", func(m *configv1.MessagingEntry) { m.BusinessAddresses = []string{"whatsapp:+41445550199"} }, codes.InvalidArgument, "messaging_entry.business_addresses[0]"},
			{"bare number on WhatsApp", func(m *configv1.MessagingEntry) {
				m.Channel, m.BusinessAddresses = whatsapp, []string{"+41445550199"}
			}, codes.InvalidArgument, "messaging_entry.business_addresses[0]"},
			{"number twice", func(m *configv1.MessagingEntry) { m.BusinessAddresses = []string{"+41445550199", "+41445550199"} }, codes.InvalidArgument, "messaging_entry.business_addresses[1]"},
			{"channel missing", func(m *configv1.MessagingEntry) { m.Channel = messagingv1.Channel_CHANNEL_UNSPECIFIED }, codes.InvalidArgument, "messaging_entry.channel"},
			{"conversations path without sid", func(m *configv1.MessagingEntry) {
				m.ConversationsServiceSid, m.BusinessAddresses, m.Path = "", []string{"+41445550199"}, messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS
			}, codes.InvalidArgument, "messaging_entry.conversations_service_sid"},
			{"connector missing", func(m *configv1.MessagingEntry) { m.ConnectorId = "" }, codes.InvalidArgument, "messaging_entry.connector_id"},
			{"connector unknown", func(m *configv1.MessagingEntry) { m.ConnectorId = "c-none" }, codes.FailedPrecondition, "messaging_entry.connector_id"},
			{"connector of a sibling OU", func(m *configv1.MessagingEntry) { m.ConnectorId = "c-apac" }, codes.FailedPrecondition, "messaging_entry.connector_id"},
			{"connector of a child OU", func(m *configv1.MessagingEntry) { m.OrgUnitId = "root" }, codes.FailedPrecondition, "messaging_entry.connector_id"},
			{"org unit unknown", func(m *configv1.MessagingEntry) { m.OrgUnitId = "nowhere" }, codes.FailedPrecondition, "messaging_entry.org_unit_id"},
			{"sid of another entry", func(m *configv1.MessagingEntry) { m.ConversationsServiceSid = sid("IS", '1') }, codes.AlreadyExists, "messaging_entry.conversations_service_sid"},
			{"number of another entry", func(m *configv1.MessagingEntry) {
				m.Channel, m.ConversationsServiceSid, m.BusinessAddresses = whatsapp, "", []string{"whatsapp:+41445550101"}
			}, codes.AlreadyExists, "messaging_entry.business_addresses[0]"},
		} {
			t.Run(r.name, func(t *testing.T) {
				m := proto.Clone(base).(*configv1.MessagingEntry)
				r.change(m)
				_, err := f.admin.channels.CreateMessagingEntry(ctx, &configv1.CreateMessagingEntryRequest{MessagingEntry: m})
				wantStatus(t, err, r.code, r.field)
			})
		}
		t.Run("tenant channel off", func(t *testing.T) {
			q := newClients(f.env.Admin(t, "quiet"))
			must[*configv1.CreateOrganizationUnitResponse](t)(q.tenants.CreateOrganizationUnit(ctx, &configv1.CreateOrganizationUnitRequest{OrganizationUnit: &configv1.OrganizationUnit{Id: "root", TenantId: "quiet", Name: "Quiet"}}))
			c := connector("c-quiet", "root")
			c.TenantId = "quiet"
			must[*configv1.CreateProviderConnectorResponse](t)(q.channels.CreateProviderConnector(ctx, &configv1.CreateProviderConnectorRequest{ProviderConnector: c}))
			e := waEntry("wa-quiet", "root", "c-quiet", "+12025550177")
			e.TenantId = "quiet"
			_, err := q.channels.CreateMessagingEntry(ctx, &configv1.CreateMessagingEntryRequest{MessagingEntry: e})
			wantStatus(t, err, codes.FailedPrecondition, "messaging_entry.channel")
		})
		t.Run("path derived", func(t *testing.T) {
			e := must[*configv1.GetMessagingEntryResponse](t)(f.admin.channels.GetMessagingEntry(ctx, &configv1.GetMessagingEntryRequest{TenantId: "acme", Id: "wa-1"}))
			if got := e.GetMessagingEntry().GetPath(); got != messagingv1.TwilioPath_TWILIO_PATH_MESSAGING {
				t.Errorf("path of a number-only entry = %v, want MESSAGING", got)
			}
			e = must[*configv1.GetMessagingEntryResponse](t)(f.admin.channels.GetMessagingEntry(ctx, &configv1.GetMessagingEntryRequest{TenantId: "acme", Id: "sms-1"}))
			if got := e.GetMessagingEntry().GetPath(); got != messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS {
				t.Errorf("path of an IS entry = %v, want CONVERSATIONS", got)
			}
		})
	})

	t.Run("service", func(t *testing.T) {
		base := serviceOf("svc-new")
		for _, r := range []rule[*configv1.Service]{
			{"name missing", func(m *configv1.Service) { m.Name = "" }, codes.InvalidArgument, "service.name"},
			{"IM without channel", func(m *configv1.Service) { m.Channels = nil }, codes.InvalidArgument, "service.channels"},
			{"channel twice", func(m *configv1.Service) { m.Channels = []messagingv1.Channel{sms, sms} }, codes.InvalidArgument, "service.channels[1]"},
			{"RONA too short", func(m *configv1.Service) { m.Distribution.RonaTimeout = durationpb.New(time.Second) }, codes.InvalidArgument, "service.distribution.rona_timeout"},
			{"too many parallel tasks", func(m *configv1.Service) { m.Distribution.MaxParallelTasks = 99 }, codes.InvalidArgument, "service.distribution.max_parallel_tasks"},
			{"after-call work too long", func(m *configv1.Service) { m.Distribution.AfterCallWork = durationpb.New(2 * time.Hour) }, codes.InvalidArgument, "service.distribution.after_call_work"},
			{"tag twice", func(m *configv1.Service) { m.Distribution.Tags = []string{"vip", "vip"} }, codes.InvalidArgument, "service.distribution.tags[1]"},
			{"first reply time too long", func(m *configv1.Service) { m.Distribution.FirstReplyTimeout = durationpb.New(25 * time.Hour) }, codes.InvalidArgument, "service.distribution.first_reply_timeout"},
			{"first reply time negative", func(m *configv1.Service) { m.Distribution.FirstReplyTimeout = durationpb.New(-time.Minute) }, codes.InvalidArgument, "service.distribution.first_reply_timeout"},
			{"preferred agent too far back", func(m *configv1.Service) { m.Distribution.PreferredAgentWithin = durationpb.New(100 * 24 * time.Hour) }, codes.InvalidArgument, "service.distribution.preferred_agent_within"},
			{"preferred agent wait too long", func(m *configv1.Service) { m.Distribution.PreferredAgentWait = durationpb.New(time.Hour) }, codes.InvalidArgument, "service.distribution.preferred_agent_wait"},
			{"overflow after negative", func(m *configv1.Service) { m.Distribution.OverflowAfter = durationpb.New(-time.Second) }, codes.InvalidArgument, "service.distribution.overflow_after"},
			{"empty overflow skill", func(m *configv1.Service) { m.Distribution.OverflowSkills = []string{" "} }, codes.InvalidArgument, "service.distribution.overflow_skills[0]"},
			{"requeue with the first reply time off", func(m *configv1.Service) {
				m.Distribution.FirstReplyTimeout, m.Distribution.FirstReplyRequeue = durationpb.New(0), true
			}, codes.InvalidArgument, "service.distribution.first_reply_requeue"},
			{"empty service code", func(m *configv1.Service) { m.Distribution.ServiceCodes = []string{""} }, codes.InvalidArgument, "service.distribution.service_codes[0]"},
			{"time zone unknown", func(m *configv1.Service) { m.OpeningHours = &configv1.OpeningHours{TimeZone: "Mars/Olympus"} }, codes.InvalidArgument, "service.opening_hours.time_zone"},
			{"window ends before it starts", func(m *configv1.Service) {
				m.OpeningHours = &configv1.OpeningHours{TimeZone: "Europe/Zurich", Windows: []*configv1.OpeningWindow{{Weekday: 1, Start: "17:00", End: "08:00"}}}
			}, codes.InvalidArgument, "service.opening_hours.windows[0].end"},
			{"weekday out of range", func(m *configv1.Service) {
				m.OpeningHours = &configv1.OpeningHours{TimeZone: "Europe/Zurich", Windows: []*configv1.OpeningWindow{{Weekday: 7, Start: "08:00", End: "17:00"}}}
			}, codes.InvalidArgument, "service.opening_hours.windows[0].weekday"},
			{"holiday not a date", func(m *configv1.Service) {
				m.OpeningHours = &configv1.OpeningHours{TimeZone: "Europe/Zurich", Holidays: []string{"25.12.2026"}}
			}, codes.InvalidArgument, "service.opening_hours.holidays[0]"},
			{"greeting too long", func(m *configv1.Service) { m.Greeting = strings.Repeat("x", 1601) }, codes.InvalidArgument, "service.greeting"},
			{"failure message too long", func(m *configv1.Service) { m.WorkflowFailureMessage = strings.Repeat("x", 1601) }, codes.InvalidArgument, "service.workflow_failure_message"},
			{"canned shortcut malformed", func(m *configv1.Service) {
				m.CannedResponses = []*configv1.CannedResponse{{Shortcut: "Hello There", Body: "Hi"}}
			}, codes.InvalidArgument, "service.canned_responses[0].shortcut"},
			{"canned shortcut twice", func(m *configv1.Service) {
				m.CannedResponses = []*configv1.CannedResponse{{Shortcut: "hi", Body: "Hi"}, {Shortcut: "hi", Body: "Hello"}}
			}, codes.InvalidArgument, "service.canned_responses[1].shortcut"},
			{"canned body empty", func(m *configv1.Service) {
				m.CannedResponses = []*configv1.CannedResponse{{Shortcut: "hi", Body: " "}}
			}, codes.InvalidArgument, "service.canned_responses[0].body"},
			{"canned body too long", func(m *configv1.Service) {
				m.CannedResponses = []*configv1.CannedResponse{{Shortcut: "hi", Body: strings.Repeat("x", 1601)}}
			}, codes.InvalidArgument, "service.canned_responses[0].body"},
			{"inactivity timeout too short", func(m *configv1.Service) { m.InactivityTimeout = durationpb.New(30 * time.Second) }, codes.InvalidArgument, "service.inactivity_timeout"},
			{"inactivity timeout too long", func(m *configv1.Service) { m.InactivityTimeout = durationpb.New(8 * 24 * time.Hour) }, codes.InvalidArgument, "service.inactivity_timeout"},
			{"inactivity timeout negative", func(m *configv1.Service) { m.InactivityTimeout = durationpb.New(-time.Minute) }, codes.InvalidArgument, "service.inactivity_timeout"},
			{"inactivity message too long", func(m *configv1.Service) { m.InactivityMessage = strings.Repeat("x", 1601) }, codes.InvalidArgument, "service.inactivity_message"},
			{"pinned version without workflow", func(m *configv1.Service) { m.WorkflowVersion = 2 }, codes.InvalidArgument, "service.workflow_version"},
			{"org unit unknown", func(m *configv1.Service) { m.OrgUnitId = "nowhere" }, codes.FailedPrecondition, "service.org_unit_id"},
			{"entry unknown", func(m *configv1.Service) { m.MessagingEntryIds = []string{"none"} }, codes.FailedPrecondition, "service.messaging_entry_ids[0]"},
			{"entry on a channel the service lacks", func(m *configv1.Service) {
				m.Channels, m.MessagingEntryIds = []messagingv1.Channel{sms}, []string{"wa-1"}
			}, codes.FailedPrecondition, "service.messaging_entry_ids[0]"},
			{"entry assigned to another service", func(m *configv1.Service) { m.MessagingEntryIds = []string{"wa-1", "sms-1"} }, codes.AlreadyExists, "service.messaging_entry_ids[1]"},
			{"workflow unknown", func(m *configv1.Service) { m.WorkflowId = "wf-none" }, codes.FailedPrecondition, "service.workflow_id"},
			{"workflow version unknown", func(m *configv1.Service) { m.WorkflowId, m.WorkflowVersion = "wf-ok", 9 }, codes.FailedPrecondition, "service.workflow_version"},
			{"workflow unsupported for IM", func(m *configv1.Service) { m.WorkflowId = "wf-voice" }, codes.FailedPrecondition, "service.workflow_id"},
		} {
			t.Run(r.name, func(t *testing.T) {
				m := proto.Clone(base).(*configv1.Service)
				r.change(m)
				_, err := f.admin.services.CreateService(ctx, &configv1.CreateServiceRequest{Service: m})
				wantStatus(t, err, r.code, r.field)
			})
		}
		t.Run("unsupported activity is named", func(t *testing.T) {
			m := proto.Clone(base).(*configv1.Service)
			m.WorkflowId = "wf-voice"
			_, err := f.admin.services.CreateService(ctx, &configv1.CreateServiceRequest{Service: m})
			if msg := status.Convert(err).Message(); !strings.Contains(msg, "Play Music") || !strings.Contains(msg, `"music"`) {
				t.Errorf("error %q does not name the Play Music activity \"music\"", msg)
			}
		})
		t.Run("same workflow without IM is fine", func(t *testing.T) {
			m := proto.Clone(base).(*configv1.Service)
			m.Id, m.WorkflowId, m.ImEnabled = "svc-voice", "wf-voice", false
			if _, err := f.admin.services.CreateService(ctx, &configv1.CreateServiceRequest{Service: m}); err != nil {
				t.Errorf("service without IM using wf-voice: %v", err)
			}
		})
		t.Run("transfer-only service needs no entry", func(t *testing.T) {
			m := proto.Clone(base).(*configv1.Service)
			m.Id = "svc-transfer"
			if _, err := f.admin.services.CreateService(ctx, &configv1.CreateServiceRequest{Service: m}); err != nil {
				t.Errorf("service without entries: %v", err)
			}
		})
		t.Run("tenant channel off", func(t *testing.T) {
			q := newClients(f.env.Admin(t, "quiet"))
			m := proto.Clone(base).(*configv1.Service)
			m.TenantId, m.Channels = "quiet", []messagingv1.Channel{sms, whatsapp}
			_, err := q.services.CreateService(ctx, &configv1.CreateServiceRequest{Service: m})
			wantStatus(t, err, codes.FailedPrecondition, "service.channels[1]")
		})
		t.Run("tenant IM off", func(t *testing.T) {
			m := proto.Clone(base).(*configv1.Service)
			m.TenantId = "noim"
			_, err := f.platform.services.CreateService(ctx, &configv1.CreateServiceRequest{Service: m})
			wantStatus(t, err, codes.FailedPrecondition, "service.im_enabled")
		})
		t.Run("defaults filled", func(t *testing.T) {
			m := proto.Clone(base).(*configv1.Service)
			m.Id, m.Distribution = "svc-defaults", nil
			r := must[*configv1.CreateServiceResponse](t)(f.admin.services.CreateService(ctx, &configv1.CreateServiceRequest{Service: m}))
			d := r.GetService().GetDistribution()
			if d.GetRonaTimeout().AsDuration() != 30*time.Second || d.GetMaxParallelTasks() != 1 {
				t.Errorf("defaults: RONA %v, parallel %d; want 30s, 1", d.GetRonaTimeout().AsDuration(), d.GetMaxParallelTasks())
			}
		})
	})

	t.Run("user", func(t *testing.T) {
		base := &configv1.User{Id: "u-new", TenantId: "acme", DisplayName: "New Agent", Email: "new@acme.example", Roles: []configv1.Role{configv1.Role_ROLE_AGENT}, ImLicense: true, ServiceIds: []string{"svc-a"}, Password: "s3cret-pass"}
		must[*configv1.CreateUserResponse](t)(f.admin.users.CreateUser(ctx, &configv1.CreateUserRequest{User: &configv1.User{Id: "u-taken", TenantId: "acme", DisplayName: "Taken", Email: "taken@acme.example", Roles: []configv1.Role{configv1.Role_ROLE_AGENT}}}))
		for _, r := range []rule[*configv1.User]{
			{"email invalid", func(m *configv1.User) { m.Email = "not an email" }, codes.InvalidArgument, "user.email"},
			{"display name missing", func(m *configv1.User) { m.DisplayName = "" }, codes.InvalidArgument, "user.display_name"},
			{"no role", func(m *configv1.User) { m.Roles = nil }, codes.InvalidArgument, "user.roles"},
			{"unspecified role", func(m *configv1.User) { m.Roles = []configv1.Role{configv1.Role_ROLE_UNSPECIFIED} }, codes.InvalidArgument, "user.roles[0]"},
			{"undeclared role", func(m *configv1.User) { m.Roles = []configv1.Role{configv1.Role_ROLE_ANALYST, 99} }, codes.InvalidArgument, "user.roles[1]"},
			{"role twice", func(m *configv1.User) {
				m.Roles = []configv1.Role{configv1.Role_ROLE_ANALYST, configv1.Role_ROLE_ANALYST}
			}, codes.InvalidArgument, "user.roles[1]"},
			{"password too short", func(m *configv1.User) { m.Password = "abc" }, codes.InvalidArgument, "user.password"},
			{"capacity out of range", func(m *configv1.User) { m.Capacity = 99 }, codes.InvalidArgument, "user.capacity"},
			{"attribute key", func(m *configv1.User) { m.Attributes = map[string]string{"$where": "x"} }, codes.InvalidArgument, "user.attributes"},
			{"skill twice", func(m *configv1.User) { m.Skills = []string{"de", "de"} }, codes.InvalidArgument, "user.skills[1]"},
			{"service unknown", func(m *configv1.User) { m.ServiceIds = []string{"svc-none"} }, codes.FailedPrecondition, "user.service_ids[0]"},
			{"email taken", func(m *configv1.User) { m.Email = "Taken@Acme.example" }, codes.AlreadyExists, "user.email"},
		} {
			t.Run(r.name, func(t *testing.T) {
				m := proto.Clone(base).(*configv1.User)
				r.change(m)
				_, err := f.admin.users.CreateUser(ctx, &configv1.CreateUserRequest{User: m})
				wantStatus(t, err, r.code, r.field)
			})
		}
		t.Run("IM license with tenant IM off", func(t *testing.T) {
			m := proto.Clone(base).(*configv1.User)
			m.TenantId, m.ServiceIds = "noim", nil
			_, err := f.platform.users.CreateUser(ctx, &configv1.CreateUserRequest{User: m})
			wantStatus(t, err, codes.FailedPrecondition, "user.im_license")
		})
	})

	t.Run("workflow", func(t *testing.T) {
		for _, r := range []rule[*configv1.Workflow]{
			{"start missing", func(m *configv1.Workflow) { m.Definition.Start = "" }, codes.InvalidArgument, "workflow.definition.start"},
			{"start unknown", func(m *configv1.Workflow) { m.Definition.Start = "nope" }, codes.InvalidArgument, "workflow.definition.start"},
			{"activity unknown", func(m *configv1.Workflow) { m.Definition.Activities[2].Type = "teleport" }, codes.InvalidArgument, "workflow.definition.activities[2].type"},
			{"branch leads nowhere", func(m *configv1.Workflow) { m.Definition.Activities[0].Next["next"] = "ghost" }, codes.InvalidArgument, "workflow.definition.activities[0].next.next"},
			{"branch missing", func(m *configv1.Workflow) { delete(m.Definition.Activities[1].Next, "closed") }, codes.InvalidArgument, "workflow.definition.activities[1].next.closed"},
			{"branch unknown", func(m *configv1.Workflow) { m.Definition.Activities[2].Next = map[string]string{"done": "bye"} }, codes.InvalidArgument, "workflow.definition.activities[2].next.done"},
			{"parameter missing", func(m *configv1.Workflow) { m.Definition.Activities[0].Params = nil }, codes.InvalidArgument, "workflow.definition.activities[0].params.text"},
			{"parameter of wrong type", func(m *configv1.Workflow) {
				m.Definition.Activities[2] = activity("queue", "queue_task", map[string]any{"priority": "high"}, nil)
			}, codes.InvalidArgument, "workflow.definition.activities[2].params.priority"},
			{"parameter unknown", func(m *configv1.Workflow) {
				m.Definition.Activities[2] = activity("queue", "queue_task", map[string]any{"colour": "red"}, nil)
			}, codes.InvalidArgument, "workflow.definition.activities[2].params.colour"},
			{"activity unreachable", func(m *configv1.Workflow) {
				m.Definition.Activities = append(m.Definition.Activities, activity("orphan", "disconnect", nil, nil))
			}, codes.InvalidArgument, "workflow.definition.activities[4]"},
			{"id twice", func(m *configv1.Workflow) { m.Definition.Activities[3].Id = "greet" }, codes.InvalidArgument, "workflow.definition.activities[3].id"},
			{"name missing", func(m *configv1.Workflow) { m.Name = "" }, codes.InvalidArgument, "workflow.name"},
			{"id taken", func(m *configv1.Workflow) { m.Id = "wf-ok" }, codes.AlreadyExists, "workflow.id"},
		} {
			t.Run(r.name, func(t *testing.T) {
				m := &configv1.Workflow{Id: "wf-new", TenantId: "acme", Name: "New", Definition: okDefinition()}
				r.change(m)
				_, err := f.admin.wfs.CreateWorkflow(ctx, &configv1.CreateWorkflowRequest{Workflow: m})
				wantStatus(t, err, r.code, r.field)
			})
		}
		t.Run("unsupported activities are listed", func(t *testing.T) {
			w := must[*configv1.GetWorkflowResponse](t)(f.admin.wfs.GetWorkflow(ctx, &configv1.GetWorkflowRequest{TenantId: "acme", Id: "wf-voice"}))
			if got := w.GetWorkflow().GetImUnsupportedActivities(); len(got) != 1 || !strings.Contains(got[0], "Play Music") {
				t.Errorf("im_unsupported_activities = %q, want Play Music", got)
			}
		})
	})
}
