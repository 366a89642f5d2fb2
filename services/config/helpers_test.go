package configsvc_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/switchboard-cc/switchboard/pkg/mongodb/mongotest"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	"github.com/switchboard-cc/switchboard/services/config/internal/configtest"
)

func TestMain(m *testing.M) { os.Exit(mongotest.Main(m)) }

const (
	sms      = messagingv1.Channel_CHANNEL_SMS
	whatsapp = messagingv1.Channel_CHANNEL_WHATSAPP
)

// clients bundles the config service's clients over one connection.
type clients struct {
	tenants  configv1.TenantServiceClient
	channels configv1.ChannelServiceClient
	services configv1.ServiceServiceClient
	users    configv1.UserServiceClient
	wfs      configv1.WorkflowServiceClient
	lookup   configv1.LookupServiceClient
}

func newClients(conn grpc.ClientConnInterface) clients {
	return clients{
		tenants:  configv1.NewTenantServiceClient(conn),
		channels: configv1.NewChannelServiceClient(conn),
		services: configv1.NewServiceServiceClient(conn),
		users:    configv1.NewUserServiceClient(conn),
		wfs:      configv1.NewWorkflowServiceClient(conn),
		lookup:   configv1.NewLookupServiceClient(conn),
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// hexOf makes n hex digits from a seed character.
func hex32(c byte) string { return strings.Repeat(string(c), 32) }

func sid(prefix string, c byte) string { return prefix + hex32(c) }

// wantStatus checks err's code and, when field is not empty, that a
// BadRequest field violation names it.
func wantStatus(t *testing.T, err error, code codes.Code, field string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != code {
		t.Errorf("got %v %q, want code %v (field %q)", st.Code(), st.Message(), code, field)
		return
	}
	if field == "" {
		return
	}
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				if v.GetField() == field {
					return
				}
				fields = append(fields, v.GetField())
			}
		}
	}
	t.Errorf("%v %q: field violations %v, want one for %q", code, st.Message(), fields, field)
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return v
	}
}

// fixture is tenant acme with an OU tree
//
//	root ── emea ── zurich
//	     └─ apac
//
// connectors c-root (root), c-emea (emea), c-apac (apac), entries sms-1
// (zurich, c-emea, Conversations) and wa-1 (zurich, c-root, WhatsApp
// number), workflows wf-ok (IM) and wf-voice (Play Music), service svc-a
// with sms-1; and tenants quiet (WhatsApp off) and noim (everything off).
type fixture struct {
	env      *configtest.Env
	platform clients
	admin    clients
}

func acmeTenant() *configv1.Tenant {
	return &configv1.Tenant{Id: "acme", DisplayName: "Acme Corp", Modalities: &configv1.ModalitySettings{InstantMessaging: true, Twilio: true, Sms: true, Whatsapp: true}}
}

func connector(id, ou string) *configv1.ProviderConnector {
	return &configv1.ProviderConnector{
		Id: id, TenantId: "acme", Name: "Connector " + id, OrgUnitId: ou,
		AccountSid: sid("AC", 'a'), ApiKeySid: sid("SK", 'b'),
		ApiKeySecret: "apiKeySecret-" + id + "-0123456789", AuthToken: hex32('c'),
	}
}

func smsEntry(id, ou, conn string, sidChar byte) *configv1.MessagingEntry {
	return &configv1.MessagingEntry{Id: id, TenantId: "acme", Name: "Entry " + id, OrgUnitId: ou, ConnectorId: conn, Channel: sms, ConversationsServiceSid: sid("IS", sidChar)}
}

func waEntry(id, ou, conn, number string) *configv1.MessagingEntry {
	return &configv1.MessagingEntry{Id: id, TenantId: "acme", Name: "Entry " + id, OrgUnitId: ou, ConnectorId: conn, Channel: whatsapp, BusinessAddresses: []string{"whatsapp:" + number}}
}

func serviceOf(id string, entries ...string) *configv1.Service {
	return &configv1.Service{
		Id: id, TenantId: "acme", Name: "Service " + id, OrgUnitId: "root", ImEnabled: true,
		Channels: []messagingv1.Channel{sms, whatsapp}, MessagingEntryIds: entries,
		Distribution: &configv1.DistributionSettings{RonaTimeout: durationpb.New(20 * time.Second), MaxParallelTasks: 2},
	}
}

