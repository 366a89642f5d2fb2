// Command e2e-bench drives the whole stack end to end: signed webhooks
// from many customers, scripted agents who accept and answer, and a report
// of throughput, consumer lag and latencies per stage next to the
// ingress-only ceiling of the same run. See the README's "End-to-end
// benchmark" section.
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
	cfg := e2ebench.Defaults()
	flag.StringVar(&cfg.Mode, "mode", cfg.Mode, "fixed (open loop at -rate) or closed (each customer waits for the agent to see a message before the next)")
	flag.Float64Var(&cfg.Rate, "rate", cfg.Rate, "customer messages per second (fixed mode)")
	flag.DurationVar(&cfg.Duration, "duration", cfg.Duration, "length of the measured load")
	flag.IntVar(&cfg.Customers, "customers", cfg.Customers, "distinct customers, half SMS (Conversations path), half WhatsApp (Messaging path)")
	flag.IntVar(&cfg.Agents, "agents", cfg.Agents, "scripted agents; capacity is shared so every customer has an accepted session")
	flag.IntVar(&cfg.SMSLanes, "sms-senders", cfg.SMSLanes, "SMS business numbers, one Conversations service each")
	flag.IntVar(&cfg.WhatsAppLanes, "whatsapp-senders", cfg.WhatsAppLanes, "WhatsApp business senders")
	flag.IntVar(&cfg.ReplyEvery, "reply-every", cfg.ReplyEvery, "agents answer every n-th message (0: never)")
	flag.Float64Var(&cfg.ReplyPace, "reply-pace", cfg.ReplyPace, "share of each sender's pacing limit replies may use")
	flag.StringVar(&cfg.Greeting, "greeting", cfg.Greeting, "the service's greeting (empty: none)")
	flag.BoolVar(&cfg.Fsync, "fsync", cfg.Fsync, "embedded NATS fsyncs every write (as make run)")
	flag.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "at most this long to open and accept every customer's conversation")
	flag.DurationVar(&cfg.Drain, "drain", cfg.Drain, "at most this long after the load for messages and replies in flight")
	flag.IntVar(&cfg.Senders, "senders", cfg.Senders, "concurrent webhook senders (fixed mode)")
	flag.IntVar(&cfg.CeilingConcurrency, "ceiling-c", cfg.CeilingConcurrency, "concurrency of the ingress-only ceiling (0 skips it)")
	flag.DurationVar(&cfg.CeilingFor, "ceiling-for", cfg.CeilingFor, "length of the ingress-only ceiling")
	flag.DurationVar(&cfg.LagEvery, "lag-every", cfg.LagEvery, "interval of the lag table's rows (0: about 24 rows)")
	flag.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of the measured load to this file")
	flag.StringVar(&cfg.DataDir, "data", cfg.DataDir, "keep the stack's files here (default: a temporary directory)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := e2ebench.Run(ctx, cfg, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "e2e-bench:", err)
		os.Exit(1)
	}
}
