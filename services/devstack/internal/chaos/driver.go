package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-cc/switchboard/services/devstack"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

// msg is one customer message.
type msg struct {
	sent, answered, firstSeen time.Time
	status                    int
	// atTwilio: the emulator took the message (whatever its webhook's
	// answer); it is in Twilio's history and reconciliation can find it.
	atTwilio bool
	ids      map[string]bool // transcript message ids it appeared under
}

type sessionRec struct {
	agents map[string]bool
	ended  bool
	// refused is the code of the last terminate refused for it, state
	// the state its last session.assigned frame showed.
	refused, state string
	// trail: what its agents' sockets showed of it, in order (bounded),
	// for the diagnosis of a message lost in it.
	trail []string
}

// maxTrail bounds a session's trail.
const maxTrail = 40

// track notes a step of the agent's view of a session in its trail.
func (d *driver) track(a *agent, session, what string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.sessions[session]
	if s == nil {
		s = &sessionRec{agents: map[string]bool{}}
		d.sessions[session] = s
	}
	if len(s.trail) < maxTrail {
		s.trail = append(s.trail, time.Now().Format("15:04:05.000")+" "+strings.TrimSuffix(a.email, "@chaos.example")+" "+what)
	}
}

type driver struct {
	cfg Config
	st  *stack
	rng *rand.Rand // the fault loop's; actors get their own from it
	say func(string, ...any)
	sim *simclient.Client

	replyProb, terminateProb, declineProb, dropProb float64

	draining atomic.Bool
	nextSeq  atomic.Int64

	mu       sync.Mutex
	msgs     map[int64]*msg
	replies  map[int64]bool // seq → acknowledged (requested)
	sessions map[string]*sessionRec
	seenIn   map[string]int // session → customer messages first seen in it
	// repliesAtEmulator: reply → sends the emulator got (tally).
	repliesAtEmulator map[int64]int
	rep               Report
	jmu               sync.Mutex
	sampler           *sampler
}

func newDriver(cfg Config, st *stack, rng *rand.Rand, say func(string, ...any)) *driver {
	return &driver{cfg: cfg, st: st, rng: rng, say: say, sim: simclient.New(st.info.TwilioSimURL, &http.Client{Timeout: 60 * time.Second}),
		replyProb: 0.3, terminateProb: 0.08, declineProb: 0.1, dropProb: 0.003,
		msgs: map[int64]*msg{}, replies: map[int64]bool{}, sessions: map[string]*sessionRec{}, seenIn: map[string]int{},
		rep: Report{Counts: map[string]int{}}, sampler: &sampler{st: st, every: cfg.SampleEvery, say: say}}
}

// jitter is a random number in [0, n) for timings only (not replayed).
func (d *driver) jitter(n int) int {
	d.jmu.Lock()
	defer d.jmu.Unlock()
	return rand.IntN(n)
}

func (d *driver) count(what string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rep.Counts[what]++
}

func (d *driver) violation(n *int, format string, args ...any) {
	d.mu.Lock()
	*n++
	// At most 20, whatever "lost:" examples the drain's tallies hold.
	lost := 0
	for _, e := range d.rep.Examples {
		if len(e) > 5 && e[:5] == "lost:" {
			lost++
		}
	}
	if len(d.rep.Examples)-lost < 20 {
		d.rep.Examples = slices.Insert(d.rep.Examples, len(d.rep.Examples)-lost, fmt.Sprintf(format, args...))
	}
	d.mu.Unlock()
}

