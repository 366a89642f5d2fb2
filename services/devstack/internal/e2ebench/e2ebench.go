// Package e2ebench is the end-to-end load driver behind
// `go run ./services/devstack/cmd/e2e-bench` (and `make bench`). It starts
// the all-in-one stack in-process, applies a benchmark tenant, has many
// customers text it with signed webhooks (at a fixed rate or in a closed
// loop), has scripted agents on websockets accept every conversation and
// answer some messages, and reports per stage: throughput, consumer lag
// over time, and the latencies webhook → transcript, webhook → agent frame
// and agent reply → Twilio REST call at the emulator. In the same run it
// measures chat-handler alone (the ingress-only ceiling) and prints the
// figures as ratios to it, so they carry between machines.
package e2ebench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/devstack"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

// Config of one benchmark run.
type Config struct {
	// Mode is "fixed" (open loop at Rate) or "closed" (each customer waits
	// for the agent to see a message before sending the next).
	Mode      string
	Rate      float64
	Duration  time.Duration
	Customers int
	Agents    int
	// SMSLanes and WhatsAppLanes are the business senders; customers
	// alternate between SMS (Conversations path) and WhatsApp (Programmable
	// Messaging path) and spread over the senders.
	SMSLanes, WhatsAppLanes int
	// ReplyEvery: agents answer every n-th message (0: never).
	ReplyEvery int
	// ReplyPace is the share of each sender's pacing limit (SMS 1 segment/s,
	// WhatsApp 10/s: outbound-sender's defaults) the agents' replies may use;
	// replies beyond it are skipped and counted, so the reply latency
	// measures the pipeline, not the carrier limit.
	ReplyPace float64
	// Greeting is the service's greeting ("" for none: every greeting is an
	// SMS send that queues behind the 1 segment/s limit).
	Greeting string
	// Fsync is the embedded NATS server's sync_interval: always (make run's
	// default).
	Fsync bool
	// Warmup bounds the time to open every customer's session, measure the
	// ceiling and drain.
	Warmup time.Duration
	// Drain bounds the wait after the load for messages still in flight.
	Drain time.Duration
	// Senders is the open loop's pool of concurrent webhook senders.
	Senders int
	// CeilingConcurrency and CeilingFor shape the ingress-only measurement
	// (0 skips it).
	CeilingConcurrency int
	CeilingFor         time.Duration
	// LagEvery is the interval of the printed lag table's rows.
	LagEvery time.Duration
	// CPUProfile, when set, is written with a CPU profile of the measured
	// load (every service and the driver: one process).
	CPUProfile string
	// DataDir keeps the stack's files (a temporary directory when empty).
	DataDir string
}

