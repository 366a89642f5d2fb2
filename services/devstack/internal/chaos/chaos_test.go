package chaos

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The short variant of make chaos, in make test: a fixed number of
// customer messages through the whole system as separate processes on a
// three-node NATS cluster, with faults (SIGKILL and restarts of services
// and NATS nodes, SIGSTOP/SIGCONT) about every two seconds, and every
// invariant checked at the end. Its seed is fixed, so a failure replays
// with `make chaos SEED=<seed> OPS=300`; no assertion is on timing (the
// drain bound only ends the wait).
func TestChaosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the chaos harness builds every service and runs them as processes on a NATS cluster; make test runs it")
	}
	cfg := Defaults()
	cfg.Seed = 20251202
	cfg.Ops = 300
	cfg.Customers, cfg.Agents = 12, 5
	cfg.FaultEvery = 2 * time.Second
	cfg.Drain = 90 * time.Second
	cfg.DataDir = t.TempDir()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg, &out, t.Output())
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed() {
		t.Errorf("an invariant was broken (table above; replay with make chaos SEED=%d OPS=%d)", cfg.Seed, cfg.Ops)
		keepLog(t, cfg.DataDir)
	}
}

// keepLog copies a failed run's process logs out of the test's temporary
// directory, which the test deletes.
func keepLog(t *testing.T, dir string) {
	b, err := os.ReadFile(filepath.Join(dir, "processes.log"))
	if err != nil {
		t.Logf("processes' logs not kept: %v", err)
		return
	}
	f, err := os.CreateTemp("", "switchboard-chaos-*.log")
	if err == nil {
		_, err = f.Write(b)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		t.Logf("processes' logs not kept: %v", err)
		return
	}
	t.Logf("processes' logs kept in %s", f.Name())
}
