// Package bench is send-bench: it runs outbound-sender in-process against
// twilio-sim, with embedded NATS and FerretDB (or MONGO_URI), and compares
// it with a bare loop of twilio-go calls against the same emulator in the
// same run.
//
//   - Throughput: N requests spread over S senders, published as fast as
//     possible, until every one is reported sent; the bare loop makes the
//     same N calls with S workers (outbound-sender's lanes). Both alternate
//     for a few rounds on this shared machine; the ratio is what counts.
//   - Latency: requests at a fixed rate below saturation; the time from
//     publishing a request to its Twilio call leaving outbound-sender,
//     p50/p99.
//   - Rate limits: senders with a limit get a burst of requests; the calls'
//     times, taken where they leave for Twilio, must never put more units
//     in any one-second window than the limit, and the achieved rate should
//     sit just under it.
package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/mongodb"
	"github.com/switchboard-cc/switchboard/pkg/mongodb/ferret"
	"github.com/switchboard-cc/switchboard/pkg/natsembed"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	outboundsender "github.com/switchboard-cc/switchboard/services/outbound-sender"
	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/twilioapi"
	twiliosim "github.com/switchboard-cc/switchboard/services/twilio-sim"
)

// Options of a run.
type Options struct {
	// Messages per throughput round; Senders share them round-robin.
	Messages int
	Senders  int
	Rounds   int
	// Rate of the latency step (requests/s); 0 takes half the measured
	// throughput.
	Rate    int
	RateFor time.Duration
	// MongoURI of an external server; embedded FerretDB when empty.
	MongoURI string
	// Dir holds the embedded servers' files; a temporary one when empty.
	Dir string
}

const (
	tenant     = "bench"
	accountSID = "AC00000000000000000000000000000b01"
	keySID     = "SK00000000000000000000000000000b01"
	keySecret  = "benchSecret0123456789"
	authToken  = "benchToken0123456789"
)

type staticCredentials struct{}

func (staticCredentials) SendingCredentials(context.Context, string, string) (*configv1.GetSendingCredentialsResponse, error) {
	return &configv1.GetSendingCredentialsResponse{AccountSid: accountSID, ApiKeySid: keySID, ApiKeySecret: keySecret, Region: "us1",
		Entry: &configv1.MessagingEntry{Id: "bench-entry", TenantId: tenant, ConnectorId: "bench"}}, nil
}

// calls records when each create call leaves for Twilio, by body.
type calls struct {
	base http.RoundTripper
	mu   sync.Mutex
	at   map[string]call
}

type call struct {
	at   time.Time
	from string
}

func (c *calls) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/Messages.json") && r.Body != nil {
		now := time.Now()
		b, err := io.ReadAll(r.Body)
		_ = r.Body.Close()
		if err != nil {
			return nil, err
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		if f, err := url.ParseQuery(string(b)); err == nil {
			key := f.Get("Body")
			if key == "" {
				key = f.Get("ContentVariables")
			}
			c.mu.Lock()
			c.at[key] = call{at: now, from: f.Get("From")}
			c.mu.Unlock()
		}
	}
	return c.base.RoundTrip(r)
}

func (c *calls) get(key string) (call, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.at[key]
	return v, ok
}

func sender(i int) string   { return fmt.Sprintf("+1555000%04d", i) }
func customer(i int) string { return fmt.Sprintf("+1555100%04d", i%500) }

// Limit-check senders.
var limited = []struct {
	from, limit string
	whatsapp    bool
	body        string // repeated body; its segments are the cost
	n           int
}{
	{"+15550009001", "20msg/s", false, "rate check", 60},
	{"+15550009002", "4seg/s", false, strings.Repeat("two segments ", 13), 12},
	{"whatsapp:+15550009003", "", true, "", 40}, // WhatsApp default: 10 msg/s, sent as templates
}

