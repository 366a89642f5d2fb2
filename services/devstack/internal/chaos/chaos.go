// Package chaos is the fault-injection harness behind `make chaos`
// (services/devstack/cmd/chaos): it runs Switchboard as production does,
// every service its own process (two replicas of chat-handler, sessions,
// distribution and outbound-sender) on a three-node NATS JetStream
// cluster with R3 streams, drives customers (SMS and WhatsApp, through the
// Twilio emulator) and scripted agents on websockets, kills (SIGKILL),
// restarts and pauses (SIGSTOP/SIGCONT) random processes and NATS nodes
// while they work, and checks at the end that nothing was lost or done
// twice. See README.md in this folder.
package chaos

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/switchboard-cc/switchboard/services/devstack"
	"github.com/switchboard-cc/switchboard/services/devstack/internal/split"
)

// Config of one run.
type Config struct {
	// Seed chooses every random decision of the harness (faults, customers,
	// agents' choices); 0 picks one. It is printed first: the same seed
	// replays the same decisions (not the same timings).
	Seed uint64
	// Ops is the number of customer messages to send; 0 sends until
	// Duration has passed.
	Ops      int
	Duration time.Duration
	// Customers and Agents on the load side; Capacity is each agent's.
	Customers, Agents, Capacity int
	// FaultEvery is the mean time between faults (0: no faults).
	FaultEvery time.Duration
	// Drain bounds the wait, after the load and the faults, for what is
	// still in flight.
	Drain time.Duration
	// BinDir holds the binaries; NoBuild uses those already there.
	BinDir  string
	NoBuild bool
	// DataDir keeps the run's files (a temporary directory when empty);
	// the processes' logs are DataDir/processes.log.
	DataDir string
	// MongoURI of an external server; empty runs FerretDB.
	MongoURI string
	// SyncAlways fsyncs every JetStream write on every node.
	SyncAlways bool
	// Nodes is the NATS servers: 3 (a cluster, R3 streams; the default
	// when 0) or 1 (one server, R1 streams: a soak on a machine too small
	// for three).
	Nodes int
	// SampleEvery samples every process's memory, goroutines and open
	// files and every stream's size this often (0: never); see sample.go.
	SampleEvery time.Duration
}

// Defaults are make chaos's.
func Defaults() Config {
	return Config{Duration: time.Minute, Customers: 16, Agents: 6, Capacity: 3,
		FaultEvery: 4 * time.Second, Drain: 2 * time.Minute}
}

func (c Config) nodes() int {
	if c.Nodes == 0 {
		return 3
	}
	return c.Nodes
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Ops <= 0 && c.Duration <= 0 {
		errs = append(errs, errors.New("give a number of operations or a duration"))
	}
	if c.Customers < 1 || c.Agents < 1 || c.Capacity < 1 {
		errs = append(errs, errors.New("customers, agents and capacity must be at least 1"))
	}
	if c.Drain <= 0 {
		errs = append(errs, errors.New("drain must be positive"))
	}
	if c.Nodes != 0 && c.Nodes != 1 && c.Nodes != 3 {
		errs = append(errs, fmt.Errorf("nodes must be 1 or 3, got %d", c.Nodes))
	}
	if c.Nodes == 1 && c.FaultEvery > 0 {
		errs = append(errs, errors.New("one NATS server is for a soak without faults (-fault-every 0): the faults are made for a cluster that outlives a node"))
	}
	return errors.Join(errs...)
}

// replicas of each service; the others run once.
var replicas = map[string]int{"chat-handler": 2, "sessions": 2, "distribution": 2, "outbound-sender": 2}

// listenKey is the variable each service listens on.
var listenKey = map[string]string{"chat-handler": "HTTP_ADDR", "sessions": "HTTP_ADDR", "distribution": "GRPC_ADDR", "outbound-sender": "GRPC_ADDR", "config": "GRPC_ADDR", "reporting": "GRPC_ADDR"}

// stack is the running system.
type stack struct {
	info     devstack.Info
	nats     []*proc
	services []*proc
	proxies  []*proxy
	natsURL  string
	password string
	// backends of the HTTP services, for health checks.
	health []string
	sup    *supervisor
}

func (s *stack) all() []*proc { return append(append([]*proc{}, s.nats...), s.services...) }

