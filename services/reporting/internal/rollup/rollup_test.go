package rollup_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/mongodb/mongotest"
	"github.com/switchboard-cc/switchboard/pkg/natsembed/natstest"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/reporting/internal/records"
	"github.com/switchboard-cc/switchboard/services/reporting/internal/rollup"
)

func TestMain(m *testing.M) { os.Exit(mongotest.Main(m)) }

type event struct {
	subject string
	msg     proto.Message
}

func apply(ctx context.Context, s *records.Store, e event) error {
	data, err := proto.Marshal(e.msg)
	if err != nil {
		return err
	}
	m := &bus.Message{Subject: e.subject, Data: data, Delivered: 1}
	switch {
	case strings.HasPrefix(e.subject, subjects.DomainSession+"."):
		return s.HandleSession(ctx, m)
	case strings.HasPrefix(e.subject, subjects.DomainOutbound+"."):
		return s.HandleOutbound(ctx, m)
	}
	return s.HandleDistribution(ctx, m)
}

// randomSession is one session's events but its end, and its end.
func randomSession(r *rand.Rand, tenant, id string, base time.Time, span time.Duration) ([]event, *sessionv1.SessionEnded) {
	ts := func(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }
	start := base.Add(time.Duration(r.Int64N(int64(span)))).Truncate(time.Millisecond)
	service := []string{"sales", "support"}[r.IntN(2)]
	ch := []messagingv1.Channel{messagingv1.Channel_CHANNEL_SMS, messagingv1.Channel_CHANNEL_WHATSAPP}[r.IntN(2)]
	evs := []event{{subjects.SessionStarted(tenant), &sessionv1.SessionStarted{TenantId: tenant, SessionId: id, ServiceId: service,
		EntryId: "e-" + ch.String(), Conversation: &messagingv1.ConversationRef{Channel: ch}, StartedAt: ts(start)}}}
	for i := range r.IntN(4) {
		evs = append(evs, event{subjects.SessionMessageAdded(tenant), &sessionv1.MessageAdded{TenantId: tenant, SessionId: id,
			MessageId: fmt.Sprintf("in%d", i), Direction: sessionv1.Direction_DIRECTION_INBOUND, OccurredAt: ts(start), NumSegments: int32(1 + i%3)}})
	}
	end := start.Add(time.Duration(r.IntN(60)) * time.Second)
	outcome := sessionv1.Outcome_OUTCOME_NOT_HANDLED
	agent := ""
	if r.IntN(5) > 0 { // queued
		queued := start.Add(time.Duration(r.IntN(120_000)) * time.Millisecond)
		evs = append(evs, event{subjects.TaskQueued(tenant), &distributionv1.TaskQueued{TenantId: tenant, SessionId: id, QueuedAt: ts(queued)}})
		end = queued.Add(time.Duration(r.IntN(300)) * time.Second)
		agents := []string{"ann", "bob", "cyd"}
		for i := range r.IntN(3) {
			a := agents[r.IntN(3)]
			if r.IntN(2) == 0 {
				evs = append(evs, event{subjects.TaskDeclined(tenant), &distributionv1.TaskDeclined{TenantId: tenant, SessionId: id, AgentId: a, OfferId: fmt.Sprintf("of%d", i)}})
			} else {
				evs = append(evs, event{subjects.TaskOfferTimedOut(tenant), &distributionv1.TaskOfferTimedOut{TenantId: tenant, SessionId: id, AgentId: a, OfferId: fmt.Sprintf("of%d", i)}})
			}
		}
		if r.IntN(4) > 0 { // answered
			agent = agents[r.IntN(3)]
			accepted := queued.Add(time.Duration(r.IntN(90_000)) * time.Millisecond)
			evs = append(evs, event{subjects.TaskAccepted(tenant), &distributionv1.TaskAccepted{TenantId: tenant, SessionId: id, AgentId: agent, AcceptedAt: ts(accepted)}})
			reply := accepted.Add(time.Duration(r.IntN(40_000)) * time.Millisecond)
			evs = append(evs, event{subjects.SessionMessageAdded(tenant), &sessionv1.MessageAdded{TenantId: tenant, SessionId: id, MessageId: "out0",
				Direction: sessionv1.Direction_DIRECTION_OUTBOUND, Sender: sessionv1.SenderKind_SENDER_KIND_AGENT, AgentId: agent, OccurredAt: ts(reply)}})
			evs = append(evs, event{subjects.OutboundSent(tenant), &outboundv1.OutboundMessageSent{TenantId: tenant, SessionId: id, RequestId: "out0", NumSegments: int32(1 + len(id)%4)}})
			end = reply.Add(time.Duration(r.IntN(600)) * time.Second)
			outcome = sessionv1.Outcome_OUTCOME_HANDLED
		} else if r.IntN(2) == 0 {
			outcome = sessionv1.Outcome_OUTCOME_ABANDONED
		}
	}
	// The end carries the transcript's count, as sessions sends it.
	counts := &sessionv1.MessageCounts{}
	for _, e := range evs {
		if m, ok := e.msg.(*sessionv1.MessageAdded); ok {
			if m.GetDirection() == sessionv1.Direction_DIRECTION_INBOUND {
				counts.Inbound++
				counts.SegmentsIn += int64(m.GetNumSegments())
			} else {
				counts.Outbound++
			}
		}
	}
	return evs, &sessionv1.SessionEnded{TenantId: tenant, SessionId: id, Outcome: outcome, AgentId: agent, ServiceId: service, EndedAt: ts(end), Messages: counts}
}

