package records_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	tspb "google.golang.org/protobuf/types/known/timestamppb"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"
	reportingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/reporting/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/reporting/internal/records"
)

type seeded struct {
	session   string
	startedAt time.Time // zero: SessionStarted not seen yet
	service   string
	channel   messagingv1.Channel
	ended     bool
}

// seed makes records through the handlers: twelve started sessions, three
// at a time sharing a start time, and two known only from distribution.
func seed(t *testing.T, s *records.Store) []seeded {
	t.Helper()
	ctx := context.Background()
	var out []seeded
	for i := range 12 {
		r := seeded{
			session:   fmt.Sprintf("ss_%02d", i),
			startedAt: t0.Add(time.Duration(i/3) * time.Minute),
			service:   []string{"sales", "support"}[i%2],
			channel:   []messagingv1.Channel{messagingv1.Channel_CHANNEL_SMS, messagingv1.Channel_CHANNEL_WHATSAPP}[i%3%2],
			ended:     i%4 == 0,
		}
		out = append(out, r)
		evs := []event{{subjects.SessionStarted("acme"), &sessionv1.SessionStarted{TenantId: "acme", SessionId: r.session, ServiceId: r.service,
			Conversation: &messagingv1.ConversationRef{Channel: r.channel}, StartedAt: tspb.New(r.startedAt)}}}
		if r.ended {
			evs = append(evs, event{subjects.SessionEnded("acme"), &sessionv1.SessionEnded{TenantId: "acme", SessionId: r.session, Outcome: sessionv1.Outcome_OUTCOME_NOT_HANDLED, EndedAt: tspb.New(r.startedAt.Add(time.Second))}})
		}
		for _, e := range evs {
			if err := apply(ctx, s, e); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, id := range []string{"ss_p1", "ss_p2"} {
		out = append(out, seeded{session: id})
		if err := apply(ctx, s, event{subjects.TaskQueued("acme"), &distributionv1.TaskQueued{TenantId: "acme", SessionId: id, QueuedAt: at(time.Hour)}}); err != nil {
			t.Fatal(err)
		}
	}
	// Another tenant's session, newest of all.
	if err := apply(ctx, s, event{subjects.SessionStarted("globex"), &sessionv1.SessionStarted{TenantId: "globex", SessionId: "ss_g", StartedAt: at(24 * time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	return out
}

// newestFirst orders like the API promises: newest start first, ties by
// id, sessions whose start is not known yet last.
func newestFirst(rs []seeded, keep func(seeded) bool) []string {
	var sel []seeded
	for _, r := range rs {
		if keep == nil || keep(r) {
			sel = append(sel, r)
		}
	}
	sort.Slice(sel, func(i, j int) bool {
		if !sel[i].startedAt.Equal(sel[j].startedAt) {
			return sel[i].startedAt.After(sel[j].startedAt)
		}
		return sel[i].session > sel[j].session
	})
	out := []string{}
	for _, r := range sel {
		out = append(out, r.session)
	}
	return out
}

// listAll pages through a listing and returns the session ids in order.
func listAll(t *testing.T, s *records.Store, f records.Filter, size int) []string {
	t.Helper()
	out := []string{}
	token := ""
	for page := 0; ; page++ {
		if page > 100 {
			t.Fatalf("paging does not end: %q", out)
		}
		recs, next, err := s.List(context.Background(), "acme", f, size, token)
		if err != nil {
			t.Fatalf("List page %d: %v", page, err)
		}
		if len(recs) > size {
			t.Fatalf("page %d has %d records, want at most %d", page, len(recs), size)
		}
		for _, r := range recs {
			out = append(out, r.GetSessionId())
		}
		if next == "" {
			return out
		}
		if len(recs) == 0 {
			t.Fatalf("page %d is empty but has a next token", page)
		}
		token = next
	}
}

func TestListPagesNewestFirst(t *testing.T) {
	s := newStore(t)
	rs := seed(t, s)
	for _, tc := range []struct {
		name string
		f    records.Filter
		keep func(seeded) bool
	}{
		{"all", records.Filter{}, nil},
		{"service", records.Filter{ServiceID: "sales"}, func(r seeded) bool { return r.service == "sales" }},
		{"channel", records.Filter{Channel: messagingv1.Channel_CHANNEL_WHATSAPP}, func(r seeded) bool { return r.channel == messagingv1.Channel_CHANNEL_WHATSAPP }},
		{"ended", records.Filter{State: reportingv1.SessionState_SESSION_STATE_ENDED}, func(r seeded) bool { return r.ended }},
		{"active", records.Filter{State: reportingv1.SessionState_SESSION_STATE_ACTIVE}, func(r seeded) bool { return !r.ended }},
		{"service and state", records.Filter{ServiceID: "support", State: reportingv1.SessionState_SESSION_STATE_ACTIVE}, func(r seeded) bool {
			return r.service == "support" && !r.ended
		}},
		{"nothing matches", records.Filter{ServiceID: "nope"}, func(seeded) bool { return false }},
	} {
		want := newestFirst(rs, tc.keep)
		for _, size := range []int{1, 2, 3, 5, len(want), 50} {
			if size == 0 {
				continue
			}
			t.Run(fmt.Sprintf("%s/size %d", tc.name, size), func(t *testing.T) {
				if got := listAll(t, s, tc.f, size); !slices.Equal(got, want) {
					t.Errorf("pages\n got  %q\n want %q", got, want)
				}
			})
		}
	}
}

func TestListIsStableWhileRecordsArrive(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	rs := seed(t, s)
	want := newestFirst(rs, nil)
	first, next, err := s.List(ctx, "acme", records.Filter{}, 4, "")
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, r := range first {
		got = append(got, r.GetSessionId())
	}
	// New sessions start while the analyst reads page one.
	for i, d := range []time.Duration{time.Hour, 2 * time.Hour} {
		e := event{subjects.SessionStarted("acme"), &sessionv1.SessionStarted{TenantId: "acme", SessionId: fmt.Sprintf("ss_new%d", i), StartedAt: at(d)}}
		if err := apply(ctx, s, e); err != nil {
			t.Fatal(err)
		}
	}
	for next != "" {
		var recs []*reportingv1.SessionRecord
		recs, next, err = s.List(ctx, "acme", records.Filter{}, 4, next)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			got = append(got, r.GetSessionId())
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("pages read while sessions arrived\n got  %q\n want %q", got, want)
	}
}

func TestListRejectsBadPageTokens(t *testing.T) {
	s := newStore(t)
	seed(t, s)
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, tok := range []string{"!!!", enc("not json"), enc(`{"t":"2026-03-01T09:00:00Z"}`), enc(`[]`)} {
		if _, _, err := s.List(context.Background(), "acme", records.Filter{}, 5, tok); !errors.Is(err, records.ErrBadPageToken) {
			t.Errorf("List with token %q: err = %v, want ErrBadPageToken", tok, err)
		}
	}
}

func TestGet(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	seed(t, s)
	if _, err := s.Get(ctx, "acme", "ss_missing"); !errors.Is(err, records.ErrNotFound) {
		t.Errorf("Get(missing) = %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, "acme", "ss_g"); !errors.Is(err, records.ErrNotFound) {
		t.Errorf("Get of another tenant's session = %v, want ErrNotFound", err)
	}
	r, err := s.Get(ctx, "acme", "ss_p1")
	if err != nil {
		t.Fatal(err)
	}
	if r.GetStartedAt() != nil || r.GetState() != reportingv1.SessionState_SESSION_STATE_ACTIVE || !r.GetQueuedAt().AsTime().Equal(t0.Add(time.Hour)) {
		t.Errorf("record known only from its queueing = %v, want active, queued, no start", r)
	}
}

func TestHandlersRejectBadEvents(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	msg := func(subject string, m proto.Message) *bus.Message {
		data, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return &bus.Message{Subject: subject, Data: data}
	}
	for _, tc := range []struct {
		name      string
		handle    bus.Handler
		m         *bus.Message
		permanent bool // else: nil, and nothing stored
	}{
		{"start without session", s.HandleSession, msg(subjects.SessionStarted("acme"), &sessionv1.SessionStarted{TenantId: "acme"}), true},
		{"start for another tenant", s.HandleSession, msg(subjects.SessionStarted("acme"), &sessionv1.SessionStarted{TenantId: "globex", SessionId: "ss_x"}), true},
		{"message without session", s.HandleSession, msg(subjects.SessionMessageAdded("acme"), &sessionv1.MessageAdded{TenantId: "acme", MessageId: "SM1"}), true},
		{"end for another tenant", s.HandleSession, msg(subjects.SessionEnded("acme"), &sessionv1.SessionEnded{TenantId: "globex", SessionId: "ss_x"}), true},
		{"undecodable session event", s.HandleSession, &bus.Message{Subject: subjects.SessionEnded("acme"), Data: []byte{0xff}}, true},
		{"offer without session", s.HandleDistribution, msg(subjects.TaskOffered("acme"), &distributionv1.TaskOffered{TenantId: "acme", OfferId: "of1"}), true},
		{"accept for another tenant", s.HandleDistribution, msg(subjects.TaskAccepted("acme"), &distributionv1.TaskAccepted{TenantId: "globex", SessionId: "ss_x"}), true},
		{"undecodable distribution event", s.HandleDistribution, &bus.Message{Subject: subjects.TaskQueued("acme"), Data: []byte{0xff}}, true},
		{"failed send for another tenant", s.HandleOutbound, msg(subjects.OutboundFailed("acme"), &outboundv1.OutboundMessageFailed{TenantId: "globex", SessionId: "ss_x", RequestId: "rq"}), true},
		{"failed send outside a session", s.HandleOutbound, msg(subjects.OutboundFailed("acme"), &outboundv1.OutboundMessageFailed{TenantId: "acme", RequestId: "rq"}), false},
		{"outbound sent", s.HandleOutbound, msg(subjects.OutboundSent("acme"), &outboundv1.OutboundMessageFailed{TenantId: "acme", SessionId: "ss_x"}), false},
		{"task canceled", s.HandleDistribution, msg(subjects.TaskCanceled("acme"), &distributionv1.TaskCanceled{TenantId: "acme", SessionId: "ss_x"}), false},
		{"subject outside the scheme", s.HandleSession, &bus.Message{Subject: "session.bogus", Data: nil}, false},
	} {
		err := tc.handle(ctx, tc.m)
		if tc.permanent {
			if !bus.IsPermanent(err) {
				t.Errorf("%s: err = %v, want permanent", tc.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: err = %v, want nil", tc.name, err)
		}
	}
	if recs, _, err := s.List(ctx, "acme", records.Filter{}, 50, ""); err != nil || len(recs) != 0 {
		t.Errorf("records after bad or ignored events: %v, %v; want none", recs, err)
	}
	if recs, _, err := s.List(ctx, "globex", records.Filter{}, 50, ""); err != nil || len(recs) != 0 {
		t.Errorf("globex records after events naming it on acme's subjects: %v, %v; want none", recs, err)
	}
}