// Defaults finish in about two to three minutes on a two-core machine.
func Defaults() Config {
	return Config{
		Mode: "fixed", Rate: 50, Duration: 60 * time.Second, Customers: 200, Agents: 20,
		SMSLanes: 8, WhatsAppLanes: 8, ReplyEvery: 4, ReplyPace: 0.5, Fsync: true,
		Warmup: 2 * time.Minute, Drain: 60 * time.Second, Senders: 256,
		CeilingConcurrency: 32, CeilingFor: 5 * time.Second,
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Mode != "fixed" && c.Mode != "closed" {
		errs = append(errs, fmt.Errorf("mode %q: want fixed or closed", c.Mode))
	}
	if c.Mode == "fixed" && c.Rate <= 0 {
		errs = append(errs, errors.New("rate must be positive"))
	}
	if c.Duration <= 0 {
		errs = append(errs, errors.New("duration must be positive"))
	}
	if c.Customers < 1 || c.Agents < 1 {
		errs = append(errs, errors.New("customers and agents must be at least 1"))
	}
	if c.SMSLanes < 0 || c.WhatsAppLanes < 0 || c.SMSLanes+c.WhatsAppLanes == 0 {
		errs = append(errs, errors.New("need at least one SMS or WhatsApp sender"))
	}
	if c.ReplyPace <= 0 || c.ReplyPace > 1 {
		errs = append(errs, errors.New("reply pace must be in (0, 1]"))
	}
	if c.Senders < 1 {
		errs = append(errs, errors.New("senders must be at least 1"))
	}
	return errors.Join(errs...)
}

// rec is one measured customer message.
type rec struct {
	cust                int
	due, sent, answered time.Time
	code                int
	transcript          time.Time
	transcripts         int32
	frame               time.Time
	frames              int32
	replySent, replyAck time.Time
	replyAtTwilio       time.Time
	replySends          int32
	done                chan struct{} // closed at the first agent frame (closed loop)
}

type run struct {
	cfg Config
	// cpuProfile is the CPU profile of the measured load.
	cpuProfile []byte
	info       devstack.Info
	hc         *http.Client
	js         jetstream.JetStream
	tag        string
	lanes      []lane

	customers         []customer
	customerByAddress map[string]int

	mu       sync.RWMutex
	recs     []*rec // by seq-1
	anomaly  map[string]int
	laneNext []time.Time

	assignedN      atomic.Int64
	assignedSet    sync.Map
	late           atomic.Int64
	repliesSkipped atomic.Int64
	stopping       atomic.Bool
	noReplies      atomic.Bool

	// phase marks
	measureStart, measureEnd, drainEnd time.Time
}

// Run executes the benchmark and writes the report to out. Progress goes
// to progress (stderr in the command).
func Run(ctx context.Context, cfg Config, out, progress io.Writer) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	say := func(format string, args ...any) { fmt.Fprintf(progress, "e2e-bench: "+format+"\n", args...) }

	dir := cfg.DataDir
	if dir == "" {
		d, err := os.MkdirTemp("", "e2e-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	start := time.Now()
	info, stopStack, err := startStack(ctx, dir, cfg.Fsync, progress, say)
	if err != nil {
		return err
	}
	defer stopStack()
	say("stack up in %s (fsync %v)", time.Since(start).Round(time.Millisecond), cfg.Fsync)

	r := &run{cfg: cfg, info: info, tag: randomTag(), anomaly: map[string]int{}, customerByAddress: map[string]int{}}
	r.hc = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute}}
	for i := range cfg.SMSLanes {
		r.lanes = append(r.lanes, smsLane(i))
	}
	for i := range cfg.WhatsAppLanes {
		r.lanes = append(r.lanes, waLane(i))
	}
	r.laneNext = make([]time.Time, len(r.lanes))
	r.customers = make([]customer, cfg.Customers)
	for i := range r.customers {
		c := &r.customers[i]
		wa := cfg.SMSLanes == 0 || (cfg.WhatsAppLanes > 0 && i%2 == 1)
		if wa {
			c.lane = cfg.SMSLanes + (i/2)%cfg.WhatsAppLanes
			c.address = fmt.Sprintf("whatsapp:+1555701%04d", i)
		} else {
			c.lane = (i / 2) % max(cfg.SMSLanes, 1)
			c.address = fmt.Sprintf("+1555700%04d", i)
		}
		r.customerByAddress[c.address] = i
	}

	nc, err := nats.Connect(info.NATSURL, nats.UserInfo(info.NATSAuth.User, info.NATSAuth.Password), nats.Name("e2e-bench"))
	if err != nil {
		return fmt.Errorf("connect to NATS: %w", err)
	}
	defer nc.Close()
	r.js, err = jetstream.New(nc)
	if err != nil {
		return err
	}
	sub, err := nc.Subscribe(subjects.SessionMessageAdded(tenantID), r.onTranscript)
	if err != nil {
		return err
	}
	_ = sub.SetPendingLimits(-1, -1)
	defer func() { _ = sub.Unsubscribe() }()

	if err := applyTenant(ctx, cfg, info); err != nil {
		return err
	}
	samp := &sampler{js: r.js}
	sampCtx, stopSampler := context.WithCancel(ctx)
	defer stopSampler()
	go samp.run(sampCtx)

	// Warm-up: agents sign in, every customer texts once, agents accept.
	warmCtx, cancelWarm := context.WithTimeout(ctx, cfg.Warmup)
	defer cancelWarm()
	t0 := time.Now()
	agents := make([]*agent, cfg.Agents)
	var aerr error
	var amu sync.Mutex
	var wg sync.WaitGroup
	for i := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := dialAgent(warmCtx, r, agentEmail(i))
			amu.Lock()
			defer amu.Unlock()
			if err != nil {
				aerr = errors.Join(aerr, err)
				return
			}
			agents[i] = a
		}()
	}
	wg.Wait()
	defer func() {
		r.stopping.Store(true)
		for _, a := range agents {
			if a != nil {
				a.close()
			}
		}
	}()
	if aerr != nil {
		return aerr
	}
	say("%d agents signed in; %d customers open their conversations", cfg.Agents, cfg.Customers)
	if err := r.warmUp(warmCtx); err != nil {
		return err
	}
	for i := range r.customers {
		r.customers[i].ready = true
	}
	for r.assignedN.Load() < int64(cfg.Customers) && warmCtx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	say("%d/%d conversations accepted by agents in %s", r.assignedN.Load(), cfg.Customers, time.Since(t0).Round(time.Millisecond))
	if r.assignedN.Load() == 0 {
		return errors.New("no conversation reached an agent during the warm-up")
	}
	r.waitIdle(warmCtx, samp)

	// The ingress-only ceiling, on the idle pipeline: chat-handler and
	// JetStream alone, with the CHAT stream's consumers paused; its
	// webhooks are purged before they resume.
	var ceil float64
	var ceilLat []time.Duration
	if cfg.CeilingConcurrency > 0 && cfg.CeilingFor > 0 {
		say("ingress-only ceiling: %d senders for %s, CHAT consumers paused", cfg.CeilingConcurrency, cfg.CeilingFor)
		ceil, ceilLat, err = r.ceiling(ctx, cfg.CeilingConcurrency, cfg.CeilingFor)
		if err != nil {
			r.count("ceiling: " + err.Error())
		}
		if err := r.resumeChatAfterCeiling(ctx); err != nil {
			return fmt.Errorf("resume after the ceiling: %w", err)
		}
		r.waitIdle(warmCtx, samp)
	}
	say("warm-up done in %s; measuring %s", time.Since(t0).Round(time.Millisecond), describeLoad(cfg))

	// Measured phase.
	r.measureStart = time.Now()
	// Always profiled: the report says where the cores went (cpu.go).
	var prof bytes.Buffer
	profiling := pprof.StartCPUProfile(&prof) == nil
	if cfg.Mode == "closed" {
		r.closedLoop(ctx)
	} else {
		r.fixedRate(ctx)
	}
	r.measureEnd = time.Now()
	if profiling {
		pprof.StopCPUProfile()
		r.cpuProfile = prof.Bytes()
		if cfg.CPUProfile != "" {
			if err := os.WriteFile(cfg.CPUProfile, r.cpuProfile, 0o644); err != nil {
				return err
			}
		}
	}
	say("load done; draining (at most %s)", cfg.Drain)
	r.drain(ctx, cfg.Drain)
	r.drainEnd = time.Now()
	r.noReplies.Store(true) // replies from here on would race the emulator's count
	sends, err := r.collectSends(ctx)
	if err != nil {
		r.count("emulator messages: " + err.Error())
	}
	stopSampler()
	samples, names := samp.snapshot()

	r.report(out, samples, names, sends, ceil, ceilLat)
	return nil
}

