package configsvc_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	configsvc "github.com/switchboard-cc/switchboard/services/config"
)

func connectorIDs(cs []*configv1.ProviderConnector) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.GetId())
	}
	return out
}

func TestOrgUnitScoping(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	for ou, want := range map[string][]string{
		"zurich": {"c-emea", "c-root"},
		"emea":   {"c-emea", "c-root"},
		"apac":   {"c-apac", "c-root"},
		"root":   {"c-root"},
	} {
		r, err := f.admin.channels.ListProviderConnectors(ctx, &configv1.ListProviderConnectorsRequest{TenantId: "acme", OrgUnitId: ou})
		if err != nil {
			t.Fatalf("list connectors for %s: %v", ou, err)
		}
		if got := connectorIDs(r.GetProviderConnectors()); !slices.Equal(got, want) {
			t.Errorf("connectors usable in %s = %v, want %v", ou, got, want)
		}
	}
	all := must[*configv1.ListProviderConnectorsResponse](t)(f.admin.channels.ListProviderConnectors(ctx, &configv1.ListProviderConnectorsRequest{TenantId: "acme"}))
	if got := connectorIDs(all.GetProviderConnectors()); !slices.Equal(got, []string{"c-apac", "c-emea", "c-root"}) {
		t.Errorf("all connectors = %v", got)
	}

	// An entry in zurich may use the root's connector ("up to the root").
	e := smsEntry("sms-root-conn", "zurich", "c-root", '7')
	if _, err := f.admin.channels.CreateMessagingEntry(ctx, &configv1.CreateMessagingEntryRequest{MessagingEntry: e}); err != nil {
		t.Errorf("entry in zurich with the root's connector: %v", err)
	}

	ou := func(id string) *configv1.OrganizationUnit {
		return must[*configv1.GetOrganizationUnitResponse](t)(f.admin.tenants.GetOrganizationUnit(ctx, &configv1.GetOrganizationUnitRequest{TenantId: "acme", Id: id})).GetOrganizationUnit()
	}
	// Moving zurich under apac would cut sms-1 off from c-emea.
	z := ou("zurich")
	z.ParentId = "apac"
	_, err := f.admin.tenants.UpdateOrganizationUnit(ctx, &configv1.UpdateOrganizationUnitRequest{OrganizationUnit: z})
	wantStatus(t, err, codes.FailedPrecondition, "organization_unit.parent_id")
	// Moving emea below its own child is a loop.
	em := ou("emea")
	em.ParentId = "zurich"
	_, err = f.admin.tenants.UpdateOrganizationUnit(ctx, &configv1.UpdateOrganizationUnitRequest{OrganizationUnit: em})
	wantStatus(t, err, codes.FailedPrecondition, "organization_unit.parent_id")
	// Moving c-emea to apac would cut sms-1 off too.
	c := must[*configv1.GetProviderConnectorResponse](t)(f.admin.channels.GetProviderConnector(ctx, &configv1.GetProviderConnectorRequest{TenantId: "acme", Id: "c-emea"})).GetProviderConnector()
	c.OrgUnitId = "apac"
	_, err = f.admin.channels.UpdateProviderConnector(ctx, &configv1.UpdateProviderConnectorRequest{ProviderConnector: c})
	wantStatus(t, err, codes.FailedPrecondition, "provider_connector.org_unit_id")
	// Moving c-emea up to the root keeps it in reach.
	c.OrgUnitId = "root"
	if _, err := f.admin.channels.UpdateProviderConnector(ctx, &configv1.UpdateProviderConnectorRequest{ProviderConnector: c}); err != nil {
		t.Errorf("move connector to root: %v", err)
	}
	// An OU with something in it cannot be deleted.
	_, err = f.admin.tenants.DeleteOrganizationUnit(ctx, &configv1.DeleteOrganizationUnitRequest{TenantId: "acme", Id: "emea"})
	wantStatus(t, err, codes.FailedPrecondition, "id")
	children := must[*configv1.ListOrganizationUnitsResponse](t)(f.admin.tenants.ListOrganizationUnits(ctx, &configv1.ListOrganizationUnitsRequest{TenantId: "acme", ParentId: "root"}))
	if len(children.GetOrganizationUnits()) != 2 {
		t.Errorf("children of root = %d, want 2 (emea, apac)", len(children.GetOrganizationUnits()))
	}
}

