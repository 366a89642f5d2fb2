// Package bench measures workflow-runner on an embedded JetStream server
// that fsyncs every write (as the devstack runs it), next to a bare
// baseline on the same server in the same run:
//
//   - reply latency: a customer's message published → the workflow's
//     reply request published, at a fixed rate, p50/p99, against a bare
//     publish → consume → publish round trip at the same rate;
//   - timers: 10,000 pending message schedules, how late they fire (p50,
//     p99) and that none is lost across a restart of the consumer;
//   - steps/s: sessions running a chain of activities that never wait.
package bench

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"
	workflowv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/workflow/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/pkg/natsembed"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/pkg/workflowdef"
	workflowrunner "github.com/switchboard-cc/switchboard/services/workflow-runner"
	"github.com/switchboard-cc/switchboard/services/workflow-runner/internal/runner"
)

// Options of a run.
type Options struct {
	// Rate of customer messages (and of the baseline's round trips) per second.
	Rate int
	// For: how long the fixed-rate steps run (after a second of warm-up).
	For time.Duration
	// Sessions sharing the customer messages.
	Sessions int
	// Timers: how many pending timers, due evenly over TimerWindow (whole
	// seconds: schedules have second precision).
	Timers      int
	TimerWindow time.Duration
	// StepSessions run StepChain activities each for steps/s.
	StepSessions, StepChain int
	// Dir holds the JetStream stores (a temporary directory when empty).
	Dir string
}

// Defaults: 200 messages/s for 10 s over 200 sessions, 10,000 timers due
// over 30 s, 200 sessions of 25 steps.
func Defaults() Options {
	return Options{Rate: 200, For: 10 * time.Second, Sessions: 200, Timers: 10000, TimerWindow: 30 * time.Second, StepSessions: 200, StepChain: 25}
}

const tenant = "bench"

// Run runs every measurement and prints the figures to w.
func Run(ctx context.Context, o Options, w io.Writer) error {
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "workflow-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("WORKFLOW_BENCH_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	// Each measurement on its own server, so one's backlog cannot slow another.
	env, err := start(ctx, dir+"/reply", log)
	if err != nil {
		return err
	}
	err = env.reply(ctx, o, w)
	env.close()
	if err != nil {
		return fmt.Errorf("reply latency: %w", err)
	}
	env, err = start(ctx, dir+"/steps", log)
	if err != nil {
		return err
	}
	err = env.steps(ctx, o, w)
	env.close()
	if err != nil {
		return fmt.Errorf("steps/s: %w", err)
	}
	if err := timers(ctx, o, dir+"/timers", log, w); err != nil {
		return fmt.Errorf("timers: %w", err)
	}
	return nil
}

// env is an fsync-always server, a bus, and config over gRPC; the runner
// starts on demand.
type env struct {
	ns   *natsembed.Server
	b    *bus.Bus
	log  *slog.Logger
	keys *authn.Keys
	key  string
	cfg  *benchConfig
	addr string
	stop []func()
}

func start(ctx context.Context, dir string, log *slog.Logger) (*env, error) {
	ns, err := natsembed.Start(natsembed.Config{Port: -1, StoreDir: dir, SyncAlways: true}, nil)
	if err != nil {
		return nil, err
	}
	e := &env{ns: ns, log: log, stop: []func(){ns.Shutdown}}
	if e.b, err = bus.Connect(ns.ClientURL(), "workflow-bench", log); err != nil {
		e.close()
		return nil, err
	}
	e.stop = append(e.stop, e.b.Close)
	raw := []byte("0123456789abcdef0123456789abcdef")
	e.key = hex.EncodeToString(raw)
	if e.keys, err = authn.NewKeys(raw); err != nil {
		e.close()
		return nil, err
	}
	e.cfg = &benchConfig{defs: map[string]*workflowdef.Definition{"chat": chatFlow}}
	srv := grpcserver.New(log, e.keys)
	configv1.RegisterServiceServiceServer(srv.Server, e.cfg)
	configv1.RegisterWorkflowServiceServer(srv.Server, e.cfg)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.close()
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx, lis) }()
	e.stop = append(e.stop, func() { cancel(); <-served })
	e.addr = lis.Addr().String()
	if err := e.b.EnsureStreams(ctx, subjects.StreamOptions{}, subjects.StreamSession, subjects.StreamWorkflow, subjects.StreamOutbound,
		subjects.StreamDistribution, subjects.StreamWorkflowTimers, subjects.StreamDeadLetter); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

