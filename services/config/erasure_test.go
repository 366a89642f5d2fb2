package configsvc_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/switchboard-cc/switchboard/pkg/erasure"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
)

// retention_days: 0 keeps everything, 1 to 3650 days, anything else is
// refused naming the field.
func TestTenantRetentionDays(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	a := f.admin.tenants
	update := func(days int32) (*configv1.Tenant, error) {
		cur := must[*configv1.GetTenantResponse](t)(a.GetTenant(ctx, &configv1.GetTenantRequest{Id: "acme"})).GetTenant()
		r, err := a.UpdateTenant(ctx, &configv1.UpdateTenantRequest{
			Tenant:     &configv1.Tenant{Id: "acme", Version: cur.GetVersion(), RetentionDays: days},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"retention_days"}},
		})
		return r.GetTenant(), err
	}
	for _, bad := range []int32{-1, 3651} {
		_, err := update(bad)
		wantStatus(t, err, codes.InvalidArgument, "tenant.retention_days")
	}
	for _, ok := range []int32{1, 3650, 30, 0} {
		got, err := update(ok)
		if err != nil || got.GetRetentionDays() != ok {
			t.Errorf("retention_days %d: got %d, %v", ok, got.GetRetentionDays(), err)
		}
	}
}

// An erasure is validated, recorded on CONFIG with the admin who asked
// (the audit trail the services act on), and reports the services'
// answers as they come.
func TestEraseCustomerRecordsAndReports(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	a := f.admin.tenants
	for _, bad := range []string{"", "41791234567", "+4179x", "sms:+41791234567", "whatsapp:0791234567"} {
		_, err := a.EraseCustomer(ctx, &configv1.EraseCustomerRequest{TenantId: "acme", Address: bad})
		wantStatus(t, err, codes.InvalidArgument, "address")
	}
	_, err := a.EraseCustomer(ctx, &configv1.EraseCustomerRequest{TenantId: "quiet", Address: "+41791234567"})
	wantStatus(t, err, codes.PermissionDenied, "")
	_, err = a.EraseCustomer(ctx, &configv1.EraseCustomerRequest{Address: "+41791234567"})
	wantStatus(t, err, codes.InvalidArgument, "")

	audit := make(chan *configv1.CustomerErasureRequested, 4)
	sub, err := f.env.Bus.NC.Subscribe(subjects.CustomerErasureRequested("acme"), func(m *nats.Msg) {
		var ev configv1.CustomerErasureRequested
		if proto.Unmarshal(m.Data, &ev) == nil {
			audit <- &ev
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	res, err := a.EraseCustomer(ctx, &configv1.EraseCustomerRequest{TenantId: "acme", Address: "whatsapp:+41791234567"})
	if err != nil {
		t.Fatal(err)
	}
	if res.GetErasureId() == "" || len(res.GetServices()) != 3 {
		t.Errorf("EraseCustomer = %v, want an id and the three services", res)
	}
	var ev *configv1.CustomerErasureRequested
	select {
	case ev = <-audit:
	case <-time.After(10 * time.Second):
		t.Fatal("no erasure request on CONFIG")
	}
	if ev.GetErasureId() != res.GetErasureId() || ev.GetAddress() != "+41791234567" || ev.GetRequestedBy() == "" || ev.GetOccurredAt() == nil {
		t.Errorf("the recorded request: %v; want the erasure, the number without whatsapp:, the admin and the time", ev)
	}

	st, err := a.GetCustomerErasure(ctx, &configv1.GetCustomerErasureRequest{TenantId: "acme", ErasureId: res.GetErasureId()})
	if err != nil || len(st.GetCompletions()) != 0 || len(st.GetPending()) != 3 {
		t.Errorf("before any answer: %v, %v; want all three pending", st, err)
	}
	done := &configv1.CustomerErasureCompleted{TenantId: "acme", ErasureId: res.GetErasureId(), Service: "reporting", Counts: map[string]int64{"records": 2}}
	for range 2 { // a repeated answer counts once
		if err := f.env.Bus.Emit(ctx, subjects.CustomerErasureCompleted("acme"), done, erasure.CompletionID("acme", res.GetErasureId(), "reporting")); err != nil {
			t.Fatal(err)
		}
	}
	st, err = a.GetCustomerErasure(ctx, &configv1.GetCustomerErasureRequest{TenantId: "acme", ErasureId: res.GetErasureId()})
	if err != nil || len(st.GetCompletions()) != 1 || st.GetCompletions()[0].GetCounts()["records"] != 2 || len(st.GetPending()) != 2 {
		t.Errorf("after reporting answered: %v, %v; want reporting's counts and two pending", st, err)
	}
	_, err = a.GetCustomerErasure(ctx, &configv1.GetCustomerErasureRequest{TenantId: "acme", ErasureId: "er_unknown"})
	wantStatus(t, err, codes.NotFound, "")
	_, err = a.GetCustomerErasure(ctx, &configv1.GetCustomerErasureRequest{TenantId: "acme"})
	wantStatus(t, err, codes.InvalidArgument, "erasure_id")
}
