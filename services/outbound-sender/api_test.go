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