func (e *env) close() {
	for i := len(e.stop) - 1; i >= 0; i-- {
		e.stop[i]()
	}
	e.stop = nil
}

// runner starts workflow-runner; the returned func stops it.
func (e *env) runner(ctx context.Context) (func() error, error) {
	cc, err := grpcserver.Dial(e.addr, e.keys, workflowrunner.Name)
	if err != nil {
		return nil, err
	}
	cfg := workflowrunner.Defaults()
	cfg.AuthKeys, cfg.OutboundAddr, cfg.ConfigAddr = e.key, "", e.addr
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- workflowrunner.Run(rctx, cfg, workflowrunner.Deps{Bus: e.b, ConfigConn: cc, DistributionConn: cc, AuthKeys: e.keys}, e.log)
	}()
	return func() error {
		cancel()
		err := <-done
		_ = cc.Close()
		return err
	}, nil
}

// benchConfig serves a service per workflow: service id = workflow id.
type benchConfig struct {
	configv1.UnimplementedServiceServiceServer
	configv1.UnimplementedWorkflowServiceServer
	mu   sync.Mutex
	defs map[string]*workflowdef.Definition
}

func (c *benchConfig) GetService(_ context.Context, r *configv1.GetServiceRequest) (*configv1.GetServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.defs[r.GetId()]; !ok {
		return nil, status.Error(codes.NotFound, "no such service")
	}
	return &configv1.GetServiceResponse{Service: &configv1.Service{Id: r.GetId(), TenantId: r.GetTenantId(), Name: "Bench", WorkflowId: r.GetId()}}, nil
}

func (c *benchConfig) GetWorkflow(_ context.Context, r *configv1.GetWorkflowRequest) (*configv1.GetWorkflowResponse, error) {
	c.mu.Lock()
	def, ok := c.defs[r.GetId()]
	c.mu.Unlock()
	if !ok {
		return nil, status.Error(codes.NotFound, "no such workflow")
	}
	p, err := workflowdef.ToProto(def)
	if err != nil {
		return nil, err
	}
	return &configv1.GetWorkflowResponse{Workflow: &configv1.Workflow{Id: r.GetId(), Version: 1, Definition: p}}, nil
}

// chatFlow asks, replies with the answer, and asks again.
var chatFlow = &workflowdef.Definition{Start: "ask", Activities: []workflowdef.Activity{
	{ID: "ask", Type: "collect_information", Params: map[string]any{"prompt": "Say something.", "parameter": "said", "timeout": "24h"},
		Next: map[string]string{"next": "reply", "no_answer": "reply"}},
	{ID: "reply", Type: "message", Params: map[string]any{"text": "You said: ${said}"}, Next: map[string]string{"next": "ask"}},
}}

func startSession(ctx context.Context, b *bus.Bus, session, service string, i int) error {
	conv := &messagingv1.ConversationRef{Channel: messagingv1.Channel_CHANNEL_SMS, CustomerAddress: fmt.Sprintf("+1555%07d", i)}
	_, err := b.Publish(ctx, subjects.SessionStarted(tenant), &sessionv1.SessionStarted{TenantId: tenant, SessionId: session,
		ServiceId: service, Conversation: conv, StartedAt: timestamppb.Now()}, bus.MsgID(session))
	return err
}

