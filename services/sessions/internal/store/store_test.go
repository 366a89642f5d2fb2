package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-cc/switchboard/pkg/mongodb/mongotest"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/sessions/internal/store"
)

func TestMain(m *testing.M) { os.Exit(mongotest.Main(m)) }

func newStore(t *testing.T) *store.Store {
	t.Helper()
	st, _, _ := newStoreBus(t)
	return st
}

func TestTranscriptFoldsMessagesAndStatuses(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	msg := func(id, dir string, at time.Duration) *store.Message {
		m := &store.Message{Tenant: "acme", ID: id, Direction: dir, Sender: "customer", Body: "body " + id, At: t0.Add(at)}
		if dir == "outbound" {
			m.Sender, m.Status = "agent", "pending"
		}
		return m
	}
	for _, m := range []*store.Message{msg("in1", "inbound", 0), msg("out1", "outbound", 2*time.Second), msg("in2", "inbound", time.Second)} {
		added, err := st.AddMessage(ctx, "ss1", m)
		if err != nil || !added {
			t.Fatalf("AddMessage(%s) = %v, %v", m.ID, added, err)
		}
	}
	// A redelivered message is not added twice.
	if added, err := st.AddMessage(ctx, "ss1", msg("in1", "inbound", 0)); err != nil || added {
		t.Errorf("AddMessage(in1 again) = %v, %v; want not added", added, err)
	}
	if added, err := st.AddMessage(ctx, "ss1", msg("out1", "outbound", 2*time.Second)); err != nil || added {
		t.Errorf("AddMessage(out1 again) = %v, %v; want not added", added, err)
	}
	// Statuses move forward only.
	for _, s := range []struct {
		status  string
		changed bool
	}{{"sent", true}, {"delivered", true}, {"sent", false}, {"read", true}, {"delivered", false}} {
		changed, err := st.UpdateStatus(ctx, "acme", "ss1", "out1", s.status, 0, "", "SMxyz", "")
		if err != nil || changed != s.changed {
			t.Errorf("UpdateStatus(%s) = %v, %v; want changed %v", s.status, changed, err, s.changed)
		}
	}
	got, err := st.Transcript(ctx, "acme", "ss1")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range got {
		ids = append(ids, m.ID)
	}
	if fmt.Sprint(ids) != "[in1 in2 out1]" {
		t.Fatalf("transcript = %v, want [in1 in2 out1] (by time, each once)", ids)
	}
	if out := got[2]; out.Status != "read" || out.TwilioSID != "SMxyz" {
		t.Errorf("out1 status %q sid %q, want read SMxyz", out.Status, out.TwilioSID)
	}
	if other, _ := st.Transcript(ctx, "acme", "ss2"); len(other) != 0 {
		t.Errorf("another session's transcript has %d messages", len(other))
	}
	if other, _ := st.Transcript(ctx, "beta", "ss1"); len(other) != 0 {
		t.Errorf("another tenant's session ss1 has %d messages", len(other))
	}
	// The customer's message can still be looked up (a resend refuses it).
	if m, err := st.Message(ctx, "acme", "ss1", "in2"); err != nil || m.Direction != "inbound" {
		t.Errorf("Message(in2) = %v, %v", m, err)
	}
}