// Run runs the harness and writes the report to out, progress to
// progress. It returns the report, and an error when the run could not be
// made; violations are in the report (Report.Failed).
func Run(ctx context.Context, cfg Config, out, progress io.Writer) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	say := func(format string, args ...any) {
		fmt.Fprintf(progress, "chaos %s: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
	}
	fmt.Fprintf(out, "chaos: seed %d (replay with SEED=%d or -seed %d)\n", cfg.Seed, cfg.Seed, cfg.Seed)
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))

	dir := cfg.DataDir
	if dir == "" {
		d, err := os.MkdirTemp("", "chaos-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// An earlier run's streams would answer this run's webhooks as
	// duplicates (the same seed makes the same message ids).
	if entries, err := os.ReadDir(dir); err != nil {
		return nil, err
	} else if len(entries) > 0 {
		return nil, fmt.Errorf("data directory %s is not empty (an earlier run's streams would take this run's messages as duplicates): give an empty or new one", dir)
	}
	logFile, err := os.Create(filepath.Join(dir, "processes.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	bin := cfg.BinDir
	if bin == "" {
		bin = filepath.Join(dir, "bin")
	}
	if bin, err = filepath.Abs(bin); err != nil {
		return nil, err
	}
	if !cfg.NoBuild {
		say("building the services and nats-server into %s", bin)
		if err := split.Build(ctx, bin, progress); err != nil {
			return nil, err
		}
		if err := buildNATS(ctx, bin, progress); err != nil {
			return nil, err
		}
	}

	st, stop, err := startStack(ctx, cfg, dir, bin, logFile, say)
	if stop != nil {
		defer stop()
	}
	if err != nil {
		return nil, fmt.Errorf("%w (processes' logs: %s)", err, logFile.Name())
	}
	// A service that exits during start-up (NATS not listening yet) is
	// started again; only the exits during the run count.
	for _, p := range st.all() {
		p.resetExits()
	}
	say("stack up: %d NATS nodes, %d service processes; logs in %s", len(st.nats), len(st.services), logFile.Name())

	d := newDriver(cfg, st, rng, say)
	if cfg.SampleEvery > 0 {
		f, err := os.Create(filepath.Join(dir, "samples.csv"))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		fmt.Fprintln(f, "seconds,series,value")
		d.sampler.out = f
	}
	rep, err := d.run(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w (processes' logs: %s)", err, logFile.Name())
	}
	rep.Seed = cfg.Seed
	rep.Logs = logFile.Name()
	for _, p := range st.all() {
		if n := p.unexpectedExits(); n > 0 {
			rep.Exits = append(rep.Exits, fmt.Sprintf("%s ×%d", p.name, n))
		}
	}
	rep.print(out)
	return rep, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = crand.Read(b)
	return hex.EncodeToString(b)
}

// startStack starts the NATS cluster, the infrastructure (FerretDB and
// the emulator in this process), the proxies and every service process,
// and applies the tenant. stop stops it all.
func startStack(ctx context.Context, cfg Config, dir, bin string, logs io.Writer, say func(string, ...any)) (*stack, func(), error) {
	st := &stack{password: randomHex(16)}
	var stops []func()
	stop := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	var err error
	st.nats, st.natsURL, err = natsCluster(bin, filepath.Join(dir, "nats"), st.password, cfg.nodes(), cfg.SyncAlways, logs)
	if err != nil {
		return nil, stop, err
	}
	if cfg.FaultEvery > 0 {
		stops = append(stops, mountDisks(st.nats, say))
	}
	for _, p := range st.nats {
		if err := p.start(); err != nil {
			return nil, stop, err
		}
	}
	stops = append(stops, func() {
		for _, p := range st.nats {
			p.term()
		}
	})
	// Generous: under make test other packages load the machine while
	// the three servers elect their meta leader. A server that exited
	// meanwhile is started again (a node short of quorum waits for ever).
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := waitJetStream(wctx, st.natsURL, st.password, cfg.nodes(), func() {
		for _, p := range st.nats {
			if !p.running() {
				say("%s is not running; starting it again", p.name)
				_ = p.start()
			}
		}
	}); err != nil {
		return nil, stop, err
	}
	say("NATS cluster up: %s", st.natsURL)

	// Each replicated service is reached through a proxy, as through a
	// Kubernetes Service; its replicas listen on addresses of their own.
	backends := map[string][]string{}
	front := map[string]string{}
	for s, n := range replicas {
		for range n {
			a, err := freeAddr()
			if err != nil {
				return nil, stop, err
			}
			backends[s] = append(backends[s], a)
		}
		p, err := newProxy(backends[s])
		if err != nil {
			return nil, stop, err
		}
		st.proxies = append(st.proxies, p)
		front[s] = p.addr()
	}
	stops = append(stops, func() {
		for _, p := range st.proxies {
			p.close()
		}
	})
	dc := devstack.Defaults()
	dc.DataDir = filepath.Join(dir, "infra")
	dc.NATSURL, dc.NATSAuth.User, dc.NATSAuth.Password = st.natsURL, natsUser, st.password
	dc.MongoURI, dc.MongoAddr = cfg.MongoURI, "127.0.0.1:0"
	dc.DatabasePrefix = "chaos_" + randomHex(4) + "_"
	dc.ChatHandlerAddr, dc.SessionsAddr = front["chat-handler"], front["sessions"]
	dc.DistributionAddr, dc.OutboundAddr = front["distribution"], front["outbound-sender"]
	dc.TwilioSimAddr = "127.0.0.1:0"
	for _, a := range []*string{&dc.ConfigAddr, &dc.ReportingAddr} {
		if *a, err = freeAddr(); err != nil {
			return nil, stop, err
		}
	}
	dc.SeedDemo = false
	dc.Services = []string{"twilio-sim"}
	infoc := make(chan devstack.Info, 1)
	infraDone := make(chan error, 1)
	infraCtx, stopInfra := context.WithCancel(context.WithoutCancel(ctx))
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})).With("process", "infra")
	go func() {
		infraDone <- devstack.Run(infraCtx, dc, devstack.Deps{Ready: func(i devstack.Info) { infoc <- i }}, log)
	}()
	stops = append(stops, func() {
		stopInfra()
		select {
		case <-infraDone:
		case <-time.After(30 * time.Second):
		}
	})
	select {
	case st.info = <-infoc:
	case err := <-infraDone:
		return nil, stop, fmt.Errorf("infrastructure: %w", err)
	case <-wctx.Done():
		return nil, stop, fmt.Errorf("infrastructure not ready: %w", wctx.Err())
	}

	for _, s := range split.Services {
		env, err := devstack.ServiceEnv(st.info, s, "", true)
		if err != nil {
			return nil, stop, err
		}
		env = append(env, fmt.Sprintf("STREAM_REPLICAS=%d", cfg.nodes()), "LOG_LEVEL=warn")
		if s == "chat-handler" {
			// A heartbeat of a second: an outage of every replica longer
			// than three is reconciled by the first one back. One server
			// has no replicas to count on, and the harness does not
			// fsync it unless told to.
			durable := "replicated"
			if cfg.nodes() == 1 {
				durable = map[bool]string{true: "fsync", false: "none"}[cfg.SyncAlways]
			}
			env = append(env, "DURABILITY="+durable, "UP_HEARTBEAT=1s")
		}
		addrs := backends[s]
		if len(addrs) == 0 {
			addrs = []string{st.info.Addrs[s]}
		}
		for i, a := range addrs {
			name := s
			if len(addrs) > 1 {
				name = fmt.Sprintf("%s-%d", s, i+1)
			}
			e := append(append([]string{}, env...), "REPLICA_ID="+name)
			if k := listenKey[s]; k != "" {
				e = append(e, k+"="+a)
			}
			var metrics string
			if cfg.SampleEvery > 0 {
				if metrics, err = freeAddr(); err != nil {
					return nil, stop, err
				}
				e = append(e, "METRICS_ADDR="+metrics)
			}
			if s == "chat-handler" || s == "sessions" {
				st.health = append(st.health, "http://"+a+"/healthz")
			}
			p := newProc(name, filepath.Join(bin, s), nil, e, logs)
			p.metrics = metrics
			st.services = append(st.services, p)
		}
	}
	for _, p := range st.services {
		if err := p.start(); err != nil {
			return nil, stop, err
		}
	}
	stops = append(stops, func() {
		var wg sync.WaitGroup
		for _, p := range st.services {
			wg.Add(1)
			go func() { defer wg.Done(); p.term() }()
		}
		wg.Wait()
	})
	// Services that fail to start (NATS not ready for them yet) are started
	// again by the supervisor, as Kubernetes would; until then, wait.
	sup := newSupervisor(st)
	supCtx, stopSup := context.WithCancel(context.WithoutCancel(ctx))
	go sup.run(supCtx)
	stops = append(stops, stopSup)
	st.sup = sup
	if err := devstack.WaitHealthy(wctx, st.health...); err != nil {
		return nil, stop, err
	}
	if err := applyTenant(wctx, cfg, st.info); err != nil {
		return nil, stop, err
	}
	return st, stop, nil
}