// reply measures a customer message → the workflow's reply request, and
// the bare round trip, both at o.Rate.
func (e *env) reply(ctx context.Context, o Options, w io.Writer) error {
	stop, err := e.runner(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = stop() }()

	// Requests to customers, seen as they are stored (a core subscription
	// gets each JetStream publish once it is acknowledged).
	var mu sync.Mutex
	prompted := map[string]bool{}
	asked := map[string]bool{}       // session → its question waits (the prompt after the last reply is out)
	sentAt := map[string]time.Time{} // session → its pending message's publish time
	var lat []time.Duration
	measuring := atomic.Bool{}
	sub, err := e.b.NC.Subscribe(subjects.OutboundRequested(tenant), func(m *nats.Msg) {
		now := time.Now()
		var req outboundv1.OutboundMessageRequested
		if proto.Unmarshal(m.Data, &req) != nil {
			return
		}
		s := req.GetSessionId()
		id := strings.TrimPrefix(req.GetRequestId(), s+"-")
		mu.Lock()
		defer mu.Unlock()
		switch {
		case strings.HasPrefix(id, "ask"):
			prompted[s], asked[s] = true, true
		case strings.HasPrefix(id, "reply"):
			if t, ok := sentAt[s]; ok {
				if measuring.Load() {
					lat = append(lat, now.Sub(t))
				}
				delete(sentAt, s)
			}
		}
	})
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	sessions := make([]string, o.Sessions)
	for i := range sessions {
		sessions[i] = fmt.Sprintf("ss_chat%05d", i)
		if err := startSession(ctx, e.b, sessions[i], "chat", i); err != nil {
			return err
		}
	}
	if err := waitUntil(ctx, 60*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(prompted) == len(sessions) }); err != nil {
		return fmt.Errorf("sessions did not reach their question: %w", err)
	}
	skipped := 0
	send := func(i int) error {
		s := sessions[i%len(sessions)]
		mu.Lock()
		if _, busy := sentAt[s]; busy || !asked[s] {
			mu.Unlock()
			skipped++ // its previous message has no reply, or no question, yet
			return nil
		}
		sentAt[s], asked[s] = time.Now(), false
		mu.Unlock()
		id := fmt.Sprintf("%s-m%d", s, i)
		_, err := e.b.Publish(ctx, subjects.SessionMessageAdded(tenant), &sessionv1.MessageAdded{TenantId: tenant, SessionId: s, MessageId: id,
			Sender: sessionv1.SenderKind_SENDER_KIND_CUSTOMER, Body: "hello " + id, OccurredAt: timestamppb.Now()}, bus.MsgID(id))
		return err
	}
	if err := atRate(ctx, o.Rate, time.Second, func(i int) error { return send(i) }); err != nil { // warm-up
		return err
	}
	measuring.Store(true)
	base := o.Rate
	if err := atRate(ctx, o.Rate, o.For, func(i int) error { return send(base + i) }); err != nil {
		return err
	}
	_ = waitUntil(ctx, 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(sentAt) == 0 })
	measuring.Store(false)
	mu.Lock()
	runnerLat := slices.Clone(lat)
	pending := len(sentAt)
	mu.Unlock()
	if err := stop(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	stop = func() error { return nil }

	baseLat, err := e.roundTrip(ctx, o)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	rp50, rp99 := pct(runnerLat, 50), pct(runnerLat, 99)
	bp50, bp99 := pct(baseLat, 50), pct(baseLat, 99)
	fmt.Fprintf(w, "reply latency at %d msg/s for %s, fsync on (customer message published → the workflow's reply request published):\n", o.Rate, o.For)
	fmt.Fprintf(w, "  workflow-runner   p50 %7s  p99 %7s  (%d replies; %d without a reply; %d sends skipped: the session's last reply or question still out)\n", ms(rp50), ms(rp99), len(runnerLat), pending, skipped)
	fmt.Fprintf(w, "  bare round trip   p50 %7s  p99 %7s  (JetStream publish → consumer → JetStream publish → subscriber, %d)\n", ms(bp50), ms(bp99), len(baseLat))
	fmt.Fprintf(w, "  ratio             p50 %6.1fx  p99 %6.1fx\n", ratio(rp50, bp50), ratio(rp99, bp99))
	return nil
}

// roundTrip is the bare baseline: publish to a stream, a consumer
// publishes a reply to another subject of it and acknowledges, a core
// subscriber sees the reply.
func (e *env) roundTrip(ctx context.Context, o Options) ([]time.Duration, error) {
	s, err := e.b.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "BASELINE", Subjects: []string{"baseline.>"}, Storage: jetstream.FileStorage})
	if err != nil {
		return nil, err
	}
	c, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "baseline", FilterSubject: "baseline.in", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 1000})
	if err != nil {
		return nil, err
	}
	cc, err := c.Consume(func(m jetstream.Msg) {
		if _, err := e.b.JS.Publish(ctx, "baseline.out", m.Data()); err == nil {
			_ = m.Ack()
		}
	})
	if err != nil {
		return nil, err
	}
	defer cc.Stop()
	var mu sync.Mutex
	sent := map[string]time.Time{}
	var lat []time.Duration
	measuring := atomic.Bool{}
	sub, err := e.b.NC.Subscribe("baseline.out", func(m *nats.Msg) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		if t, ok := sent[string(m.Data)]; ok {
			if measuring.Load() {
				lat = append(lat, now.Sub(t))
			}
			delete(sent, string(m.Data))
		}
	})
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	send := func(i int) error {
		id := fmt.Sprintf("rt-%d", i)
		mu.Lock()
		sent[id] = time.Now()
		mu.Unlock()
		_, err := e.b.JS.Publish(ctx, "baseline.in", []byte(id))
		return err
	}
	if err := atRate(ctx, o.Rate, time.Second, send); err != nil {
		return nil, err
	}
	measuring.Store(true)
	base := o.Rate
	if err := atRate(ctx, o.Rate, o.For, func(i int) error { return send(base + i) }); err != nil {
		return nil, err
	}
	_ = waitUntil(ctx, 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(sent) == 0 })
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(lat), nil
}