// seen records a transcript message the agent saw; it returns the
// customer message's sequence and whether this is the first sight of it.
func (d *driver) seen(session string, m wsMessage) (int64, bool) {
	if m.Direction != "inbound" {
		return 0, false
	}
	seq, ok := parseSeq(m.Body, "m")
	if !ok {
		return 0, false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.msgs[seq]
	if r == nil {
		r = &msg{ids: map[string]bool{}}
		d.msgs[seq] = r
	}
	first := len(r.ids) == 0
	if first {
		r.firstSeen = time.Now()
	}
	r.ids[m.ID] = true
	if first {
		d.seenIn[session]++
	}
	return seq, first
}

func (d *driver) assigned(a *agent, session, state string) {
	d.mu.Lock()
	s := d.sessions[session]
	if s == nil {
		s = &sessionRec{agents: map[string]bool{}}
		d.sessions[session] = s
	}
	s.agents[a.email] = true
	s.state = state
	n := len(s.agents)
	d.mu.Unlock()
	if n == 2 {
		d.violation(&d.rep.DoubleAssigned, "session %s assigned to two agents", session)
	}
}

// terminateRefused notes why an agent could not end a session.
func (d *driver) terminateRefused(session, code string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s := d.sessions[session]; s != nil {
		s.refused = code
	}
}

func (d *driver) ended(session string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s := d.sessions[session]; s != nil {
		s.ended = true
	}
}

func (d *driver) replyRequested(seq int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.replies[seq] = true
}

func (d *driver) run(ctx context.Context) (*Report, error) {
	agents := make([]*agent, d.cfg.Agents)
	actx, stopAgents := context.WithCancel(ctx)
	defer stopAgents()
	var awg sync.WaitGroup
	for i := range agents {
		agents[i] = &agent{d: d, email: agentEmail(i), rng: rand.New(rand.NewPCG(d.rng.Uint64(), d.rng.Uint64())),
			active: map[string]bool{}, pending: map[string]request{}, unacked: map[string]outgoing{}, early: map[string][]wsMessage{}, closed: map[string]bool{}}
		awg.Add(1)
		go func() { defer awg.Done(); agents[i].run(actx) }()
	}
	defer awg.Wait()

	start := time.Now()
	d.sampler.start = start
	sctx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() { defer close(sampled); d.sampler.run(sctx) }()
	defer func() { stopSampling(); <-sampled }()
	loadCtx, stopLoad := context.WithCancel(ctx)
	if d.cfg.Ops <= 0 {
		loadCtx, stopLoad = context.WithTimeout(ctx, d.cfg.Duration)
	}
	defer stopLoad()
	var cwg sync.WaitGroup
	for i := range d.cfg.Customers {
		crng := rand.New(rand.NewPCG(d.rng.Uint64(), d.rng.Uint64()))
		cwg.Add(1)
		go func() { defer cwg.Done(); d.customer(loadCtx, i, crng) }()
	}
	faultsDone := make(chan struct{})
	go func() {
		defer close(faultsDone)
		d.faults(loadCtx)
	}()
	cwg.Wait()
	stopLoad()
	<-faultsDone
	d.rep.LoadTime = time.Since(start)
	d.say("load done: %d messages in %s; every process back, draining (at most %s)", d.nextSeq.Load(), d.rep.LoadTime.Round(time.Second), d.cfg.Drain)

	d.draining.Store(true)
	d.st.sup.settle(ctx)
	if err := devstack.WaitHealthy(ctx, d.st.health...); err != nil {
		return nil, err
	}
	drainCtx, cancel := context.WithTimeout(ctx, d.cfg.Drain)
	defer cancel()
	// What Twilio took while no webhook got through, as an admin would
	// after an incident: reconcile the tenant over the failures' window.
	d.reconcileFailures(drainCtx)
	for drainCtx.Err() == nil {
		lost, _, replyLost, _, err := d.tally(drainCtx)
		if err == nil && lost == 0 && replyLost == 0 {
			break
		}
		select {
		case <-drainCtx.Done():
		case <-time.After(time.Second):
		}
	}
	// Every agent ends what it holds; every session should then have its
	// outcome. An end refused as unavailable (a store or stream still
	// electing its leader after the faults) is asked again, for up to a
	// minute, as an agent would click again.
	endBy := time.Now().Add(time.Minute)
	for ctx.Err() == nil && time.Now().Before(endBy) {
		for _, a := range agents {
			a.terminateAll(ctx)
		}
		if d.withoutOutcome() == 0 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	stopAgents()
	lost, dup, replyLost, replyDup, err := d.tally(ctx)
	if err != nil {
		return nil, err
	}
	d.rep.Lost, d.rep.Duplicated, d.rep.RepliesLost, d.rep.RepliesDuplicated = lost, dup, replyLost, replyDup
	// An agent's view can miss an end (its frame lost with a connection):
	// what counts is whether the session ended, read from the SESSION
	// stream.
	if d.withoutOutcome() > 0 {
		if err := d.endsFromStream(ctx); err != nil {
			return nil, fmt.Errorf("read the sessions' ends: %w", err)
		}
	}
	d.rep.NoOutcome = d.withoutOutcome()
	if d.rep.NoOutcome > 0 {
		d.rep.NoOutcomeDiagnosis, err = d.diagnoseNoOutcome(ctx)
		if err != nil {
			d.rep.NoOutcomeDiagnosis = []string{"diagnosis failed: " + err.Error()}
		}
	}
	if lost > 0 {
		// Where each lost message stopped, read back from the streams
		// while the stack still runs.
		d.rep.Diagnosis, err = d.diagnose(ctx, d.lostSeqs())
		if err != nil {
			d.rep.Diagnosis = []string{"diagnosis failed: " + err.Error()}
		}
	}
	if replyLost > 0 {
		// What became of each lost reply, read back from OUTBOUND.
		lines, err := d.diagnoseReplies(ctx, d.lostReplies(d.repliesAtEmulator))
		if err != nil {
			lines = []string{"reply diagnosis failed: " + err.Error()}
		}
		d.rep.Diagnosis = append(d.rep.Diagnosis, lines...)
	}
	if d.rep.DeadLetters, err = d.deadLetters(ctx); err != nil {
		return nil, err
	}
	if err := d.checkOffers(ctx); err != nil {
		return nil, fmt.Errorf("read distribution's events: %w", err)
	}
	stopSampling()
	<-sampled
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rep.Samples = d.sampler.summary()
	d.rep.Sessions = len(d.sessions)
	for _, m := range d.msgs {
		if m.status == http.StatusOK {
			d.rep.webhookLat = append(d.rep.webhookLat, m.answered.Sub(m.sent))
			if !m.firstSeen.IsZero() {
				d.rep.agentLat = append(d.rep.agentLat, m.firstSeen.Sub(m.sent))
			}
		}
	}
	rep := d.rep
	return &rep, nil
}

// customer texts the business until the run has its operations or its
// time: SMS customers on the Conversations path, WhatsApp customers on
// the Programmable Messaging path, through the emulator (which signs and
// posts the webhooks as Twilio does).
func (d *driver) customer(ctx context.Context, i int, rng *rand.Rand) {
	from, to := fmt.Sprintf("+1555800%04d", i), smsNumbers[(i/2)%len(smsNumbers)]
	if i%2 == 1 {
		from, to = fmt.Sprintf("whatsapp:+1555801%04d", i), waSenders[(i/2)%len(waSenders)]
	}
	for ctx.Err() == nil {
		seq := d.nextSeq.Add(1)
		if d.cfg.Ops > 0 && seq > int64(d.cfg.Ops) {
			d.nextSeq.Add(-1)
			return
		}
		m := &msg{ids: map[string]bool{}}
		d.mu.Lock()
		if prev := d.msgs[seq]; prev != nil { // seen before the answer came
			m = prev
		}
		d.msgs[seq] = m
		m.sent = time.Now()
		d.mu.Unlock()
		cm := simclient.CustomerMessage{From: from, To: to, Body: fmt.Sprintf("chaos m%d from customer %d", seq, i)}
		// Twilio delivers a webhook twice now and then, and an autocreated
		// conversation's webhooks out of order.
		switch r := rng.Float64(); {
		case r < 0.05:
			cm.Deliveries = 2
			d.count("customer message: webhook delivered twice")
		case r < 0.1:
			cm.OutOfOrder = true
			d.count("customer message: webhooks out of order")
		}
		res, err := d.sim.SendMessage(context.WithoutCancel(ctx), cm)
		d.mu.Lock()
		m.answered = time.Now()
		switch {
		case err != nil:
			d.rep.Counts["emulator refused a customer message: "+err.Error()]++
		case res.Webhook == nil:
			d.rep.Counts["customer message without a webhook"]++
		default:
			m.status = res.Webhook.Status
		}
		m.atTwilio = err == nil && res.MessageSID != ""
		if m.status == http.StatusOK {
			d.rep.Webhooks200++
		} else {
			d.rep.WebhooksFailed++
		}
		d.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(300+rng.IntN(1200)) * time.Millisecond):
		}
	}
}

