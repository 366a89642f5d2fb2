package configsvc_test

import (
	"context"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
)

func retryAfter(err error) time.Duration {
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	return 0
}

// auditEvents follows config.signin.*.<tenant>.
func auditEvents(t *testing.T, f *fixture, tenant string) <-chan jetstream.Msg {
	t.Helper()
	cons, err := f.env.Bus.JS.OrderedConsumer(ctxT(t), subjects.StreamConfig, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subjects.ConfigSignInFailed(tenant), subjects.ConfigSignInCleared(tenant)},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan jetstream.Msg, 64)
	cc, err := cons.Consume(func(m jetstream.Msg) { got <- m })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Stop)
	return got
}

func nextAudit(t *testing.T, ch <-chan jetstream.Msg, into proto.Message) string {
	t.Helper()
	select {
	case m := <-ch:
		if err := proto.Unmarshal(m.Data(), into); err != nil {
			t.Fatal(err)
		}
		return m.Subject()
	case <-time.After(10 * time.Second):
		t.Fatal("no audit event within 10s")
	}
	return ""
}

func TestSignInThrottleAndLockout(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	const password = "right-password"
	must[*configv1.CreateUserResponse](t)(f.admin.users.CreateUser(ctx, &configv1.CreateUserRequest{User: &configv1.User{
		Id: "dana", TenantId: "acme", DisplayName: "Dana", Email: "dana@acme.example", Roles: []configv1.Role{configv1.Role_ROLE_AGENT}, ImLicense: true, Password: password,
	}}))
	audit := auditEvents(t, f, "acme")
	lookup := newClients(f.env.Service(t)).lookup
	try := func(pw, source string) error {
		_, err := lookup.AuthenticateUser(ctx, &configv1.AuthenticateUserRequest{TenantId: "acme", Email: "dana@acme.example", Password: pw, SourceAddress: source, RequireAgent: true})
		return err
	}

	// Three free failures, each an audit event; the fourth starts a delay.
	for i := 1; i <= 4; i++ {
		wantStatus(t, try("guess", "192.0.2.7"), codes.Unauthenticated, "")
		var ev configv1.SignInFailed
		if subj := nextAudit(t, audit, &ev); subj != subjects.ConfigSignInFailed("acme") || ev.GetUserId() != "dana" || ev.GetReason() != "wrong_credentials" ||
			ev.GetSourceAddress() != "192.0.2.7" || int(ev.GetConsecutiveFailures()) != i {
			t.Errorf("audit event %d = %s %v", i, subj, &ev)
		}
	}
	// Now even the right password is refused, before it is checked, with
	// when to come back: no oracle, no bcrypt work for the attacker.
	err := try(password, "198.51.100.1")
	wantStatus(t, err, codes.ResourceExhausted, "")
	if d := retryAfter(err); d <= 0 || d > time.Second {
		t.Errorf("retry after %v, want (0, 1s]", d)
	}

	admin := f.admin.users
	st := must[*configv1.GetSignInStatusResponse](t)(admin.GetSignInStatus(ctx, &configv1.GetSignInStatusRequest{TenantId: "acme", UserId: "dana"})).GetStatus()
	if st.GetConsecutiveFailures() != 4 || st.GetBlockedUntil() == nil || st.GetLockedOut() || st.GetLastFailureSource() != "192.0.2.7" || st.GetPolicy().GetLockoutFailures() != 10 {
		t.Errorf("sign-in status = %v", st)
	}
	// Agents and other tenants' admins cannot read or clear it.
	agent := newClients(f.env.Conn(t, "acme", authn.RoleAgent)).users
	_, err = agent.GetSignInStatus(ctx, &configv1.GetSignInStatusRequest{TenantId: "acme", UserId: "dana"})
	wantStatus(t, err, codes.PermissionDenied, "")
	other := newClients(f.env.Admin(t, "quiet")).users
	_, err = other.ClearSignInLockout(ctx, &configv1.ClearSignInLockoutRequest{TenantId: "acme", UserId: "dana"})
	wantStatus(t, err, codes.PermissionDenied, "")

	cleared := must[*configv1.ClearSignInLockoutResponse](t)(admin.ClearSignInLockout(ctx, &configv1.ClearSignInLockoutRequest{TenantId: "acme", UserId: "dana"})).GetStatus()
	if cleared.GetConsecutiveFailures() != 0 || cleared.GetBlockedUntil() != nil {
		t.Errorf("after clear: %v", cleared)
	}
	var ce configv1.SignInLockoutCleared
	if subj := nextAudit(t, audit, &ce); subj != subjects.ConfigSignInCleared("acme") || ce.GetUserId() != "dana" || ce.GetFailuresCleared() != 4 || ce.GetClearedBy() == "" {
		t.Errorf("clear audit event = %s %v", subj, &ce)
	}
	if err := try(password, "198.51.100.1"); err != nil {
		t.Fatalf("right password after the admin cleared the lockout: %v", err)
	}
}

func TestSignInSourceThrottle(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	lookup := newClients(f.env.Service(t)).lookup
	// One address spraying many accounts: 20 free failures, then a delay
	// for that address only.
	for i := 0; i < 21; i++ {
		_, err := lookup.AuthenticateUser(ctx, &configv1.AuthenticateUserRequest{TenantId: "acme", Email: string(rune('a'+i)) + "@acme.example", Password: "x", SourceAddress: "203.0.113.9"})
		wantStatus(t, err, codes.Unauthenticated, "")
	}
	_, err := lookup.AuthenticateUser(ctx, &configv1.AuthenticateUserRequest{TenantId: "acme", Email: "zed@acme.example", Password: "x", SourceAddress: "203.0.113.9"})
	wantStatus(t, err, codes.ResourceExhausted, "")
	_, err = lookup.AuthenticateUser(ctx, &configv1.AuthenticateUserRequest{TenantId: "acme", Email: "zed@acme.example", Password: "x", SourceAddress: "203.0.113.10"})
	wantStatus(t, err, codes.Unauthenticated, "")
}