// steps measures workflow steps per second: sessions whose workflow runs
// a chain of activities that never wait (each completed step is an event
// published with fsync).
func (e *env) steps(ctx context.Context, o Options, w io.Writer) error {
	def := &workflowdef.Definition{Start: "s0"}
	for i := range o.StepChain {
		a := workflowdef.Activity{ID: fmt.Sprintf("s%d", i), Type: "save_to_parameter", Params: map[string]any{"parameter": fmt.Sprintf("p%d", i), "value": "${customer_address}"}}
		if i%2 == 1 {
			a = workflowdef.Activity{ID: a.ID, Type: "check_parameter", Params: map[string]any{"parameter": fmt.Sprintf("p%d", i-1), "operator": "exists"},
				Next: map[string]string{}}
		}
		if i+1 < o.StepChain {
			if a.Type == "check_parameter" {
				a.Next["match"], a.Next["no_match"] = fmt.Sprintf("s%d", i+1), fmt.Sprintf("s%d", i+1)
			} else {
				a.Next = map[string]string{"next": fmt.Sprintf("s%d", i+1)}
			}
		} else if a.Type == "check_parameter" {
			a.Next["match"], a.Next["no_match"] = "end", "end"
		} else {
			a.Next = map[string]string{"next": "end"}
		}
		def.Activities = append(def.Activities, a)
	}
	def.Activities = append(def.Activities, workflowdef.Activity{ID: "end", Type: "disconnect", Params: map[string]any{"text": "done"}})
	if err := workflowdef.Validate(def); err != nil {
		return err
	}
	e.cfg.mu.Lock()
	e.cfg.defs["steps"] = def
	e.cfg.mu.Unlock()
	stop, err := e.runner(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = stop() }()
	var done atomic.Int64
	sub, err := e.b.NC.Subscribe(subjects.OutboundRequested(tenant), func(*nats.Msg) { done.Add(1) })
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	began := time.Now()
	for i := range o.StepSessions {
		if err := startSession(ctx, e.b, fmt.Sprintf("ss_steps%05d", i), "steps", i); err != nil {
			return err
		}
	}
	if err := waitUntil(ctx, 120*time.Second, func() bool { return done.Load() == int64(o.StepSessions) }); err != nil {
		return fmt.Errorf("%d of %d sessions finished: %w", done.Load(), o.StepSessions, err)
	}
	took := time.Since(began)
	steps := o.StepSessions * (o.StepChain + 1)
	fmt.Fprintf(w, "workflow steps: %d sessions × %d activities that do not wait, fsync on: %d steps in %s = %.0f steps/s (%.0f sessions/s)\n",
		o.StepSessions, o.StepChain+1, steps, took.Round(time.Millisecond), float64(steps)/took.Seconds(), float64(o.StepSessions)/took.Seconds())
	return nil
}

