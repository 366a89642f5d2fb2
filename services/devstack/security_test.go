package devstack_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	"github.com/switchboard-cc/switchboard/services/devstack"
	"github.com/switchboard-cc/switchboard/services/sessions/agentclient"
)

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func adminUsers(t *testing.T, info devstack.Info) configv1.UserServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(info.ConfigAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(grpcserver.BearerToken(info.AdminToken)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return configv1.NewUserServiceClient(conn)
}

// TestSecurityEndToEnd probes the stack as an attacker and an admin would:
// the broker wants credentials, an agent whose access ends is cut off
// within seconds, and guessing a password gets slower and slower.
func TestSecurityEndToEnd(t *testing.T) {
	info := stack(t)
	ctx := timeout(t)

	t.Run("nats requires credentials", func(t *testing.T) {
		if nc, err := nats.Connect(info.NATSURL); err == nil {
			nc.Close()
			t.Fatal("an anonymous client connected to the embedded NATS server")
		}
		nc, err := nats.Connect(info.NATSURL, nats.UserInfo(info.NATSAuth.User, info.NATSAuth.Password))
		if err != nil {
			t.Fatalf("with the generated credentials: %v", err)
		}
		nc.Close()
	})

	t.Run("revoked agent is cut off", func(t *testing.T) {
		users := adminUsers(t, info)
		tok, err := agentclient.Login(ctx, info.ConsoleURL, "demo", "alice@demo.example", "demo")
		if err != nil {
			t.Fatal(err)
		}
		alice, err := agentclient.Dial(ctx, info.ConsoleURL, tok)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(alice.Close)
		u, err := users.GetUser(ctx, &configv1.GetUserRequest{TenantId: "demo", Id: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		u.User.ImLicense = false
		if _, err := users.UpdateUser(ctx, &configv1.UpdateUserRequest{User: u.User, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"im_license"}}}); err != nil {
			t.Fatal(err)
		}
		poll(t, "alice's socket closed", func() bool { return alice.Closed() != nil })
		if !strings.Contains(alice.Closed().Error(), "4401") {
			t.Errorf("close = %v, want 4401", alice.Closed())
		}
		if _, err := agentclient.Dial(ctx, info.ConsoleURL, tok); !agentclient.IsCode(err, "unauthenticated") {
			t.Errorf("old token after the license was removed: %v, want unauthenticated", err)
		}
		if _, err := agentclient.Login(ctx, info.ConsoleURL, "demo", "alice@demo.example", "demo"); err == nil || !strings.Contains(err.Error(), "401") {
			t.Errorf("sign-in without the IM license: %v, want 401", err)
		}
	})

	t.Run("password guessing is throttled", func(t *testing.T) {
		login := func(pw string) *http.Response {
			body := []byte(`{"tenant_id":"demo","email":"bob@demo.example","password":"` + pw + `"}`)
			res, err := http.Post(info.ConsoleURL+"api/agent/v1/login", "application/json", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			_ = res.Body.Close()
			return res
		}
		for i := 0; i < 4; i++ {
			if res := login("guess"); res.StatusCode != http.StatusUnauthorized {
				t.Fatalf("wrong password %d: status %d, want 401", i+1, res.StatusCode)
			}
		}
		res := login("demo")
		if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
			t.Errorf("right password while throttled: status %d Retry-After %q, want 429 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"))
		}
		st, err := adminUsers(t, info).GetSignInStatus(ctx, &configv1.GetSignInStatusRequest{TenantId: "demo", UserId: "bob"})
		if err != nil {
			t.Fatal(err)
		}
		if st.GetStatus().GetConsecutiveFailures() != 4 || st.GetStatus().GetLastFailureSource() != "127.0.0.1" {
			t.Errorf("sign-in status = %v", st.GetStatus())
		}
	})
}
