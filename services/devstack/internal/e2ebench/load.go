package e2ebench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-cc/switchboard/pkg/twiliosig"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

// customer is one phone texting one business sender.
type customer struct {
	address string
	lane    int
	// The webhook the emulator sent for the customer's warm-up message:
	// later messages are that webhook with a new SID and body, signed again.
	url    string
	params url.Values
	conv   bool
	index  atomic.Int64
	ready  bool
}

// webhook builds the signed form of the customer's message seq.
func (c *customer) webhook(tag string, seq int64, body string) (string, url.Values) {
	p := make(url.Values, len(c.params))
	for k, v := range c.params {
		p[k] = v
	}
	prefix := "SM"
	if c.conv {
		prefix = "IM"
	}
	sid := messageSID(prefix, tag, seq)
	p.Set("MessageSid", sid)
	for _, k := range []string{"SmsMessageSid", "SmsSid"} {
		if p.Has(k) {
			p.Set(k, sid)
		}
	}
	if p.Has("Index") {
		p.Set("Index", strconv.FormatInt(c.index.Add(1), 10))
	}
	if p.Has("DateCreated") {
		p.Set("DateCreated", time.Now().UTC().Format("2006-01-02T15:04:05.000Z"))
	}
	p.Set("Body", body)
	return twiliosig.Sign(authToken, c.url, p), p
}

func messageSID(prefix, tag string, seq int64) string {
	return fmt.Sprintf("%s%s%016x", prefix, tag, seq)
}

// seqOfSID returns the sequence number of a SID this run made.
func seqOfSID(sid, tag string) (int64, bool) {
	if len(sid) != 34 || sid[2:18] != tag {
		return 0, false
	}
	n, err := strconv.ParseInt(sid[18:], 16, 64)
	return n, err == nil
}

func randomTag() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// post sends one signed webhook and returns the status code.
func post(ctx context.Context, hc *http.Client, target, sig string, p url.Values) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(p.Encode()))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", sig)
	req.Header.Set("I-Twilio-Idempotency-Token", randomTag()+randomTag())
	req.Header.Set("User-Agent", "TwilioProxy/1.1")
	res, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	return res.StatusCode, nil
}

// warmUp has every customer text once through the emulator (which signs
// and posts the webhook as Twilio would, and autocreates the SMS
// customers' conversations) and keeps each webhook as the customer's
// template.
func (r *run) warmUp(ctx context.Context) error {
	sim := simclient.New(r.info.TwilioSimURL, nil)
	var wg sync.WaitGroup
	errs := make(chan error, len(r.customers))
	sem := make(chan struct{}, 8)
	for i := range r.customers {
		c := &r.customers[i]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ln := r.lanes[c.lane]
			res, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: c.address, To: ln.business, Body: "bench warm-up: hello, I need help", ProfileName: "Bench"})
			if err != nil {
				errs <- fmt.Errorf("warm-up message from customer %d: %w", i, err)
				return
			}
			if res.Webhook == nil || res.Webhook.Status != http.StatusOK {
				errs <- fmt.Errorf("warm-up message from customer %d: webhook %+v", i, res.Webhook)
				return
			}
			hooks, err := sim.Webhooks(ctx, simclient.WebhookFilter{MessageSID: res.MessageSID, AccountSID: accountSID})
			if err != nil {
				errs <- err
				return
			}
			for _, h := range hooks {
				if h.StatusCode == http.StatusOK && (h.Event == "onMessageAdded" || h.Event == "incoming") {
					c.url, c.params, c.conv = h.URL, url.Values(h.Params), h.Event == "onMessageAdded"
					if n, err := strconv.ParseInt(c.params.Get("Index"), 10, 64); err == nil {
						c.index.Store(n)
					}
					return
				}
			}
			errs <- fmt.Errorf("warm-up message %s: no delivered message webhook in the emulator's log", res.MessageSID)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	return nil
}