func TestAddressesUniqueAcrossTenants(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	must[*configv1.CreateTenantResponse](t)(f.platform.tenants.CreateTenant(ctx, &configv1.CreateTenantRequest{Tenant: &configv1.Tenant{Id: "beta", DisplayName: "Beta", Modalities: acmeTenant().Modalities}}))
	beta := newClients(f.env.Admin(t, "beta"))
	must[*configv1.CreateOrganizationUnitResponse](t)(beta.tenants.CreateOrganizationUnit(ctx, &configv1.CreateOrganizationUnitRequest{OrganizationUnit: &configv1.OrganizationUnit{Id: "root", TenantId: "beta", Name: "Beta"}}))
	bc := connector("c-beta", "root")
	bc.TenantId = "beta"
	must[*configv1.CreateProviderConnectorResponse](t)(beta.channels.CreateProviderConnector(ctx, &configv1.CreateProviderConnectorRequest{ProviderConnector: bc}))

	// acme's Conversations service SID and WhatsApp number are taken.
	e := smsEntry("b-sms", "root", "c-beta", '1')
	e.TenantId = "beta"
	_, err := beta.channels.CreateMessagingEntry(ctx, &configv1.CreateMessagingEntryRequest{MessagingEntry: e})
	wantStatus(t, err, codes.AlreadyExists, "messaging_entry.conversations_service_sid")
	if msg := status.Convert(err).Message(); strings.Contains(msg, "acme") || strings.Contains(msg, "sms-1") {
		t.Errorf("error %q reveals the other tenant's records", msg)
	}
	w := waEntry("b-wa", "root", "c-beta", "+41445550101")
	w.TenantId = "beta"
	_, err = beta.channels.CreateMessagingEntry(ctx, &configv1.CreateMessagingEntryRequest{MessagingEntry: w})
	wantStatus(t, err, codes.AlreadyExists, "messaging_entry.business_addresses[0]")
	// The same number as SMS is a different address and is free.
	s := &configv1.MessagingEntry{Id: "b-sms-number", TenantId: "beta", Name: "SMS", OrgUnitId: "root", ConnectorId: "c-beta", Channel: sms, BusinessAddresses: []string{"+41445550101"}}
	if _, err := beta.channels.CreateMessagingEntry(ctx, &configv1.CreateMessagingEntryRequest{MessagingEntry: s}); err != nil {
		t.Errorf("SMS entry for the WhatsApp number's SMS address: %v", err)
	}

	// Webhooks for acme's SID do not resolve under beta.
	lookup := newClients(f.env.Service(t)).lookup
	_, err = lookup.ResolveWebhook(ctx, &configv1.ResolveWebhookRequest{TenantId: "beta", ChatServiceSid: sid("IS", '1')})
	wantStatus(t, err, codes.NotFound, "")

	// Once acme lets go of the number, beta can have it.
	wa1 := must[*configv1.GetMessagingEntryResponse](t)(f.admin.channels.GetMessagingEntry(ctx, &configv1.GetMessagingEntryRequest{TenantId: "acme", Id: "wa-1"})).GetMessagingEntry()
	wa1.BusinessAddresses = []string{"whatsapp:+41445550102"}
	must[*configv1.UpdateMessagingEntryResponse](t)(f.admin.channels.UpdateMessagingEntry(ctx, &configv1.UpdateMessagingEntryRequest{MessagingEntry: wa1}))
	if _, err := beta.channels.CreateMessagingEntry(ctx, &configv1.CreateMessagingEntryRequest{MessagingEntry: w}); err != nil {
		t.Errorf("beta takes the released number: %v", err)
	}
	r, err := lookup.ResolveWebhook(ctx, &configv1.ResolveWebhookRequest{TenantId: "beta", BusinessAddress: "WhatsApp:+41445550101"})
	if err != nil || r.GetEntry().GetId() != "b-wa" {
		t.Errorf("resolve released number under beta = %q, %v; want b-wa", r.GetEntry().GetId(), err)
	}
	_, err = lookup.ResolveWebhook(ctx, &configv1.ResolveWebhookRequest{TenantId: "acme", BusinessAddress: "whatsapp:+41445550101"})
	wantStatus(t, err, codes.NotFound, "")
}

func TestEntryAssignedToOneService(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	_, err := f.admin.services.CreateService(ctx, &configv1.CreateServiceRequest{Service: serviceOf("svc-b", "sms-1")})
	wantStatus(t, err, codes.AlreadyExists, "service.messaging_entry_ids[0]")
	// An assigned entry cannot be deleted.
	_, err = f.admin.channels.DeleteMessagingEntry(ctx, &configv1.DeleteMessagingEntryRequest{TenantId: "acme", Id: "sms-1"})
	wantStatus(t, err, codes.FailedPrecondition, "id")

	// svc-a lets go of sms-1 (mask: only the entries), svc-b takes it.
	a := must[*configv1.GetServiceResponse](t)(f.admin.services.GetService(ctx, &configv1.GetServiceRequest{TenantId: "acme", Id: "svc-a"})).GetService()
	must[*configv1.UpdateServiceResponse](t)(f.admin.services.UpdateService(ctx, &configv1.UpdateServiceRequest{
		Service:    &configv1.Service{TenantId: "acme", Id: "svc-a", Version: a.GetVersion()},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"messaging_entry_ids"}},
	}))
	if _, err := f.admin.services.CreateService(ctx, &configv1.CreateServiceRequest{Service: serviceOf("svc-b", "sms-1")}); err != nil {
		t.Fatalf("svc-b takes the released entry: %v", err)
	}
	r, err := newClients(f.env.Service(t)).lookup.ResolveWebhook(ctx, &configv1.ResolveWebhookRequest{TenantId: "acme", ChatServiceSid: sid("IS", '1')})
	if err != nil || r.GetService().GetId() != "svc-b" {
		t.Errorf("resolve sms-1 = service %q, %v; want svc-b", r.GetService().GetId(), err)
	}
	// Deleting svc-b frees sms-1 again.
	must[*configv1.DeleteServiceResponse](t)(f.admin.services.DeleteService(ctx, &configv1.DeleteServiceRequest{TenantId: "acme", Id: "svc-b"}))
	a = must[*configv1.GetServiceResponse](t)(f.admin.services.GetService(ctx, &configv1.GetServiceRequest{TenantId: "acme", Id: "svc-a"})).GetService()
	a.MessagingEntryIds = []string{"sms-1", "wa-1"}
	if _, err := f.admin.services.UpdateService(ctx, &configv1.UpdateServiceRequest{Service: a}); err != nil {
		t.Errorf("svc-a takes sms-1 back after svc-b was deleted: %v", err)
	}
	// A service with members cannot be deleted.
	must[*configv1.CreateUserResponse](t)(f.admin.users.CreateUser(ctx, &configv1.CreateUserRequest{User: &configv1.User{Id: "u1", TenantId: "acme", DisplayName: "U1", Email: "u1@acme.example", Roles: []configv1.Role{configv1.Role_ROLE_AGENT}, ServiceIds: []string{"svc-a"}}}))
	_, err = f.admin.services.DeleteService(ctx, &configv1.DeleteServiceRequest{TenantId: "acme", Id: "svc-a"})
	wantStatus(t, err, codes.FailedPrecondition, "id")
	// A connector in use cannot be deleted.
	_, err = f.admin.channels.DeleteProviderConnector(ctx, &configv1.DeleteProviderConnectorRequest{TenantId: "acme", Id: "c-emea"})
	wantStatus(t, err, codes.FailedPrecondition, "id")
}

