// Command replica-bench measures distribution's offers/s with three
// replicas sharing the tenants against one replica holding them all, in
// the same run, over one embedded NATS server and embedded FerretDB (or
// MONGO_URI). Each round: agents of every tenant available with room for
// every task, then n task requests published at once; the figure is n
// over the time from the first request to the n-th TaskOffered. Every
// offer is stored (task, then agent, with revision checks) before it is
// published, as in production.
//
//	go run ./services/distribution/cmd/replica-bench [-n 2000] [-tenants 16] [-agents 10] [-rounds 2]
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	workflowv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/workflow/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/pkg/mongodb"
	"github.com/switchboard-cc/switchboard/pkg/mongodb/ferret"
	"github.com/switchboard-cc/switchboard/pkg/natsembed"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/distribution"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "replica-bench:", err)
		os.Exit(1)
	}
}

// config: service "sales" in every tenant with room for every task, every
// "ag…" user an IM agent of it.
type config struct {
	configv1.UnimplementedServiceServiceServer
	configv1.UnimplementedUserServiceServer
}

func (config) GetService(_ context.Context, r *configv1.GetServiceRequest) (*configv1.GetServiceResponse, error) {
	if r.GetId() != "sales" {
		return nil, status.Error(codes.NotFound, "no such service")
	}
	return &configv1.GetServiceResponse{Service: &configv1.Service{Id: "sales", TenantId: r.GetTenantId(), Name: "Sales",
		Distribution: &configv1.DistributionSettings{RonaTimeout: durationpb.New(time.Hour), MaxParallelTasks: 1_000_000}}}, nil
}

func (config) GetUser(_ context.Context, r *configv1.GetUserRequest) (*configv1.GetUserResponse, error) {
	if !strings.HasPrefix(r.GetId(), "ag") {
		return nil, status.Error(codes.NotFound, "no such user")
	}
	return &configv1.GetUserResponse{User: &configv1.User{Id: r.GetId(), TenantId: r.GetTenantId(), ImLicense: true,
		Roles: []configv1.Role{configv1.Role_ROLE_AGENT}, ServiceIds: []string{"sales"}}}, nil
}

type setup struct {
	natsURL, mongoURI string
	keys              *authn.Keys
	authHex           string
	configAddr        string
	log               *slog.Logger
}

