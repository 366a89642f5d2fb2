// Command send-bench measures outbound-sender against a bare loop of
// twilio-go calls to the same in-process twilio-sim, in the same run, and
// checks that per-sender rate limits hold. It prints sends/s, the ratio,
// request-to-Twilio-call latency (p50/p99) at a fixed rate, and the rate
// checks. MONGO_URI switches from embedded FerretDB to a MongoDB server.
//
//	go run ./services/outbound-sender/cmd/send-bench [-n 3000] [-senders 16] [-rounds 3] [-rate 0] [-rate-for 5s]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"time"

	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/bench"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "send-bench:", err)
		os.Exit(1)
	}
}

func run() error {
	n := flag.Int("n", 3000, "messages per throughput round")
	senders := flag.Int("senders", 16, "Twilio senders (outbound-sender lanes, bare-loop workers)")
	rounds := flag.Int("rounds", 3, "alternate the bare loop and outbound-sender this many times")
	rate := flag.Int("rate", 0, "requests/s of the latency step; 0 is half the measured throughput")
	rateFor := flag.Duration("rate-for", 5*time.Second, "duration of the latency step")
	dir := flag.String("dir", "", "directory for the embedded NATS and FerretDB files (temporary when empty)")
	cpu := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if *cpu != "" {
		f, err := os.Create(*cpu)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return bench.Run(ctx, bench.Options{
		Messages: *n, Senders: *senders, Rounds: *rounds, Rate: *rate, RateFor: *rateFor,
		MongoURI: os.Getenv("MONGO_URI"), Dir: *dir,
	}, os.Stdout)
}
