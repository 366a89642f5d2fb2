// Command report-bench measures reporting on embedded NATS and FerretDB,
// each figure next to a bare baseline from the same run:
//
//   - the record projection: session events applied per second by the
//     store's handlers from 16 lanes keyed by event (as the consumers run
//     them, a session's events merged in the writer), next to 16 lanes
//     keyed by session (one update per event, as before) and to bare
//     upserts of the same updates without group commit;
//
//   - the rollup writer: ended sessions rolled up per second by Run, from
//     the SESSION stream and the records;
//
//   - Summarize over a day, a month and a year with 1,000,000 sessions
//     rolled up (seeded through Store.Apply in batches, the writer's own
//     path), p50/p99 over the gRPC API, next to one bare find by _id;
//
//   - ExportSessions rows per second, next to a bare cursor over the same
//     records.
//
//     go run ./services/reporting/cmd/report-bench
//     go run ./services/reporting/cmd/report-bench -sessions 100000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	reportingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/reporting/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/pkg/mongodb"
	"github.com/switchboard-cc/switchboard/pkg/mongodb/ferret"
	"github.com/switchboard-cc/switchboard/pkg/natsembed"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/reporting/internal/grpcapi"
	"github.com/switchboard-cc/switchboard/services/reporting/internal/records"
	"github.com/switchboard-cc/switchboard/services/reporting/internal/rollup"
)

func main() {
	sessions := flag.Int("sessions", 1_000_000, "sessions rolled up for the Summarize figures (over one year)")
	live := flag.Int("live-sessions", 1000, "sessions whose events go through the projection and the rollup writer")
	messages := flag.Int("messages", 10, "messages per session in the projection")
	open := flag.Int("open", 4, "sessions whose events interleave in the stream (by-event projection)")
	exportRows := flag.Int("export", 50_000, "records exported")
	reps := flag.Int("reps", 50, "repetitions of each Summarize query")
	flag.Parse()
	if err := run(*sessions, *live, *open, *messages, *exportRows, *reps); err != nil {
		fmt.Fprintln(os.Stderr, "report-bench:", err)
		os.Exit(1)
	}
}

const tenant = "demo"

var (
	year     = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	services = []string{"sales", "support", "billing", "bookings"}
	channels = []messagingv1.Channel{messagingv1.Channel_CHANNEL_SMS, messagingv1.Channel_CHANNEL_WHATSAPP}
)

