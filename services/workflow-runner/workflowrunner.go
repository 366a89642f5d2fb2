// Package workflowrunner runs the workflow-runner service: one workflow
// instance per chat session, started by SessionStarted (SESSION stream),
// publishing outbound messages and task requests.
package workflowrunner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"google.golang.org/grpc"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/connect"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/workflow-runner/internal/runner"
)

// Name is the service name.
const Name = "workflow-runner"

// Config of the workflow-runner.
type Config struct {
	NATSURL string
	// NATSAuth: credentials and TLS for NATS (NATS_USER, NATS_CREDS, …).
	NATSAuth   bus.Auth
	MongoURI   string
	Database   string
	ConfigAddr string
	AuthKeys   string
	Streams    subjects.StreamOptions
}

// Defaults for one machine.
func Defaults() Config {
	return Config{
		NATSURL:    "nats://127.0.0.1:4222",
		MongoURI:   "mongodb://127.0.0.1:27017/",
		Database:   "switchboard_workflow",
		ConfigAddr: "127.0.0.1:9090",
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	for name, v := range map[string]string{"nats url": c.NATSURL, "mongo uri": c.MongoURI, "database": c.Database, "config service address": c.ConfigAddr} {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is required", name))
		}
	}
	if _, err := authn.ParseKeys(c.AuthKeys); err != nil {
		errs = append(errs, fmt.Errorf("auth keys: %w", err))
	}
	return errors.Join(errs...)
}

// Deps may be injected; nil ones are built from Config.
type Deps struct {
	Bus        *bus.Bus
	Mongo      *mongo.Client
	ConfigConn *grpc.ClientConn
	AuthKeys   *authn.Keys
}

// Run consumes session starts until ctx is done.
func Run(ctx context.Context, cfg Config, deps Deps, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("workflow-runner config: %w", err)
	}
	conns, err := connect.Open(ctx, log, connect.Spec{
		Name: Name, AuthKeys: cfg.AuthKeys, Keys: deps.AuthKeys, NATSURL: cfg.NATSURL, NATSAuth: cfg.NATSAuth, Bus: deps.Bus,
		MongoURI: cfg.MongoURI, Mongo: deps.Mongo, GRPC: []connect.Target{{Addr: cfg.ConfigAddr, Conn: deps.ConfigConn}},
	})
	if err != nil {
		return err
	}
	defer conns.Close()
	b, mc, cc := conns.Bus, conns.Mongo, conns.GRPC[0]
	if err := b.EnsureStreams(ctx, cfg.Streams, subjects.StreamSession, subjects.StreamWorkflow, subjects.StreamOutbound, subjects.StreamDeadLetter); err != nil {
		return err
	}
	r := runner.New(b, configv1.NewServiceServiceClient(cc), configv1.NewWorkflowServiceClient(cc), mc.Database(cfg.Database))
	log.Info("workflow-runner consuming session starts")
	// Sessions start workflows at once; one session's events in order.
	return b.ConsumeKeyed(ctx, bus.ConsumerSpec{
		Stream: subjects.StreamSession, Durable: subjects.ConsumerWorkflowSessions,
		FilterSubjects: []string{subjects.AllTenants(subjects.KindSessionStarted)},
	}, 16, bus.KeyByField("session_id"), r.HandleSessionStarted)
}