// Run runs every step and writes the report to w.
func Run(ctx context.Context, o Options, w io.Writer) error {
	if o.Messages <= 0 {
		o.Messages = 3000
	}
	if o.Senders <= 0 {
		o.Senders = 16
	}
	if o.Rounds <= 0 {
		o.Rounds = 3
	}
	if o.RateFor <= 0 {
		o.RateFor = 5 * time.Second
	}
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "send-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	ns, err := natsembed.Start(natsembed.Config{Port: -1, StoreDir: filepath.Join(dir, "nats")}, log)
	if err != nil {
		return err
	}
	defer ns.Shutdown()
	mongoURI, dbName := o.MongoURI, "send_bench"
	if mongoURI == "" {
		fs, err := ferret.Start("127.0.0.1:0", filepath.Join(dir, "ferretdb"), nil)
		if err != nil {
			return err
		}
		defer fs.Stop()
		mongoURI = fs.URI()
	}
	b, err := bus.Connect(ns.ClientURL(), "send-bench", log)
	if err != nil {
		return err
	}
	defer b.Close()
	mc, err := mongodb.Connect(ctx, mongoURI)
	if err != nil {
		return err
	}
	defer func() { _ = mc.Database(dbName).Drop(context.Background()); _ = mc.Disconnect(context.Background()) }()
	_ = mc.Database(dbName).Drop(ctx)

	// The emulator: senders for throughput, and the rate-checked ones.
	acct := twiliosim.Account{AccountSID: accountSID, AuthToken: authToken, APIKeys: map[string]string{keySID: keySecret}}
	for i := range o.Senders {
		acct.Numbers = append(acct.Numbers, twiliosim.PhoneNumber{Address: sender(i)})
	}
	var overrides []string
	for _, l := range limited {
		acct.Numbers = append(acct.Numbers, twiliosim.PhoneNumber{Address: l.from})
		if l.limit != "" {
			overrides = append(overrides, l.from+"="+l.limit)
		}
	}
	simLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	simURL := "http://" + simLis.Addr().String()
	simDone := make(chan error, 1)
	go func() {
		simDone <- twiliosim.Run(ctx, twiliosim.Config{Accounts: []twiliosim.Account{acct}, StatusDelay: -1}, twiliosim.Deps{Listener: simLis}, log)
	}()
	defer func() { cancel(); <-simDone }()
	base, _ := url.Parse(simURL)

	rec := &calls{base: twilioapi.NewTransport(), at: map[string]call{}}
	cfg := outboundsender.Defaults()
	cfg.NATSURL, cfg.MongoURI, cfg.Database, cfg.GRPCAddr = ns.ClientURL(), mongoURI, dbName, ""
	cfg.AuthKeys = "0303030303030303030303030303030303030303030303030303030303030303"
	cfg.TwilioBaseURL = simURL
	cfg.SMSRate = "1000000seg/s" // the throughput senders are not paced
	cfg.RateLimits = strings.Join(overrides, ",")
	svcDone := make(chan error, 1)
	svcCtx, stopSvc := context.WithCancel(ctx)
	go func() {
		svcDone <- outboundsender.Run(svcCtx, cfg, outboundsender.Deps{Bus: b, Mongo: mc, Credentials: staticCredentials{}, Transport: rec}, log)
	}()
	defer func() { stopSvc(); <-svcDone }()

	sent := &sentLog{at: map[string]time.Time{}, byTag: map[string]int{}}
	sub, err := b.NC.Subscribe(subjects.OutboundSent(tenant), sent.add)
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	failedN := atomic.Int64{}
	fsub, err := b.NC.Subscribe(subjects.OutboundFailed(tenant), func(*nats.Msg) { failedN.Add(1) })
	if err != nil {
		return err
	}
	defer func() { _ = fsub.Unsubscribe() }()
	if err := waitConsumer(ctx, b); err != nil {
		return err
	}

	fmt.Fprintf(w, "send-bench: %d messages x %d rounds over %d senders; twilio-sim in-process; NATS %s; %s\n",
		o.Messages, o.Rounds, o.Senders, "embedded (default fsync)", storeName(o.MongoURI))
	// The bare loop goes through the same recording transport, so both
	// pay for the measurement.
	client := twilioapi.NewClient(twilioapi.Credentials{AccountSID: accountSID, APIKeySID: keySID, APIKeySecret: keySecret, Region: "us1"},
		twilioapi.Options{BaseURL: base, Timeout: 10 * time.Second, Transport: &calls{base: twilioapi.NewTransport(), at: map[string]call{}}})

	// Warm up both paths (connections, the ledger collection).
	if _, err := bareLoop(client, 1000, o.Senders, "warm"); err != nil {
		return err
	}
	if _, _, err := throughput(ctx, b, sent, 1000, o.Senders, "warm", &failedN); err != nil {
		return err
	}

	var serialRates, bareRates, outRates []float64
	var serialLat, bareLat []time.Duration
	for r := range o.Rounds {
		ser, err := bareLoop(client, o.Messages, 1, fmt.Sprintf("serial%d", r))
		if err != nil {
			return err
		}
		serialRates = append(serialRates, ser.rate)
		serialLat = append(serialLat, ser.lat...)
		res, err := bareLoop(client, o.Messages, o.Senders, fmt.Sprintf("bare%d", r))
		if err != nil {
			return err
		}
		bareRates = append(bareRates, res.rate)
		bareLat = append(bareLat, res.lat...)
		rate, _, err := throughput(ctx, b, sent, o.Messages, o.Senders, fmt.Sprintf("run%d", r), &failedN)
		if err != nil {
			return err
		}
		outRates = append(outRates, rate)
		fmt.Fprintf(w, "  round %d: bare loop %6.0f calls/s, %d bare loops %6.0f calls/s, outbound-sender %6.0f sends/s\n", r+1, ser.rate, o.Senders, res.rate, rate)
	}
	serial, bare, out := mean(serialRates), mean(bareRates), mean(outRates)
	verdict := "met"
	if out < serial/2 {
		verdict = "NOT met"
	}
	fmt.Fprintf(w, "throughput: bare twilio-go loop (one caller)     %6.0f calls/s (call p50 %s, p99 %s)\n", serial, pct(serialLat, 50), pct(serialLat, 99))
	fmt.Fprintf(w, "            %2d bare loops at once (CPU-bound)    %6.0f calls/s (call p50 %s, p99 %s)\n", o.Senders, bare, pct(bareLat, 50), pct(bareLat, 99))
	fmt.Fprintf(w, "            outbound-sender, ledger, %2d lanes   %6.0f sends/s = %.2f of the bare loop (target >= 0.50: %s), %.2f of %d loops\n",
		o.Senders, out, out/serial, verdict, out/bare, o.Senders)

	rate := o.Rate
	if rate <= 0 {
		rate = max(10, int(out/2))
	}
	lat, err := fixedRate(ctx, b, rec, sent, rate, o.RateFor, o.Senders)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "latency at %d requests/s for %s (%d requests): request -> Twilio call p50 %s, p99 %s, max %s\n",
		rate, o.RateFor, len(lat), pct(lat, 50), pct(lat, 99), pct(lat, 100))

	ok, err := rateCheck(ctx, b, rec, sent, w)
	if err != nil {
		return err
	}
	if n := failedN.Load(); n > 0 {
		fmt.Fprintf(w, "WARNING: %d requests failed\n", n)
	}
	if !ok {
		return errors.New("a per-sender rate limit was exceeded")
	}
	return nil
}