func run(nSessions, live, open, messages, exportRows, reps int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "report-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	log := slog.New(slog.DiscardHandler)
	ns, err := natsembed.Start(natsembed.Config{Port: -1, StoreDir: filepath.Join(dir, "nats")}, nil)
	if err != nil {
		return err
	}
	defer ns.Shutdown()
	fs, err := ferret.Start("127.0.0.1:0", filepath.Join(dir, "ferretdb"), log)
	if err != nil {
		return err
	}
	defer fs.Stop()
	b, err := bus.Connect(ns.ClientURL(), "report-bench", log)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := b.EnsureStreams(ctx, subjects.StreamOptions{}, subjects.StreamSession); err != nil {
		return err
	}
	mc, err := mongodb.Connect(ctx, fs.URI())
	if err != nil {
		return err
	}
	db := mc.Database("report_bench")
	recs, err := records.New(ctx, db)
	if err != nil {
		return err
	}
	defer recs.Close()

	// 1. The projection, the same sessions three times under other ids.
	gen := func(prefix string) ([][]event, []*sessionv1.SessionEnded, int) {
		r := rand.New(rand.NewPCG(1, 2))
		lives := make([][]event, live)
		ends := make([]*sessionv1.SessionEnded, live)
		total := 0
		for i := range lives {
			lives[i], ends[i] = lifeOf(r, fmt.Sprintf("%s%06d", prefix, i), year.Add(time.Duration(i)*time.Minute), messages)
			total += len(lives[i])
		}
		return lives, ends, total
	}
	lives, ends, total := gen("ss_")
	t0 := time.Now()
	if err := applyLanes(ctx, lives, func(ctx context.Context, e event) error { return e.apply(ctx, recs) }); err != nil {
		return err
	}
	bySession := time.Since(t0)
	opens := []int{open, 64}
	projection := make([]time.Duration, len(opens))
	for i, o := range opens {
		byEvent, _, _ := gen(fmt.Sprintf("ev%d_", o))
		t0 = time.Now()
		if err := applyInterleaved(ctx, byEvent, o, func(ctx context.Context, e event) error { return e.apply(ctx, recs) }); err != nil {
			return err
		}
		projection[i] = time.Since(t0)
	}
	bare := db.Collection("bare_upserts")
	t0 = time.Now()
	if err := applyLanes(ctx, lives, func(ctx context.Context, e event) error {
		_, err := bare.UpdateOne(ctx, bson.M{"_id": tenant + "/" + e.session}, bson.M{"$addToSet": bson.M{"events": e.id}}, options.UpdateOne().SetUpsert(true))
		return err
	}); err != nil {
		return err
	}
	bareTime := time.Since(t0)

	// 2. The rollup writer over those sessions.
	var last uint64
	for _, end := range ends {
		ack, err := b.Publish(ctx, subjects.SessionEnded(tenant), end)
		if err != nil {
			return err
		}
		last = ack.Sequence
	}
	liveRollups := rollup.New(mc.Database("report_bench_live"), nil)
	rctx, cancel := context.WithCancel(ctx)
	reached := make(chan struct{})
	var once sync.Once
	t0 = time.Now()
	go func() {
		_ = liveRollups.Run(rctx, b.JS, recs, rollup.RunOptions{Delay: -1, OnApplied: func(c uint64) {
			if c >= last {
				once.Do(func() { close(reached) })
			}
		}}, log)
	}()
	select {
	case <-reached:
	case <-time.After(10 * time.Minute):
		cancel()
		return errors.New("the rollup writer did not finish")
	}
	rollupTime := time.Since(t0)
	cancel()

	fmt.Printf("%-66s %12s\n", fmt.Sprintf("writes (projection: %d events of %d sessions)", total, live), "per second")
	for i, o := range opens {
		fmt.Printf("%-66s %12.0f\n", fmt.Sprintf("projection: 16 lanes by event, merged, %d sessions interleaved", o), float64(total)/projection[i].Seconds())
	}
	fmt.Printf("%-66s %12.0f\n", "  before: 16 lanes by session, one update per event, group commit", float64(total)/bySession.Seconds())
	fmt.Printf("%-66s %12.0f\n", "  baseline: bare upserts, 16 lanes by session, no group commit", float64(total)/bareTime.Seconds())
	fmt.Printf("%-66s %12.0f\n", fmt.Sprintf("rollup writer: %d ended sessions (Run, batches of 256)", live), float64(live)/rollupTime.Seconds())

	// 3. A year of rollups seeded through Apply.
	zurich, _ := time.LoadLocation("Europe/Zurich")
	ny, _ := time.LoadLocation("America/New_York")
	rs := rollup.New(db, []*time.Location{zurich})
	r := rand.New(rand.NewPCG(3, 4))
	fmt.Printf("\nseeding %d sessions over 2025 through rollup.Store.Apply (UTC and Europe/Zurich days and months)\n", nSessions)
	t0 = time.Now()
	const batchSize = 20_000
	step := (365 * 24 * time.Hour) / time.Duration(nSessions)
	for start := 0; start < nSessions; start += batchSize {
		batch := make([]rollup.Session, 0, batchSize)
		for i := start; i < min(start+batchSize, nSessions); i++ {
			batch = append(batch, synthetic(r, uint64(i+1), year.Add(time.Duration(i)*step)))
		}
		if err := rs.Apply(ctx, batch); err != nil {
			return err
		}
		if (start/batchSize)%10 == 0 {
			fmt.Printf("  %d sessions (%v)\n", start+len(batch), time.Since(t0).Round(time.Second))
		}
	}
	seedTime := time.Since(t0)
	fmt.Printf("seeded in %v: %.0f sessions/s\n\n", seedTime.Round(time.Second), float64(nSessions)/seedTime.Seconds())

	// The API in process.
	keys, err := authn.NewKeys([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		return err
	}
	srv := grpcserver.New(log, keys)
	reportingv1.RegisterReportingServiceServer(srv.Server, &grpcapi.Server{Records: recs, Rollups: rs, JS: b.JS})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = srv.Serve(sctx, lis) }()
	tok, err := keys.Mint(authn.Claims{Tenant: tenant, Roles: []string{authn.RoleAnalyst}, RegisteredClaims: jwt.RegisteredClaims{Subject: "bench"}}, time.Hour)
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(grpcserver.BearerToken(tok)))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := reportingv1.NewReportingServiceClient(conn)

	fmt.Printf("%-66s %6s %5s %8s %8s\n", fmt.Sprintf("Summarize, cold (%d sessions in 2025)", nSessions), "docs", "rows", "p50", "p99")
	agents := []string{"service", "agent"}
	for _, q := range []struct {
		name     string
		from, to time.Time
		tz       string
		by       []string
		bucket   string
	}{
		{"one day (UTC), by service and agent", time.Date(2025, 6, 10, 0, 0, 0, 0, time.UTC), time.Date(2025, 6, 11, 0, 0, 0, 0, time.UTC), "", agents, ""},
		{"one day (UTC), by hour", time.Date(2025, 6, 10, 0, 0, 0, 0, time.UTC), time.Date(2025, 6, 11, 0, 0, 0, 0, time.UTC), "", []string{"bucket"}, "hour"},
		{"one month (UTC), by service and agent", time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC), "", agents, ""},
		{"one month (UTC), by day", time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC), "", []string{"bucket"}, "day"},
		{"one year (UTC), by service and agent", year, year.AddDate(1, 0, 0), "", agents, ""},
		{"one year (UTC), by month and service", year, year.AddDate(1, 0, 0), "", []string{"bucket", "service"}, "month"},
		{"one year (Europe/Zurich, stored), by month", time.Date(2025, 1, 1, 0, 0, 0, 0, zurich), time.Date(2026, 1, 1, 0, 0, 0, 0, zurich), "Europe/Zurich", []string{"bucket"}, "month"},
		{"one month (America/New_York, from hours), by day", time.Date(2025, 6, 1, 0, 0, 0, 0, ny), time.Date(2025, 7, 1, 0, 0, 0, 0, ny), "America/New_York", []string{"bucket"}, "day"},
		{"one year (America/New_York, from hours and days), by month", time.Date(2025, 1, 1, 0, 0, 0, 0, ny), time.Date(2026, 1, 1, 0, 0, 0, 0, ny), "America/New_York", []string{"bucket"}, "month"},
	} {
		var lat []time.Duration
		var docs, rows int
		n := reps
		if q.tz == "America/New_York" && q.bucket == "month" {
			n = max(reps/5, 3)
		}
		for range n {
			rs.ClearCache() // cold: every document read from the database
			t0 := time.Now()
			res, err := client.Summarize(ctx, &reportingv1.SummarizeRequest{TenantId: tenant, From: timestamppb.New(q.from), To: timestamppb.New(q.to),
				TimeZone: q.tz, GroupBy: q.by, Bucket: q.bucket, PageSize: 5000})
			if err != nil {
				return fmt.Errorf("%s: %w", q.name, err)
			}
			lat = append(lat, time.Since(t0))
			docs, rows = int(res.GetDocumentsRead()), len(res.GetRows())
		}
		p50, p99 := pcts(lat)
		fmt.Printf("%-66s %6d %5d %8s %8s\n", q.name, docs, rows, ms(p50), ms(p99))
	}
	// Warm: the same query again within rollup.CacheTTL (a dashboard).
	for _, q := range []struct {
		name     string
		from, to time.Time
		by       []string
		bucket   string
	}{
		{"  warm (cached): one month (UTC), by day", time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC), []string{"bucket"}, "day"},
		{"  warm (cached): one year (UTC), by service and agent", year, year.AddDate(1, 0, 0), agents, ""},
	} {
		var lat []time.Duration
		var docs, rows int
		for range reps {
			t0 := time.Now()
			res, err := client.Summarize(ctx, &reportingv1.SummarizeRequest{TenantId: tenant, From: timestamppb.New(q.from), To: timestamppb.New(q.to),
				GroupBy: q.by, Bucket: q.bucket, PageSize: 5000})
			if err != nil {
				return fmt.Errorf("%s: %w", q.name, err)
			}
			lat = append(lat, time.Since(t0))
			docs, rows = int(res.GetDocumentsRead()), len(res.GetRows())
		}
		p50, p99 := pcts(lat)
		fmt.Printf("%-66s %6d %5d %8s %8s\n", q.name, docs, rows, ms(p50), ms(p99))
	}
	var lat []time.Duration
	for range reps {
		t0 := time.Now()
		var d bson.Raw
		if err := db.Collection("rollups").FindOne(ctx, bson.M{"_id": rollup.DocID(tenant, rollup.GMonth, time.UTC, time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC))}).Decode(&d); err != nil {
			return err
		}
		lat = append(lat, time.Since(t0))
	}
	p50, p99 := pcts(lat)
	fmt.Printf("%-66s %6d %5s %8s %8s\n", "  baseline: one bare find by _id of a month document", 1, "", ms(p50), ms(p99))
	fmt.Println("target: Summarize p99 < 100 ms for a day, a month and a year (UTC or a stored zone)")

	// 4. Export.
	coll := db.Collection("sessions")
	var batch []any
	day := time.Date(2025, 9, 1, 0, 0, 0, 0, time.UTC)
	for i := range exportRows {
		at := day.Add(time.Duration(i) * time.Second)
		batch = append(batch, records.Doc{ID: fmt.Sprintf("%s/ex_%07d", tenant, i), Tenant: tenant, SessionID: fmt.Sprintf("ex_%07d", i),
			ServiceID: services[i%4], EntryID: "entry-1", Channel: int32(channels[i%2]), Customer: "+41790000000", Business: "+41440000000",
			State: 2, Outcome: 1, AgentID: fmt.Sprintf("agent-%02d", i%40), StartedAt: at, QueuedAt: at.Add(5 * time.Second),
			AcceptedAt: at.Add(20 * time.Second), EndedAt: at.Add(5 * time.Minute), Inbound: []string{"m1", "m2"}, Outbound: []string{"o1"}})
		if len(batch) == 1000 || i == exportRows-1 {
			if _, err := coll.InsertMany(ctx, batch); err != nil {
				return err
			}
			batch = nil
		}
	}
	end := day.Add(time.Duration(exportRows) * time.Second)
	bareExport := func() (int, time.Duration, error) {
		t0 := time.Now()
		cur, err := coll.Find(ctx, bson.M{"tenant": tenant, "started_at": bson.M{"$gte": day, "$lt": end}},
			options.Find().SetSort(bson.D{{Key: "started_at", Value: 1}, {Key: "_id", Value: 1}}).SetBatchSize(1000))
		if err != nil {
			return 0, 0, err
		}
		got := 0
		for cur.Next(ctx) {
			got++
		}
		return got, time.Since(t0), cur.Err()
	}
	// Once unmeasured, so the first measured read does not pay for a cold
	// database.
	if _, _, err := bareExport(); err != nil {
		return err
	}
	fmt.Printf("\n%-66s %12s\n", fmt.Sprintf("export (%d records in range, %d stored)", exportRows, exportRows+live), "rows/s")
	for _, f := range []reportingv1.ExportFormat{reportingv1.ExportFormat_EXPORT_FORMAT_CSV, reportingv1.ExportFormat_EXPORT_FORMAT_NDJSON} {
		t0 := time.Now()
		stream, err := client.ExportSessions(ctx, &reportingv1.ExportSessionsRequest{TenantId: tenant, From: timestamppb.New(day), To: timestamppb.New(end), Format: f})
		if err != nil {
			return err
		}
		got := 0
		for {
			chunk, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
			got += int(chunk.GetRows())
		}
		if got != exportRows {
			return fmt.Errorf("export: %d rows, want %d", got, exportRows)
		}
		fmt.Printf("%-66s %12.0f\n", "ExportSessions "+f.String(), float64(got)/time.Since(t0).Seconds())
	}
	got, took, err := bareExport()
	if err != nil {
		return err
	}
	fmt.Printf("%-66s %12.0f\n", "  baseline: bare sorted cursor over the same records", float64(got)/took.Seconds())
	return nil
}