// timers schedules o.Timers timers as the runner does (message schedules
// on WORKFLOW_TIMERS, one subject per session) due over ten seconds, and
// consumes the fired ones as the runner's durable consumer would,
// stopping that consumer for three seconds in the middle (a restart of
// workflow-runner): lateness is the time from the due time to the
// consumer's receipt, split by whether the consumer was up at the due
// time; none may be lost.
func timers(ctx context.Context, o Options, dir string, log *slog.Logger, w io.Writer) error {
	ns, err := natsembed.Start(natsembed.Config{Port: -1, StoreDir: dir, SyncAlways: true}, nil)
	if err != nil {
		return err
	}
	defer ns.Shutdown()
	b, err := bus.Connect(ns.ClientURL(), "workflow-bench-timers", log)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := b.EnsureStreams(ctx, subjects.StreamOptions{}, subjects.StreamWorkflowTimers); err != nil {
		return err
	}
	tm, err := runner.NewJetStreamTimers(ctx, b)
	if err != nil {
		return err
	}
	// Due on whole seconds (schedules have second precision), from 8 s on,
	// as many in each second of the window.
	secs := max(int(o.TimerWindow/time.Second), 1)
	first := time.Now().Truncate(time.Second).Add(8 * time.Second)
	began := time.Now()
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	next := atomic.Int64{}
	for range 64 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= o.Timers {
					return
				}
				due := first.Add(time.Duration(i%secs) * time.Second)
				ev := &workflowv1.TimerFired{TenantId: tenant, SessionId: fmt.Sprintf("ss_timer%05d", i), Step: 1, Activity: "wait", DueAt: timestamppb.New(due)}
				if err := tm.Schedule(ctx, ev, due); err != nil {
					select {
					case errc <- err:
					default:
					}
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
	}
	scheduled := time.Since(began)
	s, err := b.JS.Stream(ctx, subjects.StreamWorkflowTimers)
	if err != nil {
		return err
	}
	c, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "bench-timers", FilterSubject: subjects.WorkflowTimerFired(tenant),
		AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 20000})
	if err != nil {
		return err
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	var up, down, stored []time.Duration
	dupes := 0
	var downFrom, downTo time.Time
	handle := func(m jetstream.Msg) {
		now := time.Now()
		var ev workflowv1.TimerFired
		if proto.Unmarshal(m.Data(), &ev) != nil {
			_ = m.Term()
			return
		}
		_ = m.Ack()
		mu.Lock()
		defer mu.Unlock()
		if seen[ev.GetSessionId()] {
			dupes++
			return
		}
		seen[ev.GetSessionId()] = true
		due := ev.GetDueAt().AsTime()
		if md, err := m.Metadata(); err == nil {
			stored = append(stored, md.Timestamp.Sub(due))
		}
		if !downFrom.IsZero() && !due.Before(downFrom) && due.Before(downTo) {
			down = append(down, now.Sub(due))
		} else {
			up = append(up, now.Sub(due))
		}
	}
	cc, err := c.Consume(handle)
	if err != nil {
		return err
	}
	// The restart: down for three seconds in the middle of the window.
	mu.Lock()
	downFrom = first.Add(time.Duration(secs/2) * time.Second)
	downTo = downFrom.Add(3 * time.Second)
	mu.Unlock()
	if err := sleepUntil(ctx, downFrom); err != nil {
		cc.Stop()
		return err
	}
	cc.Stop()
	if err := sleepUntil(ctx, downTo); err != nil {
		return err
	}
	if cc, err = c.Consume(handle); err != nil {
		return err
	}
	defer cc.Stop()
	_ = waitUntil(ctx, 30*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == o.Timers })
	mu.Lock()
	defer mu.Unlock()
	fmt.Fprintf(w, "timers: %d pending message schedules (scheduled in %s, fsync on), due over %d s (%d a second); the consumer (workflow-runner) restarted, down for 3 s:\n",
		o.Timers, scheduled.Round(time.Millisecond), secs, o.Timers/secs)
	fmt.Fprintf(w, "  fired (stored)    lateness p50 %7s  p99 %7s  (the server's: due → the fired timer stored)\n", ms(pct(stored, 50)), ms(pct(stored, 99)))
	fmt.Fprintf(w, "  fired while up    lateness p50 %7s  p99 %7s  (%d)\n", ms(pct(up, 50)), ms(pct(up, 99)), len(up))
	fmt.Fprintf(w, "  due while down    lateness p50 %7s  p99 %7s  (%d, delivered after the restart)\n", ms(pct(down, 50)), ms(pct(down, 99)), len(down))
	fmt.Fprintf(w, "  lost %d, delivered twice %d\n", o.Timers-len(seen), dupes)
	return nil
}

// atRate calls f(0), f(1), … at rate per second for d.
func atRate(ctx context.Context, rate int, d time.Duration, f func(int) error) error {
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	total := int(d / interval)
	for i := range total {
		if err := sleepUntil(ctx, start.Add(time.Duration(i)*interval)); err != nil {
			return err
		}
		if err := f(i); err != nil {
			return err
		}
	}
	return nil
}

func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

func waitUntil(ctx context.Context, limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", limit)
		}
		if err := sleepUntil(ctx, time.Now().Add(10*time.Millisecond)); err != nil {
			return err
		}
	}
	return nil
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
