package tenantspec_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	"github.com/switchboard-cc/switchboard/services/config/internal/configtest"
	"github.com/switchboard-cc/switchboard/services/config/tenantspec"
)

func TestDemo(t *testing.T) {
	d := tenantspec.Demo()
	if d.Tenant.ID != "demo" || d.Tenant.DisplayName != "Demo Company" || !d.Tenant.Modalities.WhatsApp {
		t.Errorf("demo tenant = %+v", d.Tenant)
	}
	if len(d.Users) != 4 || d.Users[0].Email != "alice@demo.example" || d.Users[1].Password != "demo" || d.Users[2].Roles[0] != "supervisor" || d.Users[3].Roles[0] != "analyst" {
		t.Errorf("demo users = %+v", d.Users)
	}
	if s := d.Services[0]; s.ID != "support" || time.Duration(s.Distribution.RONATimeout) != 30*time.Second || s.Distribution.MaxParallelTasks != 3 {
		t.Errorf("demo service = %+v", s)
	}
	d2 := tenantspec.DemoWithCredentials(tenantspec.Credentials{AccountSID: "AC" + strings.Repeat("9", 32), AuthToken: strings.Repeat("8", 32), WhatsAppAddress: "whatsapp:+15005550006"})
	c := d2.Connectors[0]
	if c.AccountSID != "AC"+strings.Repeat("9", 32) || c.AuthToken != strings.Repeat("8", 32) || c.APIKeySID != "SK0123456789abcdef0123456789abcdef" {
		t.Errorf("DemoWithCredentials connector = %+v", c)
	}
	if got := d2.MessagingEntries[1].BusinessAddresses; len(got) != 1 || got[0] != "whatsapp:+15005550006" {
		t.Errorf("DemoWithCredentials WhatsApp address = %v", got)
	}
	if tenantspec.Demo().Connectors[0].AccountSID != "AC0123456789abcdef0123456789abcdef" {
		t.Errorf("DemoWithCredentials changed the shared demo")
	}
}