func storeName(uri string) string {
	if uri == "" {
		return "embedded FerretDB 1.24 (SQLite)"
	}
	return "MongoDB at MONGO_URI"
}

// waitConsumer waits until outbound-sender's request consumer exists, so
// the first round does not include its start-up.
func waitConsumer(ctx context.Context, b *bus.Bus) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := b.JS.Consumer(ctx, subjects.StreamOutbound, subjects.ConsumerOutboundRequests); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("outbound-sender did not start within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type sentLog struct {
	mu    sync.Mutex
	at    map[string]time.Time
	n     atomic.Int64
	byTag map[string]int
}

// add notes a sent event by its dedupe id ("<tenant>/<request_id>:sent"),
// without decoding it.
func (s *sentLog) add(m *nats.Msg) {
	id, ok := strings.CutSuffix(m.Header.Get(jetstream.MsgIDHeader), ":sent")
	if !ok {
		return
	}
	if _, rest, scoped := strings.Cut(id, "/"); scoped {
		id = rest
	}
	s.mu.Lock()
	if _, dup := s.at[id]; !dup {
		s.at[id] = time.Now()
		s.n.Add(1)
		if i := strings.LastIndexByte(id, '-'); i > 0 {
			s.byTag[id[:i]]++
		}
	}
	s.mu.Unlock()
}

// count is how many requests of a round (ids "<tag>-<i>") were sent.
func (s *sentLog) count(tag string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byTag[tag]
}

func (s *sentLog) has(ids []string) (bool, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var last time.Time
	for _, id := range ids {
		t, ok := s.at[id]
		if !ok {
			return false, last
		}
		if t.After(last) {
			last = t
		}
	}
	return true, last
}

func request(id, from, to, body string) *outboundv1.OutboundMessageRequested {
	return &outboundv1.OutboundMessageRequested{
		TenantId: tenant, RequestId: id, EntryId: "bench-entry", Body: body, RequestedAt: timestamppb.Now(),
		Conversation: &messagingv1.ConversationRef{Channel: messagingv1.Channel_CHANNEL_SMS, Path: messagingv1.TwilioPath_TWILIO_PATH_MESSAGING, CustomerAddress: to, BusinessAddress: from},
		Origin:       outboundv1.Origin_ORIGIN_AGENT,
	}
}

// throughput publishes n requests as fast as 8 publishers can and waits
// until all are sent.
func throughput(ctx context.Context, b *bus.Bus, sent *sentLog, n, senders int, tag string, failed *atomic.Int64) (float64, time.Duration, error) {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%d", tag, i)
	}
	failedBefore := failed.Load()
	start := time.Now()
	next := atomic.Int64{}
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := b.Emit(ctx, subjects.OutboundRequested(tenant), request(ids[i], sender(i%senders), customer(i), ids[i]), ids[i]); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		return 0, 0, err
	default:
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if sent.count(tag) < n {
			if f := failed.Load() - failedBefore; f > 0 {
				return 0, 0, fmt.Errorf("%d requests of %s failed", f, tag)
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return 0, 0, fmt.Errorf("%s: not every request was sent within 5 minutes", tag)
			}
			time.Sleep(2 * time.Millisecond)
			continue
		}
		done, last := sent.has(ids)
		if done {
			d := last.Sub(start)
			return float64(n) / d.Seconds(), d, nil
		}
		if f := failed.Load() - failedBefore; f > 0 {
			return 0, 0, fmt.Errorf("%d requests of %s failed", f, tag)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return 0, 0, fmt.Errorf("%s: not every request was sent within 5 minutes", tag)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