// sendOne posts the next message of customer ci and records the outcome.
func (r *run) sendOne(ctx context.Context, ci int, due time.Time) *rec {
	c := &r.customers[ci]
	seq, m := r.newRec(ci, due)
	sig, p := c.webhook(r.tag, seq, fmt.Sprintf("bench m%d: where is my order? customer %d", seq, ci))
	sent := time.Now()
	code, err := post(ctx, r.hc, c.url, sig, p)
	answered := time.Now()
	if err != nil {
		code = -1
		if ctx.Err() == nil {
			r.count("webhook: " + shortErr(err))
		}
	}
	r.mu.Lock()
	m.sent, m.answered, m.code = sent, answered, code
	r.mu.Unlock()
	return m
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}

// fixedRate sends at cfg.Rate for cfg.Duration on a schedule (open loop):
// a pool of independent senders takes each send at its time, so a slow
// answer does not hold back the next one; sends that leave more than 5 ms
// after their time are counted as late.
func (r *run) fixedRate(ctx context.Context) {
	interval := time.Duration(float64(time.Second) / r.cfg.Rate)
	n := int(r.cfg.Duration / interval)
	type job struct {
		ci  int
		due time.Time
	}
	jobs := make(chan job, 4096)
	var wg sync.WaitGroup
	for range r.cfg.Senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if time.Since(j.due) > 5*time.Millisecond {
					r.late.Add(1)
				}
				r.sendOne(ctx, j.ci, j.due)
			}
		}()
	}
	start := time.Now()
	active := r.activeCustomers()
	for i := 0; i < n && ctx.Err() == nil; i++ {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		jobs <- job{ci: active[i%len(active)], due: due}
	}
	close(jobs)
	wg.Wait()
}

// closedLoop has every customer send, wait for the agent to see the
// message (at most 10 s), and send the next, for cfg.Duration.
func (r *run) closedLoop(ctx context.Context) {
	end := time.Now().Add(r.cfg.Duration)
	var wg sync.WaitGroup
	for _, ci := range r.activeCustomers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) && ctx.Err() == nil {
				m := r.sendOne(ctx, ci, time.Now())
				r.mu.RLock()
				code := m.code
				r.mu.RUnlock()
				if code != http.StatusOK {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				select {
				case <-m.done:
				case <-time.After(10 * time.Second):
					r.count("closed loop: message not at the agent within 10s")
				case <-ctx.Done():
				}
			}
		}()
	}
	wg.Wait()
}

// ceiling measures chat-handler alone in the same process, on the same
// NATS server and store: the CHAT stream's consumers are paused, and c
// senders post signed WhatsApp webhooks from new customers back to back
// for d, counting the 200s (each one a PubAck).
func (r *run) ceiling(ctx context.Context, c int, d time.Duration) (float64, []time.Duration, error) {
	var tmpl *customer
	for i := range r.customers {
		if cu := &r.customers[i]; cu.ready && !cu.conv {
			tmpl = cu
			break
		}
	}
	if tmpl == nil {
		return 0, nil, fmt.Errorf("no WhatsApp customer to model the ceiling's webhooks on")
	}
	if err := r.pauseChatConsumers(ctx, time.Now().Add(d+10*time.Minute)); err != nil {
		return 0, nil, err
	}
	tag := randomTag()
	var (
		seq  atomic.Int64
		mu   sync.Mutex
		lats []time.Duration
		ok   atomic.Int64
		wg   sync.WaitGroup
	)
	start := time.Now()
	end := start.Add(d)
	for w := range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for time.Now().Before(end) && ctx.Err() == nil {
				s := seq.Add(1)
				cu := &customer{url: tmpl.url, params: url.Values{}}
				for k, v := range tmpl.params {
					cu.params[k] = v
				}
				from := fmt.Sprintf("+1555%03d%04d", 900+w%100, s%10000)
				cu.params.Set("From", "whatsapp:"+from)
				if cu.params.Has("WaId") {
					cu.params.Set("WaId", strings.TrimPrefix(from, "+"))
				}
				sig, p := cu.webhook(tag, s, "bench ceiling")
				t0 := time.Now()
				code, err := post(ctx, r.hc, cu.url, sig, p)
				if err == nil && code == http.StatusOK {
					ok.Add(1)
					mine = append(mine, time.Since(t0))
				}
			}
			mu.Lock()
			lats = append(lats, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return float64(ok.Load()) / time.Since(start).Seconds(), lats, nil
}
