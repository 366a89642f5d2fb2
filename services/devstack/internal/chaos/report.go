package chaos

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"time"
)

// Report is what a run observed.
type Report struct {
	Seed     uint64
	Logs     string
	LoadTime time.Duration

	Webhooks200, WebhooksFailed int
	// Lost: answered 200, never at an agent; Duplicated: at the agents
	// under two or more transcript message ids.
	Lost, Duplicated int
	// AcceptedDespiteFailure: not answered 200 and yet at an agent
	// (the webhook was stored before the answer was lost, or
	// reconciliation brought it in).
	AcceptedDespiteFailure int
	// LostUnanswered (part of Lost): in Twilio's history, its webhook
	// never answered 200, and reconciliation did not bring it in.
	LostUnanswered int
	// Reconciled is what the on-demand reconciliation at the end said.
	Reconciled string
	// RepliesRequested: agents' replies acknowledged; RepliesAtEmulator:
	// sends of them at the emulator.
	RepliesRequested, RepliesAtEmulator int
	RepliesLost, RepliesDuplicated      int
	Sessions, NoOutcome                 int
	// CapacityViolations and DoubleOffers are read from distribution's
	// own events (the DISTRIBUTION stream).
	CapacityViolations, DoubleAssigned int
	DoubleOffers                       int
	DeadLetters                        int
	// Exits are processes that exited without being killed.
	Exits    []string
	Counts   map[string]int
	Examples []string
	// Diagnosis of the lost messages: how many stopped at each stage, then
	// one line per message with the stages it reached (CHAT, transcript,
	// session, workflow and distribution events, what the agents held).
	Diagnosis []string
	// NoOutcomeDiagnosis: for each session without an outcome, what the
	// agents saw and what the SESSION and DISTRIBUTION streams hold of it.
	NoOutcomeDiagnosis []string

	// Samples: each sampled series' first, last and largest value.
	Samples []string

	webhookLat, agentLat []time.Duration
}

// Failed reports whether an invariant was broken.
func (r *Report) Failed() bool {
	return r.Lost+r.Duplicated+r.RepliesLost+r.RepliesDuplicated+r.NoOutcome+r.CapacityViolations+r.DoubleOffers+r.DoubleAssigned+r.DeadLetters > 0 || r.Webhooks200 == 0
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))].Round(time.Millisecond)
}

func (r *Report) print(w io.Writer) {
	row := func(name string, v any, bad bool) {
		mark := ""
		if bad {
			mark = "   <-- VIOLATION"
		}
		fmt.Fprintf(w, "  %-52s %10v%s\n", name, v, mark)
	}
	fmt.Fprintf(w, "\nchaos: seed %d, load %s\n", r.Seed, r.LoadTime.Round(time.Second))
	row("webhooks answered 200", r.Webhooks200, r.Webhooks200 == 0)
	row("webhooks not answered 200 (in Twilio's history)", r.WebhooksFailed, false)
	row("  ... of which at an agent (stored, or reconciled)", r.AcceptedDespiteFailure, false)
	row("messages at the agent: lost", r.Lost, r.Lost > 0)
	row("  ... of which never answered 200 (reconciliation missed)", r.LostUnanswered, r.LostUnanswered > 0)
	row("messages at the agent: duplicated", r.Duplicated, r.Duplicated > 0)
	row("replies requested (acknowledged)", r.RepliesRequested, false)
	row("replies sent at the emulator", r.RepliesAtEmulator, false)
	row("replies: lost", r.RepliesLost, r.RepliesLost > 0)
	row("replies: duplicated", r.RepliesDuplicated, r.RepliesDuplicated > 0)
	row("sessions assigned", r.Sessions, false)
	row("sessions without an outcome", r.NoOutcome, r.NoOutcome > 0)
	row("capacity violations (distribution's events)", r.CapacityViolations, r.CapacityViolations > 0)
	row("tasks offered twice at once", r.DoubleOffers, r.DoubleOffers > 0)
	row("sessions assigned to two agents", r.DoubleAssigned, r.DoubleAssigned > 0)
	row("dead letters", r.DeadLetters, r.DeadLetters > 0)
	row("webhook answer p50 / p99", fmt.Sprintf("%v / %v", pct(r.webhookLat, .5), pct(r.webhookLat, .99)), false)
	row("webhook -> agent frame p50 / p99", fmt.Sprintf("%v / %v", pct(r.agentLat, .5), pct(r.agentLat, .99)), false)
	if r.Reconciled != "" {
		fmt.Fprintf(w, "  reconciliation at the end: %s\n", r.Reconciled)
	}
	keys := make([]string, 0, len(r.Counts))
	for k := range r.Counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintln(w, "  events:")
	for _, k := range keys {
		fmt.Fprintf(w, "    %-62s %6d\n", k, r.Counts[k])
	}
	if len(r.Samples) > 0 {
		fmt.Fprintf(w, "  resources sampled (from the load's start to the end of the drain):\n    %-52s %10s %10s %10s\n", "series", "first", "last", "largest")
		for _, l := range r.Samples {
			fmt.Fprintf(w, "    %s\n", l)
		}
	}
	if len(r.Exits) > 0 {
		fmt.Fprintf(w, "  processes that exited on their own (restarted): %v\n", r.Exits)
	}
	for _, e := range r.Examples {
		fmt.Fprintf(w, "  ! %s\n", e)
	}
	if len(r.Diagnosis) > 0 {
		fmt.Fprintln(w, "  lost messages and replies, the stages they reached:")
		for _, l := range r.Diagnosis {
			fmt.Fprintf(w, "    %s\n", l)
		}
	}
	if len(r.NoOutcomeDiagnosis) > 0 {
		fmt.Fprintln(w, "  sessions without an outcome, what was seen of them:")
		for _, l := range r.NoOutcomeDiagnosis {
			fmt.Fprintf(w, "    %s\n", l)
		}
	}
	verdict := "PASS: every invariant held"
	if r.Failed() {
		verdict = fmt.Sprintf("FAIL (replay: make chaos SEED=%d); processes' logs: %s", r.Seed, r.Logs)
	}
	fmt.Fprintf(w, "chaos: %s\n", verdict)
}