// faults injects one fault at a time until ctx is done: SIGKILL a
// service process (held down 0.5–3 s, then restarted), SIGKILL a NATS
// node (held down 1–5 s; never two at once, the cluster keeps its
// quorum), SIGSTOP any process for 1–4 s and SIGCONT it, Twilio
// misbehaving, every chat-handler down (the third fault), or a NATS
// node's disk full (from the fifth, the first moment the nodes are
// settled, where the harness can mount disks).
func (d *driver) faults(ctx context.Context) {
	if d.cfg.FaultEvery <= 0 {
		return
	}
	diskDone := !slices.ContainsFunc(d.st.nats, func(p *proc) bool { return p.disk })
	for n := 1; ; n++ {
		wait := time.Duration(float64(d.cfg.FaultEvery) * (0.5 + d.rng.Float64()))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		r := d.rng.Float64()
		switch {
		case n == 3:
			r = 0.17 // every run has an outage of chat-handler
		case n >= 5 && !diskDone && d.natsSettled():
			r = 0.22 // and a disk full, where it can (once the nodes are settled)
		}
		diskDone = diskDone || (r >= 0.2 && r < 0.25)
		switch {
		case r < 0.15:
			d.twilioFault(ctx)
		case r < 0.2:
			d.outage(ctx)
		case r < 0.25:
			d.diskFull(ctx)
		case r < 0.6:
			p := d.st.services[d.rng.IntN(len(d.st.services))]
			down := time.Duration(500+d.rng.IntN(2500)) * time.Millisecond
			d.kill(p, down)
		case r < 0.8:
			p := d.st.nats[d.rng.IntN(len(d.st.nats))]
			down := time.Duration(1000+d.rng.IntN(4000)) * time.Millisecond
			if d.natsSettled() {
				d.kill(p, down)
			}
		default:
			all := d.st.all()
			p := all[d.rng.IntN(len(all))]
			if slices.Contains(d.st.nats, p) && !d.natsSettled() {
				continue // never two NATS nodes out at once
			}
			pause := time.Duration(1000+d.rng.IntN(3000)) * time.Millisecond
			if p.pause() {
				d.say("SIGSTOP %s for %s", p.name, pause)
				d.count("fault: SIGSTOP/SIGCONT")
				select {
				case <-ctx.Done():
				case <-time.After(pause):
				}
				p.resume()
			}
		}
	}
}

