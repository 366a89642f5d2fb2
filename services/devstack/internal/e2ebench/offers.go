package e2ebench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-cc/switchboard/services/sessions/agentclient"
)

// OffersConfig shapes the offer-latency benchmark: new customers write
// their first message at Rate for Duration; agents accept every offer and
// end the chat at once, so capacity keeps up.
type OffersConfig struct {
	Rate     float64
	Duration time.Duration
	Agents   int
	Fsync    bool
	Senders  int
	Drain    time.Duration
	// CPUProfile, when set, also keeps the run's CPU profile (load and
	// drain) in this file; the report says where the cores went either way.
	CPUProfile string
}

// OffersDefaults: 200 new sessions/s for 20 s, 50 agents, fsync on (as
// make run).
func OffersDefaults() OffersConfig {
	return OffersConfig{Rate: 200, Duration: 20 * time.Second, Agents: 50, Fsync: true, Senders: 256, Drain: 30 * time.Second}
}

// offerRec is one new session: its first message's webhook, chat-handler's
// answer (the message is in JetStream: the PubAck ceiling of this run) and
// the offer frame at an agent.
type offerRec struct {
	sent, answered time.Time
	code           int
	offered        atomic.Int64 // unix ns of the first offer.created
}

// RunOffers measures customer's first message → offer frame at the agent
// on the whole stack, next to the same messages' webhook → 200 (chat-handler
// stored them: the ingress) in the same run, and prints p50/p99 and the
// ratio.
func RunOffers(ctx context.Context, cfg OffersConfig, out, progress io.Writer) error {
	if cfg.Rate <= 0 || cfg.Duration <= 0 || cfg.Agents < 1 || cfg.Senders < 1 {
		return errors.New("rate, duration, agents and senders must be positive")
	}
	say := func(format string, args ...any) { fmt.Fprintf(progress, "offer-bench: "+format+"\n", args...) }
	dir, err := os.MkdirTemp("", "offer-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	info, stopStack, err := startStack(ctx, dir, cfg.Fsync, progress, say)
	if err != nil {
		return err
	}
	defer stopStack()
	// One connection reads the consumers' backlog at the load's end and
	// the events back afterwards.
	nc, err := nats.Connect(info.NATSURL, nats.UserInfo(info.NATSAuth.User, info.NATSAuth.Password), nats.Name("offer-bench"))
	if err != nil {
		return fmt.Errorf("connect to NATS: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	// The e2e benchmark's tenant: its capacity per agent is what config
	// allows (20) with 18 customers per agent.
	tcfg := Defaults()
	tcfg.Agents, tcfg.Customers, tcfg.SMSLanes, tcfg.WhatsAppLanes, tcfg.Greeting = cfg.Agents, 18*cfg.Agents, 1, 4, ""
	if err := applyTenant(ctx, tcfg, info); err != nil {
		return err
	}
	r := &run{cfg: tcfg, info: info, tag: randomTag(), anomaly: map[string]int{}, customerByAddress: map[string]int{}}
	r.hc = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute}}
	r.lanes = []lane{smsLane(0), waLane(0), waLane(1), waLane(2), waLane(3)}
	// One WhatsApp customer's first message through the emulator is the
	// template of every new customer's webhook.
	r.customers = []customer{{address: "whatsapp:+15557029999", lane: 1}}
	warm, cancelWarm := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelWarm()

	var (
		mu     sync.Mutex
		recs   = map[string]*offerRec{} // customer address → record
		agents []*offerAgent
	)
	onOffer := func(customer string, at time.Time) {
		mu.Lock()
		rec := recs[customer]
		mu.Unlock()
		if rec != nil {
			rec.offered.CompareAndSwap(0, at.UnixNano())
		}
	}
	for i := range cfg.Agents {
		a, err := dialOfferAgent(warm, info.ConsoleURL, agentEmail(i), onOffer)
		if err != nil {
			return err
		}
		agents = append(agents, a)
	}
	defer func() {
		for _, a := range agents {
			a.close()
		}
	}()
	if err := r.warmUp(warm); err != nil {
		return err
	}
	tmpl := &r.customers[0]
	if tmpl.conv {
		return errors.New("the template customer came in through Conversations, want Messaging")
	}
	say("stack up (fsync %v), %d agents available; %0.f new sessions/s for %s", cfg.Fsync, cfg.Agents, cfg.Rate, cfg.Duration)

	n := int(cfg.Rate * cfg.Duration.Seconds())
	// Profiled from the first webhook to the last offer (or the drain's
	// end): the report says where the cores went (cpu.go).
	var prof bytes.Buffer
	profiling := pprof.StartCPUProfile(&prof) == nil
	sem := make(chan struct{}, cfg.Senders)
	var wg sync.WaitGroup
	start := time.Now()
	late := 0
	for i := range n {
		due := start.Add(time.Duration(float64(i) / cfg.Rate * float64(time.Second)))
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		select {
		case sem <- struct{}{}:
		default:
			late++
			sem <- struct{}{}
		}
		from := fmt.Sprintf("+1556%07d", i)
		address := "whatsapp:" + from
		cu := &customer{url: tmpl.url, params: url.Values{}}
		for k, v := range tmpl.params {
			cu.params[k] = slices.Clone(v)
		}
		cu.params.Set("From", address)
		if cu.params.Has("WaId") {
			cu.params.Set("WaId", strings.TrimPrefix(from, "+"))
		}
		sig, p := cu.webhook(r.tag, int64(i+1), fmt.Sprintf("bench o%d: hello, I need help", i+1))
		rec := &offerRec{}
		mu.Lock()
		recs[address] = rec
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			rec.sent = time.Now()
			code, err := post(ctx, r.hc, cu.url, sig, p)
			rec.answered, rec.code = time.Now(), code
			if err != nil {
				rec.code = -1
			}
		}()
	}
	wg.Wait()
	loadEnd := time.Now()
	// Where the work waits at the load's end: every durable consumer's
	// backlog (pending + unacknowledged).
	var backlog []string
	samp := &sampler{js: js}
	samp.once(ctx)
	samples, names := samp.snapshot()
	for _, name := range names {
		if c := samples[0].c[name]; c.Pending > 0 {
			backlog = append(backlog, fmt.Sprintf("%s %d", name, c.Pending))
		}
	}
	drainUntil := loadEnd.Add(cfg.Drain)
	offered := func() int {
		k := 0
		mu.Lock()
		defer mu.Unlock()
		for _, rec := range recs {
			if rec.offered.Load() != 0 {
				k++
			}
		}
		return k
	}
	for offered() < n && time.Now().Before(drainUntil) && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
	}
	profiled := time.Since(start)
	if profiling {
		pprof.StopCPUProfile()
		if cfg.CPUProfile != "" {
			if err := os.WriteFile(cfg.CPUProfile, prof.Bytes(), 0o644); err != nil {
				return err
			}
		}
	}

	var ingress, offer []time.Duration
	failed := 0
	mu.Lock()
	for _, rec := range recs {
		if rec.code != http.StatusOK {
			failed++
			continue
		}
		ingress = append(ingress, rec.answered.Sub(rec.sent))
		if at := rec.offered.Load(); at != 0 {
			offer = append(offer, time.Unix(0, at).Sub(rec.sent))
		}
	}
	mu.Unlock()
	slices.Sort(ingress)
	slices.Sort(offer)
	rate := float64(n) / loadEnd.Sub(start).Seconds()
	fmt.Fprintf(out, "new sessions: %d at %.0f/s offered (%.0f/s achieved, fsync %v, %d agents); webhooks refused or failed: %d; senders saturated %d times; offered within the drain: %d\n",
		n, cfg.Rate, rate, cfg.Fsync, cfg.Agents, failed, late, len(offer))
	fmt.Fprintf(out, "%-46s %10s %10s\n", "", "p50", "p99")
	fmt.Fprintf(out, "%-46s %10s %10s\n", "baseline: webhook → 200 (chat-handler PubAck)", ms(pct(ingress, 0.50)), ms(pct(ingress, 0.99)))
	fmt.Fprintf(out, "%-46s %10s %10s\n", "first message → offer frame at the agent", ms(pct(offer, 0.50)), ms(pct(offer, 0.99)))
	if b50, b99 := pct(ingress, 0.50), pct(ingress, 0.99); b50 > 0 && b99 > 0 {
		fmt.Fprintf(out, "%-46s %9.1fx %9.1fx\n", "ratio offer / baseline", float64(pct(offer, 0.50))/float64(b50), float64(pct(offer, 0.99))/float64(b99))
	}
	if len(backlog) == 0 {
		backlog = []string{"none"}
	}
	fmt.Fprintf(out, "consumers' backlog at the load's end: %s\n", strings.Join(backlog, ", "))
	if len(offer) < n-failed {
		fmt.Fprintf(out, "not offered within %s of the load's end: %d\n", cfg.Drain, n-failed-len(offer))
	}
	sent, frame := map[string]time.Time{}, map[string]time.Time{}
	mu.Lock()
	for addr, rec := range recs {
		if at := rec.offered.Load(); at != 0 && rec.code == http.StatusOK {
			sent[addr], frame[addr] = rec.sent, time.Unix(0, at)
		}
	}
	mu.Unlock()
	marks, err := readStages(ctx, js, tenantID)
	if err != nil {
		return fmt.Errorf("read the stages back: %w", err)
	}
	printStages(out, marks, sent, frame)
	if profiling {
		reportCPU(out, prof.Bytes(), runtime.NumCPU(), float64(len(offer))/profiled.Seconds(), "session offered (its first message, task, offer, accept and end)")
	}
	return nil
}

