// Package natsembed runs a NATS server with JetStream inside the process, for
// the all-in-one binary and for tests.
package natsembed

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Config of an embedded server.
type Config struct {
	// Host and Port to listen on; Port -1 picks a free port.
	Host string
	Port int
	// StoreDir holds JetStream's file store.
	StoreDir string
	// SyncAlways fsyncs every write before the PubAck. Without it the file
	// store syncs every two minutes and a power loss can lose acknowledged
	// messages.
	SyncAlways bool
	// Users, when any, are required on the client port: a client must
	// present one of these names with its password. Without them the server
	// takes anonymous clients (tests only).
	Users []User
}

// User is a client the server accepts. Without allow-lists it may do
// anything; with them, only what they allow.
type User struct {
	Name     string
	Password string
	// Publish and Subscribe allow-lists (subjects with wildcards).
	Publish   []string
	Subscribe []string
}

// Server is a running embedded NATS server.
type Server struct {
	srv *server.Server
}

// Start starts the server and waits until it accepts connections.
func Start(cfg Config, log *slog.Logger) (*Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("natsembed: StoreDir is required")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	opts := &server.Options{
		ServerName: "switchboard-embedded",
		Host:       cfg.Host,
		Port:       cfg.Port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		SyncAlways: cfg.SyncAlways,
		NoSigs:     true,
		NoLog:      true,
		MaxPayload: 1 << 20,
	}
	for _, u := range cfg.Users {
		if u.Name == "" || len(u.Password) < 16 {
			return nil, fmt.Errorf("natsembed: user %q needs a name and a password of 16 or more characters", u.Name)
		}
		su := &server.User{Username: u.Name, Password: u.Password}
		if u.Publish != nil || u.Subscribe != nil {
			su.Permissions = &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: u.Publish},
				Subscribe: &server.SubjectPermission{Allow: u.Subscribe},
			}
		}
		opts.Users = append(opts.Users, su)
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(15 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("nats server on %s:%d not ready", cfg.Host, cfg.Port)
	}
	if log != nil {
		log.Info("embedded nats started", "url", srv.ClientURL(), "store_dir", cfg.StoreDir, "sync_always", cfg.SyncAlways, "auth_required", len(cfg.Users) > 0)
	}
	return &Server{srv: srv}, nil
}

// ClientURL is the nats:// URL clients connect to.
func (s *Server) ClientURL() string { return s.srv.ClientURL() }

// Shutdown stops the server and waits for it.
func (s *Server) Shutdown() {
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
}
