// Command webhook-bench measures chat-handler against a bare net/http
// Twilio webhook handler in the same run and prints requests/s, p50/p99
// latency and the ratio, against one NATS server with the default sync
// interval, one that fsyncs every write, and a three-server R3 cluster.
//
//	go run ./services/chat-handler/cmd/webhook-bench [-step 3s] [-c 1,8,32,128] [-rate 1000] [-store default,fsync,r3]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/bench"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "webhook-bench:", err)
		os.Exit(1)
	}
}

func run() error {
	step := flag.Duration("step", 3*time.Second, "duration of each closed-loop step")
	conc := flag.String("c", "1,8,32,128", "comma-separated concurrencies of the closed-loop steps")
	rate := flag.Int("rate", 1000, "requests/s of the fixed-rate step (0 skips it)")
	rateFor := flag.Duration("rate-for", 5*time.Second, "duration of the fixed-rate step")
	stores := flag.String("store", "default,fsync,r3", "JetStream deployments, comma-separated: default (one server, default sync), fsync (one server, fsync every write), r3 (three servers, R3 stream)")
	cpu := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	rounds := flag.Int("rounds", 3, "alternate the targets this many times within each step")
	dir := flag.String("dir", "", "JetStream store directory (a temporary one when empty)")
	flag.Parse()

	o := bench.Options{Step: *step, Rate: *rate, RateFor: *rateFor, CPUProfile: *cpu, Dir: *dir, Rounds: *rounds}
	for _, s := range strings.Split(*conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("concurrency %q is not a positive integer", s)
		}
		o.Concurrencies = append(o.Concurrencies, n)
	}
	var err error
	if o.Stores, err = bench.ParseStores(*stores); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return bench.Run(ctx, o, os.Stdout)
}
