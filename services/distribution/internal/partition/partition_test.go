package partition_test

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/natsembed/natstest"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/engine"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/partition"
)

// The partition NATS puts in front of an input's subject is the one the
// engine computes for the tenant: a replica holds exactly the tenants of
// the partitions it consumes, and forwards a call to the right holder.
func TestPartitionOfMatchesTheSubjectTransform(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	b := inputs(t)
	const n = 7
	if _, err := partition.Setup(ctx, b.JS, partition.Config{Replica: "r1", Partitions: n, TTL: time.Second, AckWait: time.Second}, log); err != nil {
		t.Fatal(err)
	}
	tenants := []string{"acme", "globex", "initech", "umbrella", "north", "south", "east", "west", "t-1", "t_2"}
	for _, tn := range tenants {
		if _, err := b.JS.Publish(ctx, subjects.WorkflowTaskRequested(tn), []byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := b.JS.Publish(ctx, subjects.SessionEnded(tn), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	s, err := b.JS.Stream(ctx, subjects.StreamDistributionGroup)
	if err != nil {
		t.Fatal(err)
	}
	var info *jetstream.StreamInfo
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err = s.Info(ctx, jetstream.WithSubjectFilter(">"))
		if err == nil && len(info.State.Subjects) == 2*len(tenants) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("group stream holds %v (%v), want %d subjects", info, err, 2*len(tenants))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for subj := range info.State.Subjects {
		p, rest, _ := strings.Cut(subj, ".")
		tenant := rest[strings.LastIndex(rest, ".")+1:]
		if want := strconv.Itoa(engine.PartitionOf(tenant, n)); p != want {
			t.Errorf("%s: partition %s, engine.PartitionOf(%q) = %s", subj, p, tenant, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := partition.Config{Replica: "dist-1", Partitions: 16, TTL: 6 * time.Second, AckWait: 6 * time.Second}
	if err := ok.Validate(); err != nil {
		t.Errorf("%+v: %v", ok, err)
	}
	for _, c := range []partition.Config{
		{Replica: "dist.1", Partitions: 16, TTL: time.Second, AckWait: time.Second},
		{Replica: "", Partitions: 16, TTL: time.Second, AckWait: time.Second},
		{Replica: "d", Partitions: 0, TTL: time.Second, AckWait: time.Second},
		{Replica: "d", Partitions: 16, TTL: time.Millisecond, AckWait: time.Second},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: valid, want an error", c)
		}
	}
}

// A replica whose consumer the server deleted (its inactivity threshold
// passed while the replica could not pull: a NATS node down, the
// process paused) consumes again: the partitions it owns are not left
// with nobody reading them. pcgroups alone never notices: its consume
// stops on "consumer deleted", and it recreates a consumer only when it
// holds none.
func TestReplicaConsumesAgainAfterItsConsumerWasDeleted(t *testing.T) {
	deleteConsumerUnder(t, nil)
}

// deleteConsumerUnder runs replica r1 of a new group (with fail, if not
// nil, run before each of its consumes), sees a message reach it, deletes
// its consumer on the group's work queue, and sees the next one reach it
// too, with Run still going.
func deleteConsumerUnder(t *testing.T, fail func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	b := inputs(t)
	g, err := partition.Setup(ctx, b.JS, partition.Config{Replica: "r1", Partitions: 2, TTL: 2 * time.Second, AckWait: time.Second}, log)
	if err != nil {
		t.Fatal(err)
	}
	if fail != nil {
		partition.FailConsumes(g, fail)
	}
	got := make(chan string, 16)
	done := make(chan error, 1)
	go func() {
		done <- g.Run(ctx, func(m jetstream.Msg) { got <- string(m.Data()); _ = m.Ack() }, func([]int) {})
	}()
	await := func(want string) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case v := <-got:
				if v == want {
					return
				}
			case err := <-done:
				t.Fatalf("the group stopped: %v", err)
			case <-deadline:
				t.Fatalf("%q never reached the replica", want)
			}
		}
	}
	if _, err := b.JS.Publish(ctx, subjects.WorkflowTaskRequested("acme"), []byte("before")); err != nil {
		t.Fatal(err)
	}
	await("before")
	if err := b.JS.DeleteConsumer(ctx, subjects.StreamDistributionGroup, "r1"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.JS.Publish(ctx, subjects.WorkflowTaskRequested("acme"), []byte("after")); err != nil {
		t.Fatal(err)
	}
	await("after")
}

// A replica whose consume again fails (a NATS node down at that moment)
// tries again at the next tick and reads its partitions again, instead of
// exiting: the stopped consume it kept ended Run ("consumer group replicas
// stopped", seen in a chaos run).
func TestReplicaKeepsTryingWhenItCannotConsumeAgain(t *testing.T) {
	var consumes atomic.Int32
	deleteConsumerUnder(t, func() error {
		if consumes.Add(1) == 2 { // the join succeeds, the first consume again fails
			return errors.New("the elastic consumer group's stream does not exist: context deadline exceeded")
		}
		return nil
	})
	if n := consumes.Load(); n < 3 {
		t.Errorf("%d consumes, want the join, the failed one and another", n)
	}
}

// inputs is a bus on a fresh server with the streams distribution's
// inputs come from.
func inputs(t *testing.T) *bus.Bus {
	t.Helper()
	b, err := bus.Connect(natstest.Start(t).ClientURL(), t.Name(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if err := b.EnsureStreams(context.Background(), subjects.StreamOptions{}, subjects.StreamWorkflow, subjects.StreamSession, subjects.StreamOutbound); err != nil {
		t.Fatal(err)
	}
	return b
}
