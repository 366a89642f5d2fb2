package tenantspec_test

import (
	"strings"

	"context"
	"github.com/switchboard-cc/switchboard/pkg/workflowdef"
	"os"
	"testing"

	"github.com/switchboard-cc/switchboard/pkg/mongodb/mongotest"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	"github.com/switchboard-cc/switchboard/services/config/internal/configtest"
	"github.com/switchboard-cc/switchboard/services/config/tenantspec"
)

func TestMain(m *testing.M) { os.Exit(mongotest.Main(m)) }

func TestApplyDemoTwice(t *testing.T) {
	env := configtest.Start(t)
	ctx := context.Background()
	conn := env.Platform(t)

	res, err := tenantspec.Apply(ctx, conn, tenantspec.Demo())
	if err != nil {
		t.Fatalf("first Apply: %v", err)
	}
	if got, want := res.Changed(), 14; got != want {
		t.Errorf("first Apply changed %d records, want %d:\n%s", got, want, res)
	}
	for _, a := range res.Actions {
		if a.Op != tenantspec.Created {
			t.Errorf("first Apply: %s %s %s, want created", a.Op, a.Kind, a.ID)
		}
	}

	res, err = tenantspec.Apply(ctx, conn, tenantspec.Demo())
	if err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	if res.Changed() != 0 {
		t.Errorf("second Apply changed records, want none:\n%s", res)
	}

	lookup := configv1.NewLookupServiceClient(env.Service(t))
	r, err := lookup.ResolveWebhook(ctx, &configv1.ResolveWebhookRequest{TenantId: "demo", ChatServiceSid: "IS0123456789abcdef0123456789abcdef"})
	if err != nil {
		t.Fatalf("ResolveWebhook: %v", err)
	}
	if r.GetEntry().GetId() != "sms-front-desk" || r.GetService().GetId() != "support" || len(r.GetAuthTokens()) != 1 || r.GetAuthTokens()[0] != "0123456789abcdef0123456789abcdef" {
		t.Errorf("ResolveWebhook = entry %q service %q tokens %d, want sms-front-desk, support, the demo token", r.GetEntry().GetId(), r.GetService().GetId(), len(r.GetAuthTokens()))
	}
	u, err := lookup.AuthenticateUser(ctx, &configv1.AuthenticateUserRequest{TenantId: "demo", Email: "alice@demo.example", Password: "demo"})
	if err != nil || u.GetUser().GetId() != "alice" {
		t.Errorf("AuthenticateUser(alice) = %v, %v; want alice", u.GetUser().GetId(), err)
	}
	// The analyst round-trips: "analyst" in the spec, ROLE_ANALYST in
	// config, "analyst" again in the spec's names.
	a, err := lookup.AuthenticateUser(ctx, &configv1.AuthenticateUserRequest{TenantId: "demo", Email: "ana@demo.example", Password: "demo"})
	if err != nil || a.GetUser().GetId() != "ana" || len(a.GetUser().GetRoles()) != 1 || a.GetUser().GetRoles()[0] != configv1.Role_ROLE_ANALYST {
		t.Fatalf("AuthenticateUser(ana) = %v, %v; want ana with ROLE_ANALYST", a.GetUser(), err)
	}
	if got := tenantspec.RoleName(a.GetUser().GetRoles()[0]); got != "analyst" {
		t.Errorf("RoleName(ROLE_ANALYST) = %q, want analyst", got)
	}
}

// A workflow an IM service follows may only name services that exist, so
// a file adding a service and a workflow activity naming it must apply in
// one go whatever the order; a file naming a service that exists nowhere
// is refused with the line and the service.
func TestApplyWorkflowNamingANewService(t *testing.T) {
	env := configtest.Start(t)
	ctx := context.Background()
	conn := env.Platform(t)
	if _, err := tenantspec.Apply(ctx, conn, tenantspec.Demo()); err != nil {
		t.Fatal(err)
	}
	// Billing now goes to a service of its own, listed last.
	spec := tenantspec.Demo()
	menu := workflowOf(t, spec, "front-desk-menu")
	menu.Definition.Activities = append(menu.Definition.Activities, workflowdef.Activity{ID: "to_billing", Type: "transfer", Params: map[string]any{"service_id": "billing"}})
	for i := range menu.Definition.Activities {
		if a := &menu.Definition.Activities[i]; a.ID == "menu" {
			a.Next["Billing"] = "to_billing"
		}
	}
	spec.Services = append(spec.Services, tenantspec.Service{ID: "billing", Name: "Billing", OrgUnit: "root", IM: true, Channels: []string{"sms"}})
	res, err := tenantspec.Apply(ctx, conn, spec)
	if err != nil {
		t.Fatalf("apply a workflow naming a service the same file adds: %v", err)
	}
	did := map[string]tenantspec.Op{}
	for _, a := range res.Actions {
		did[a.Kind+" "+a.ID] = a.Op
	}
	if did["workflow front-desk-menu"] != tenantspec.Updated || did["service billing"] != tenantspec.Created {
		t.Errorf("apply did:\n%s\nwant the menu updated and billing created", res)
	}

	// A service that exists nowhere: refused, named, nothing half done.
	spec = tenantspec.Demo()
	menu = workflowOf(t, spec, "front-desk-menu")
	for i := range menu.Definition.Activities {
		if a := &menu.Definition.Activities[i]; a.ID == "to_support" {
			a.Params["service_id"] = "sales"
		}
	}
	_, err = tenantspec.Apply(ctx, conn, spec)
	if err == nil || !strings.Contains(err.Error(), `workflow "front-desk-menu"`) || !strings.Contains(err.Error(), `"sales"`) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("apply a workflow naming a missing service: %v, want the workflow and the missing service named", err)
	}
	wf, err := configv1.NewWorkflowServiceClient(conn).GetWorkflow(ctx, &configv1.GetWorkflowRequest{TenantId: "demo", Id: "front-desk-menu"})
	if err != nil {
		t.Fatal(err)
	}
	for p, s := range workflowdef.ServiceRefs(workflowdef.FromProto(wf.GetWorkflow().GetDefinition())) {
		if s == "sales" {
			t.Errorf("the refused version was saved: %s names sales", p)
		}
	}
}

func workflowOf(t *testing.T, spec *tenantspec.Spec, id string) *tenantspec.Workflow {
	t.Helper()
	for i := range spec.Workflows {
		if spec.Workflows[i].ID == id {
			return &spec.Workflows[i]
		}
	}
	t.Fatalf("no workflow %q in the spec", id)
	return nil
}