func activity(id, typ string, params map[string]any, next map[string]string) *configv1.WorkflowActivity {
	a := &configv1.WorkflowActivity{Id: id, Type: typ, Next: next}
	if params != nil {
		s, err := structpb.NewStruct(params)
		if err != nil {
			panic(err)
		}
		a.Params = s
	}
	return a
}

func okDefinition() *configv1.WorkflowDefinition {
	return &configv1.WorkflowDefinition{Start: "greet", Activities: []*configv1.WorkflowActivity{
		activity("greet", "message", map[string]any{"text": "Hello"}, map[string]string{"next": "hours"}),
		activity("hours", "check_opening_hours", nil, map[string]string{"open": "queue", "closed": "bye"}),
		activity("queue", "queue_task", map[string]any{"priority": 5}, nil),
		activity("bye", "disconnect", map[string]any{"text": "We are closed."}, nil),
	}}
}

func voiceDefinition() *configv1.WorkflowDefinition {
	return &configv1.WorkflowDefinition{Start: "music", Activities: []*configv1.WorkflowActivity{
		activity("music", "play_music", map[string]any{"file": "hold.mp3"}, map[string]string{"next": "queue"}),
		activity("queue", "queue_task", nil, nil),
	}}
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := configtest.Start(t)
	f := &fixture{env: env, platform: newClients(env.Platform(t)), admin: newClients(env.Admin(t, "acme"))}
	ctx := ctxT(t)
	p := f.platform
	must[*configv1.CreateTenantResponse](t)(p.tenants.CreateTenant(ctx, &configv1.CreateTenantRequest{Tenant: acmeTenant()}))
	must[*configv1.CreateTenantResponse](t)(p.tenants.CreateTenant(ctx, &configv1.CreateTenantRequest{Tenant: &configv1.Tenant{Id: "quiet", DisplayName: "Quiet Ltd", Modalities: &configv1.ModalitySettings{InstantMessaging: true, Twilio: true, Sms: true}}}))
	must[*configv1.CreateTenantResponse](t)(p.tenants.CreateTenant(ctx, &configv1.CreateTenantRequest{Tenant: &configv1.Tenant{Id: "noim", DisplayName: "No IM Inc"}}))
	a := f.admin
	for _, ou := range []*configv1.OrganizationUnit{
		{Id: "root", TenantId: "acme", Name: "Acme"},
		{Id: "emea", TenantId: "acme", Name: "EMEA", ParentId: "root"},
		{Id: "zurich", TenantId: "acme", Name: "Zurich", ParentId: "emea"},
		{Id: "apac", TenantId: "acme", Name: "APAC", ParentId: "root"},
	} {
		must[*configv1.CreateOrganizationUnitResponse](t)(a.tenants.CreateOrganizationUnit(ctx, &configv1.CreateOrganizationUnitRequest{OrganizationUnit: ou}))
	}
	for _, c := range []*configv1.ProviderConnector{connector("c-root", "root"), connector("c-emea", "emea"), connector("c-apac", "apac")} {
		must[*configv1.CreateProviderConnectorResponse](t)(a.channels.CreateProviderConnector(ctx, &configv1.CreateProviderConnectorRequest{ProviderConnector: c}))
	}
	must[*configv1.CreateMessagingEntryResponse](t)(a.channels.CreateMessagingEntry(ctx, &configv1.CreateMessagingEntryRequest{MessagingEntry: smsEntry("sms-1", "zurich", "c-emea", '1')}))
	must[*configv1.CreateMessagingEntryResponse](t)(a.channels.CreateMessagingEntry(ctx, &configv1.CreateMessagingEntryRequest{MessagingEntry: waEntry("wa-1", "zurich", "c-root", "+41445550101")}))
	must[*configv1.CreateWorkflowResponse](t)(a.wfs.CreateWorkflow(ctx, &configv1.CreateWorkflowRequest{Workflow: &configv1.Workflow{Id: "wf-ok", TenantId: "acme", Name: "Greet and queue", Definition: okDefinition()}}))
	must[*configv1.CreateWorkflowResponse](t)(a.wfs.CreateWorkflow(ctx, &configv1.CreateWorkflowRequest{Workflow: &configv1.Workflow{Id: "wf-voice", TenantId: "acme", Name: "Voice", Definition: voiceDefinition()}}))
	must[*configv1.CreateServiceResponse](t)(a.services.CreateService(ctx, &configv1.CreateServiceRequest{Service: serviceOf("svc-a", "sms-1")}))
	return f
}