func run() error {
	n := flag.Int("n", 2000, "task requests per round")
	tenants := flag.Int("tenants", 16, "tenants")
	agents := flag.Int("agents", 10, "agents per tenant")
	rounds := flag.Int("rounds", 2, "alternate one replica and three this many times")
	flag.Parse()
	if *n < 1 || *tenants < 1 || *agents < 1 || *rounds < 1 {
		return errors.New("-n, -tenants, -agents and -rounds must be at least 1")
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "replica-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

	ns, err := natsembed.Start(natsembed.Config{Port: -1, StoreDir: filepath.Join(dir, "nats")}, log)
	if err != nil {
		return err
	}
	defer ns.Shutdown()
	s := setup{natsURL: ns.ClientURL(), mongoURI: os.Getenv("MONGO_URI"), log: log}
	if s.mongoURI == "" {
		fs, err := ferret.Start("127.0.0.1:0", filepath.Join(dir, "ferretdb"), nil)
		if err != nil {
			return err
		}
		defer fs.Stop()
		s.mongoURI = fs.URI()
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	if s.keys, err = authn.NewKeys(key); err != nil {
		return err
	}
	s.authHex = hex.EncodeToString(key)
	cfgSrv := grpcserver.New(log, s.keys)
	configv1.RegisterServiceServiceServer(cfgSrv.Server, config{})
	configv1.RegisterUserServiceServer(cfgSrv.Server, config{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- cfgSrv.Serve(sctx, lis) }()
	defer func() { stop(); <-served }()
	s.configAddr = lis.Addr().String()

	fmt.Printf("%d task requests per round over %d tenants, %d agents each; offers/s from the first request to the last offer\n", *n, *tenants, *agents)
	var one, three []float64
	for r := range *rounds {
		for _, k := range []int{1, 3} {
			rate, err := s.round(ctx, fmt.Sprintf("r%d-%d", r, k), k, *n, *tenants, *agents)
			if err != nil {
				return fmt.Errorf("round %d with %d replicas: %w", r+1, k, err)
			}
			fmt.Printf("  round %d, %d replica(s): %8.0f offers/s\n", r+1, k, rate)
			if k == 1 {
				one = append(one, rate)
			} else {
				three = append(three, rate)
			}
		}
	}
	a, b := mean(one), mean(three)
	fmt.Printf("one replica:    %8.0f offers/s\nthree replicas: %8.0f offers/s\nratio three/one: %.2f\n", a, b, b/a)
	return nil
}

func mean(xs []float64) float64 {
	var t float64
	for _, x := range xs {
		t += x
	}
	return t / float64(len(xs))
}

// round runs k replicas over a fresh database and fresh tenants.
func (s setup) round(ctx context.Context, id string, k, n, tenants, agents int) (float64, error) {
	mc, err := mongodb.Connect(ctx, s.mongoURI)
	if err != nil {
		return 0, err
	}
	db := "replica_bench_" + strings.ReplaceAll(id, "-", "_")
	defer func() { _ = mc.Database(db).Drop(context.Background()); _ = mc.Disconnect(context.Background()) }()
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var runErr atomic.Value
	defer func() { cancel(); wg.Wait() }()
	var clients []distributionv1.DistributionServiceClient
	for i := range k {
		b, err := bus.Connect(s.natsURL, "replica-bench-"+id, s.log)
		if err != nil {
			return 0, err
		}
		defer b.Close()
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		cfg := distribution.Defaults()
		cfg.GRPCAddr, cfg.NATSURL, cfg.MongoURI, cfg.Database = lis.Addr().String(), s.natsURL, s.mongoURI, db
		cfg.ConfigAddr, cfg.AuthKeys = s.configAddr, s.authHex
		cfg.ReplicaID, cfg.ReplicaTTL = fmt.Sprintf("bench-%s-%d", id, i), 2*time.Second
		cc, err := grpcserver.Dial(s.configAddr, s.keys, distribution.Name)
		if err != nil {
			return 0, err
		}
		defer func() { _ = cc.Close() }()
		wg.Go(func() {
			err := distribution.Run(rctx, cfg, distribution.Deps{GRPCListener: lis, Bus: b, Mongo: mc, ConfigConn: cc, AuthKeys: s.keys}, s.log)
			if err != nil {
				runErr.Store(err)
			}
		})
		conn, err := grpcserver.Dial(cfg.GRPCAddr, s.keys, "sessions")
		if err != nil {
			return 0, err
		}
		defer func() { _ = conn.Close() }()
		clients = append(clients, distributionv1.NewDistributionServiceClient(conn))
	}
	tenant := func(t int) string { return fmt.Sprintf("%s-t%02d", id, t) }
	// Every agent available (through any replica); this also waits for the
	// replicas to hold every partition.
	deadline := time.Now().Add(2 * time.Minute)
	for t := range tenants {
		for a := range agents {
			for {
				c, ccancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := clients[(t+a)%k].SetAgentPresence(c, &distributionv1.SetAgentPresenceRequest{TenantId: tenant(t), AgentId: fmt.Sprintf("ag%d", a), Presence: distributionv1.Presence_PRESENCE_AVAILABLE})
				ccancel()
				if err == nil {
					break
				}
				if e, ok := runErr.Load().(error); ok {
					return 0, e
				}
				if time.Now().After(deadline) {
					return 0, fmt.Errorf("agents not available after 2 minutes: %w", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}

	pub, err := bus.Connect(s.natsURL, "replica-bench-driver", s.log)
	if err != nil {
		return 0, err
	}
	defer pub.Close()
	var offered atomic.Int64
	done := make(chan struct{})
	sub, err := pub.NC.Subscribe(subjects.AllTenants(subjects.KindTaskOffered), func(m *nats.Msg) {
		if strings.HasPrefix(m.Subject, subjects.KindTaskOffered+"."+id+"-") && offered.Add(1) == int64(n) {
			close(done)
		}
	})
	if err != nil {
		return 0, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	start := time.Now()
	const publishers = 8
	var pwg sync.WaitGroup
	var perr atomic.Value
	for p := range publishers {
		pwg.Go(func() {
			for i := p; i < n; i += publishers {
				tn := tenant(i % tenants)
				task := fmt.Sprintf("tk_%s_%d", id, i)
				_, err := pub.Publish(ctx, subjects.WorkflowTaskRequested(tn), &workflowv1.TaskRequested{
					TenantId: tn, TaskId: task, SessionId: "ss_" + task, ServiceId: "sales", RequestedAt: timestamppb.Now(),
				}, bus.MsgID("req-"+task))
				if err != nil {
					perr.Store(err)
					return
				}
			}
		})
	}
	pwg.Wait()
	if e, ok := perr.Load().(error); ok {
		return 0, e
	}
	published := time.Since(start)
	firstOffers := offered.Load()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		return 0, fmt.Errorf("%d of %d tasks offered after 5 minutes", offered.Load(), n)
	}
	took := time.Since(start)
	if os.Getenv("REPLICA_BENCH_DETAIL") != "" {
		fmt.Printf("    requests published in %v (%d offered by then), all offered in %v\n", published.Round(time.Millisecond), firstOffers, took.Round(time.Millisecond))
	}
	return float64(n) / took.Seconds(), nil
}
