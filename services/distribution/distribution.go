// Package distribution runs the distribution service: task queues per
// service, agent presence, skills and capacity, offers, decline, RONA and
// after-call work, and the answers about tasks and queues.
//
// It consumes task requests (WORKFLOW stream), session ends (SESSION
// stream) and agents' replies (OUTBOUND stream, for the first-reply
// timer), publishes the life of every task on the DISTRIBUTION stream, and
// takes agents' answers over gRPC (DistributionService) from the sessions
// gateway. Several replicas share the tenants: each holds the tenants of
// the partitions the consumer group gives it (internal/partition) and
// forwards calls for the others' tenants to their holder.
package distribution

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"
	workflowv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/workflow/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/connect"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/pkg/httpserver"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/pkg/taskparams"
	"github.com/switchboard-cc/switchboard/pkg/telemetry"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/directory"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/engine"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/grpcapi"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/partition"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/presence"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/store"
)

// Name is the service name in logs, NATS connection names and tokens.
const Name = "distribution"

// Config of the distribution service.
type Config struct {
	// GRPCAddr serves DistributionService.
	GRPCAddr string
	NATSURL  string
	// NATSAuth: credentials and TLS for NATS (NATS_USER, NATS_CREDS, …).
	NATSAuth bus.Auth
	MongoURI string
	Database string
	// ConfigAddr is the config service's gRPC address.
	ConfigAddr string
	// AuthKeys are the hex token keys shared by the services.
	AuthKeys string
	Streams  subjects.StreamOptions
	// PresenceGrace: how long an agent whose last console closed keeps
	// their place (offline pending) before they are offline for good.
	PresenceGrace time.Duration
	// WatchInterval: at most one WatchQueues message per interval.
	WatchInterval time.Duration
	// FirstReply: after an accept, TaskReplyOverdue when the agent has not
	// replied within it (every service; 0: off).
	FirstReply time.Duration
	// ReplicaID names this replica in the consumer group (letters,
	// digits, - and _); unique among the replicas.
	ReplicaID string
	// Partitions: the tenants are spread over this many partitions, each
	// held by one replica; the same on every replica.
	Partitions int
	// ReplicaTTL: a replica that stops renewing its liveness key for this
	// long is dropped and its partitions move to the others.
	ReplicaTTL time.Duration
}

// Defaults for one machine.
func Defaults() Config {
	return Config{
		GRPCAddr:   "127.0.0.1:9091",
		NATSURL:    "nats://127.0.0.1:4222",
		MongoURI:   "mongodb://127.0.0.1:27017/",
		Database:   "switchboard_distribution",
		ConfigAddr: "127.0.0.1:9090",

		PresenceGrace: 30 * time.Second,
		WatchInterval: 500 * time.Millisecond,
		ReplicaID:     DefaultReplicaID(),
		Partitions:    16,
		ReplicaTTL:    6 * time.Second,
	}
}

// DefaultReplicaID is the host name (cut to what a member name may hold)
// with a random suffix, so two processes on one host do not collide.
func DefaultReplicaID() string {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, host)
	if len(host) > 40 {
		host = host[:40]
	}
	if host == "" {
		host = "distribution"
	}
	return host + "-" + strings.ToLower(rand.Text()[:8])
}

func (c Config) group() partition.Config {
	return partition.Config{
		Replica: c.ReplicaID, Partitions: c.Partitions, TTL: c.ReplicaTTL, AckWait: max(c.ReplicaTTL, time.Second),
		MaxAckPending: 1000, StreamReplicas: c.Streams.Replicas,
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	req := func(v, name string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is required", name))
		}
	}
	req(c.GRPCAddr, "grpc address")
	req(c.NATSURL, "nats url")
	req(c.MongoURI, "mongo uri")
	req(c.Database, "database")
	req(c.ConfigAddr, "config service address")
	if c.PresenceGrace < 0 {
		errs = append(errs, fmt.Errorf("presence grace %v is negative", c.PresenceGrace))
	}
	if c.FirstReply < 0 {
		errs = append(errs, fmt.Errorf("first reply timeout %v is negative", c.FirstReply))
	}
	if c.WatchInterval < 0 {
		errs = append(errs, fmt.Errorf("watch interval %v is negative", c.WatchInterval))
	}
	if err := c.group().Validate(); err != nil {
		errs = append(errs, err)
	}
	if _, err := authn.ParseKeys(c.AuthKeys); err != nil {
		errs = append(errs, fmt.Errorf("auth keys: %w", err))
	}
	return errors.Join(errs...)
}

