package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	twilio "github.com/twilio/twilio-go"
	twapi "github.com/twilio/twilio-go/rest/api/v2010"
	"google.golang.org/protobuf/types/known/timestamppb"

	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/segments"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/ratelimit"
)

type bareResult struct {
	rate float64
	lat  []time.Duration
}

// bareLoop makes n Messages.json creates with twilio-go from workers
// goroutines: the same calls outbound-sender makes, with nothing around
// them.
func bareLoop(c *twilio.RestClient, n, workers int, tag string) (bareResult, error) {
	next := atomic.Int64{}
	lats := make([][]time.Duration, workers)
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	start := time.Now()
	for wk := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				p := &twapi.CreateMessageParams{}
				p.SetTo(customer(i)).SetFrom(sender(i % workers)).SetBody(fmt.Sprintf("%s-%d", tag, i))
				t0 := time.Now()
				if _, err := c.Api.CreateMessage(p); err != nil {
					errc <- err
					return
				}
				lats[wk] = append(lats[wk], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	select {
	case err := <-errc:
		return bareResult{}, fmt.Errorf("bare twilio-go call: %w", err)
	default:
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	return bareResult{rate: float64(n) / d.Seconds(), lat: all}, nil
}

// fixedRate publishes requests at rate for d and returns, per request, the
// time from publishing it to its Twilio call leaving outbound-sender.
func fixedRate(ctx context.Context, b *bus.Bus, rec *calls, sent *sentLog, rate int, d time.Duration, senders int) ([]time.Duration, error) {
	n := int(float64(rate) * d.Seconds())
	ids := make([]string, n)
	published := make([]time.Time, n)
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	for i := range n {
		// Open loop: each request goes at its time, whatever happened to the
		// previous ones.
		at := start.Add(time.Duration(i) * interval)
		if wait := time.Until(at); wait > 0 {
			time.Sleep(wait)
		}
		ids[i] = fmt.Sprintf("rate-%d", i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			published[i] = time.Now()
			if err := b.Emit(ctx, subjects.OutboundRequested(tenant), request(ids[i], sender(i%senders), customer(i), ids[i]), ids[i]); err != nil {
				select {
				case errc <- err:
				default:
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		return nil, err
	default:
	}
	if err := waitSent(ctx, sent, ids); err != nil {
		return nil, err
	}
	lat := make([]time.Duration, 0, n)
	for i, id := range ids {
		c, ok := rec.get(id)
		if !ok {
			return nil, fmt.Errorf("no Twilio call recorded for %s", id)
		}
		lat = append(lat, c.at.Sub(published[i]))
	}
	return lat, nil
}

func waitSent(ctx context.Context, sent *sentLog, ids []string) error {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if done, _ := sent.has(ids); done {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("not every request was sent within 5 minutes")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rateCheck sends a burst to each limited sender at once and checks the
// calls' spacing: no one-second window (starting at any call) may hold more
// units than the limit.
func rateCheck(ctx context.Context, b *bus.Bus, rec *calls, sent *sentLog, w io.Writer) (bool, error) {
	rules := ratelimit.DefaultRules()
	var ids []string
	type plan struct {
		keys  []string
		lim   ratelimit.Limit
		costs int
	}
	plans := make([]plan, len(limited))
	for li, l := range limited {
		lim := rules.WhatsApp
		if l.limit != "" {
			var err error
			if lim, err = ratelimit.ParseLimit(l.limit); err != nil {
				return false, err
			}
		}
		cost := 1
		if lim.Unit == ratelimit.Segments {
			cost = segments.Count(l.body).Segments
		}
		plans[li] = plan{lim: lim, costs: cost}
		for i := range l.n {
			id := fmt.Sprintf("limit-%d-%d", li, i)
			r := request(id, l.from, customer(i), fmt.Sprintf("%s %s", id, l.body))
			key := r.GetBody()
			if l.whatsapp {
				r.Body, r.ContentSid, r.ContentVariables = "", "HX00000000000000000000000000000b01", fmt.Sprintf(`{"1":%q}`, id)
				r.Conversation.Channel = messagingv1.Channel_CHANNEL_WHATSAPP
				r.Conversation.CustomerAddress = "whatsapp:" + customer(i)
				key = r.GetContentVariables()
			}
			r.RequestedAt = timestamppb.Now()
			plans[li].keys = append(plans[li].keys, key)
			ids = append(ids, id)
			if err := b.Emit(ctx, subjects.OutboundRequested(tenant), r, id); err != nil {
				return false, err
			}
		}
	}
	if err := waitSent(ctx, sent, ids); err != nil {
		return false, err
	}
	ok := true
	for li, l := range limited {
		p := plans[li]
		var times []time.Time
		for _, k := range p.keys {
			c, found := rec.get(k)
			if !found {
				return false, fmt.Errorf("no Twilio call recorded for a rate-checked request of %s", l.from)
			}
			times = append(times, c.at)
		}
		slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
		maxUnits := 0
		for i := range times {
			units := 0
			for j := i; j < len(times) && times[j].Sub(times[i]) < p.lim.Per; j++ {
				units += p.costs
			}
			maxUnits = max(maxUnits, units)
		}
		span := times[len(times)-1].Sub(times[0])
		// The achieved rate: units after the first send over the span.
		achieved := float64((len(times)-1)*p.costs) / span.Seconds() * p.lim.Per.Seconds()
		// The limiter's promise (package ratelimit): the k-th unit starts
		// no earlier than k/rate after the schedule began, with no burst
		// beyond one message. Times here are when the emulator received
		// each call, so one send held up on its way (a loaded machine)
		// and the next on time share a window: one message over the
		// limit in a window is within the promise, more is not.
		verdict := "ok"
		if float64(maxUnits) > p.lim.Count+float64(p.costs) {
			verdict, ok = "EXCEEDED", false
		} else if float64(maxUnits) > p.lim.Count {
			verdict = "ok: one message over, a send held up on its way"
		}
		fmt.Fprintf(w, "rate limit %-22s %-9s %3d sends of %d %s in %5.2fs: %.2f %s/%s achieved, at most %d %s in any %s window (%s)\n",
			l.from, p.lim.String(), len(times), p.costs, p.lim.Unit, span.Seconds(), achieved, p.lim.Unit, unitPer(p.lim.Per), maxUnits, p.lim.Unit, p.lim.Per, verdict)
	}
	return ok, nil
}

func unitPer(d time.Duration) string {
	if d == time.Second {
		return "s"
	}
	return d.String()
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// pct is the p-th percentile (nearest rank), rounded for printing.
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	i = min(max(i, 0), len(s)-1)
	return s[i].Round(10 * time.Microsecond)
}