// expected is a recompute from raw records, kept apart from the rollup
// code: per day (UTC), service, agent and outcome.
type expKey struct {
	day            string
	service, agent string
	outcome        int32
}

type expRow struct {
	sessions, queued, answered, abandoned, in, out, declines, ronas int64
	segIn, segOut                                                   int64
	waitN, waitSum, handleN, handleSum, replyN                      int64
}

func recompute(recs []*records.Doc, ends map[string]*sessionv1.SessionEnded) map[expKey]*expRow {
	out := map[expKey]*expRow{}
	row := func(k expKey) *expRow {
		if out[k] == nil {
			out[k] = &expRow{}
		}
		return out[k]
	}
	for _, d := range recs {
		ev := ends[d.SessionID]
		k := expKey{d.StartedAt.UTC().Format("2006-01-02"), d.ServiceID, ev.GetAgentId(), int32(ev.GetOutcome())}
		e := row(k)
		e.sessions++
		// The end's count of the transcript (records.FromEnd), as the
		// rollup takes it.
		n := records.FromEnd(ev)
		e.in, e.out, e.segIn = e.in+n.In, e.out+n.Out, e.segIn+n.SegIn
		for _, m := range d.SegmentsOut {
			e.segOut += int64(m.Segments)
		}
		if !d.QueuedAt.IsZero() {
			e.queued++
			if d.AcceptedAt.IsZero() {
				e.abandoned++
			} else {
				e.answered++
				e.waitN++
				e.waitSum += d.AcceptedAt.Sub(d.QueuedAt).Milliseconds()
				e.handleN++
				e.handleSum += ev.GetEndedAt().AsTime().Sub(d.AcceptedAt).Milliseconds()
			}
		}
		if !d.FirstReplyAt.IsZero() && !d.AcceptedAt.IsZero() {
			e.replyN++
		}
		for _, x := range d.DeclinedBy {
			row(expKey{k.day, d.ServiceID, x.Agent, k.outcome}).declines++
		}
		for _, x := range d.RonaBy {
			row(expKey{k.day, d.ServiceID, x.Agent, k.outcome}).ronas++
		}
	}
	return out
}

// Rollups equal a recompute from the records over random sessions whose
// events are applied shuffled and redelivered, whose ends are in the
// stream twice for some, and whose rolling up is interrupted: batches
// written before a crash (cursor not moved), restarts from the cursor.
func TestRollupsEqualRecomputeUnderRedeliveryAndRestarts(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { rollupProperty(t, seed) })
	}
}