func TestParseErrorsNameLineAndField(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown field", "tenant:\n  id: x\n  colour: red\n", []string{"line 3", "colour"}},
		{"bad channel", "tenant: {id: x}\nmessaging_entries:\n  - id: e1\n    channel: fax\n", []string{"line 4", "messaging_entries[0].channel", "fax"}},
		{"bad duration", "tenant: {id: x}\nservices:\n  - id: s\n    distribution:\n      rona_timeout: soon\n", []string{"line 5", "soon"}},
		{"id missing", "tenant: {id: x}\nusers:\n  - email: a@b.example\n", []string{"line 3", "users[0].id"}},
		{"id twice", "tenant: {id: x}\nconnectors:\n  - id: c\n  - id: c\n", []string{"line 4", "connectors[1].id", "twice"}},
		{"bad role", "tenant: {id: x}\nusers:\n  - id: u\n    roles: [agent, boss]\n", []string{"line 4", "users[0].roles[1]", "boss", "analyst"}},
		{"bad day", "tenant: {id: x}\nservices:\n  - id: s\n    opening_hours:\n      time_zone: UTC\n      windows:\n        - days: [funday]\n          start: \"08:00\"\n          end: \"17:00\"\n", []string{"line 7", "days"}},
		{"tenant id missing", "organization_units: []\n", []string{"tenant.id"}},
		{"OU loop", "tenant: {id: x}\norganization_units:\n  - {id: a, parent: b}\n  - {id: b, parent: a}\n", []string{"line 2", "loop"}},
		{"workflow graph", "tenant: {id: x}\nworkflows:\n  - id: w\n    definition:\n      start: a\n      activities:\n        - id: a\n          type: message\n          params: {text: hi}\n          next: {next: ghost}\n", []string{"line 10", "workflows[0].definition.activities[0].next.next", "ghost"}},
		{"two documents", "tenant: {id: x}\n---\ntenant: {id: y}\n", []string{"one tenant per file"}},
		{"empty", "", []string{"empty"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tenantspec.Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded, want an error mentioning %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestServiceFailureMessage(t *testing.T) {
	spec, err := tenantspec.Parse([]byte("tenant: {id: x}\nservices:\n  - id: s\n    name: S\n    workflow_failure_message: Sorry, please call us.\n    inactivity_timeout: 15m\n    inactivity_message: Bye for now.\n"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := spec.Services[0].Proto("x")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.GetWorkflowFailureMessage(), "Sorry, please call us."; got != want {
		t.Errorf("workflow_failure_message = %q, want %q", got, want)
	}
	if got, want := p.GetInactivityTimeout().AsDuration(), 15*time.Minute; got != want {
		t.Errorf("inactivity_timeout = %v, want %v", got, want)
	}
	if got, want := p.GetInactivityMessage(), "Bye for now."; got != want {
		t.Errorf("inactivity_message = %q, want %q", got, want)
	}
}

func TestExpandEnv(t *testing.T) {
	s, err := tenantspec.Parse([]byte("tenant: {id: x, secrets: {bot_signing_key: \"${BOT}\"}}\nconnectors:\n  - id: c\n    auth_token: ${TOKEN}\n    api_key_secret: pre-${SECRET}\nusers:\n  - id: u\n    password: ${PW}\n"))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"TOKEN": "tok", "SECRET": "sec", "BOT": "bot-key"}
	err = s.ExpandEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err == nil || !strings.Contains(err.Error(), "users[0].password: environment variable PW is not set") {
		t.Errorf("ExpandEnv error = %v, want one naming PW", err)
	}
	if s.Connectors[0].AuthToken != "tok" || s.Connectors[0].APIKeySecret != "pre-sec" {
		t.Errorf("expanded connector = %+v", s.Connectors[0])
	}
	if got := s.Tenant.Secrets["bot_signing_key"]; got != "bot-key" {
		t.Errorf("expanded tenant secret = %q, want bot-key", got)
	}
}

// The example tenant in deploy/examples applies cleanly, twice.
func TestApplyExampleTenant(t *testing.T) {
	data, err := os.ReadFile("../../../deploy/examples/tenant.yaml")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := tenantspec.Parse(data)
	if err != nil {
		t.Fatalf("parse example: %v", err)
	}
	env := map[string]string{
		"TWILIO_ACCOUNT_SID": "AC" + strings.Repeat("1", 32), "TWILIO_API_KEY_SID": "SK" + strings.Repeat("2", 32),
		"TWILIO_API_KEY_SECRET": "example-secret-0123456789", "TWILIO_AUTH_TOKEN": strings.Repeat("3", 32),
		"AGENT_INITIAL_PASSWORD": "change-me-now",
	}
	if err := spec.ExpandEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	e := configtest.Start(t)
	ctx := context.Background()
	conn := e.Platform(t)
	res, err := tenantspec.Apply(ctx, conn, spec)
	if err != nil {
		t.Fatalf("apply example: %v", err)
	}
	if res.Changed() != len(res.Actions) || len(res.Actions) != 1+3+1+3+2+3+3 {
		t.Errorf("first apply:\n%s", res)
	}
	if res, err = tenantspec.Apply(ctx, conn, spec); err != nil || res.Changed() != 0 {
		t.Errorf("second apply changed %d records, %v:\n%s", res.Changed(), err, res)
	}
	if ten, err := configv1.NewTenantServiceClient(conn).GetTenant(ctx, &configv1.GetTenantRequest{Id: "helvetia-travel"}); err != nil || ten.GetTenant().GetTimeZone() != "Europe/Zurich" {
		t.Errorf("the tenant's time zone: %q, %v; want Europe/Zurich", ten.GetTenant().GetTimeZone(), err)
	}
	svc, err := configv1.NewServiceServiceClient(conn).GetService(ctx, &configv1.GetServiceRequest{TenantId: "helvetia-travel", Id: "bookings"})
	if err != nil {
		t.Fatal(err)
	}
	if oh := svc.GetService().GetOpeningHours(); len(oh.GetWindows()) != 6 || oh.GetTimeZone() != "Europe/Zurich" {
		t.Errorf("bookings opening hours: %d windows in %q, want 6 (mon-fri, sat) in Europe/Zurich", len(oh.GetWindows()), oh.GetTimeZone())
	}

	// A change in the file is one update; moving an entry between services
	// works in one apply.
	spec.Services[0].MessagingEntries = []string{"sms-bookings"}
	spec.Services[2].MessagingEntries = []string{"whatsapp-bookings"}
	spec.Services[2].Greeting = "Refunds here."
	spec.Services[2].WorkflowFailureMessage = "Sorry, please call 044 000 00 00."
	res, err = tenantspec.Apply(ctx, conn, spec)
	if err != nil {
		t.Fatalf("apply with a moved entry: %v", err)
	}
	if res.Changed() != 2 {
		t.Errorf("apply after moving an entry changed %d records, want 2 services:\n%s", res.Changed(), res)
	}
	svc, err = configv1.NewServiceServiceClient(conn).GetService(ctx, &configv1.GetServiceRequest{TenantId: "helvetia-travel", Id: spec.Services[2].ID})
	if err != nil {
		t.Fatal(err)
	}
	if got := svc.GetService().GetWorkflowFailureMessage(); got != spec.Services[2].WorkflowFailureMessage {
		t.Errorf("workflow_failure_message = %q, want %q", got, spec.Services[2].WorkflowFailureMessage)
	}
}

func TestApplyNeedsPlatformForNewTenant(t *testing.T) {
	e := configtest.Start(t)
	_, err := tenantspec.Apply(context.Background(), e.Admin(t, "demo"), tenantspec.Demo())
	if err == nil || !strings.Contains(err.Error(), "platform") {
		t.Errorf("apply of a new tenant as its admin: %v, want a hint about the platform token", err)
	}
	if _, err := tenantspec.Apply(context.Background(), e.Platform(t), tenantspec.Demo()); err != nil {
		t.Fatal(err)
	}
	// Once it exists, the tenant's admin can apply it.
	if res, err := tenantspec.Apply(context.Background(), e.Admin(t, "demo"), tenantspec.Demo()); err != nil || res.Changed() != 0 {
		t.Errorf("re-apply as the tenant's admin: %v\n%s", err, res)
	}
}

func TestServiceParkAndFirstReply(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		counts     bool
		firstReply *time.Duration
		requeue    bool
	}{
		{"unset", "{}", false, nil, false},
		{"set", "{parked_counts: true, first_reply_timeout: 2m, first_reply_requeue: true}", true, ptr(2 * time.Minute), true},
		{"first reply off", "{first_reply_timeout: 0s}", false, ptr(time.Duration(0)), false},
	} {

		spec, err := tenantspec.Parse([]byte("tenant: {id: x}\nservices:\n  - id: s\n    name: S\n    distribution: " + tc.yaml + "\n"))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		p, err := spec.Services[0].Proto("x")
		if err != nil {
			t.Fatal(err)
		}
		d := p.GetDistribution()
		if d.GetParkedCounts() != tc.counts || d.GetFirstReplyRequeue() != tc.requeue {
			t.Errorf("%s: distribution = %v, want parked_counts %v, first_reply_requeue %v", tc.name, d, tc.counts, tc.requeue)
		}
		switch fr := d.GetFirstReplyTimeout(); {
		case tc.firstReply == nil && fr != nil:
			t.Errorf("%s: first_reply_timeout = %v, want unset", tc.name, fr)
		case tc.firstReply != nil && (fr == nil || fr.AsDuration() != *tc.firstReply):
			t.Errorf("%s: first_reply_timeout = %v, want %v", tc.name, fr, *tc.firstReply)
		}
	}
	spec, err := tenantspec.Parse([]byte("tenant: {id: x}\nservices:\n  - id: s\n    name: S\n    distribution: {preferred_agent_within: 168h, preferred_agent_wait: 30s, overflow_after: 2m, overflow_skills: [english]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := spec.Services[0].Proto("x")
	if err != nil {
		t.Fatal(err)
	}
	if d := p.GetDistribution(); d.GetPreferredAgentWithin().AsDuration() != 168*time.Hour || d.GetPreferredAgentWait().AsDuration() != 30*time.Second ||
		d.GetOverflowAfter().AsDuration() != 2*time.Minute || len(d.GetOverflowSkills()) != 1 {
		t.Errorf("distribution = %v, want preferred agent 168h/30s, overflow after 2m keeping english", d)
	}
}

func ptr[T any](v T) *T { return &v }