func TestAgentSignInIsNoPasswordOracle(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	must[*configv1.CreateUserResponse](t)(f.admin.users.CreateUser(ctx, &configv1.CreateUserRequest{User: &configv1.User{
		Id: "ada", TenantId: "acme", DisplayName: "Ada", Email: "ada@acme.example", Roles: []configv1.Role{configv1.Role_ROLE_ADMIN}, Password: "admin-password",
	}}))
	lookup := newClients(f.env.Service(t)).lookup
	var msgs []string
	for _, pw := range []string{"admin-password", "wrong-password"} {
		_, err := lookup.AuthenticateUser(ctx, &configv1.AuthenticateUserRequest{TenantId: "acme", Email: "ada@acme.example", Password: pw, RequireAgent: true})
		wantStatus(t, err, codes.Unauthenticated, "")
		msgs = append(msgs, status.Convert(err).Message())
	}
	if msgs[0] != msgs[1] {
		t.Errorf("agent sign-in of an admin: right password %q, wrong password %q; want the same answer", msgs[0], msgs[1])
	}
	// Without require_agent (an admin console would ask that way) it works.
	if _, err := lookup.AuthenticateUser(ctx, &configv1.AuthenticateUserRequest{TenantId: "acme", Email: "ada@acme.example", Password: "admin-password"}); err != nil {
		t.Errorf("admin sign-in: %v", err)
	}
}

// userConn dials config as the user would with a token minted at sign-in.
func userConn(t *testing.T, f *fixture, tenant, user string, roles ...string) configv1.TenantServiceClient {
	t.Helper()
	tok, err := f.env.AuthKeys.Mint(authn.Claims{Tenant: tenant, Roles: roles, RegisteredClaims: jwt.RegisteredClaims{Subject: user}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(f.env.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(grpcserver.BearerToken(tok)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return configv1.NewTenantServiceClient(conn)
}

func TestRevocationOnAccessChanges(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	users := f.admin.users
	create := func(id string, disabled bool) *configv1.User {
		return must[*configv1.CreateUserResponse](t)(users.CreateUser(ctx, &configv1.CreateUserRequest{User: &configv1.User{
			Id: id, TenantId: "acme", DisplayName: id, Email: id + "@acme.example",
			Roles: []configv1.Role{configv1.Role_ROLE_SUPERVISOR, configv1.Role_ROLE_AGENT}, ImLicense: true, Password: "pass-" + id, Disabled: disabled,
		}})).GetUser()
	}
	update := func(u *configv1.User, paths ...string) {
		must[*configv1.UpdateUserResponse](t)(users.UpdateUser(ctx, &configv1.UpdateUserRequest{User: u, UpdateMask: &fieldmaskpb.FieldMask{Paths: paths}}))
	}
	changes := []struct {
		name   string
		change func(u *configv1.User)
	}{
		{"password changed", func(u *configv1.User) { u.Password = "a-new-password"; update(u, "password") }},
		{"disabled", func(u *configv1.User) { u.Disabled = true; update(u, "disabled") }},
		{"role removed", func(u *configv1.User) { u.Roles = []configv1.Role{configv1.Role_ROLE_AGENT}; update(u, "roles") }},
		{"license removed", func(u *configv1.User) { u.ImLicense = false; update(u, "im_license") }},
		{"deleted", func(u *configv1.User) {
			must[*configv1.DeleteUserResponse](t)(users.DeleteUser(ctx, &configv1.DeleteUserRequest{TenantId: "acme", Id: u.GetId()}))
		}},
	}
	for i, c := range changes {
		t.Run(c.name, func(t *testing.T) {
			id := "rev" + string(rune('a'+i))
			u := create(id, false)
			conn := userConn(t, f, "acme", id, authn.RoleSupervisor)
			if _, err := conn.GetTenant(ctx, &configv1.GetTenantRequest{Id: "acme"}); err != nil {
				t.Fatalf("before: %v", err)
			}
			c.change(u)
			_, err := conn.GetTenant(ctx, &configv1.GetTenantRequest{Id: "acme"})
			wantStatus(t, err, codes.Unauthenticated, "")
		})
	}
	t.Run("display name changed", func(t *testing.T) {
		u := create("keeper", false)
		conn := userConn(t, f, "acme", "keeper", authn.RoleSupervisor)
		u.DisplayName = "Keeper Renamed"
		update(u, "display_name")
		if _, err := conn.GetTenant(ctx, &configv1.GetTenantRequest{Id: "acme"}); err != nil {
			t.Errorf("a harmless change voided the token: %v", err)
		}
	})
	t.Run("disabled user cannot sign in", func(t *testing.T) {
		create("sleeper", true)
		lookup := newClients(f.env.Service(t)).lookup
		_, err := lookup.AuthenticateUser(context.Background(), &configv1.AuthenticateUserRequest{TenantId: "acme", Email: "sleeper@acme.example", Password: "pass-sleeper"})
		wantStatus(t, err, codes.Unauthenticated, "")
	})
}
