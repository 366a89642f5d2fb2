package ratelimit

import (
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestParseLimit(t *testing.T) {
	tests := []struct {
		in   string
		want Limit
		err  bool
	}{
		{"1seg/s", Limit{1, time.Second, Segments}, false},
		{"10msg/s", Limit{10, time.Second, Messages}, false},
		{"30msg/min", Limit{30, time.Minute, Messages}, false},
		{"0.5seg/s", Limit{0.5, time.Second, Segments}, false},
		{"10/s", Limit{}, true},
		{"0msg/s", Limit{}, true},
		{"5msg/day", Limit{}, true},
		{"fast", Limit{}, true},
	}
	for _, tt := range tests {
		got, err := ParseLimit(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseLimit(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
	by, err := ParseOverrides("+12025550100=3seg/s, whatsapp:+12025550101=80msg/s,connector:main=1seg/s")
	if err != nil || len(by) != 3 || by["whatsapp:+12025550101"].Count != 80 {
		t.Errorf("ParseOverrides = %v, %v", by, err)
	}
	if _, err := ParseOverrides("a=1seg/s,b"); err == nil {
		t.Error("ParseOverrides accepted an entry without a limit")
	}
}

func TestRulesPickTheFirstOverride(t *testing.T) {
	r := DefaultRules()
	r.ByKey = map[string]Limit{"+1": {5, time.Second, Segments}, "connector:c": {2, time.Second, Messages}}
	if got := r.For(false, "+1", "MG1", "connector:c"); got.Count != 5 {
		t.Errorf("number override: got %v", got)
	}
	if got := r.For(false, "+2", "", "connector:c"); got.Count != 2 {
		t.Errorf("connector override: got %v", got)
	}
	if got := r.For(true, "+3"); got != r.WhatsApp || got.Count != 10 || got.Unit != Messages {
		t.Errorf("whatsapp default: got %v", got)
	}
	if got := r.For(false, "+3"); got.Count != 1 || got.Unit != Segments {
		t.Errorf("sms default: got %v", got)
	}
}

// The schedule never lets more units through than the limit: in every
// window of one period there are at most Count units plus the one message
// that started it, and senders do not share a schedule.
func TestReserveHonoursTheLimitExactly(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := New(clk.now)
	perSecond := Limit{Count: 1, Per: time.Second, Unit: Segments}
	// 3 one-segment messages, a 3-segment message, 2 more: all reserved at
	// once (a burst of requests).
	costs := []int{1, 1, 1, 3, 1, 1}
	var starts []time.Duration
	for _, c := range costs {
		starts = append(starts, l.Reserve("+1", perSecond, c).Sub(clk.t))
	}
	want := []time.Duration{0, time.Second, 2 * time.Second, 3 * time.Second, 6 * time.Second, 7 * time.Second}
	for i := range want {
		if starts[i] != want[i] {
			t.Errorf("start of message %d = %v, want %v", i, starts[i], want[i])
		}
	}
	// Another sender is not held up.
	if got := l.Reserve("+2", perSecond, 1); !got.Equal(clk.t) {
		t.Errorf("other sender starts at %v, want now", got)
	}
	// Once the schedule has passed, a sender starts at once again.
	clk.t = clk.t.Add(time.Minute)
	if got := l.Reserve("+1", perSecond, 1); !got.Equal(clk.t) {
		t.Errorf("idle sender starts at %v, want now", got)
	}
}

func TestReserveCountsPerWindow(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := New(clk.now)
	lim := Limit{Count: 10, Per: time.Second, Unit: Messages}
	const n = 1000
	starts := make([]time.Time, n)
	for i := range starts {
		// Requests arrive faster than the limit, a few at a time.
		if i%7 == 0 {
			clk.t = clk.t.Add(30 * time.Millisecond)
		}
		starts[i] = l.Reserve("wa", lim, 1)
	}
	for i := range starts {
		if i > 0 && starts[i].Before(starts[i-1]) {
			t.Fatalf("reservation %d starts before %d", i, i-1)
		}
		// Count the sends in [starts[i], starts[i]+1s).
		count := 0
		for j := i; j < n && starts[j].Before(starts[i].Add(time.Second)); j++ {
			count++
		}
		if count > 10 {
			t.Fatalf("%d sends within one second from reservation %d, limit 10", count, i)
		}
	}
	if total := starts[n-1].Sub(starts[0]); total != 99900*time.Millisecond {
		t.Errorf("1000 messages at 10/s span %v, want 99.9s", total)
	}
}

// A send that starts late pushes the next one back: real sends keep the
// full interval between them.
func TestBeganKeepsTheIntervalAfterALateStart(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := New(clk.now)
	lim := Limit{Count: 2, Per: time.Second, Unit: Messages}
	first := l.Reserve("s", lim, 1)
	l.Began("s", lim, 1, first.Add(300*time.Millisecond)) // started 300ms late
	clk.t = clk.t.Add(350 * time.Millisecond)
	if got := l.Reserve("s", lim, 1).Sub(first); got != 800*time.Millisecond {
		t.Errorf("next start %v after the first reservation, want 800ms (500ms after the late start)", got)
	}
}
