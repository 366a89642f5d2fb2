// Command workflow-bench measures workflow-runner on an embedded JetStream
// server that fsyncs every write: a customer's message to the workflow's
// reply request (p50/p99 at a fixed rate) next to a bare publish → consume
// → publish round trip on the same server and the ratio; 10,000 pending
// timers, their lateness and that none is lost across a restart; and
// workflow steps per second.
//
//	go run ./services/workflow-runner/cmd/workflow-bench [-rate 200] [-for 10s] [-sessions 200] [-timers 10000] [-timer-window 30s]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/switchboard-cc/switchboard/services/workflow-runner/internal/bench"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "workflow-bench:", err)
		os.Exit(1)
	}
}

func run() error {
	d := bench.Defaults()
	o := bench.Options{}
	flag.IntVar(&o.Rate, "rate", d.Rate, "customer messages (and baseline round trips) per second")
	flag.DurationVar(&o.For, "for", d.For, "how long the fixed-rate steps measure (after a second of warm-up)")
	flag.IntVar(&o.Sessions, "sessions", d.Sessions, "sessions sharing the customer messages")
	flag.IntVar(&o.Timers, "timers", d.Timers, "pending timers")
	flag.DurationVar(&o.TimerWindow, "timer-window", d.TimerWindow, "the timers are due evenly over this long")
	flag.IntVar(&o.StepSessions, "step-sessions", d.StepSessions, "sessions of the steps/s measurement")
	flag.IntVar(&o.StepChain, "step-chain", d.StepChain, "activities before each of those sessions' last message")
	flag.StringVar(&o.Dir, "dir", "", "JetStream store directory (a temporary one when empty)")
	flag.Parse()
	var errs []error
	if o.Rate < 1 || o.Rate > 10000 {
		errs = append(errs, fmt.Errorf("-rate %d: want 1-10000", o.Rate))
	}
	if o.For < time.Second {
		errs = append(errs, fmt.Errorf("-for %s: want at least 1s", o.For))
	}
	if o.TimerWindow < time.Second {
		errs = append(errs, fmt.Errorf("-timer-window %s: want at least 1s", o.TimerWindow))
	}
	if o.Sessions < 1 || o.Timers < 1 || o.StepSessions < 1 || o.StepChain < 1 {
		errs = append(errs, errors.New("-sessions, -timers, -step-sessions and -step-chain must be positive"))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return bench.Run(ctx, o, os.Stdout)
}
