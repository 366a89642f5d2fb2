package tenantspec_test

import (
	"context"
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