// ListEntries answers services (sessions, for an agent starting a
// conversation) with the tenant's entries and the service each is assigned
// to, and only services.
func TestListEntriesWithTheirServices(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	lookup := newClients(f.env.Service(t)).lookup
	r := must[*configv1.ListEntriesResponse](t)(lookup.ListEntries(ctx, &configv1.ListEntriesRequest{TenantId: "acme"}))
	got := map[string]string{}
	for _, e := range r.GetEntries() {
		got[e.GetEntry().GetId()] = e.GetService().GetId()
	}
	if len(got) != 2 || got["sms-1"] != "svc-a" || got["wa-1"] != "" {
		t.Errorf("acme's entries and services = %v; want sms-1 in svc-a, wa-1 in none", got)
	}
	other := must[*configv1.ListEntriesResponse](t)(lookup.ListEntries(ctx, &configv1.ListEntriesRequest{TenantId: "beta"}))
	for _, e := range other.GetEntries() {
		if e.GetEntry().GetTenantId() != "beta" {
			t.Errorf("beta's list holds %s of tenant %s", e.GetEntry().GetId(), e.GetEntry().GetTenantId())
		}
	}
	_, err := lookup.ListEntries(ctx, &configv1.ListEntriesRequest{})
	wantStatus(t, err, codes.InvalidArgument, "tenant_id")
	_, err = f.admin.lookup.ListEntries(ctx, &configv1.ListEntriesRequest{TenantId: "acme"})
	wantStatus(t, err, codes.PermissionDenied, "")
}

func TestTenantModalities(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	get := func() *configv1.Tenant {
		return must[*configv1.GetTenantResponse](t)(f.admin.tenants.GetTenant(ctx, &configv1.GetTenantRequest{Id: "acme"})).GetTenant()
	}
	// svc-a and wa-1 use WhatsApp: it cannot be switched off under them.
	tn := get()
	tn.Modalities.Whatsapp = false
	_, err := f.admin.tenants.UpdateTenant(ctx, &configv1.UpdateTenantRequest{Tenant: tn})
	wantStatus(t, err, codes.FailedPrecondition, "tenant.modalities.whatsapp")

	// Without WhatsApp users, it can.
	a := must[*configv1.GetServiceResponse](t)(f.admin.services.GetService(ctx, &configv1.GetServiceRequest{TenantId: "acme", Id: "svc-a"})).GetService()
	a.Channels = []messagingv1.Channel{sms}
	must[*configv1.UpdateServiceResponse](t)(f.admin.services.UpdateService(ctx, &configv1.UpdateServiceRequest{Service: a}))
	must[*configv1.DeleteMessagingEntryResponse](t)(f.admin.channels.DeleteMessagingEntry(ctx, &configv1.DeleteMessagingEntryRequest{TenantId: "acme", Id: "wa-1"}))
	tn = get()
	tn.Modalities.Whatsapp = false
	if _, err := f.admin.tenants.UpdateTenant(ctx, &configv1.UpdateTenantRequest{Tenant: tn}); err != nil {
		t.Fatalf("switch WhatsApp off: %v", err)
	}
	// Now no service can enable it.
	a = must[*configv1.GetServiceResponse](t)(f.admin.services.GetService(ctx, &configv1.GetServiceRequest{TenantId: "acme", Id: "svc-a"})).GetService()
	a.Channels = []messagingv1.Channel{sms, whatsapp}
	_, err = f.admin.services.UpdateService(ctx, &configv1.UpdateServiceRequest{Service: a})
	wantStatus(t, err, codes.FailedPrecondition, "service.channels[1]")
}