// Transcripts are read as often as agents accept, reload and monitor
// chats: every read is answered however many came before, and none leaves
// a consumer on the stream (each used to, for minutes, until the stream's
// limit of 1,000 refused every read and assignments were dead-lettered).
func TestTranscriptReadsLeaveNoConsumer(t *testing.T) {
	st, b, _ := newStoreBus(t)
	ctx := context.Background()
	for i := range 3 {
		m := &store.Message{Tenant: "acme", ID: fmt.Sprintf("in%d", i), Direction: "inbound", Sender: "customer", Body: "hi", At: time.Now()}
		if _, err := st.AddMessage(ctx, "ss1", m); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 1100 {
		got, err := st.Transcript(ctx, "acme", "ss1")
		if err != nil || len(got) != 3 {
			t.Fatalf("read %d: %d messages, %v; want 3", i+1, len(got), err)
		}
	}
	stream, err := b.JS.Stream(ctx, subjects.StreamTranscript)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := stream.Info(ctx); err != nil || info.State.Consumers != 0 {
		t.Fatalf("after 1,100 reads the stream has %d consumers (%v), want none", info.State.Consumers, err)
	}
}

// Assignments and ends race on different consumers; the agent's list keeps
// every one of them (compare-and-set, no lost update).
func TestAgentSessionsUnderConcurrentChanges(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	const n = 24
	for i := range n {
		s := &store.Session{Tenant: "acme", ID: fmt.Sprintf("ss%02d", i), State: store.StateActive, StartedAt: time.Now().Add(time.Duration(i) * time.Second)}
		if err := st.CreateSession(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := st.Assign(ctx, "acme", fmt.Sprintf("ss%02d", i), "alice", fmt.Sprintf("t%d", i), time.Now()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	// Every other session ends; half of those have their end announced
	// (ReleaseAgent), the others stay listed as unannounced.
	for i := 0; i < n; i += 2 {
		wg.Go(func() {
			id := fmt.Sprintf("ss%02d", i)
			if _, err := st.End(ctx, "acme", id, "OUTCOME_HANDLED", "done", time.Now()); err != nil {
				t.Error(err)
			}
			if i%4 == 0 {
				if err := st.ReleaseAgent(ctx, "acme", "alice", id); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	desk, err := st.AgentSessions(ctx, "acme", "alice")
	if err != nil {
		t.Fatal(err)
	}
	got, unannounced := desk.Active, desk.Unannounced
	ids := func(ss []*store.Session) []string {
		var out []string
		for _, s := range ss {
			out = append(out, s.ID)
		}
		slices.Sort(out)
		return out
	}
	var want, wantUnannounced, wantEnded []string
	for i := 1; i < n; i += 2 {
		want = append(want, fmt.Sprintf("ss%02d", i))
	}
	for i := 2; i < n; i += 4 {
		wantUnannounced = append(wantUnannounced, fmt.Sprintf("ss%02d", i))
	}
	for i := 0; i < n; i += 4 {
		wantEnded = append(wantEnded, fmt.Sprintf("ss%02d", i))
	}
	// The announced ends stay on alice's desk as ended chats until she
	// dismisses them.
	if fmt.Sprint(ids(desk.Ended)) != fmt.Sprint(wantEnded) {
		t.Errorf("alice's ended chats = %v, want %v", ids(desk.Ended), wantEnded)
	}
	if err := st.DismissEnded(ctx, "acme", "alice", "ss04"); err != nil {
		t.Fatal(err)
	}
	if d, _ := st.AgentSessions(ctx, "acme", "alice"); slices.ContainsFunc(d.Ended, func(s *store.Session) bool { return s.ID == "ss04" }) || len(d.Ended) != len(wantEnded)-1 {
		t.Errorf("after dismissing ss04, alice's ended chats = %v", ids(d.Ended))
	}
	if fmt.Sprint(ids(got)) != fmt.Sprint(want) {
		t.Errorf("alice's sessions = %v, want %v", ids(got), want)
	}
	if fmt.Sprint(ids(unannounced)) != fmt.Sprint(wantUnannounced) {
		t.Errorf("alice's unannounced ends = %v, want %v", ids(unannounced), wantUnannounced)
	}
	if other, _ := st.AgentSessions(ctx, "beta", "alice"); len(other.Active)+len(other.Ended) != 0 {
		t.Errorf("beta's alice has %d sessions", len(other.Active)+len(other.Ended))
	}
	// Ending twice, or assigning an ended session, changes nothing.
	if ended, err := st.End(ctx, "acme", "ss00", "OUTCOME_HANDLED", "again", time.Now()); err != nil || ended {
		t.Errorf("End(ended) = %v, %v", ended, err)
	}
	if err := st.Assign(ctx, "acme", "ss00", "bob", "t99", time.Now()); err != nil {
		t.Fatal(err)
	}
	if bob, _ := st.AgentSessions(ctx, "acme", "bob"); len(bob.Active) != 0 {
		t.Errorf("an ended session was assigned to bob: %v", ids(bob.Active))
	}
}

// A conversation's pointer released (its session ended) between a claim's
// duplicate insert and its read must not make the claim return "": the
// caller would open a session with an empty id. One replica ends and
// claims the conversation again and again while another claims it.
func TestClaimActiveNeverReturnsEmpty(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	const rounds = 200
	var wg sync.WaitGroup
	errs := make(chan error, 2*rounds)
	for r := range 2 {
		wg.Go(func() {
			for i := range rounds {
				id, err := st.ClaimActive(ctx, "t1", "sms:+15550001", fmt.Sprintf("ss_%d_%d", r, i))
				if err != nil {
					errs <- err
					continue
				}
				if id == "" {
					errs <- fmt.Errorf("round %d of claimer %d: ClaimActive returned no session id", i, r)
					continue
				}
				if err := st.ReleaseActive(ctx, "t1", "sms:+15550001", id); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if _, err := st.OpenSession(ctx, &store.Session{Tenant: "t1"}); err == nil {
		t.Error("OpenSession of a session without an id succeeded")
	}
}

// An offer recorded before the assignment sets the service and the
// parameters; one handled after it (a late or redelivered event) writes
// nothing, so it cannot write back the document as it was before the
// assignment.
func TestSetOfferedLeavesAnAssignedSessionAlone(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	s := &store.Session{Tenant: "acme", ID: "so1", State: store.StateActive, StartedAt: time.Now()}
	if err := st.CreateSession(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := st.SetOffered(ctx, "acme", "so1", "Support", map[string]string{"name": "Ann"}); err != nil {
		t.Fatal(err)
	}
	if err := st.Assign(ctx, "acme", "so1", "alice", "t1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := st.SetOffered(ctx, "acme", "so1", "Sales", map[string]string{"name": "Bob"}); err != nil {
		t.Fatal(err)
	}
	got, err := st.Session(ctx, "acme", "so1")
	if err != nil {
		t.Fatal(err)
	}
	if got.AgentID != "alice" || got.ServiceName != "Support" || got.Parameters["name"] != "Ann" {
		t.Errorf("session = agent %q, service %q, parameters %v; want alice's, Support, Ann", got.AgentID, got.ServiceName, got.Parameters)
	}
}

// A claim moved off an ended session lands in one place however many
// deliveries move it at once, each to the target it found: every mover
// learns the first one's target, a later mover off the same session learns
// where the claim is now, and the claim moves on again from there.
func TestMoveInboundMoversAgree(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	if _, err := st.MoveInbound(ctx, "acme", "SMnever", "ss_a", "ss_b"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("moving a message never claimed: %v, want ErrNotFound", err)
	}
	if _, err := st.ClaimInbound(ctx, "acme", "SM1", "ss_a"); err != nil {
		t.Fatal(err)
	}
	const movers = 8
	got := make([]string, movers)
	var wg sync.WaitGroup
	for i := range movers {
		wg.Go(func() {
			in, err := st.MoveInbound(ctx, "acme", "SM1", "ss_a", fmt.Sprintf("ss_b%d", i))
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = in.SessionID
		})
	}
	wg.Wait()
	winner := got[0]
	for i, g := range got {
		if g != winner {
			t.Fatalf("mover %d found the claim at %s, mover 0 at %s: %v", i, g, winner, got)
		}
	}
	if in, err := st.InboundSeen(ctx, "acme", "SM1"); err != nil || in.SessionID != winner {
		t.Fatalf("the claim names %+v (%v), want %s", in, err, winner)
	}
	if in, err := st.MoveInbound(ctx, "acme", "SM1", "ss_a", "ss_c"); err != nil || in.SessionID != winner {
		t.Fatalf("a late move off ss_a: %+v, %v; want the claim where it is, %s", in, err, winner)
	}
	if in, err := st.MoveInbound(ctx, "acme", "SM1", winner, "ss_d"); err != nil || in.SessionID != "ss_d" {
		t.Fatalf("moving on from %s: %+v, %v; want ss_d", winner, in, err)
	}
	// A late move off the second session learns where the claim is now.
	if in, err := st.MoveInbound(ctx, "acme", "SM1", winner, "ss_e"); err != nil || in.SessionID != "ss_d" {
		t.Fatalf("a second move off %s: %+v, %v; want ss_d", winner, in, err)
	}
	if err := st.InboundDone(ctx, "acme", "SM1"); err != nil {
		t.Fatal(err)
	}
	if in, err := st.InboundSeen(ctx, "acme", "SM1"); err != nil || !in.Done || in.SessionID != "ss_d" {
		t.Fatalf("after done: %+v, %v", in, err)
	}
}