func describeLoad(cfg Config) string {
	if cfg.Mode == "closed" {
		return fmt.Sprintf("closed loop, %d customers, %s", cfg.Customers, cfg.Duration)
	}
	return fmt.Sprintf("%.0f msg/s for %s (open loop)", cfg.Rate, cfg.Duration)
}

func (r *run) count(what string) {
	r.mu.Lock()
	r.anomaly[what]++
	r.mu.Unlock()
}

func (r *run) assigned(c int) {
	if _, dup := r.assignedSet.LoadOrStore(c, true); !dup {
		r.assignedN.Add(1)
	}
}

// activeCustomers are those whose conversation an agent accepted.
func (r *run) activeCustomers() []int {
	var out []int
	for i := range r.customers {
		if _, ok := r.assignedSet.Load(i); ok && r.customers[i].ready {
			out = append(out, i)
		}
	}
	return out
}

func (r *run) newRec(ci int, due time.Time) (int64, *rec) {
	m := &rec{cust: ci, due: due}
	if r.cfg.Mode == "closed" {
		m.done = make(chan struct{})
	}
	r.mu.Lock()
	r.recs = append(r.recs, m)
	seq := int64(len(r.recs))
	r.mu.Unlock()
	return seq, m
}

func (r *run) get(seq int64) *rec {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if seq < 1 || seq > int64(len(r.recs)) {
		return nil
	}
	return r.recs[seq-1]
}

