// Command offer-bench measures a new customer's first message → the offer
// frame at an agent's websocket on the whole stack (fsync on, as make
// run), at a fixed rate of new sessions, next to the same webhooks'
// chat-handler answer (stored in JetStream) in the same run, with the
// ratio. See the distribution README's "Benchmark" section.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/switchboard-cc/switchboard/services/devstack/internal/e2ebench"
)

func main() {
	cfg := e2ebench.OffersDefaults()
	flag.Float64Var(&cfg.Rate, "rate", cfg.Rate, "new sessions (customers' first messages) per second")
	flag.DurationVar(&cfg.Duration, "duration", cfg.Duration, "length of the load")
	flag.IntVar(&cfg.Agents, "agents", cfg.Agents, "scripted agents (capacity 20 each); each accepts every offer and ends the chat at once")
	flag.BoolVar(&cfg.Fsync, "fsync", cfg.Fsync, "embedded NATS fsyncs every write (as make run)")
	flag.IntVar(&cfg.Senders, "senders", cfg.Senders, "concurrent webhook senders")
	flag.DurationVar(&cfg.Drain, "drain", cfg.Drain, "at most this long after the load for offers still to come")
	flag.StringVar(&cfg.CPUProfile, "cpuprofile", "", "also write the run's CPU profile (load and drain) to this file")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := e2ebench.RunOffers(ctx, cfg, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "offer-bench:", err)
		os.Exit(1)
	}
}