func TestWorkflowVersionsAndIMRule(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	a := must[*configv1.GetServiceResponse](t)(f.admin.services.GetService(ctx, &configv1.GetServiceRequest{TenantId: "acme", Id: "svc-a"})).GetService()
	a.WorkflowId = "wf-ok"
	must[*configv1.UpdateServiceResponse](t)(f.admin.services.UpdateService(ctx, &configv1.UpdateServiceRequest{Service: a}))

	wf := must[*configv1.GetWorkflowResponse](t)(f.admin.wfs.GetWorkflow(ctx, &configv1.GetWorkflowRequest{TenantId: "acme", Id: "wf-ok"})).GetWorkflow()
	// Saving it unchanged makes no version.
	same := must[*configv1.UpdateWorkflowResponse](t)(f.admin.wfs.UpdateWorkflow(ctx, &configv1.UpdateWorkflowRequest{Workflow: wf})).GetWorkflow()
	if same.GetVersion() != 1 {
		t.Errorf("unchanged save made version %d, want 1", same.GetVersion())
	}
	// A voice activity would break svc-a's IM sessions: refused, named.
	bad := proto.Clone(wf).(*configv1.Workflow)
	bad.Definition.Activities[0] = activity("greet", "announcement", map[string]any{"prompt": "hi.wav"}, map[string]string{"next": "hours"})
	_, err := f.admin.wfs.UpdateWorkflow(ctx, &configv1.UpdateWorkflowRequest{Workflow: bad})
	wantStatus(t, err, codes.FailedPrecondition, "workflow.definition")
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "Announcement") || !strings.Contains(msg, "svc-a") {
		t.Errorf("error %q should name the Announcement activity and service svc-a", msg)
	}
	// A new IM-friendly version is fine and kept apart from version 1.
	v2 := proto.Clone(wf).(*configv1.Workflow)
	v2.Definition.Activities[0] = activity("greet", "message", map[string]any{"text": "Hello again"}, map[string]string{"next": "hours"})
	got := must[*configv1.UpdateWorkflowResponse](t)(f.admin.wfs.UpdateWorkflow(ctx, &configv1.UpdateWorkflowRequest{Workflow: v2})).GetWorkflow()
	if got.GetVersion() != 2 {
		t.Fatalf("second save version = %d, want 2", got.GetVersion())
	}
	old := must[*configv1.GetWorkflowResponse](t)(f.admin.wfs.GetWorkflow(ctx, &configv1.GetWorkflowRequest{TenantId: "acme", Id: "wf-ok", Version: 1})).GetWorkflow()
	if txt := old.GetDefinition().GetActivities()[0].GetParams().GetFields()["text"].GetStringValue(); txt != "Hello" {
		t.Errorf("version 1 greeting = %q, want the original Hello", txt)
	}
	versions := must[*configv1.ListWorkflowVersionsResponse](t)(f.admin.wfs.ListWorkflowVersions(ctx, &configv1.ListWorkflowVersionsRequest{TenantId: "acme", Id: "wf-ok"}))
	if n := len(versions.GetWorkflows()); n != 2 {
		t.Errorf("versions listed = %d, want 2", n)
	}
	// Pinned to version 2, svc-a no longer follows the latest: a voice
	// version may now be saved, but not selected for IM.
	a = must[*configv1.GetServiceResponse](t)(f.admin.services.GetService(ctx, &configv1.GetServiceRequest{TenantId: "acme", Id: "svc-a"})).GetService()
	a.WorkflowVersion = 2
	must[*configv1.UpdateServiceResponse](t)(f.admin.services.UpdateService(ctx, &configv1.UpdateServiceRequest{Service: a}))
	bad.Version = 2
	v3 := must[*configv1.UpdateWorkflowResponse](t)(f.admin.wfs.UpdateWorkflow(ctx, &configv1.UpdateWorkflowRequest{Workflow: bad})).GetWorkflow()
	a = must[*configv1.GetServiceResponse](t)(f.admin.services.GetService(ctx, &configv1.GetServiceRequest{TenantId: "acme", Id: "svc-a"})).GetService()
	a.WorkflowVersion = v3.GetVersion()
	_, err = f.admin.services.UpdateService(ctx, &configv1.UpdateServiceRequest{Service: a})
	wantStatus(t, err, codes.FailedPrecondition, "service.workflow_id")
	// A workflow in use cannot be deleted.
	_, err = f.admin.wfs.DeleteWorkflow(ctx, &configv1.DeleteWorkflowRequest{TenantId: "acme", Id: "wf-ok"})
	wantStatus(t, err, codes.FailedPrecondition, "id")
	if _, err := f.admin.wfs.DeleteWorkflow(ctx, &configv1.DeleteWorkflowRequest{TenantId: "acme", Id: "wf-voice"}); err != nil {
		t.Errorf("delete unused workflow: %v", err)
	}
}

// An IM service's workflow may only name IM services of the tenant: the
// workflow-runner would fail every session reaching a Queue Task (or a
// Transfer) to anything else. Checked where a workflow becomes an IM
// service's, where the workflow it follows changes, and where a named
// service would go away.
func TestWorkflowNamesOnlyIMServices(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	toService := func(id, target string) *configv1.Workflow {
		return &configv1.Workflow{Id: id, TenantId: "acme", Name: "To " + target, Definition: &configv1.WorkflowDefinition{Start: "queue", Activities: []*configv1.WorkflowActivity{
			activity("queue", "queue_task", map[string]any{"service_id": target}, nil),
		}}}
	}
	getService := func(id string) *configv1.Service {
		return must[*configv1.GetServiceResponse](t)(f.admin.services.GetService(ctx, &configv1.GetServiceRequest{TenantId: "acme", Id: id})).GetService()
	}
	// A workflow no service uses may name anything.
	must[*configv1.CreateWorkflowResponse](t)(f.admin.wfs.CreateWorkflow(ctx, &configv1.CreateWorkflowRequest{Workflow: toService("wf-billing", "billing")}))
	// An IM service cannot take it while billing does not exist.
	a := getService("svc-a")
	a.WorkflowId = "wf-billing"
	_, err := f.admin.services.UpdateService(ctx, &configv1.UpdateServiceRequest{Service: a})
	wantStatus(t, err, codes.FailedPrecondition, "service.workflow_id")
	if msg := status.Convert(err).Message(); !strings.Contains(msg, `"billing"`) || !strings.Contains(msg, "does not exist") || !strings.Contains(msg, "activities[0].params.service_id") {
		t.Errorf("error %q should name the missing service and where the workflow names it", msg)
	}
	// billing with IM off is no better.
	billing := serviceOf("billing")
	billing.ImEnabled = false
	must[*configv1.CreateServiceResponse](t)(f.admin.services.CreateService(ctx, &configv1.CreateServiceRequest{Service: billing}))
	_, err = f.admin.services.UpdateService(ctx, &configv1.UpdateServiceRequest{Service: a})
	wantStatus(t, err, codes.FailedPrecondition, "service.workflow_id")
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "Instant Messaging off") {
		t.Errorf("error %q should say billing has IM off", msg)
	}
	// With IM on, it can; a service queueing to itself needs nothing else.
	billing = getService("billing")
	billing.ImEnabled = true
	must[*configv1.UpdateServiceResponse](t)(f.admin.services.UpdateService(ctx, &configv1.UpdateServiceRequest{Service: billing}))
	must[*configv1.UpdateServiceResponse](t)(f.admin.services.UpdateService(ctx, &configv1.UpdateServiceRequest{Service: a}))
	must[*configv1.CreateWorkflowResponse](t)(f.admin.wfs.CreateWorkflow(ctx, &configv1.CreateWorkflowRequest{Workflow: toService("wf-self", "svc-self")}))
	self := serviceOf("svc-self")
	self.WorkflowId = "wf-self"
	must[*configv1.CreateServiceResponse](t)(f.admin.services.CreateService(ctx, &configv1.CreateServiceRequest{Service: self}))

	// billing cannot be deleted, or its IM switched off, while svc-a's
	// workflow names it.
	_, err = f.admin.services.DeleteService(ctx, &configv1.DeleteServiceRequest{TenantId: "acme", Id: "billing"})
	wantStatus(t, err, codes.FailedPrecondition, "id")
	if msg := status.Convert(err).Message(); !strings.Contains(msg, `"svc-a"`) || !strings.Contains(msg, `"wf-billing"`) {
		t.Errorf("error %q should name the service and workflow that need billing", msg)
	}
	billing = getService("billing")
	billing.ImEnabled = false
	_, err = f.admin.services.UpdateService(ctx, &configv1.UpdateServiceRequest{Service: billing})
	wantStatus(t, err, codes.FailedPrecondition, "service.im_enabled")

	// A new version of wf-billing naming a missing service is refused
	// while svc-a follows its latest version; pinned, svc-a keeps running
	// version 1 and the new version may be saved.
	wf := must[*configv1.GetWorkflowResponse](t)(f.admin.wfs.GetWorkflow(ctx, &configv1.GetWorkflowRequest{TenantId: "acme", Id: "wf-billing"})).GetWorkflow()
	next := toService("wf-billing", "sales")
	next.Version = wf.GetVersion()
	_, err = f.admin.wfs.UpdateWorkflow(ctx, &configv1.UpdateWorkflowRequest{Workflow: next})
	wantStatus(t, err, codes.FailedPrecondition, "workflow.definition")
	if msg := status.Convert(err).Message(); !strings.Contains(msg, `"sales"`) || !strings.Contains(msg, `"svc-a"`) {
		t.Errorf("error %q should name the missing service and the service following the workflow", msg)
	}
	a = getService("svc-a")
	a.WorkflowVersion = 1
	must[*configv1.UpdateServiceResponse](t)(f.admin.services.UpdateService(ctx, &configv1.UpdateServiceRequest{Service: a}))
	must[*configv1.UpdateWorkflowResponse](t)(f.admin.wfs.UpdateWorkflow(ctx, &configv1.UpdateWorkflowRequest{Workflow: next}))

	// Once svc-a runs another workflow, billing may go.
	a = getService("svc-a")
	a.WorkflowId, a.WorkflowVersion = "wf-ok", 0
	must[*configv1.UpdateServiceResponse](t)(f.admin.services.UpdateService(ctx, &configv1.UpdateServiceRequest{Service: a}))
	if _, err := f.admin.services.DeleteService(ctx, &configv1.DeleteServiceRequest{TenantId: "acme", Id: "billing"}); err != nil {
		t.Errorf("delete billing once no workflow names it: %v", err)
	}
}

