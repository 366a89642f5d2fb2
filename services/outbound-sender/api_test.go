package outboundsender_test

import (
	"context"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	twiliosim "github.com/switchboard-cc/switchboard/services/twilio-sim"
)

// OutboundService answers any customer's state in a tenant, so agents (whose
// reads must be scoped to their own chats, which only sessions knows) are
// refused; services (sessions), supervisors, admins and platform operators
// of the tenant are served; callers from another tenant are refused.
func TestAPIRoles(t *testing.T) {
	h := start(t, options{})
	id := rid(t, "1")
	h.request(&outboundv1.OutboundMessageRequested{RequestId: id, EntryId: entrySMS, Conversation: smsTo("12345"), Body: "x"})
	h.waitFailed(id)

	// sessions dials OutboundService this way: a service token per call.
	conn, err := grpcserver.Dial(h.grpcAddr, h.keys, "sessions")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	asService := outboundv1.NewOutboundServiceClient(conn)

	claims := func(tenant string, roles ...string) authn.Claims {
		return authn.Claims{Tenant: tenant, Roles: roles, RegisteredClaims: jwt.RegisteredClaims{Subject: "someone"}}
	}
	tests := []struct {
		name   string
		client outboundv1.OutboundServiceClient
		want   codes.Code
		// wantMsg are words the refusal must carry.
		wantMsg []string
	}{
		{"agent of the tenant", h.client(claims(tenant, authn.RoleAgent)), codes.PermissionDenied,
			[]string{"service", "admin", "supervisor", "platform", "agents read their own chats' delivery and contact state through the agent console"}},
		{"supervisor of the tenant", h.client(claims(tenant, authn.RoleSupervisor)), codes.OK, nil},
		{"admin of the tenant", h.client(claims(tenant, authn.RoleAdmin)), codes.OK, nil},
		{"platform operator", h.client(claims("", authn.RolePlatform)), codes.OK, nil},
		{"service (sessions)", asService, codes.OK, nil},
		{"supervisor of another tenant", h.client(claims("globex", authn.RoleSupervisor)), codes.PermissionDenied, []string{`tenant "` + tenant + `"`}},
		{"agent of another tenant", h.client(claims("globex", authn.RoleAgent)), codes.PermissionDenied, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			calls := map[string]func() error{
				"GetContactState": func() error {
					_, err := tt.client.GetContactState(ctx, &outboundv1.GetContactStateRequest{TenantId: tenant, Conversation: smsTo("+15550200080")})
					return err
				},
				"GetDelivery": func() error {
					_, err := tt.client.GetDelivery(ctx, &outboundv1.GetDeliveryRequest{TenantId: tenant, RequestId: id})
					return err
				},
			}
			for rpc, call := range calls {
				err := call()
				if got := status.Code(err); got != tt.want {
					t.Errorf("%s: code %v (%v), want %v", rpc, got, err, tt.want)
					continue
				}
				for _, w := range tt.wantMsg {
					if msg := status.Convert(err).Message(); !strings.Contains(msg, w) {
						t.Errorf("%s: message %q does not say %q", rpc, msg, w)
					}
				}
			}
		})
	}
}

// ListTemplates answers the WhatsApp templates of an entry's connector
// from the emulator's Content API, to the same callers as the other RPCs;
// a missing or malformed entry id is InvalidArgument naming entry_id, an
// entry the tenant does not have is NotFound; callers of another tenant
// and agents are refused.
func TestListTemplates(t *testing.T) {
	h := start(t, options{})
	ctx := timeout(t)
	acct := simAccount(h.relay)
	acct.ContentTemplates = []twiliosim.ContentTemplate{
		{SID: "HX000000000000000000000000000000c1", FriendlyName: "order_update", Language: "en",
			Variables: map[string]string{"1": "customer_name"},
			Types:     map[string]any{"twilio/text": map[string]any{"body": "Hi {{1}}, your order {{2}} shipped."}}},
		{SID: "HX000000000000000000000000000000c2", FriendlyName: "pin", Language: "en",
			Types: map[string]any{"twilio/location": map[string]any{"latitude": 47.37, "longitude": 8.54}}},
	}
	if err := h.sim.PutAccount(ctx, acct); err != nil {
		t.Fatal(err)
	}
	res, err := h.grpc.ListTemplates(ctx, &outboundv1.ListTemplatesRequest{TenantId: tenant, EntryId: entryWA})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.GetTemplates()) != 1 {
		t.Fatalf("templates = %v, want order_update only (a location pin has no text)", res.GetTemplates())
	}
	tp := res.GetTemplates()[0]
	if tp.GetSid() != "HX000000000000000000000000000000c1" || tp.GetBody() != "Hi {{1}}, your order {{2}} shipped." ||
		len(tp.GetVariables()) != 2 || tp.GetVariables()[0].GetDefaultValue() != "customer_name" {
		t.Errorf("template = %v", tp)
	}

	claims := func(tn string, roles ...string) authn.Claims {
		return authn.Claims{Tenant: tn, Roles: roles, RegisteredClaims: jwt.RegisteredClaims{Subject: "someone"}}
	}
	for _, tt := range []struct {
		name   string
		client outboundv1.OutboundServiceClient
		req    *outboundv1.ListTemplatesRequest
		want   codes.Code
		words  string
	}{
		{"no entry", h.grpc, &outboundv1.ListTemplatesRequest{TenantId: tenant}, codes.InvalidArgument, "entry_id"},
		{"malformed entry", h.grpc, &outboundv1.ListTemplatesRequest{TenantId: tenant, EntryId: "../wa"}, codes.InvalidArgument, "entry_id"},
		{"unknown entry", h.grpc, &outboundv1.ListTemplatesRequest{TenantId: tenant, EntryId: "unknown-entry"}, codes.NotFound, "unknown-entry"},
		{"no tenant", h.grpc, &outboundv1.ListTemplatesRequest{EntryId: entryWA}, codes.InvalidArgument, "tenant_id"},
		{"supervisor of another tenant", h.client(claims(otherTenant, authn.RoleSupervisor)), &outboundv1.ListTemplatesRequest{TenantId: tenant, EntryId: entryWA}, codes.PermissionDenied, tenant},
		{"agent of the tenant", h.client(claims(tenant, authn.RoleAgent)), &outboundv1.ListTemplatesRequest{TenantId: tenant, EntryId: entryWA}, codes.PermissionDenied, "agent console"},
	} {
		_, err := tt.client.ListTemplates(ctx, tt.req)
		if status.Code(err) != tt.want || !strings.Contains(status.Convert(err).Message(), tt.words) {
			t.Errorf("%s: %v, want %v naming %q", tt.name, err, tt.want, tt.words)
		}
	}
	if contractDir() == "" {
		t.Log("Twilio's OpenAPI documents (../shared/twilio-oai) are absent: the Content API calls were not checked against them")
		return
	}
	v, err := h.sim.ContractViolations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range v {
		t.Errorf("contract violation: %s %s: %s", x.Method, x.Path, x.Detail)
	}
}