// Deps are connections the caller may inject; nil ones are built from Config.
type Deps struct {
	GRPCListener net.Listener
	Bus          *bus.Bus
	Mongo        *mongo.Client
	ConfigConn   *grpc.ClientConn
	AuthKeys     *authn.Keys
}

// Run serves until ctx is done.
func Run(ctx context.Context, cfg Config, deps Deps, log *slog.Logger) (err error) {
	defer func() {
		// Stopped while starting (a test's stack stopped at once, a pod
		// deleted): what failed then failed because of the stop.
		if err != nil && ctx.Err() != nil {
			log.Debug("stopped while starting", "err", err)
			err = nil
		}
	}()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("distribution config: %w", err)
	}
	conns, err := connect.Open(ctx, log, connect.Spec{
		Name: Name, AuthKeys: cfg.AuthKeys, Keys: deps.AuthKeys, NATSURL: cfg.NATSURL, NATSAuth: cfg.NATSAuth, Bus: deps.Bus,
		Revocations: true, RevocationReplicas: cfg.Streams.Replicas,
		MongoURI: cfg.MongoURI, Mongo: deps.Mongo, GRPC: []connect.Target{{Addr: cfg.ConfigAddr, Conn: deps.ConfigConn}},
	})
	if err != nil {
		return err
	}
	defer conns.Close()
	keys, b, mc, cc := conns.Keys, conns.Bus, conns.Mongo, conns.GRPC[0]
	lis, err := httpserver.Listen(deps.GRPCListener, cfg.GRPCAddr)
	if err != nil {
		return err
	}

	if err := b.EnsureStreams(ctx, cfg.Streams, subjects.StreamDistribution, subjects.StreamWorkflow, subjects.StreamSession, subjects.StreamOutbound, subjects.StreamDeadLetter); err != nil {
		return err
	}
	st, err := store.New(ctx, mc.Database(cfg.Database))
	if err != nil {
		return err
	}
	// Each JetStream step of the start waits for JetStream (a cluster
	// electing its leaders, a node restarting) instead of failing the
	// start: every one is safe to do again.
	if err := b.Await(ctx, "open the tasks bucket", func(ctx context.Context) error {
		return st.OpenTasks(ctx, b.JS, cfg.Streams.Replicas)
	}); err != nil {
		return err
	}
	var migrated int
	if err := b.Await(ctx, "copy the open tasks from MongoDB", func(ctx context.Context) (err error) {
		migrated, err = st.MigrateOpen(ctx)
		return err
	}); err != nil {
		return err
	} else if migrated > 0 {
		log.InfoContext(ctx, "copied the tasks open in MongoDB to the bucket of open tasks", "tasks", migrated)
	}
	dir := directory.New(configv1.NewUserServiceClient(cc), configv1.NewServiceServiceClient(cc), 10*time.Second)
	dir.FirstReply = cfg.FirstReply
	var ps *presence.Store
	if err := b.Await(ctx, "open the presence bucket", func(ctx context.Context) (err error) {
		ps, err = presence.Open(ctx, b.JS, cfg.Streams.Replicas)
		return err
	}); err != nil {
		return err
	}
	var group *partition.Group
	if err := b.Await(ctx, "set up the consumer group", func(ctx context.Context) (err error) {
		group, err = partition.Setup(ctx, b.JS, cfg.group(), log)
		return err
	}); err != nil {
		return err
	}
	eng := engine.New(countingPublisher{b}, st, log)
	defer eng.Close()
	eng.SetPresenceOptions(engine.PresenceOptions{Store: ps, Grace: cfg.PresenceGrace})
	eng.SetPartitions(cfg.Partitions)
	var last *lastAgents
	if err := b.Await(ctx, "open the last agents bucket", func(ctx context.Context) (err error) {
		last, err = openLastAgents(ctx, b.JS, cfg.Streams.Replicas, log)
		return err
	}); err != nil {
		return err
	}
	eng.SetLastAgents(last)

	srv := grpcserver.New(log, keys)
	router := &grpcapi.Router{
		Local: &grpcapi.Server{Engine: eng, Agents: dir, Services: dir, WatchInterval: cfg.WatchInterval},
		NC:    b.NC, Keys: keys, Partitions: cfg.Partitions, Replica: cfg.ReplicaID,
	}
	defer router.Close()
	distributionv1.RegisterDistributionServiceServer(srv.Server, router)

	h := handlers{eng: eng, dir: dir, last: last, log: log}
	in := newInput(b, h, log, cfg.ReplicaTTL)
	own := newOwnership(eng, router, log, cfg.ReplicaID, cfg.ReplicaTTL/4)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer in.close()
		return group.Run(gctx, in.deliver, own.want)
	})
	g.Go(func() error { own.run(gctx); return nil })
	g.Go(func() error { last.run(gctx); return nil })
	g.Go(func() error { return srv.Serve(gctx, lis) })
	g.Go(func() error {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
				eng.Tick(gctx)
				sampleQueues(eng)
			}
		}
	})
	log.InfoContext(ctx, "distribution serving", "grpc", lis.Addr().String(), "replica", cfg.ReplicaID, "partitions", cfg.Partitions)
	return g.Wait()
}

