// Command chaos is Switchboard's fault-injection harness (make chaos): a
// three-node NATS JetStream cluster, every service as its own process
// (two replicas of chat-handler, sessions, distribution and
// outbound-sender), customers and scripted agents, and SIGKILL, restarts
// and SIGSTOP of random processes while they work; at the end it checks
// that nothing was lost or done twice and prints a table. It exits 1 when
// an invariant was broken. See services/devstack/internal/chaos/README.md.
//
//	go run ./services/devstack/cmd/chaos [-duration 1m | -ops 300] [-seed N]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/switchboard-cc/switchboard/services/devstack/internal/chaos"
)

func main() {
	c := chaos.Defaults()
	flag.Uint64Var(&c.Seed, "seed", 0, "seed of every random choice (0: a new one, printed)")
	flag.DurationVar(&c.Duration, "duration", c.Duration, "how long to send load and inject faults")
	flag.IntVar(&c.Ops, "ops", 0, "send this many customer messages instead of running for -duration")
	flag.IntVar(&c.Customers, "customers", c.Customers, "customers (half SMS, half WhatsApp)")
	flag.IntVar(&c.Agents, "agents", c.Agents, "scripted agents")
	flag.IntVar(&c.Capacity, "capacity", c.Capacity, "each agent's capacity")
	flag.DurationVar(&c.FaultEvery, "fault-every", c.FaultEvery, "mean time between faults (0: none)")
	flag.DurationVar(&c.Drain, "drain", c.Drain, "longest wait for what is in flight after the load")
	flag.StringVar(&c.BinDir, "bin", "bin", "where to build the binaries")
	flag.BoolVar(&c.NoBuild, "no-build", false, "use the binaries already in -bin")
	flag.StringVar(&c.DataDir, "data", "", "keep the run's files (and processes.log) here (default: a temporary directory)")
	flag.BoolVar(&c.SyncAlways, "fsync", false, "fsync every JetStream write on every node")
	flag.IntVar(&c.Nodes, "nodes", 3, "NATS servers: 3 (a cluster, R3 streams) or 1 (R1 streams)")
	flag.DurationVar(&c.SampleEvery, "sample-every", 0, "sample memory, goroutines, open files and stream sizes this often (0: never; the samples go to -data's samples.csv)")
	cpuProfile := flag.String("cpuprofile", "", "write this process's CPU profile (FerretDB, the emulator, the customers and agents) to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			os.Exit(2)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			os.Exit(2)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	c.MongoURI = os.Getenv("MONGO_URI")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := chaos.Run(ctx, c, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		pprof.StopCPUProfile()
		os.Exit(2)
	}
	if rep.Failed() {
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}
