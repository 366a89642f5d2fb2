package kvcas_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-cc/switchboard/pkg/kvcas"
	"github.com/switchboard-cc/switchboard/pkg/natsembed/natstest"
)

// ReadSubject reads a subject's messages in order across pages, only that
// subject's, stops at the limit or when fn says so, and leaves no
// consumer: reading far more often than the stream's consumer limit
// (1,000 by default) is never refused.
func TestReadSubject(t *testing.T) {
	js := natstest.JetStream(t)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "LOG", Subjects: []string{"log.>"}, AllowDirect: true}); err != nil {
		t.Fatal(err)
	}
	// 600 messages on log.a (more than two pages), interleaved with log.b.
	for i := range 600 {
		if _, err := js.Publish(ctx, "log.a", fmt.Appendf(nil, "a%d", i)); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			if _, err := js.Publish(ctx, "log.b", fmt.Appendf(nil, "b%d", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	read := func(subject string, limit int, stopAt int) ([]string, uint64) {
		t.Helper()
		var got []string
		last, err := kvcas.ReadSubject(ctx, js, "LOG", subject, limit, func(m *jetstream.RawStreamMsg) bool {
			if m.Subject != subject {
				t.Fatalf("read %s, got a message of %s", subject, m.Subject)
			}
			got = append(got, string(m.Data))
			return len(got) != stopAt
		})
		if err != nil {
			t.Fatalf("read %s: %v", subject, err)
		}
		return got, last
	}
	got, last := read("log.a", 0, -1)
	if len(got) != 600 || got[0] != "a0" || got[599] != "a599" {
		t.Fatalf("read %d messages (%v…), want a0 … a599", len(got), got[:min(3, len(got))])
	}
	for i, b := range got {
		if b != fmt.Sprintf("a%d", i) {
			t.Fatalf("message %d is %s: out of order", i, b)
		}
	}
	if m, _ := kvcas.LastBySubject(ctx, js, "LOG", "log.a"); m == nil || m.Seq != last {
		t.Fatalf("last sequence read %d, the leader's last for the subject %+v", last, m)
	}
	if got, _ := read("log.a", 300, -1); len(got) != 300 {
		t.Fatalf("limit 300 read %d", len(got))
	}
	if got, _ := read("log.a", 0, 5); len(got) != 5 {
		t.Fatalf("fn stopping at 5 read %d", len(got))
	}
	if got, last := read("log.none", 0, -1); len(got) != 0 || last != 0 {
		t.Fatalf("an empty subject read %d messages, last %d", len(got), last)
	}
	for i := range 1200 {
		if got, _ := read("log.b", 0, -1); len(got) != 200 {
			t.Fatalf("read %d: %d messages of log.b, want 200", i, len(got))
		}
	}
	st, err := js.Stream(ctx, "LOG")
	if err != nil {
		t.Fatal(err)
	}
	if info, err := st.Info(ctx); err != nil || info.State.Consumers != 0 {
		t.Fatalf("after 1,205 reads the stream has %d consumers (%v), want none", info.State.Consumers, err)
	}
}