// twilioFault makes Twilio misbehave as it does: the next 1–5 REST calls
// answered 429 (20429, too many requests) or 503, or the status callbacks
// of the next 1–10 sends posted in reverse order.
func (d *driver) twilioFault(ctx context.Context) {
	switch n := 1 + d.rng.IntN(5); d.rng.IntN(3) {
	case 0:
		if _, err := d.sim.InjectFault(ctx, simclient.Fault{Count: n, Status: http.StatusTooManyRequests}); err == nil {
			d.say("Twilio REST: the next %d calls answered 429", n)
			d.count("fault: Twilio REST 429")
		}
	case 1:
		if _, err := d.sim.InjectFault(ctx, simclient.Fault{Count: n, Status: http.StatusServiceUnavailable}); err == nil {
			d.say("Twilio REST: the next %d calls answered 503", n)
			d.count("fault: Twilio REST 503")
		}
	default:
		yes := true
		if _, err := d.sim.AddDeliveryRule(ctx, simclient.DeliveryRule{Count: 2 * n, DeliveryOptions: simclient.DeliveryOptions{OutOfOrder: &yes}}); err == nil {
			d.say("Twilio: the status callbacks of the next %d sends in reverse order", 2*n)
			d.count("fault: Twilio status callbacks out of order")
		}
	}
}

// outage (the third fault of every run, and about one in twenty) takes
// every chat-handler replica down for 4–8 s while the customers keep
// writing: Twilio's webhooks fail (the Messaging path's fallback URL is
// chat-handler too; Conversations webhooks are not retried), and the
// messages are only in Twilio's history. The first replica back finds no
// replica marked chat-handler up for longer than three heartbeats and
// reconciles the gap.
func (d *driver) outage(ctx context.Context) {
	down := time.Duration(4000+d.rng.IntN(4000)) * time.Millisecond
	d.say("chat-handler outage: every replica down for %s", down)
	d.count("fault: chat-handler outage (every replica)")
	for _, p := range d.st.services {
		if strings.HasPrefix(p.name, "chat-handler") {
			d.st.sup.hold(p, time.Now().Add(down))
			p.kill()
		}
	}
	select {
	case <-ctx.Done():
	case <-time.After(down):
	}
}