type handlers struct {
	eng  *engine.Engine
	dir  *directory.Directory
	last *lastAgents
	log  *slog.Logger
}

func (h handlers) taskRequested(ctx context.Context, m *bus.Message) error {
	task, err := h.readTask(ctx, m)
	if err != nil {
		return err
	}
	return h.eng.Enqueue(ctx, task)
}

// readTask reads a task request into the task to queue: its service as
// config has it and, when the service prefers the customer's last agent,
// who that was.
func (h handlers) readTask(ctx context.Context, m *bus.Message) (*engine.Task, error) {
	var ev workflowv1.TaskRequested
	if err := m.Decode(&ev); err != nil {
		return nil, err
	}
	if ev.GetTaskId() == "" || ev.GetSessionId() == "" || ev.GetServiceId() == "" || ev.GetTenantId() != m.Tenant() {
		return nil, bus.Permanentf("task request on %s lacks task, session or service id, or names another tenant", m.Subject)
	}
	svc, err := h.dir.Service(ctx, ev.GetTenantId(), ev.GetServiceId())
	if err != nil {
		return nil, err
	}
	task := &engine.Task{
		ID: ev.GetTaskId(), Tenant: ev.GetTenantId(), SessionID: ev.GetSessionId(), ServiceID: ev.GetServiceId(),
		Conversation: ev.GetConversation(), CustomerName: ev.GetCustomerName(), Priority: ev.GetPriority(),
		RequiredSkills: ev.GetRequiredSkills(), QueuedAt: ev.GetRequestedAt().AsTime(), Service: svc,
		Trace: telemetry.TraceParent(ctx), // the request's span, also when it is queued in a batch
	}
	// The runner bounds the parameters; a request from elsewhere is held
	// to the same bounds rather than refused.
	var dropped taskparams.Dropped
	if task.Parameters, dropped = taskparams.Bound(ev.GetParameters()); dropped.Any() {
		h.log.WarnContext(ctx, "task parameters bounded", "tenant", task.Tenant, "task", task.ID,
			"dropped", dropped.Params, "truncated", dropped.Truncated)
	}
	if within := svc.PreferredAgentWithin; within > 0 && h.last != nil && ev.GetConversation().GetCustomerAddress() != "" {
		// One read by key; a failure only costs the preference.
		agent, at, err := h.last.Get(ctx, task.Tenant, task.Conversation)
		switch {
		case err != nil:
			h.log.WarnContext(ctx, "no preferred agent: last agent unreadable", "tenant", task.Tenant, "task", task.ID, "err", err)
		case agent != "" && time.Since(at) <= within:
			task.PreferredAgent = agent
		}
	}
	return task, nil
}

func (h handlers) sessionEnded(ctx context.Context, m *bus.Message) error {
	end, err := h.readEnd(ctx, m)
	if err != nil {
		return err
	}
	return h.eng.EndSession(ctx, end.Tenant, end.SessionID, end.Reason)
}

// readEnd reads a session's end.
func (h handlers) readEnd(_ context.Context, m *bus.Message) (engine.SessionEnd, error) {
	var ev sessionv1.SessionEnded
	if err := m.Decode(&ev); err != nil {
		return engine.SessionEnd{}, err
	}
	if ev.GetSessionId() == "" || ev.GetTenantId() != m.Tenant() {
		return engine.SessionEnd{}, bus.Permanentf("session end on %s lacks a session id or names another tenant", m.Subject)
	}
	return engine.SessionEnd{Tenant: ev.GetTenantId(), SessionID: ev.GetSessionId(), Reason: ev.GetReason()}, nil
}

// outboundRequested learns of agents' replies: the first one to an
// accepted task stops its first-reply timer.
func (h handlers) outboundRequested(ctx context.Context, m *bus.Message) error {
	var ev outboundv1.OutboundMessageRequested
	if err := m.Decode(&ev); err != nil {
		return err
	}
	if ev.GetOrigin() != outboundv1.Origin_ORIGIN_AGENT || ev.GetSessionId() == "" || ev.GetTenantId() != m.Tenant() {
		return nil // not an agent's reply in a session of this tenant
	}
	return h.eng.AgentReplied(ctx, ev.GetTenantId(), ev.GetSessionId(), ev.GetAgentId())
}
