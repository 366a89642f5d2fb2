package events_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/natsembed/natstest"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	"github.com/switchboard-cc/switchboard/services/config/internal/events"
)

// An event that cannot be published (here: the stream does not exist yet)
// is retried in the background until it lands, exactly once.
func TestFailedPublishIsRetried(t *testing.T) {
	ns := natstest.Start(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := bus.Connect(ns.ClientURL(), "events-test", log)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p := events.New(b, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	ev := &configv1.ConfigChanged{TenantId: "acme", Kind: configv1.EntityKind_ENTITY_KIND_SERVICE, Id: "support", Change: configv1.ChangeType_CHANGE_TYPE_UPDATED, Version: 4}
	p.Publish(ctx, ev)
	if p.Pending() != 1 {
		t.Fatalf("pending after a failed publish = %d, want 1", p.Pending())
	}
	if err := b.EnsureStreams(ctx, subjects.StreamOptions{}, subjects.StreamConfig); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for p.Pending() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("event still pending after 15s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A second publish of the same change is dropped by the dedupe window.
	p.Publish(ctx, ev)
	s, err := b.JS.Stream(ctx, subjects.StreamConfig)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("stream holds %d messages, want 1", info.State.Msgs)
	}
	msg, err := s.GetMsg(ctx, info.State.FirstSeq)
	if err != nil {
		t.Fatal(err)
	}
	var got configv1.ConfigChanged
	if err := proto.Unmarshal(msg.Data, &got); err != nil || !proto.Equal(&got, ev) || msg.Subject != subjects.ConfigChanged(subjects.EntityService, "acme") {
		t.Errorf("stored event %v on %s, want %v on %s", &got, msg.Subject, ev, subjects.ConfigChanged(subjects.EntityService, "acme"))
	}
}