func rollupProperty(t *testing.T, seed uint64) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(seed, 42))
	log := slog.New(slog.DiscardHandler)
	ns := natstest.Start(t)
	b, err := bus.Connect(ns.ClientURL(), t.Name(), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if err := b.EnsureStreams(ctx, subjects.StreamOptions{}, subjects.StreamSession); err != nil {
		t.Fatal(err)
	}
	db := mongotest.Database(t)
	recs, err := records.New(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(recs.Close)
	rs := rollup.New(db, nil)

	// Sessions over three days around midnight UTC.
	base := time.Date(2026, 3, 1, 20, 0, 0, 0, time.UTC)
	var all []event
	ends := map[string]*sessionv1.SessionEnded{}
	var endOrder []*sessionv1.SessionEnded
	n := 30 + r.IntN(20)
	for i := range n {
		id := fmt.Sprintf("ss_%d", i)
		evs, end := randomSession(r, "acme", id, base, 8*time.Hour)
		all = append(all, evs...)
		all = append(all, event{subjects.SessionEnded("acme"), end})
		ends[id] = end
		endOrder = append(endOrder, end)
	}
	// Shuffled, a third redelivered.
	for _, e := range all {
		if r.IntN(3) == 0 {
			all = append(all, e)
		}
	}
	r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	for _, e := range all {
		if err := apply(ctx, recs, e); err != nil {
			t.Fatal(err)
		}
	}
	// The ends in the stream, some twice (as if published again after
	// the duplicate window).
	var seqs []uint64
	for _, end := range endOrder {
		copies := 1 + boolInt(r.IntN(4) == 0)
		for c := range copies {
			ack, err := b.Publish(ctx, subjects.SessionEnded("acme"), end, bus.MsgID(fmt.Sprintf("%s/end/%d", end.GetSessionId(), c)))
			if err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, ack.Sequence)
		}
	}
	last := seqs[len(seqs)-1]

	// A crash after a batch was written and before the cursor moved: the
	// first sessions are in the documents, the cursor is still 0.
	var pre []rollup.Session
	for _, end := range endOrder[:n/3] {
		d, err := recs.Raw(ctx, "acme", end.GetSessionId())
		if err != nil {
			t.Fatal(err)
		}
		pre = append(pre, rollup.FromRecord(seqOf(t, b, end.GetSessionId()), d, end))
	}
	if err := rs.Apply(ctx, pre); err != nil {
		t.Fatal(err)
	}
	// Then runs stopped at random points, each restarting from the cursor.
	for run := 0; ; run++ {
		stopAt := seqs[r.IntN(len(seqs))]
		if run >= 3 {
			stopAt = last
		}
		rctx, cancel := context.WithCancel(ctx)
		reached := make(chan struct{})
		var once sync.Once
		opts := rollup.RunOptions{Delay: -1, Batch: 1 + r.IntN(7), OnApplied: func(c uint64) {
			if c >= stopAt {
				once.Do(func() { close(reached) })
			}
		}}
		// The last run has a second writer (another replica) beside it:
		// the lease lets one of them write.
		writers := []*rollup.Store{rs}
		if stopAt == last {
			writers = append(writers, rollup.New(db, nil))
		}
		done := make(chan error, len(writers))
		for _, w := range writers {
			go func() { done <- w.Run(rctx, b.JS, recs, opts, log) }()
		}
		cur, err := rs.Cursor(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if cur < stopAt {
			select {
			case <-reached:
			case <-time.After(time.Minute):
				t.Fatalf("run %d: cursor did not reach %d", run, stopAt)
			}
		}
		cancel()
		for range writers {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		if stopAt == last {
			break
		}
	}

	var docs []*records.Doc
	for id := range ends {
		d, err := recs.Raw(ctx, "acme", id)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, d)
	}
	want := recompute(docs, ends)
	// Read by a replica that wrote nothing (no cached documents).
	groups, _, err := rollup.New(db, nil).Summarize(ctx, rollup.Query{Tenant: "acme", From: base.Add(-24 * time.Hour), To: base.Add(72 * time.Hour),
		GroupBy: []string{rollup.DimBucket, rollup.DimService, rollup.DimAgent, rollup.DimOutcome}, Bucket: rollup.GDay})
	if err != nil {
		t.Fatal(err)
	}
	got := map[expKey]*expRow{}
	for _, g := range groups {
		c := g.C
		got[expKey{g.BucketStart.Format("2006-01-02"), g.Service, g.Agent, g.Outcome}] = &expRow{
			sessions: c[rollup.Sessions], queued: c[rollup.Queued], answered: c[rollup.Answered], abandoned: c[rollup.AbandonedInQueue],
			in: c[rollup.InboundMessages], out: c[rollup.OutboundMessages], declines: c[rollup.Declines], ronas: c[rollup.Ronas],
			waitN: g.H[rollup.HWait].Count(), waitSum: c[rollup.WaitSumMS], handleN: g.H[rollup.HHandle].Count(), handleSum: c[rollup.HandleSumMS],
			replyN: g.H[rollup.HReply].Count(), segIn: c[rollup.SegmentsIn], segOut: c[rollup.SegmentsOut],
		}
	}
	keys := map[expKey]bool{}
	for k := range want {
		keys[k] = true
	}
	for k := range got {
		keys[k] = true
	}
	var total int64
	for k := range keys {
		w, g := want[k], got[k]
		if w == nil {
			w = &expRow{}
		}
		if g == nil {
			g = &expRow{}
		}
		if *w != *g {
			t.Errorf("%+v: got %+v, want %+v", k, *g, *w)
		}
		total += g.sessions
	}
	if total != int64(n) {
		t.Errorf("sessions: got %d, want %d", total, n)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// seqOf is the stream sequence of a session's first SessionEnded.
func seqOf(t *testing.T, b *bus.Bus, session string) uint64 {
	t.Helper()
	st, err := b.JS.Stream(context.Background(), subjects.StreamSession)
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); ; seq++ {
		m, err := st.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatalf("no end of %s: %v", session, err)
		}
		var ev sessionv1.SessionEnded
		if proto.Unmarshal(m.Data, &ev) == nil && ev.GetSessionId() == session {
			return seq
		}
	}
}

// session makes a contribution of one handled session started at at.
func session(seq uint64, at time.Time, agent string, wait time.Duration) rollup.Session {
	d := &records.Doc{Tenant: "acme", SessionID: fmt.Sprint("s", seq), ServiceID: "sales", StartedAt: at, QueuedAt: at,
		AcceptedAt: at.Add(wait), AgentID: agent}
	return rollup.FromRecord(seq, d, &sessionv1.SessionEnded{TenantId: "acme", SessionId: d.SessionID, AgentId: agent,
		Outcome: sessionv1.Outcome_OUTCOME_HANDLED, EndedAt: timestamppb.New(at.Add(wait + time.Minute))})
}

func counts(t *testing.T, rs *rollup.Store, q rollup.Query) (map[string]int64, int) {
	t.Helper()
	groups, read, err := rs.Summarize(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, g := range groups {
		out[g.BucketStart.In(q.Loc).Format("2006-01-02T15:04")] += g.C[rollup.Sessions]
	}
	return out, read
}

// Buckets follow the query's time zone, across midnight and DST changes,
// whether the zone has its own day and month documents (Zurich here) or
// is made of UTC hours and quarters (New York, Kolkata).
func TestSummaryAcrossZonesAndDST(t *testing.T) {
	ctx := context.Background()
	zurich, _ := time.LoadLocation("Europe/Zurich")
	ny, _ := time.LoadLocation("America/New_York")
	kolkata, _ := time.LoadLocation("Asia/Kolkata")
	rs := rollup.New(mongotest.Database(t), []*time.Location{zurich})
	// New York moves to summer time on 8 March 2026 at 02:00 (a 23-hour
	// day), Zurich on 29 March at 02:00.
	times := []time.Time{
		time.Date(2026, 3, 7, 23, 59, 0, 0, ny), // 7 March, NY
		time.Date(2026, 3, 8, 0, 1, 0, 0, ny),   // 8 March, NY
		time.Date(2026, 3, 8, 1, 59, 0, 0, ny),  // 8 March before the change
		time.Date(2026, 3, 8, 3, 0, 0, 0, ny),   // 8 March after it
		time.Date(2026, 3, 8, 23, 30, 0, 0, ny), // 8 March, last hour
		time.Date(2026, 3, 9, 0, 0, 0, 0, ny),   // 9 March
		time.Date(2026, 3, 29, 1, 59, 0, 0, zurich),
		time.Date(2026, 3, 29, 3, 0, 0, 0, zurich),
		time.Date(2026, 3, 31, 23, 59, 0, 0, zurich), // March in Zurich, April in UTC
		time.Date(2026, 4, 1, 0, 0, 0, 0, zurich),
	}
	var batch []rollup.Session
	for i, at := range times {
		batch = append(batch, session(uint64(i+1), at, "ann", 15*time.Second))
	}
	if err := rs.Apply(ctx, batch); err != nil {
		t.Fatal(err)
	}

	// New York days across the change.
	got, _ := counts(t, rs, rollup.Query{Tenant: "acme", Loc: ny, From: time.Date(2026, 3, 7, 0, 0, 0, 0, ny),
		To: time.Date(2026, 3, 10, 0, 0, 0, 0, ny), GroupBy: []string{rollup.DimBucket}, Bucket: rollup.GDay})
	want := map[string]int64{"2026-03-07T00:00": 1, "2026-03-08T00:00": 4, "2026-03-09T00:00": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("New York days: got %v, want %v", got, want)
	}
	// Hours of the 23-hour day: 01:00 then 03:00.
	got, _ = counts(t, rs, rollup.Query{Tenant: "acme", Loc: ny, From: time.Date(2026, 3, 8, 0, 0, 0, 0, ny),
		To: time.Date(2026, 3, 9, 0, 0, 0, 0, ny), GroupBy: []string{rollup.DimBucket}, Bucket: rollup.GHour})
	want = map[string]int64{"2026-03-08T00:00": 1, "2026-03-08T01:00": 1, "2026-03-08T03:00": 1, "2026-03-08T23:00": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("New York hours: got %v, want %v", got, want)
	}
	// Zurich months from its own documents: the end of March is March.
	got, read := counts(t, rs, rollup.Query{Tenant: "acme", Loc: zurich, From: time.Date(2026, 1, 1, 0, 0, 0, 0, zurich),
		To: time.Date(2027, 1, 1, 0, 0, 0, 0, zurich), GroupBy: []string{rollup.DimBucket}, Bucket: rollup.GMonth})
	want = map[string]int64{"2026-03-01T00:00": 9, "2026-04-01T00:00": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Zurich months: got %v, want %v", got, want)
	}
	if read != 12 {
		t.Errorf("a year by month in Zurich read %d documents, want 12", read)
	}
	// UTC months: the last two Zurich sessions are 31 March in UTC.
	got, _ = counts(t, rs, rollup.Query{Tenant: "acme", Loc: time.UTC, From: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		To: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), GroupBy: []string{rollup.DimBucket}, Bucket: rollup.GMonth})
	want = map[string]int64{"2026-03-01T00:00": 10}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("UTC months: got %v, want %v", got, want)
	}
	// Kolkata (+05:30): its days are made of UTC hours and quarters.
	got, _ = counts(t, rs, rollup.Query{Tenant: "acme", Loc: kolkata, From: time.Date(2026, 3, 8, 0, 0, 0, 0, kolkata),
		To: time.Date(2026, 3, 10, 0, 0, 0, 0, kolkata), GroupBy: []string{rollup.DimBucket}, Bucket: rollup.GDay})
	want = map[string]int64{}
	for _, at := range times {
		l := at.In(kolkata)
		if !l.Before(time.Date(2026, 3, 8, 0, 0, 0, 0, kolkata)) && l.Before(time.Date(2026, 3, 10, 0, 0, 0, 0, kolkata)) {
			want[l.Format("2006-01-02")+"T00:00"]++
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Kolkata days: got %v, want %v", got, want)
	}
	// The same sessions again (a replay) change nothing.
	if err := rs.Apply(ctx, batch); err != nil {
		t.Fatal(err)
	}
	got, _ = counts(t, rs, rollup.Query{Tenant: "acme", Loc: time.UTC, From: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		To: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)})
	if got["0001-01-01T00:00"] != 10 {
		t.Errorf("after a replay: got %v, want 10 sessions", got)
	}
	// A new session shows at once in the writer's process, though the
	// documents were just read (and cached).
	if err := rs.Apply(ctx, []rollup.Session{session(100, times[0], "bob", time.Second)}); err != nil {
		t.Fatal(err)
	}
	got, _ = counts(t, rs, rollup.Query{Tenant: "acme", Loc: time.UTC, From: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		To: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)})
	if got["0001-01-01T00:00"] != 11 {
		t.Errorf("after a new session: got %v, want 11 sessions", got)
	}
}