func TestStaleVersionsAndConcurrentUpdates(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	a := must[*configv1.GetServiceResponse](t)(f.admin.services.GetService(ctx, &configv1.GetServiceRequest{TenantId: "acme", Id: "svc-a"})).GetService()

	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			s := proto.Clone(a).(*configv1.Service)
			s.Greeting = strings.Repeat("hello ", i+1)
			_, errs[i] = f.admin.services.UpdateService(ctx, &configv1.UpdateServiceRequest{Service: s})
		})
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch status.Code(err) {
		case codes.OK:
			wins++
		case codes.Aborted:
		default:
			t.Errorf("concurrent update: %v, want OK or Aborted", err)
		}
	}
	if wins != 1 {
		t.Errorf("%d of %d concurrent updates at version %d won, want exactly 1", wins, n, a.GetVersion())
	}
	// The loser's version is stale now.
	s := proto.Clone(a).(*configv1.Service)
	s.Greeting = "late"
	_, err := f.admin.services.UpdateService(ctx, &configv1.UpdateServiceRequest{Service: s})
	wantStatus(t, err, codes.Aborted, "service.version")
	// No version at all is refused rather than silently overwriting.
	s.Version = 0
	_, err = f.admin.services.UpdateService(ctx, &configv1.UpdateServiceRequest{Service: s})
	wantStatus(t, err, codes.InvalidArgument, "service.version")
	// Delete checks the version too.
	_, err = f.admin.services.DeleteService(ctx, &configv1.DeleteServiceRequest{TenantId: "acme", Id: "svc-a", Version: a.GetVersion()})
	wantStatus(t, err, codes.Aborted, "")
}

func TestFieldMasks(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	a := must[*configv1.GetServiceResponse](t)(f.admin.services.GetService(ctx, &configv1.GetServiceRequest{TenantId: "acme", Id: "svc-a"})).GetService()
	upd := func(s *configv1.Service, paths ...string) (*configv1.Service, error) {
		r, err := f.admin.services.UpdateService(ctx, &configv1.UpdateServiceRequest{Service: s, UpdateMask: &fieldmaskpb.FieldMask{Paths: paths}})
		return r.GetService(), err
	}
	got, err := upd(&configv1.Service{TenantId: "acme", Id: "svc-a", Version: a.GetVersion(), Greeting: "Hi!", Name: "ignored",
		Distribution: &configv1.DistributionSettings{RonaTimeout: durationpb.New(45 * time.Second), MaxParallelTasks: 9}},
		"greeting", "distribution.rona_timeout")
	if err != nil {
		t.Fatal(err)
	}
	if got.GetGreeting() != "Hi!" || got.GetName() != a.GetName() || got.GetDistribution().GetRonaTimeout().AsDuration() != 45*time.Second || got.GetDistribution().GetMaxParallelTasks() != 2 || len(got.GetMessagingEntryIds()) != 1 {
		t.Errorf("masked update changed more or less than greeting and RONA: %v", got)
	}
	for _, path := range []string{"version", "create_time", "id", "no_such_field", "channels.x"} {
		_, err := upd(&configv1.Service{TenantId: "acme", Id: "svc-a", Version: got.GetVersion()}, path)
		wantStatus(t, err, codes.InvalidArgument, "update_mask")
	}
}

