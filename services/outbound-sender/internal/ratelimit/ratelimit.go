// Package ratelimit paces sends per sender. Carriers and WhatsApp limit how
// fast one sender may send (a US long code about 1 SMS segment per second,
// a WhatsApp sender 80 messages per second, 10 by default here), and Twilio
// queues or fails what goes faster. outbound-sender queues instead: each
// send reserves its cost on its sender's schedule and waits for its turn,
// so nothing is dropped and the limit holds exactly — the k-th unit on a
// sender starts no earlier than k/rate after the schedule began, with no
// burst beyond one message.
//
// The schedule is per process: with several outbound-sender replicas, give
// each a share of the limit (or route a sender to one replica).
package ratelimit

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Unit is what a limit counts.
type Unit int

// Units.
const (
	Messages Unit = iota + 1
	// Segments counts SMS segments (pkg/segments).
	Segments
)

func (u Unit) String() string {
	if u == Segments {
		return "seg"
	}
	return "msg"
}

// Limit is Count units per Per.
type Limit struct {
	Count float64
	Per   time.Duration
	Unit  Unit
}

func (l Limit) String() string {
	per := "s"
	switch l.Per {
	case time.Minute:
		per = "min"
	case time.Hour:
		per = "h"
	case time.Second:
	default:
		per = l.Per.String()
	}
	return strconv.FormatFloat(l.Count, 'f', -1, 64) + l.Unit.String() + "/" + per
}

// IsZero reports an unset limit (no pacing).
func (l Limit) IsZero() bool { return l.Count <= 0 || l.Per <= 0 }

// Interval is how long cost units occupy the sender.
func (l Limit) Interval(cost int) time.Duration {
	if l.IsZero() {
		return 0
	}
	return time.Duration(float64(l.Per) * float64(cost) / l.Count)
}

// ParseLimit reads "1seg/s", "10msg/s", "30msg/min", "0.5seg/s".
func ParseLimit(s string) (Limit, error) {
	s = strings.TrimSpace(s)
	num, per, ok := strings.Cut(s, "/")
	if !ok {
		return Limit{}, fmt.Errorf("limit %q: want <count><seg|msg>/<s|min|h>", s)
	}
	var l Limit
	switch {
	case strings.HasSuffix(num, "seg"):
		l.Unit, num = Segments, strings.TrimSuffix(num, "seg")
	case strings.HasSuffix(num, "msg"):
		l.Unit, num = Messages, strings.TrimSuffix(num, "msg")
	default:
		return Limit{}, fmt.Errorf("limit %q: count must end in seg or msg", s)
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n <= 0 {
		return Limit{}, fmt.Errorf("limit %q: count must be a positive number", s)
	}
	l.Count = n
	switch per {
	case "s", "sec":
		l.Per = time.Second
	case "min", "m":
		l.Per = time.Minute
	case "h":
		l.Per = time.Hour
	default:
		return Limit{}, fmt.Errorf("limit %q: period must be s, min or h", s)
	}
	return l, nil
}

// Rules are the configured limits.
type Rules struct {
	// SMS and WhatsApp are the defaults by channel.
	SMS      Limit
	WhatsApp Limit
	// ByKey overrides per sender: a business address ("+12025550100",
	// "whatsapp:+12025550101"), a Messaging Service ("MG…"), a
	// Conversations service ("IS…"), or a connector ("connector:<id>").
	ByKey map[string]Limit
}

// DefaultRules: 1 segment/s for SMS (a US long code), 10 messages/s for
// WhatsApp.
func DefaultRules() Rules {
	return Rules{
		SMS:      Limit{Count: 1, Per: time.Second, Unit: Segments},
		WhatsApp: Limit{Count: 10, Per: time.Second, Unit: Messages},
	}
}

// ParseOverrides reads "key=limit,key=limit".
func ParseOverrides(spec string) (map[string]Limit, error) {
	out := map[string]Limit{}
	var errs []error
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok || strings.TrimSpace(k) == "" {
			errs = append(errs, fmt.Errorf("rate limit %q: want key=limit", part))
			continue
		}
		l, err := ParseLimit(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("rate limit for %s: %w", k, err))
			continue
		}
		out[strings.TrimSpace(k)] = l
	}
	return out, errors.Join(errs...)
}

// For picks the limit of the first key with an override, else the
// channel's default.
func (r Rules) For(whatsapp bool, keys ...string) Limit {
	for _, k := range keys {
		if k == "" {
			continue
		}
		if l, ok := r.ByKey[k]; ok {
			return l
		}
	}
	if whatsapp {
		return r.WhatsApp
	}
	return r.SMS
}

// Began records that a reserved send actually started at at (it may start
// later than reserved: a slow database, a busy scheduler). The sender's next
// send then keeps the full interval after this one, so the spacing between
// real sends never shrinks below the limit.
func (l *Limiter) Began(sender string, lim Limit, cost int, at time.Time) {
	if lim.IsZero() {
		return
	}
	if cost < 1 {
		cost = 1
	}
	end := at.Add(lim.Interval(cost))
	l.mu.Lock()
	defer l.mu.Unlock()
	if end.After(l.next[sender]) {
		l.next[sender] = end
	}
}

// Limiter keeps each sender's schedule.
type Limiter struct {
	now func() time.Time

	mu   sync.Mutex
	next map[string]time.Time
	seen int
}

// New returns a limiter on the wall clock (now nil) or a given clock.
func New(now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{now: now, next: map[string]time.Time{}}
}

// Reserve books cost units of lim on sender and returns when the send may
// start. Reservations on one sender are served in the order they are made.
func (l *Limiter) Reserve(sender string, lim Limit, cost int) time.Time {
	now := l.now()
	if cost < 1 {
		cost = 1
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	start := now
	if n, ok := l.next[sender]; ok && n.After(now) {
		start = n
	}
	if lim.IsZero() {
		return start
	}
	l.next[sender] = start.Add(lim.Interval(cost))
	if l.seen++; l.seen%1024 == 0 {
		for k, n := range l.next {
			if now.Sub(n) > time.Minute {
				delete(l.next, k)
			}
		}
	}
	return start
}
