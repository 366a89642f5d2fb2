package bus_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/natsembed"
)

func TestConnectAuthRequiresCredentials(t *testing.T) {
	const password = "correct-horse-battery-staple"
	srv, err := natsembed.Start(natsembed.Config{Port: -1, StoreDir: t.TempDir(), Users: []natsembed.User{{Name: "svc", Password: password}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	log := slog.New(slog.DiscardHandler)

	if b, err := bus.Connect(srv.ClientURL(), "anonymous", log); err == nil {
		b.Close()
		t.Fatal("anonymous client connected to a server that requires a password")
	}
	_, err = bus.ConnectAuth(srv.ClientURL(), "wrong", bus.Auth{User: "svc", Password: "not-the-password"}, log)
	if err == nil {
		t.Fatal("wrong password accepted")
	}
	if strings.Contains(err.Error(), "not-the-password") {
		t.Errorf("error %q carries the password", err)
	}
	b, err := bus.ConnectAuth(srv.ClientURL(), "right", bus.Auth{User: "svc", Password: password}, log)
	if err != nil {
		t.Fatalf("right password: %v", err)
	}
	b.Close()
}

func TestAuthValidate(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "svc.creds")
	if err := os.WriteFile(creds, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		auth    bus.Auth
		wantErr string
	}{
		{"anonymous", bus.Auth{}, ""},
		{"user", bus.Auth{User: "u", Password: "p"}, ""},
		{"creds", bus.Auth{CredsFile: creds}, ""},
		{"user without password", bus.Auth{User: "u"}, "go together"},
		{"two methods", bus.Auth{User: "u", Password: "p", Token: "t"}, "only one"},
		{"missing file", bus.Auth{CredsFile: filepath.Join(dir, "nope")}, "NATS_CREDS"},
		{"cert without key", bus.Auth{CertFile: creds}, "NATS_TLS_CERT and NATS_TLS_KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.auth.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate() = %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}

func TestConnectErrorRedactsURLPassword(t *testing.T) {
	_, err := bus.Connect("nats://svc:s3cret-pass@127.0.0.1:1", "x", slog.New(slog.DiscardHandler))
	if err == nil {
		t.Fatal("connected to a closed port")
	}
	if strings.Contains(err.Error(), "s3cret-pass") {
		t.Errorf("error %q carries the URL's password", err)
	}
}