type event struct {
	session, id, subject string
	msg                  proto.Message
}

func (e event) apply(ctx context.Context, s *records.Store) error {
	data, err := proto.Marshal(e.msg)
	if err != nil {
		return err
	}
	m := &bus.Message{Subject: e.subject, Data: data, Delivered: 1}
	if m.Kind() == subjects.KindTaskQueued || m.Kind() == subjects.KindTaskAccepted {
		return s.HandleDistribution(ctx, m)
	}
	return s.HandleSession(ctx, m)
}

func lifeOf(r *rand.Rand, session string, at time.Time, messages int) ([]event, *sessionv1.SessionEnded) {
	ts := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(at.Add(d)) }
	service := services[r.IntN(len(services))]
	agent := fmt.Sprintf("agent-%02d", r.IntN(40))
	evs := []event{
		{session, "start", subjects.SessionStarted(tenant), &sessionv1.SessionStarted{TenantId: tenant, SessionId: session, ServiceId: service,
			Conversation: &messagingv1.ConversationRef{Channel: channels[r.IntN(2)]}, StartedAt: ts(0)}},
		{session, "queued", subjects.TaskQueued(tenant), &distributionv1.TaskQueued{TenantId: tenant, SessionId: session, QueuedAt: ts(10 * time.Second)}},
		{session, "accepted", subjects.TaskAccepted(tenant), &distributionv1.TaskAccepted{TenantId: tenant, SessionId: session, AgentId: agent, AcceptedAt: ts(30 * time.Second)}},
	}
	for i := range messages {
		dir, sender := sessionv1.Direction_DIRECTION_INBOUND, sessionv1.SenderKind_SENDER_KIND_CUSTOMER
		if i%2 == 1 {
			dir, sender = sessionv1.Direction_DIRECTION_OUTBOUND, sessionv1.SenderKind_SENDER_KIND_AGENT
		}
		id := fmt.Sprintf("m%d", i)
		evs = append(evs, event{session, id, subjects.SessionMessageAdded(tenant), &sessionv1.MessageAdded{TenantId: tenant, SessionId: session,
			MessageId: id, Direction: dir, Sender: sender, AgentId: agent, OccurredAt: ts(time.Duration(30+i*20) * time.Second)}})
	}
	end := &sessionv1.SessionEnded{TenantId: tenant, SessionId: session, AgentId: agent, ServiceId: service, Outcome: sessionv1.Outcome_OUTCOME_HANDLED,
		EndedAt: ts(time.Duration(60+messages*20) * time.Second)}
	evs = append(evs, event{session, "end", subjects.SessionEnded(tenant), end})
	return evs, end
}