// natsSettled: every NATS node has run for 10 s (one down, paused, or
// catching up after a restart, a fault on another would take the
// cluster's quorum).
func (d *driver) natsSettled() bool {
	for _, p := range d.st.nats {
		if !p.upFor(10*time.Second) || p.isPaused() {
			return false
		}
	}
	return true
}

func (d *driver) kill(p *proc, down time.Duration) {
	d.st.sup.hold(p, time.Now().Add(down))
	if !p.running() {
		return
	}
	d.say("SIGKILL %s (restarted after %s)", p.name, down)
	kind := "service"
	if slices.Contains(d.st.nats, p) {
		kind = "NATS node"
	}
	d.count("fault: SIGKILL " + kind)
	p.kill()
}

// tally compares the customers' messages with what the agents saw, and
// the acknowledged replies with the emulator's record of sends.
func (d *driver) tally(ctx context.Context) (lost, dup, replyLost, replyDup int, err error) {
	sent, err := d.sim.Messages(ctx, simclient.MessageFilter{AccountSID: accountSID})
	if err != nil {
		return 0, 0, 0, 0, fmt.Errorf("emulator's messages: %w", err)
	}
	atEmulator := map[int64]int{}
	for _, m := range sent {
		if seq, ok := parseSeq(m.Body, "r"); ok {
			atEmulator[seq]++
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	// Tally runs again and again while draining: its "lost:" examples are
	// replaced each time, and never crowd out the other violations' (at
	// most 20 of each).
	d.rep.Examples = slices.DeleteFunc(d.rep.Examples, func(s string) bool { return len(s) > 5 && s[:5] == "lost:" })
	others := len(d.rep.Examples)
	d.rep.AcceptedDespiteFailure = 0 // tally runs again and again while draining
	d.rep.LostUnanswered = 0
	for seq, m := range d.msgs {
		switch {
		case m.status == http.StatusOK && len(m.ids) == 0:
			lost++
			if len(d.rep.Examples)-others < 20 {
				d.rep.Examples = append(d.rep.Examples, fmt.Sprintf("lost: customer message m%d (webhook 200 at %s) never reached an agent", seq, m.sent.Format("15:04:05.000")))
			}
		case m.atTwilio && len(m.ids) == 0:
			// Twilio has it though no webhook got through: reconciliation
			// must bring it in.
			lost++
			d.rep.LostUnanswered++
			if len(d.rep.Examples)-others < 20 {
				d.rep.Examples = append(d.rep.Examples, fmt.Sprintf("lost: customer message m%d (webhook %d at %s, in Twilio's history) never reached an agent", seq, m.status, m.sent.Format("15:04:05.000")))
			}
		case len(m.ids) > 1:
			dup++
		}
		if m.status != http.StatusOK && len(m.ids) > 0 {
			d.rep.AcceptedDespiteFailure++
		}
	}
	d.rep.RepliesRequested = len(d.replies)
	for seq := range d.replies {
		switch n := atEmulator[seq]; {
		case n == 0:
			replyLost++
		case n > 1:
			replyDup++
		}
	}
	d.repliesAtEmulator = atEmulator
	d.rep.RepliesAtEmulator = 0
	for _, n := range atEmulator {
		d.rep.RepliesAtEmulator += n
	}
	return lost, dup, replyLost, replyDup, nil
}

// lostSeqs are the customer messages Twilio has that no agent saw.
func (d *driver) lostSeqs() []int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var seqs []int64
	for seq, m := range d.msgs {
		if (m.status == http.StatusOK || m.atTwilio) && len(m.ids) == 0 {
			seqs = append(seqs, seq)
		}
	}
	return seqs
}

func (d *driver) withoutOutcome() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, s := range d.sessions {
		if !s.ended {
			n++
		}
	}
	return n
}

// deadLetters counts the DEADLETTER stream's messages.
func (d *driver) deadLetters(ctx context.Context) (int, error) {
	js, closeJS, err := d.jetStream()
	if err != nil {
		return 0, err
	}
	defer closeJS()
	s, err := js.Stream(ctx, "DEADLETTER")
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return int(info.State.Msgs), nil
}