// Percentiles from the histogram are within 5% of the exact ones.
func TestHistogramError(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h rollup.Hist
	var vals []int64
	for range 20000 {
		v := int64(1000 + r.ExpFloat64()*60000)
		vals = append(vals, v)
		h.AddN(v, 1)
	}
	sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
	for _, q := range []float64{0.5, 0.9, 0.99} {
		exact := float64(vals[int(math.Ceil(q*float64(len(vals))))-1])
		got := float64(h.Quantile(q).Milliseconds())
		if e := math.Abs(got-exact) / exact; e > math.Sqrt(rollup.Gamma)-1+0.001 {
			t.Errorf("p%v: got %v ms, exact %v ms, error %.3f", q*100, got, exact, e)
		}
	}
	// Merging halves equals the whole.
	var a, b rollup.Hist
	for i, v := range vals {
		if i%2 == 0 {
			a.AddN(v, 1)
		} else {
			b.AddN(v, 1)
		}
	}
	a.Merge(&b)
	if a.Count() != h.Count() || a.Quantile(0.9) != h.Quantile(0.9) {
		t.Errorf("merged halves differ from the whole")
	}
}

// Bad queries are refused with what was wrong.
func TestQueryValidation(t *testing.T) {
	from := time.Date(2026, 3, 1, 0, 7, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		q    rollup.Query
		want string
	}{
		{"unknown dimension", rollup.Query{From: from, To: from.Add(time.Hour), GroupBy: []string{"colour"}}, `unknown dimension "colour"`},
		{"unknown bucket", rollup.Query{From: from, To: from.Add(time.Hour), Bucket: "week"}, `unknown bucket "week"`},
		{"inverted", rollup.Query{From: from, To: from.Add(-time.Hour)}, "is not before"},
		{"too long", rollup.Query{From: from, To: from.Add(367 * 24 * time.Hour)}, "longer than 366 days"},
		{"missing", rollup.Query{From: from}, "required"},
	} {
		err := c.q.Normalize()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error with %q", c.name, err, c.want)
		}
	}
	q := rollup.Query{From: from, To: from.Add(time.Minute)}
	if err := q.Normalize(); err != nil {
		t.Fatal(err)
	}
	if !q.From.Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) || !q.To.Equal(time.Date(2026, 3, 1, 0, 15, 0, 0, time.UTC)) {
		t.Errorf("rounded to %s..%s, want 00:00..00:15", q.From, q.To)
	}
}