// applyInterleaved applies the events in stream order, open sessions
// interleaved (round robin), 16 events at once whatever their session (as
// ConsumeKeyed with records.EventKey).
func applyInterleaved(ctx context.Context, lives [][]event, open int, apply func(context.Context, event) error) error {
	var order []event
	for w := 0; w < len(lives); w += open {
		window := lives[w:min(w+open, len(lives))]
		for i := 0; ; i++ {
			more := false
			for _, l := range window {
				if i < len(l) {
					order = append(order, l[i])
					more = true
				}
			}
			if !more {
				break
			}
		}
	}
	var next atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for range 16 {
		g.Go(func() error {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(order) {
					return nil
				}
				if err := apply(gctx, order[i]); err != nil {
					return err
				}
			}
		})
	}
	return g.Wait()
}

// applyLanes applies each session's events in order, 16 sessions at once.
func applyLanes(ctx context.Context, lives [][]event, apply func(context.Context, event) error) error {
	var next atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for range 16 {
		g.Go(func() error {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(lives) {
					return nil
				}
				for _, e := range lives[i] {
					if err := apply(gctx, e); err != nil {
						return err
					}
				}
			}
		})
	}
	return g.Wait()
}

// synthetic is one session of a 40-agent contact center: four services,
// two channels, most handled, some abandoned in queue or not handled.
func synthetic(r *rand.Rand, seq uint64, at time.Time) rollup.Session {
	si := r.IntN(len(services))
	ch := channels[r.IntN(2)]
	d := &records.Doc{Tenant: tenant, SessionID: fmt.Sprint("s", seq), ServiceID: services[si], EntryID: services[si] + "-" + ch.String(),
		Channel: int32(ch), StartedAt: at, Inbound: make([]string, 1+r.IntN(8)), Outbound: make([]string, r.IntN(8))}
	ev := &sessionv1.SessionEnded{TenantId: tenant, SessionId: d.SessionID}
	switch x := r.IntN(20); {
	case x == 0:
		ev.Outcome = sessionv1.Outcome_OUTCOME_NOT_HANDLED
	case x == 1:
		ev.Outcome = sessionv1.Outcome_OUTCOME_FAILED
	default:
		d.QueuedAt = at.Add(time.Duration(5+r.IntN(60)) * time.Second)
		if x == 2 {
			ev.Outcome = sessionv1.Outcome_OUTCOME_ABANDONED
			break
		}
		agent := fmt.Sprintf("agent-%02d", si*10+r.IntN(10))
		d.AgentID, d.AcceptedAt = agent, d.QueuedAt.Add(time.Duration(r.ExpFloat64()*30_000)*time.Millisecond)
		d.FirstReplyAt = d.AcceptedAt.Add(time.Duration(r.ExpFloat64()*20_000) * time.Millisecond)
		if r.IntN(10) == 0 {
			d.DeclinedBy = []records.AgentOffer{{Agent: fmt.Sprintf("agent-%02d", si*10+r.IntN(10)), Offer: "o1"}}
			d.Declines = []string{"o1"}
		}
		ev.AgentId, ev.Outcome = agent, sessionv1.Outcome_OUTCOME_HANDLED
	}
	ev.EndedAt = timestamppb.New(at.Add(time.Duration(60+r.IntN(900)) * time.Second))
	return rollup.FromRecord(seq, d, ev)
}

func pcts(d []time.Duration) (time.Duration, time.Duration) {
	slices.Sort(d)
	return d[len(d)/2], d[min(len(d)*99/100, len(d)-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }
