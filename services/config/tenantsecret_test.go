package configsvc_test

import (
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
)

// Tenant secrets are accepted on create and update, never returned (only
// hints), sealed at rest, readable only by services through the lookup,
// validated with errors that name the secret, and never logged.
func TestTenantSecrets(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	const (
		signing = "bot-signing-key-0123456789-ABCD"
		crm     = "crm-token-zyxwvutsrqponm-9876"
		rotated = "rotated-signing-key-000000-WXYZ"
	)
	getTenant := func() *configv1.Tenant {
		t.Helper()
		return must[*configv1.GetTenantResponse](t)(f.admin.tenants.GetTenant(ctx, &configv1.GetTenantRequest{Id: "acme"})).GetTenant()
	}
	check := func(where string, got *configv1.Tenant, hints map[string]string) {
		t.Helper()
		if len(got.GetSecrets()) != 0 {
			t.Errorf("%s returned secret values", where)
		}
		if len(got.GetSecretHints()) != len(hints) {
			t.Errorf("%s hints = %v, want %v", where, got.GetSecretHints(), hints)
		}
		for k, v := range hints {
			if got.GetSecretHints()[k] != v {
				t.Errorf("%s hint of %s = %q, want %q", where, k, got.GetSecretHints()[k], v)
			}
		}
	}

	// Create (platform) with a secret; update (the tenant's admin) adds one.
	tn := &configv1.Tenant{Id: "botco", DisplayName: "Bot Co", Secrets: map[string]string{"bot_signing_key": signing}}
	created := must[*configv1.CreateTenantResponse](t)(f.platform.tenants.CreateTenant(ctx, &configv1.CreateTenantRequest{Tenant: tn})).GetTenant()
	check("create", created, map[string]string{"bot_signing_key": "…ABCD"})
	cur := getTenant()
	cur.Secrets = map[string]string{"crm_api_token": crm}
	up := must[*configv1.UpdateTenantResponse](t)(f.admin.tenants.UpdateTenant(ctx, &configv1.UpdateTenantRequest{Tenant: cur})).GetTenant()
	check("update", up, map[string]string{"crm_api_token": "…9876"})
	if up.GetVersion() != cur.GetVersion()+1 {
		t.Errorf("adding a secret made version %d, want %d", up.GetVersion(), cur.GetVersion()+1)
	}
	// Get, edit nothing, update: the secrets stay and nothing changes.
	cur = getTenant()
	check("get", cur, map[string]string{"crm_api_token": "…9876"})
	same := must[*configv1.UpdateTenantResponse](t)(f.admin.tenants.UpdateTenant(ctx, &configv1.UpdateTenantRequest{Tenant: cur})).GetTenant()
	if same.GetVersion() != cur.GetVersion() {
		t.Errorf("an update without secrets made version %d, want unchanged %d", same.GetVersion(), cur.GetVersion())
	}
	// The same value again changes nothing either (apply stays idempotent).
	cur.Secrets = map[string]string{"crm_api_token": crm}
	if v := must[*configv1.UpdateTenantResponse](t)(f.admin.tenants.UpdateTenant(ctx, &configv1.UpdateTenantRequest{Tenant: cur})).GetTenant().GetVersion(); v != cur.GetVersion() {
		t.Errorf("re-sending the same secret made version %d, want %d", v, cur.GetVersion())
	}

	// acme's admin sets acme's secrets; botco's stay botco's.
	acme := getTenant()
	acme.Secrets = map[string]string{"bot_signing_key": rotated}
	must[*configv1.UpdateTenantResponse](t)(f.admin.tenants.UpdateTenant(ctx, &configv1.UpdateTenantRequest{Tenant: acme}))
	_, err := f.admin.tenants.UpdateTenant(ctx, &configv1.UpdateTenantRequest{Tenant: &configv1.Tenant{Id: "botco", DisplayName: "x", Version: 1}})
	wantStatus(t, err, codes.PermissionDenied, "")

	// Only services read values.
	lookup := newClients(f.env.Service(t)).lookup
	for _, c := range []struct{ tenant, name, want string }{
		{"botco", "bot_signing_key", signing},
		{"acme", "bot_signing_key", rotated},
		{"acme", "crm_api_token", crm},
	} {
		r, err := lookup.GetTenantSecret(ctx, &configv1.GetTenantSecretRequest{TenantId: c.tenant, Name: c.name})
		if err != nil || r.GetValue() != c.want {
			t.Errorf("GetTenantSecret(%s, %s): %v, value matches %v", c.tenant, c.name, err, r.GetValue() == c.want)
		}
	}
	_, err = lookup.GetTenantSecret(ctx, &configv1.GetTenantSecretRequest{TenantId: "acme", Name: "nope"})
	wantStatus(t, err, codes.NotFound, "")
	_, err = lookup.GetTenantSecret(ctx, &configv1.GetTenantSecretRequest{TenantId: "acme", Name: "Bad-Name"})
	wantStatus(t, err, codes.InvalidArgument, "name")
	for _, who := range []struct {
		name string
		c    configv1.LookupServiceClient
	}{
		{"admin", f.admin.lookup},
		{"platform", f.platform.lookup},
		{"supervisor", newClients(f.env.Conn(t, "acme", authn.RoleSupervisor)).lookup},
	} {
		_, err := who.c.GetTenantSecret(ctx, &configv1.GetTenantSecretRequest{TenantId: "acme", Name: "crm_api_token"})
		wantStatus(t, err, codes.PermissionDenied, "")
	}

	// A mask naming one secret without a value deletes it.
	cur = getTenant()
	del := must[*configv1.UpdateTenantResponse](t)(f.admin.tenants.UpdateTenant(ctx, &configv1.UpdateTenantRequest{
		Tenant: &configv1.Tenant{Id: "acme", Version: cur.GetVersion()}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"secrets.bot_signing_key"}}})).GetTenant()
	check("delete by mask", del, map[string]string{"crm_api_token": "…9876"})
	if del.GetDisplayName() != "Acme Corp" {
		t.Errorf("a mask naming a secret changed the display name to %q", del.GetDisplayName())
	}
	_, err = lookup.GetTenantSecret(ctx, &configv1.GetTenantSecretRequest{TenantId: "acme", Name: "bot_signing_key"})
	wantStatus(t, err, codes.NotFound, "")
	_, err = f.admin.tenants.UpdateTenant(ctx, &configv1.UpdateTenantRequest{
		Tenant: &configv1.Tenant{Id: "acme", Version: del.GetVersion()}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"secret_hints"}}})
	wantStatus(t, err, codes.InvalidArgument, "update_mask")

	// Validation names the secret and never echoes a value.
	for _, c := range []struct {
		name, value, field string
	}{
		{"Bad-Name", "value", "tenant.secrets"},
		{"1starts_with_digit", "value", "tenant.secrets"},
		{"too_big", strings.Repeat("x", 4097), "tenant.secrets.too_big"},
		{"two_lines", "line one\nline two " + crm, "tenant.secrets.two_lines"},
	} {
		cur := getTenant()
		cur.Secrets = map[string]string{c.name: c.value}
		_, err := f.admin.tenants.UpdateTenant(ctx, &configv1.UpdateTenantRequest{Tenant: cur})
		wantStatus(t, err, codes.InvalidArgument, c.field)
		if strings.Contains(status.Convert(err).Message(), crm) {
			t.Errorf("the error for %s echoes the value", c.name)
		}
	}
	many := map[string]string{}
	for i := range 51 {
		many["s"+strings.Repeat("x", i)] = "value"
	}
	cur = getTenant()
	cur.Secrets = many
	_, err = f.admin.tenants.UpdateTenant(ctx, &configv1.UpdateTenantRequest{Tenant: cur})
	wantStatus(t, err, codes.InvalidArgument, "tenant.secrets")

	// Sealed at rest.
	c, err := f.env.DB.Collection("tenants").Find(ctx, bson.M{})
	if err != nil {
		t.Fatal(err)
	}
	var docs []bson.Raw
	if err := c.All(ctx, &docs); err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		for _, s := range []string{signing, crm, rotated} {
			if strings.Contains(string(d), s) || strings.Contains(d.String(), s) {
				t.Errorf("a tenant document holds a secret in plain text (%.6s…)", s)
			}
		}
	}
	// Re-encryption looks at the tenants' secrets too (all current here).
	rr := must[*configv1.ReencryptConnectorSecretsResponse](t)(f.platform.channels.ReencryptConnectorSecrets(ctx, &configv1.ReencryptConnectorSecretsRequest{}))
	if rr.GetTenantsChecked() < 2 || rr.GetTenantsReencrypted() != 0 {
		t.Errorf("re-encrypt: %d of %d tenants, want 0 of at least 2", rr.GetTenantsReencrypted(), rr.GetTenantsChecked())
	}

	// Audited by name, never by value.
	logs := f.env.Log.String()
	if !strings.Contains(logs, "tenant secrets changed") || !strings.Contains(logs, "crm_api_token") {
		t.Errorf("the log does not record which secrets changed")
	}
	for _, s := range []string{signing, crm, rotated} {
		if strings.Contains(logs, s) {
			t.Errorf("the log contains a secret (%.6s…)", s)
		}
	}
}