// offerAgent is a scripted agent: it notes each offer frame's arrival,
// accepts it and ends the chat as soon as it is assigned.
type offerAgent struct {
	ws      *websocket.Conn
	next    atomic.Int64
	onOffer func(customer string, at time.Time)
	welcome chan struct{}
	wmu     sync.Mutex
}

func dialOfferAgent(ctx context.Context, consoleURL, email string, onOffer func(string, time.Time)) (*offerAgent, error) {
	tok, err := agentclient.Login(ctx, consoleURL, tenantID, email, agentPassword)
	if err != nil {
		return nil, fmt.Errorf("login %s: %w", email, err)
	}
	ws, _, err := websocket.Dial(ctx, agentclient.WebsocketURL(consoleURL), nil)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", email, err)
	}
	ws.SetReadLimit(1 << 22)
	a := &offerAgent{ws: ws, onOffer: onOffer, welcome: make(chan struct{})}
	go a.read()
	if err := a.send(ctx, "auth", map[string]string{"token": tok}); err != nil {
		return nil, err
	}
	select {
	case <-a.welcome:
	case <-ctx.Done():
		return nil, fmt.Errorf("%s not welcomed: %w", email, ctx.Err())
	}
	return a, a.send(ctx, "presence.set", map[string]string{"presence": "available"})
}