func TestSecretsStayWriteOnly(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	const (
		apiSecret = "TopSecretApiKey0123456789abcdXYZ"
		authTok   = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
		secondTok = "aa11bb22cc33dd44ee55ff6677889900"
		password  = "correct-horse-battery"
	)
	secrets := []string{apiSecret, authTok, secondTok, password, f.env.SecretHex, f.env.AuthHex}

	c := connector("c-secret", "root")
	c.ApiKeySecret, c.AuthToken = apiSecret, authTok
	created := must[*configv1.CreateProviderConnectorResponse](t)(f.admin.channels.CreateProviderConnector(ctx, &configv1.CreateProviderConnectorRequest{ProviderConnector: c})).GetProviderConnector()
	check := func(where string, got *configv1.ProviderConnector) {
		t.Helper()
		if got.GetApiKeySecret() != "" || got.GetAuthToken() != "" || got.GetSecondaryAuthToken() != "" {
			t.Errorf("%s returned a secret", where)
		}
		if got.GetApiKeySecretHint() != "…dXYZ" || got.GetAuthTokenHint() != "…e1f0" {
			t.Errorf("%s hints = %q %q, want …dXYZ …e1f0", where, got.GetApiKeySecretHint(), got.GetAuthTokenHint())
		}
	}
	check("create", created)
	check("get", must[*configv1.GetProviderConnectorResponse](t)(f.admin.channels.GetProviderConnector(ctx, &configv1.GetProviderConnectorRequest{TenantId: "acme", Id: "c-secret"})).GetProviderConnector())
	list := must[*configv1.ListProviderConnectorsResponse](t)(f.admin.channels.ListProviderConnectors(ctx, &configv1.ListProviderConnectorsRequest{TenantId: "acme"}))
	for _, lc := range list.GetProviderConnectors() {
		if lc.GetId() == "c-secret" {
			check("list", lc)
		}
	}

	// A full update of what Get returned keeps the secrets (empty = keep),
	// and changes nothing.
	got := must[*configv1.GetProviderConnectorResponse](t)(f.admin.channels.GetProviderConnector(ctx, &configv1.GetProviderConnectorRequest{TenantId: "acme", Id: "c-secret"})).GetProviderConnector()
	same := must[*configv1.UpdateProviderConnectorResponse](t)(f.admin.channels.UpdateProviderConnector(ctx, &configv1.UpdateProviderConnectorRequest{ProviderConnector: got})).GetProviderConnector()
	if same.GetVersion() != got.GetVersion() {
		t.Errorf("update with empty secrets made version %d, want unchanged %d", same.GetVersion(), got.GetVersion())
	}
	// Rotation: a secondary Auth Token, then it is accepted by lookups.
	got.SecondaryAuthToken = secondTok
	rot := must[*configv1.UpdateProviderConnectorResponse](t)(f.admin.channels.UpdateProviderConnector(ctx, &configv1.UpdateProviderConnectorRequest{ProviderConnector: got})).GetProviderConnector()
	if rot.GetSecondaryAuthToken() != "" || rot.GetSecondaryAuthTokenHint() != "…9900" {
		t.Errorf("update returned secondary %q hint %q", rot.GetSecondaryAuthToken(), rot.GetSecondaryAuthTokenHint())
	}
	// A rejected secret is not echoed.
	bad := proto.Clone(rot).(*configv1.ProviderConnector)
	bad.AuthToken = "NOT-HEX-" + apiSecret
	_, err := f.admin.channels.UpdateProviderConnector(ctx, &configv1.UpdateProviderConnectorRequest{ProviderConnector: bad})
	wantStatus(t, err, codes.InvalidArgument, "provider_connector.auth_token")
	if strings.Contains(status.Convert(err).Message(), apiSecret) {
		t.Errorf("validation error echoes the secret: %s", status.Convert(err).Message())
	}

	e := smsEntry("sms-secret", "root", "c-secret", 'e')
	must[*configv1.CreateMessagingEntryResponse](t)(f.admin.channels.CreateMessagingEntry(ctx, &configv1.CreateMessagingEntryRequest{MessagingEntry: e}))
	must[*configv1.CreateUserResponse](t)(f.admin.users.CreateUser(ctx, &configv1.CreateUserRequest{User: &configv1.User{Id: "carol", TenantId: "acme", DisplayName: "Carol", Email: "carol@acme.example", Roles: []configv1.Role{configv1.Role_ROLE_AGENT}, Password: password}}))
	u := must[*configv1.GetUserResponse](t)(f.admin.users.GetUser(ctx, &configv1.GetUserRequest{TenantId: "acme", Id: "carol"})).GetUser()
	if u.GetPassword() != "" || !u.GetPasswordSet() {
		t.Errorf("user read: password %q set %v; want hidden and set", u.GetPassword(), u.GetPasswordSet())
	}

	// Services get the secrets through the lookups.
	lookup := newClients(f.env.Service(t)).lookup
	r := must[*configv1.ResolveWebhookResponse](t)(lookup.ResolveWebhook(ctx, &configv1.ResolveWebhookRequest{TenantId: "acme", ChatServiceSid: sid("IS", 'e')}))
	if !slices.Equal(r.GetAuthTokens(), []string{authTok, secondTok}) {
		t.Errorf("resolved auth tokens = %d tokens, want primary then secondary", len(r.GetAuthTokens()))
	}
	if r.GetEntry().GetId() != "sms-secret" || r.GetService() != nil || r.GetAccountSid() != sid("AC", 'a') {
		t.Errorf("resolve: entry %q service %v account %q", r.GetEntry().GetId(), r.GetService(), r.GetAccountSid())
	}
	cred := must[*configv1.GetSendingCredentialsResponse](t)(lookup.GetSendingCredentials(ctx, &configv1.GetSendingCredentialsRequest{TenantId: "acme", EntryId: "sms-secret"}))
	if cred.GetApiKeySecret() != apiSecret || cred.GetApiKeySid() != sid("SK", 'b') || cred.GetRegion() != "us1" {
		t.Errorf("sending credentials: sid %q region %q, secret matches %v", cred.GetApiKeySid(), cred.GetRegion(), cred.GetApiKeySecret() == apiSecret)
	}
	if _, err := lookup.AuthenticateUser(ctx, &configv1.AuthenticateUserRequest{TenantId: "acme", Email: "Carol@acme.example", Password: password}); err != nil {
		t.Errorf("authenticate carol: %v", err)
	}
	for _, bad := range []*configv1.AuthenticateUserRequest{
		{TenantId: "acme", Email: "carol@acme.example", Password: "wrong-password"},
		{TenantId: "acme", Email: "nobody@acme.example", Password: password},
		{TenantId: "beta", Email: "carol@acme.example", Password: password},
	} {
		_, err := lookup.AuthenticateUser(ctx, bad)
		wantStatus(t, err, codes.Unauthenticated, "")
		if msg := status.Convert(err).Message(); msg != "wrong email or password" {
			t.Errorf("AuthenticateUser(%s, %s) message %q reveals which part was wrong", bad.GetTenantId(), bad.GetEmail(), msg)
		}
	}

	// Nothing readable at rest.
	cur, err := f.env.DB.Collection("connectors").Find(ctx, bson.M{})
	if err != nil {
		t.Fatal(err)
	}
	var raw []bson.Raw
	if err := cur.All(ctx, &raw); err != nil {
		t.Fatal(err)
	}
	ucur, err := f.env.DB.Collection("users").Find(ctx, bson.M{})
	if err != nil {
		t.Fatal(err)
	}
	var rawUsers []bson.Raw
	if err := ucur.All(ctx, &rawUsers); err != nil {
		t.Fatal(err)
	}
	for _, d := range append(raw, rawUsers...) {
		for _, s := range secrets[:4] {
			if strings.Contains(d.String(), s) || strings.Contains(string(d), s) {
				t.Errorf("a stored document contains a secret in plain text: %.60s…", s)
			}
		}
	}

	// Nothing in the log.
	logs := f.env.Log.String()
	if !strings.Contains(logs, "config changed") {
		t.Fatalf("expected the service to log changes; log is %d bytes", len(logs))
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the log contains a secret (%.6s…)", s)
		}
	}
}

