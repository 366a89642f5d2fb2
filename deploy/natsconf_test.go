package deploy_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// natsConfig writes the rendered NATS ConfigMap's files into a directory, as
// the StatefulSet mounts them, sets the server's environment (node name and
// every service's password) and returns the path of nats.conf.
func natsConfig(t *testing.T, b *Build) string {
	t.Helper()
	ss := Get[appsv1.StatefulSet](b, "nats")
	var cm *corev1.ConfigMap
	for _, v := range ss.Spec.Template.Spec.Volumes {
		if v.ConfigMap != nil {
			cm = Get[corev1.ConfigMap](b, v.ConfigMap.Name)
		}
	}
	if cm == nil {
		t.Fatal("no NATS ConfigMap")
	}
	dir := t.TempDir()
	for name, data := range cm.Data {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("SERVER_NAME", "nats-0")
	for _, a := range subjects.Accesses() {
		t.Setenv(subjects.PasswordVar(a.Service), "pw-"+a.Service)
	}
	return filepath.Join(dir, "nats.conf")
}

// The configuration nats-server reads in prod: a 3-node cluster that fsyncs
// every write, with every service's user.
func TestNATSConfigParses(t *testing.T) {
	opts, err := server.ProcessConfigFile(natsConfig(t, render(t, "overlays/prod")))
	if err != nil {
		t.Fatalf("nats-server refuses the prod configuration: %v", err)
	}
	if !opts.JetStream || !opts.SyncAlways {
		t.Errorf("JetStream %v, sync always %v: want both", opts.JetStream, opts.SyncAlways)
	}
	if len(opts.Routes) != 3 || opts.Cluster.Port != 6222 {
		t.Errorf("%d routes, cluster port %d: want 3 and 6222", len(opts.Routes), opts.Cluster.Port)
	}
	if opts.ServerName != "nats-0" {
		t.Errorf("server name %q, want the pod's name", opts.ServerName)
	}
	if len(opts.Users) != len(subjects.Accesses()) {
		t.Errorf("%d users, want one per service (%d)", len(opts.Users), len(subjects.Accesses()))
	}
}

// The dev configuration boots a server: each service signs in with its
// password and reaches JetStream; a wrong password is refused.
func TestNATSConfigServes(t *testing.T) {
	opts, err := server.ProcessConfigFile(natsConfig(t, render(t, "overlays/dev")))
	if err != nil {
		t.Fatalf("nats-server refuses the dev configuration: %v", err)
	}
	if len(opts.Routes) != 0 {
		t.Errorf("dev: %d routes, want none (one node)", len(opts.Routes))
	}
	opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", -1, -1
	opts.StoreDir, opts.PidFile = t.TempDir(), ""
	opts.NoSigs, opts.NoLog = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	for _, a := range subjects.Accesses() {
		nc, err := nats.Connect(s.ClientURL(), nats.UserInfo(a.Service, "pw-"+a.Service))
		if err != nil {
			t.Errorf("%s cannot connect: %v", a.Service, err)
			continue
		}
		js, err := jetstream.New(nc)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err = js.AccountInfo(ctx)
			cancel()
		}
		if err != nil {
			t.Errorf("%s cannot reach JetStream: %v", a.Service, err)
		}
		nc.Close()
	}
	if nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("chat-handler", "wrong")); err == nil {
		nc.Close()
		t.Error("a wrong password was accepted")
	}
}
