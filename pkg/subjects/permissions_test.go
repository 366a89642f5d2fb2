package subjects_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-cc/switchboard/pkg/natsembed"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

const confPath = "../../deploy/nats/switchboard-users.conf"

// The file shipped for production is what the code says, and nats-server
// reads it.
func TestNATSConfIsCurrent(t *testing.T) {
	want := subjects.NATSConf()
	if os.Getenv("UPDATE_NATS_CONF") != "" {
		if err := os.WriteFile(confPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(confPath)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("%s is stale: run UPDATE_NATS_CONF=1 go test ./pkg/subjects -run NATSConf", confPath)
	}
	for _, a := range subjects.Accesses() {
		t.Setenv(subjects.PasswordVar(a.Service), "pw-"+a.Service)
	}
	main := filepath.Join(t.TempDir(), "nats.conf")
	body, _ := os.ReadFile(confPath)
	if err := os.WriteFile(filepath.Join(filepath.Dir(main), "switchboard-users.conf"), body, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(main, []byte("port: -1\ninclude \"switchboard-users.conf\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(main)
	if err != nil {
		t.Fatalf("nats-server cannot read the shipped users: %v", err)
	}
	if len(opts.Users) != len(subjects.Accesses()) {
		t.Errorf("%d users parsed, want %d", len(opts.Users), len(subjects.Accesses()))
	}
	for _, u := range opts.Users {
		if u.Password != "pw-"+u.Username || u.Permissions == nil || len(u.Permissions.Publish.Allow) == 0 {
			t.Errorf("user %s: password from env %v, permissions %+v", u.Username, u.Password == "pw-"+u.Username, u.Permissions)
		}
	}
}

// A service may publish and read only its own: the broker refuses the rest.
func TestServicePermissionsAreEnforced(t *testing.T) {
	var users []natsembed.User
	for _, a := range subjects.Accesses() {
		p := a.Permissions()
		users = append(users, natsembed.User{Name: a.Service, Password: "password-of-" + a.Service, Publish: p.Publish, Subscribe: p.Subscribe})
	}
	users = append(users, natsembed.User{Name: "admin", Password: "password-of-admin"})
	srv, err := natsembed.Start(natsembed.Config{Port: -1, StoreDir: t.TempDir(), Users: users}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	connect := func(user string) (*nats.Conn, jetstream.JetStream, <-chan error) {
		errs := make(chan error, 16)
		nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo(user, "password-of-"+user),
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, _ := jetstream.New(nc)
		return nc, js, errs
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, admin, _ := connect("admin")
	for _, sc := range subjects.Streams(subjects.StreamOptions{}) {
		if _, err := admin.CreateOrUpdateStream(ctx, sc); err != nil {
			t.Fatal(err)
		}
	}
	// A refused request gets no answer: give those a short deadline.
	short := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 500*time.Millisecond)
	}

	_, chat, _ := connect("chat-handler")
	if _, err := chat.Publish(ctx, subjects.ChatMessageReceived("acme"), []byte("x")); err != nil {
		t.Errorf("chat-handler publishing its own event: %v", err)
	}
	_, rep, _ := connect("reporting")
	c, cl := short()
	if _, err := rep.Publish(c, subjects.ChatMessageReceived("acme"), []byte("forged")); err == nil {
		t.Error("reporting injected a customer message into CHAT")
	}
	cl()
	c, cl = short()
	if _, err := rep.CreateOrUpdateConsumer(c, subjects.StreamChat, jetstream.ConsumerConfig{Durable: "peek"}); err == nil {
		t.Error("reporting created a consumer on CHAT, which it does not read")
	}
	cl()
	if _, err := rep.CreateOrUpdateConsumer(ctx, subjects.StreamSession, jetstream.ConsumerConfig{Durable: subjects.ConsumerReportingSessions, AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Errorf("reporting reading SESSION: %v", err)
	}
	_, wf, _ := connect("workflow-runner")
	c, cl = short()
	if _, err := wf.Publish(c, subjects.TaskAccepted("acme"), []byte("forged")); err == nil {
		t.Error("workflow-runner published a distribution event")
	}
	cl()
	if _, err := wf.Publish(ctx, subjects.OutboundRequested("acme"), []byte("x")); err != nil {
		t.Errorf("workflow-runner requesting a send: %v", err)
	}
	// Only config writes the revocation list; others read it.
	_, cfg, _ := connect("config")
	kv, err := cfg.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: subjects.BucketRevocations})
	if err != nil {
		t.Fatalf("config creating the revocation list: %v", err)
	}
	if _, err := kv.Put(ctx, "acme.alice", []byte("1")); err != nil {
		t.Errorf("config writing the revocation list: %v", err)
	}
	_, sess, _ := connect("sessions")
	skv, err := sess.KeyValue(ctx, subjects.BucketRevocations)
	if err != nil {
		t.Fatalf("sessions binding the revocation list: %v", err)
	}
	if _, err := skv.Get(ctx, "acme.alice"); err != nil {
		t.Errorf("sessions reading the revocation list: %v", err)
	}
	c, cl = short()
	if _, err := skv.Put(c, "acme.alice", []byte("0")); err == nil {
		t.Error("sessions un-revoked a user")
	}
	cl()
	// Core subjects: only sessions hears agents' frames.
	snc, _, _ := connect("sessions")
	if _, err := snc.SubscribeSync(subjects.AgentPushAll); err != nil {
		t.Fatal(err)
	}
	if err := snc.Flush(); err != nil {
		t.Fatal(err)
	}
	dnc, _, derrs := connect("distribution")
	if _, err := dnc.SubscribeSync(subjects.AgentPushAll); err != nil {
		t.Fatal(err)
	}
	_ = dnc.Flush()
	select {
	case err := <-derrs:
		if !errors.Is(err, nats.ErrPermissionViolation) && !strings.Contains(strings.ToLower(err.Error()), "permission") {
			t.Errorf("distribution subscribing to agent frames: %v, want a permission violation", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("distribution subscribed to agents' frames without a permission violation")
	}
}