func TestConfigChangedEvents(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	cons, err := f.env.Bus.JS.OrderedConsumer(ctx, subjects.StreamConfig, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subjects.ConfigChanged(subjects.EntityService, "acme")},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *configv1.ConfigChanged, 16)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		var ev configv1.ConfigChanged
		if err := proto.Unmarshal(m.Data(), &ev); err == nil {
			got <- &ev
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Stop()

	a := must[*configv1.GetServiceResponse](t)(f.admin.services.GetService(ctx, &configv1.GetServiceRequest{TenantId: "acme", Id: "svc-a"})).GetService()
	a.Greeting = "Changed"
	must[*configv1.UpdateServiceResponse](t)(f.admin.services.UpdateService(ctx, &configv1.UpdateServiceRequest{Service: a}))
	must[*configv1.CreateServiceResponse](t)(f.admin.services.CreateService(ctx, &configv1.CreateServiceRequest{Service: serviceOf("svc-ev")}))
	must[*configv1.DeleteServiceResponse](t)(f.admin.services.DeleteService(ctx, &configv1.DeleteServiceRequest{TenantId: "acme", Id: "svc-ev"}))

	want := []struct {
		id     string
		change configv1.ChangeType
		ver    int64
	}{
		{"svc-a", configv1.ChangeType_CHANGE_TYPE_UPDATED, a.GetVersion() + 1},
		{"svc-ev", configv1.ChangeType_CHANGE_TYPE_CREATED, 1},
		{"svc-ev", configv1.ChangeType_CHANGE_TYPE_DELETED, 2},
	}
	for _, w := range want {
		select {
		case ev := <-got:
			if ev.GetTenantId() != "acme" || ev.GetKind() != configv1.EntityKind_ENTITY_KIND_SERVICE || ev.GetId() != w.id || ev.GetChange() != w.change || ev.GetVersion() != w.ver {
				t.Errorf("event = %v, want service %s %v version %d of acme", ev, w.id, w.change, w.ver)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no event for %s %v within 10s", w.id, w.change)
		}
	}
}

func TestAccess(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	getSvc := &configv1.GetServiceRequest{TenantId: "acme", Id: "svc-a"}

	other := newClients(f.env.Admin(t, "quiet"))
	_, err := other.services.GetService(ctx, getSvc)
	wantStatus(t, err, codes.PermissionDenied, "")
	_, err = other.tenants.GetTenant(ctx, &configv1.GetTenantRequest{Id: "acme"})
	wantStatus(t, err, codes.PermissionDenied, "")
	_, err = other.services.CreateService(ctx, &configv1.CreateServiceRequest{Service: serviceOf("svc-x")})
	wantStatus(t, err, codes.PermissionDenied, "")
	ts := must[*configv1.ListTenantsResponse](t)(other.tenants.ListTenants(ctx, &configv1.ListTenantsRequest{}))
	if len(ts.GetTenants()) != 1 || ts.GetTenants()[0].GetId() != "quiet" {
		t.Errorf("tenant admin lists %d tenants, want only their own", len(ts.GetTenants()))
	}
	all := must[*configv1.ListTenantsResponse](t)(f.platform.tenants.ListTenants(ctx, &configv1.ListTenantsRequest{}))
	if len(all.GetTenants()) != 3 {
		t.Errorf("platform lists %d tenants, want 3", len(all.GetTenants()))
	}
	_, err = f.admin.tenants.CreateTenant(ctx, &configv1.CreateTenantRequest{Tenant: &configv1.Tenant{Id: "mine", DisplayName: "Mine"}})
	wantStatus(t, err, codes.PermissionDenied, "")

	agent := newClients(f.env.Conn(t, "acme", authn.RoleAgent))
	_, err = agent.services.GetService(ctx, getSvc)
	wantStatus(t, err, codes.PermissionDenied, "")
	a := must[*configv1.GetServiceResponse](t)(f.admin.services.GetService(ctx, getSvc)).GetService()
	a.Greeting = "agent was here"
	_, err = agent.services.UpdateService(ctx, &configv1.UpdateServiceRequest{Service: a})
	wantStatus(t, err, codes.PermissionDenied, "")
	_, err = agent.users.CreateUser(ctx, &configv1.CreateUserRequest{User: &configv1.User{Id: "sneaky", TenantId: "acme", DisplayName: "S", Email: "s@acme.example", Roles: []configv1.Role{configv1.Role_ROLE_ADMIN}}})
	wantStatus(t, err, codes.PermissionDenied, "")

	sup := newClients(f.env.Conn(t, "acme", authn.RoleSupervisor))
	if _, err := sup.services.GetService(ctx, getSvc); err != nil {
		t.Errorf("supervisor reads a service: %v", err)
	}
	_, err = sup.services.UpdateService(ctx, &configv1.UpdateServiceRequest{Service: a})
	wantStatus(t, err, codes.PermissionDenied, "")

	resolve := &configv1.ResolveWebhookRequest{TenantId: "acme", ChatServiceSid: sid("IS", '1')}
	for name, c := range map[string]clients{"admin": f.admin, "platform": f.platform, "agent": agent} {
		_, err := c.lookup.ResolveWebhook(ctx, resolve)
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s calling ResolveWebhook: %v, want PermissionDenied", name, err)
		}
	}
	if _, err := newClients(f.env.Service(t)).lookup.ResolveWebhook(ctx, resolve); err != nil {
		t.Errorf("service calling ResolveWebhook: %v", err)
	}

	anon, err := grpc.NewClient(f.env.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	_, err = configv1.NewServiceServiceClient(anon).GetService(ctx, getSvc)
	wantStatus(t, err, codes.Unauthenticated, "")
}

func TestListPaging(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	for _, id := range []string{"u1", "u2", "u3", "u4", "u5"} {
		must[*configv1.CreateUserResponse](t)(f.admin.users.CreateUser(ctx, &configv1.CreateUserRequest{User: &configv1.User{Id: id, TenantId: "acme", DisplayName: id, Email: id + "@acme.example", Roles: []configv1.Role{configv1.Role_ROLE_AGENT}, ServiceIds: []string{"svc-a"}}}))
	}
	var ids []string
	token, pages := "", 0
	for {
		r := must[*configv1.ListUsersResponse](t)(f.admin.users.ListUsers(ctx, &configv1.ListUsersRequest{TenantId: "acme", PageSize: 2, PageToken: token}))
		pages++
		for _, u := range r.GetUsers() {
			ids = append(ids, u.GetId())
		}
		if token = r.GetNextPageToken(); token == "" {
			break
		}
	}
	if !slices.Equal(ids, []string{"u1", "u2", "u3", "u4", "u5"}) || pages != 3 {
		t.Errorf("paged users = %v in %d pages, want u1…u5 in 3", ids, pages)
	}
	byEmail := must[*configv1.ListUsersResponse](t)(f.admin.users.ListUsers(ctx, &configv1.ListUsersRequest{TenantId: "acme", Email: "U3@acme.example"}))
	if len(byEmail.GetUsers()) != 1 || byEmail.GetUsers()[0].GetId() != "u3" {
		t.Errorf("users by email = %v, want u3", byEmail.GetUsers())
	}
	_, err := f.admin.users.ListUsers(ctx, &configv1.ListUsersRequest{TenantId: "acme", PageToken: "!!"})
	wantStatus(t, err, codes.InvalidArgument, "page_token")
}

func TestConfigValidate(t *testing.T) {
	err := configsvc.Config{SecretKeys: "zz", AuthKeys: "", StreamReplicas: 9}.Validate()
	if err == nil {
		t.Fatal("Validate of an empty config = nil")
	}
	for _, want := range []string{"secret keys", "auth keys", "mongo uri", "nats url", "stream replicas"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error %q does not mention %q", err, want)
		}
	}
	ok := configsvc.Config{SecretKeys: strings.Repeat("ab", 32), AuthKeys: strings.Repeat("cd", 32), MongoURI: "mongodb://x", NATSURL: "nats://x"}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate of a complete config: %v", err)
	}
}

func TestShutdown(t *testing.T) {
	f := newFixture(t)
	if err := f.env.Stop(); err != nil {
		t.Fatalf("Run returned %v on shutdown, want nil", err)
	}
	_, err := f.admin.services.GetService(context.Background(), &configv1.GetServiceRequest{TenantId: "acme", Id: "svc-a"})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("call after shutdown: %v, want Unavailable", err)
	}
}

func TestReflectionAndHealth(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	conn, err := grpc.NewClient(f.env.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("reflection without a token: %v", err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	for _, want := range []string{"switchboard.config.v1.WorkflowService", "switchboard.config.v1.LookupService", "grpc.health.v1.Health"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v, missing %s", names, want)
		}
	}
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "switchboard.config.v1.ServiceService"})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health = %v, %v; want SERVING", h.GetStatus(), err)
	}
}