// FetchMedia fetches from Twilio's own media URLs only (the connector's
// credentials go nowhere else), of the entry's account, within the size
// bound, for the same callers as the other RPCs; every refusal names what
// was wrong.
func TestFetchMediaRefusals(t *testing.T) {
	h := start(t, options{})
	ctx := timeout(t)
	own := "https://api.twilio.com/2010-04-01/Accounts/" + accountSID + "/Messages/MM00000000000000000000000000000001/Media/ME00000000000000000000000000000001"
	claims := func(tn string, roles ...string) authn.Claims {
		return authn.Claims{Tenant: tn, Roles: roles, RegisteredClaims: jwt.RegisteredClaims{Subject: "someone"}}
	}
	for _, tt := range []struct {
		name   string
		client outboundv1.OutboundServiceClient
		req    *outboundv1.FetchMediaRequest
		want   codes.Code
		words  string
	}{
		{"no url", h.grpc, &outboundv1.FetchMediaRequest{TenantId: tenant, EntryId: entryWA}, codes.InvalidArgument, "url"},
		{"not Twilio", h.grpc, &outboundv1.FetchMediaRequest{TenantId: tenant, EntryId: entryWA, Url: "https://attacker.example/steal"}, codes.InvalidArgument, "twilio.com"},
		{"plain http", h.grpc, &outboundv1.FetchMediaRequest{TenantId: tenant, EntryId: entryWA, Url: strings.Replace(own, "https", "http", 1)}, codes.InvalidArgument, "https"},
		{"another account", h.grpc, &outboundv1.FetchMediaRequest{TenantId: tenant, EntryId: entryWA, Url: strings.Replace(own, accountSID, "AC0000000000000000000000000000dead", 1)}, codes.InvalidArgument, "another Twilio account"},
		{"absurd bound", h.grpc, &outboundv1.FetchMediaRequest{TenantId: tenant, EntryId: entryWA, Url: own, MaxBytes: 1 << 40}, codes.InvalidArgument, "max_bytes"},
		{"unknown media", h.grpc, &outboundv1.FetchMediaRequest{TenantId: tenant, EntryId: entryWA, Url: own}, codes.NotFound, "not found"},
		{"unknown entry", h.grpc, &outboundv1.FetchMediaRequest{TenantId: tenant, EntryId: "unknown-entry", Url: own}, codes.NotFound, "unknown-entry"},
		{"malformed entry", h.grpc, &outboundv1.FetchMediaRequest{TenantId: tenant, EntryId: "../wa", Url: own}, codes.InvalidArgument, "entry_id"},
		{"supervisor of another tenant", h.client(claims(otherTenant, authn.RoleSupervisor)), &outboundv1.FetchMediaRequest{TenantId: tenant, EntryId: entryWA, Url: own}, codes.PermissionDenied, tenant},
		{"agent of the tenant", h.client(claims(tenant, authn.RoleAgent)), &outboundv1.FetchMediaRequest{TenantId: tenant, EntryId: entryWA, Url: own}, codes.PermissionDenied, "agent console"},
	} {
		_, err := tt.client.FetchMedia(ctx, tt.req)
		if status.Code(err) != tt.want || !strings.Contains(status.Convert(err).Message(), tt.words) {
			t.Errorf("%s: %v, want %v naming %q", tt.name, err, tt.want, tt.words)
		}
	}
}