func (a *offerAgent) close() { _ = a.ws.Close(websocket.StatusNormalClosure, "") }

func (a *offerAgent) send(ctx context.Context, typ string, data any) error {
	raw, _ := json.Marshal(data)
	b, _ := json.Marshal(frame{V: 1, Type: typ, ID: fmt.Sprintf("c%d", a.next.Add(1)), Data: raw})
	a.wmu.Lock()
	defer a.wmu.Unlock()
	return a.ws.Write(ctx, websocket.MessageText, b)
}

func (a *offerAgent) read() {
	for {
		_, data, err := a.ws.Read(context.Background())
		if err != nil {
			return
		}
		at := time.Now()
		var f frame
		if json.Unmarshal(data, &f) != nil {
			continue
		}
		switch f.Type {
		case "welcome":
			close(a.welcome)
		case "offer.created":
			var o struct {
				OfferID  string `json:"offer_id"`
				Customer string `json:"customer"`
			}
			_ = json.Unmarshal(f.Data, &o)
			a.onOffer(o.Customer, at)
			go a.answer("offer.accept", map[string]string{"offer_id": o.OfferID})
		case "session.assigned":
			var s sessionData
			_ = json.Unmarshal(f.Data, &s)
			go a.answer("session.terminate", map[string]string{"session_id": s.SessionID})
		}
	}
}

func (a *offerAgent) answer(typ string, data any) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = a.send(ctx, typ, data)
}