// frameSeen records an agent's message.added frame; it reports whether it
// was the message's first.
func (r *run) frameSeen(seq int64, at time.Time) bool {
	m := r.get(seq)
	if m == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	m.frames++
	if m.frames == 1 {
		m.frame = at
		if m.done != nil {
			close(m.done)
		}
		return true
	}
	return false
}

func (r *run) onTranscript(msg *nats.Msg) {
	at := time.Now()
	var ev sessionv1.MessageAdded
	if proto.Unmarshal(msg.Data, &ev) != nil {
		return
	}
	seq, ok := seqOfSID(ev.GetMessageId(), r.tag)
	if !ok {
		return
	}
	m := r.get(seq)
	if m == nil {
		return
	}
	r.mu.Lock()
	m.transcripts++
	if m.transcripts == 1 {
		m.transcript = at
	}
	r.mu.Unlock()
}

func (r *run) replySent(seq int64, at time.Time) {
	if m := r.get(seq); m != nil {
		r.mu.Lock()
		m.replySent = at
		r.mu.Unlock()
	}
}

func (r *run) replyAcked(seq int64, at time.Time) {
	if m := r.get(seq); m != nil {
		r.mu.Lock()
		m.replyAck = at
		r.mu.Unlock()
	}
}

// laneBudget takes a reply slot on the sender, if its share of the pacing
// limit has room now.
func (r *run) laneBudget(l int) bool {
	per := 100 * time.Millisecond // WhatsApp: 10 msg/s
	if !r.lanes[l].whatsapp {
		per = time.Second // SMS: 1 segment/s; replies are one segment
	}
	per = time.Duration(float64(per) / r.cfg.ReplyPace)
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Before(r.laneNext[l]) {
		return false
	}
	r.laneNext[l] = now.Add(per)
	return true
}

// waitIdle waits until no consumer has anything pending (three samples in
// a row), so the measured phase starts from a drained pipeline.
func (r *run) waitIdle(ctx context.Context, s *sampler) {
	idle := 0
	for idle < 3 && ctx.Err() == nil {
		time.Sleep(time.Second)
		samples, _ := s.snapshot()
		if len(samples) == 0 {
			continue
		}
		var p uint64
		for _, c := range samples[len(samples)-1].c {
			p += c.Pending
		}
		if p == 0 {
			idle++
		} else {
			idle = 0
		}
	}
}

// drain waits until every message chat-handler accepted has reached an
// agent and every reply has been acknowledged, or d passes.
func (r *run) drain(ctx context.Context, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		missing := 0
		r.mu.RLock()
		for _, m := range r.recs {
			if (m.code == http.StatusOK && m.frames == 0) || (!m.replySent.IsZero() && m.replyAck.IsZero()) {
				missing++
			}
		}
		r.mu.RUnlock()
		if missing == 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// collectSends reads what the emulator was asked to send for the
// benchmark's account and matches each reply to its message, waiting
// (within the drain budget) for acknowledged replies still on their way.
func (r *run) collectSends(ctx context.Context) (int, error) {
	sim := simclient.New(r.info.TwilioSimURL, nil)
	deadline := time.Now().Add(min(r.cfg.Drain, 20*time.Second))
	for {
		msgs, err := sim.Messages(ctx, simclient.MessageFilter{AccountSID: accountSID})
		if err != nil {
			return 0, err
		}
		counts := map[int64]int32{}
		first := map[int64]time.Time{}
		for _, m := range msgs {
			seq, ok := parseSeq(m.Body, "r")
			if !ok {
				continue
			}
			counts[seq]++
			if t, ok := first[seq]; !ok || m.DateCreated.Before(t) {
				first[seq] = m.DateCreated
			}
		}
		waiting := 0
		r.mu.Lock()
		for i, m := range r.recs {
			seq := int64(i + 1)
			m.replySends = counts[seq]
			m.replyAtTwilio = first[seq]
			if !m.replySent.IsZero() && m.replySends == 0 {
				waiting++
			}
		}
		r.mu.Unlock()
		if waiting == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return len(msgs), nil
		}
		time.Sleep(500 * time.Millisecond)
	}
}
