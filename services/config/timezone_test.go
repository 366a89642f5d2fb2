package configsvc_test

import (
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
)

// A tenant's time zone is set, changed and cleared like any field; an
// unknown one is refused naming the field and the value.
func TestTenantTimeZone(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	a := f.admin.tenants

	get := func() *configv1.Tenant {
		t.Helper()
		return must[*configv1.GetTenantResponse](t)(a.GetTenant(ctx, &configv1.GetTenantRequest{Id: "acme"})).GetTenant()
	}
	update := func(zone string) (*configv1.Tenant, error) {
		cur := get()
		r, err := a.UpdateTenant(ctx, &configv1.UpdateTenantRequest{
			Tenant:     &configv1.Tenant{Id: "acme", Version: cur.GetVersion(), TimeZone: zone},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"time_zone"}},
		})
		return r.GetTenant(), err
	}

	if z := get().GetTimeZone(); z != "" {
		t.Fatalf("a new tenant's zone is %q, want empty (UTC)", z)
	}
	_, err := update("Europe/Zurich ")
	wantStatus(t, err, codes.InvalidArgument, "tenant.time_zone")
	_, err = update("Mars/Olympus")
	wantStatus(t, err, codes.InvalidArgument, "tenant.time_zone")
	var said []string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				said = append(said, v.GetField()+": "+v.GetDescription())
			}
		}
	}
	if !strings.Contains(strings.Join(said, "; "), `time_zone: "Mars/Olympus" is not an IANA time zone`) {
		t.Errorf("the refusal says %q, want the field and the zone named", said)
	}

	before := get().GetVersion()
	got, err := update("Europe/Zurich")
	if err != nil {
		t.Fatal(err)
	}
	if got.GetTimeZone() != "Europe/Zurich" || got.GetVersion() != before+1 {
		t.Errorf("after setting Europe/Zurich: zone %q version %d, want Europe/Zurich %d", got.GetTimeZone(), got.GetVersion(), before+1)
	}
	if z := get().GetTimeZone(); z != "Europe/Zurich" {
		t.Errorf("stored zone %q, want Europe/Zurich", z)
	}
	// Other fields' updates keep it.
	cur := get()
	cur.DisplayName = "Acme AG"
	if r, err := a.UpdateTenant(ctx, &configv1.UpdateTenantRequest{Tenant: cur}); err != nil || r.GetTenant().GetTimeZone() != "Europe/Zurich" {
		t.Errorf("a full update without a mask: zone %q, err %v", r.GetTenant().GetTimeZone(), err)
	}
	if got, err := update(""); err != nil || got.GetTimeZone() != "" {
		t.Errorf("clearing the zone: %q, %v", got.GetTimeZone(), err)
	}
}
