package grpcapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	reportingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/reporting/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/pkg/mongodb/mongotest"
	"github.com/switchboard-cc/switchboard/pkg/natsembed/natstest"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/reporting/internal/grpcapi"
	"github.com/switchboard-cc/switchboard/services/reporting/internal/records"
	"github.com/switchboard-cc/switchboard/services/reporting/internal/rollup"
)

var day = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

// startReports serves the whole API over real NATS and the database:
// acme's ss_1 (handled by ann, with a transcript) and ss_2 (bob's), and
// rollups of five sessions on 2 March.
func startReports(t *testing.T) *harness {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	keys, err := authn.NewKeys([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	ns := natstest.Start(t)
	b, err := bus.Connect(ns.ClientURL(), t.Name(), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if err := b.EnsureStreams(ctx, subjects.StreamOptions{}, subjects.StreamTranscript); err != nil {
		t.Fatal(err)
	}
	db := mongotest.Database(t)
	st, err := records.New(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	for i, s := range []struct{ session, agent string }{{"ss_1", "ann"}, {"ss_2", "bob"}, {"ss_3", ""}} {
		at := timestamppb.New(day.Add(time.Duration(9+i) * time.Hour))
		for _, ev := range []struct {
			subject string
			msg     proto.Message
		}{
			{subjects.SessionStarted("acme"), &sessionv1.SessionStarted{TenantId: "acme", SessionId: s.session, ServiceId: "sales",
				Conversation: &messagingv1.ConversationRef{Channel: messagingv1.Channel_CHANNEL_SMS, CustomerAddress: "+15550100"}, StartedAt: at}},
			{subjects.TaskAccepted("acme"), &distributionv1.TaskAccepted{TenantId: "acme", SessionId: s.session, AgentId: s.agent, AcceptedAt: at}},
		} {
			if s.agent == "" && ev.subject == subjects.TaskAccepted("acme") {
				continue
			}
			data, _ := proto.Marshal(ev.msg)
			m := &bus.Message{Subject: ev.subject, Data: data}
			if strings.HasPrefix(ev.subject, "session.") {
				err = st.HandleSession(ctx, m)
			} else {
				err = st.HandleDistribution(ctx, m)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	// ss_1's transcript as the sessions service writes it.
	for i, e := range []string{
		`{"k":"m","m":{"Key":"acme/ss_1/m1","ID":"m1","Direction":"inbound","Sender":"customer","Body":"hello","At":"2026-03-02T09:00:01Z"}}`,
		`{"k":"m","m":{"Key":"acme/ss_1/m2","ID":"m2","Direction":"outbound","Sender":"agent","AgentID":"ann","Body":"hi, how can I help?","At":"2026-03-02T09:00:05Z","Status":"queued","StatusRank":2}}`,
		`{"k":"s","s":{"id":"m2","status":"delivered"}}`,
		`{"k":"s","s":{"id":"m2","status":"sent"}}`,
	} {
		msg := nats.NewMsg(subjects.Transcript("acme", "ss_1"))
		msg.Data = []byte(e)
		msg.Header.Set(nats.MsgIdHdr, fmt.Sprint("e", i))
		if _, err := b.JS.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	rs := rollup.New(db, nil)
	var batch []rollup.Session
	for i, c := range []struct {
		agent   string
		wait    time.Duration
		outcome sessionv1.Outcome
	}{
		{"ann", 5 * time.Second, sessionv1.Outcome_OUTCOME_HANDLED},
		{"ann", 15 * time.Second, sessionv1.Outcome_OUTCOME_HANDLED},
		{"bob", 25 * time.Second, sessionv1.Outcome_OUTCOME_HANDLED},
		{"bob", 100 * time.Second, sessionv1.Outcome_OUTCOME_HANDLED},
		{"", 0, sessionv1.Outcome_OUTCOME_ABANDONED},
	} {
		at := day.Add(time.Duration(10+i) * time.Hour)
		d := &records.Doc{Tenant: "acme", SessionID: fmt.Sprint("r", i), ServiceID: "sales", StartedAt: at, QueuedAt: at}
		if c.agent != "" {
			d.AgentID, d.AcceptedAt = c.agent, at.Add(c.wait)
		}
		batch = append(batch, rollup.FromRecord(uint64(i+1), d, &sessionv1.SessionEnded{TenantId: "acme", SessionId: d.SessionID,
			AgentId: c.agent, Outcome: c.outcome, EndedAt: timestamppb.New(at.Add(c.wait + time.Minute))}))
	}
	if err := rs.Apply(ctx, batch); err != nil {
		t.Fatal(err)
	}

	srv := grpcserver.New(log, keys)
	// The clock stands at 20:00 on the day of the rollups (WatchToday).
	now := func() time.Time { return day.Add(20 * time.Hour) }
	reportingv1.RegisterReportingServiceServer(srv.Server, &grpcapi.Server{Records: st, Rollups: rs, JS: b.JS, Now: now})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &harness{keys: keys, addr: lis.Addr().String(), rollups: rs}
}

func dayQuery() *reportingv1.SummarizeRequest {
	return &reportingv1.SummarizeRequest{TenantId: "acme", From: timestamppb.New(day), To: timestamppb.New(day.Add(24 * time.Hour))}
}

func TestSummarizeFigures(t *testing.T) {
	h := startReports(t)
	c := h.client(t, h.token(t, "acme", "ana", authn.RoleAnalyst))
	ctx := context.Background()
	res, err := c.Summarize(ctx, dayQuery())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.GetRows()) != 1 {
		t.Fatalf("got %d rows, want 1", len(res.GetRows()))
	}
	r := res.GetRows()[0]
	if r.GetSessions() != 5 || r.GetHandled() != 4 || r.GetAbandoned() != 1 || r.GetQueued() != 5 || r.GetAnswered() != 4 || r.GetAbandonedInQueue() != 1 {
		t.Errorf("counts: got %v", r)
	}
	// Two of five queued answered within 20 s (exact), three within 30 s.
	if r.GetServiceLevel() != 0.4 || !r.GetServiceLevelExact() {
		t.Errorf("service level at 20 s: got %v (exact %v), want 0.4", r.GetServiceLevel(), r.GetServiceLevelExact())
	}
	if r.GetAbandonmentRate() != 0.2 {
		t.Errorf("abandonment: got %v, want 0.2", r.GetAbandonmentRate())
	}
	if got := r.GetWait().GetAverage().AsDuration(); got != 36250*time.Millisecond {
		t.Errorf("average wait: got %v, want 36.25s", got)
	}
	if p50 := r.GetWait().GetP50().AsDuration(); p50 < 14250*time.Millisecond || p50 > 15750*time.Millisecond {
		t.Errorf("p50 wait: got %v, want 15s within 5%%", p50)
	}
	// 25 s is not a stored threshold: interpolated, between 2 and 3 of 5.
	q := dayQuery()
	q.ServiceLevelSeconds = 25
	res, err = c.Summarize(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if sl := res.GetRows()[0].GetServiceLevel(); sl < 0.4 || sl > 0.6 || res.GetRows()[0].GetServiceLevelExact() {
		t.Errorf("service level at 25 s: got %v, want an estimate in 0.4..0.6", sl)
	}
	// Agent metrics: one row per agent, in order, with the unanswered
	// session's row (no agent) first.
	q = dayQuery()
	q.GroupBy = []string{"agent"}
	res, err = c.Summarize(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range res.GetRows() {
		got = append(got, fmt.Sprintf("%q:%d/%v", r.GetAgentId(), r.GetHandled(), r.GetHandle().GetAverage().AsDuration()))
	}
	if want := `"":0/0s "ann":2/1m0s "bob":2/1m0s`; strings.Join(got, " ") != want {
		t.Errorf("by agent: got %s, want %s", strings.Join(got, " "), want)
	}
	// Paged by hour, the token bound to its query.
	q = dayQuery()
	q.GroupBy, q.Bucket, q.PageSize = []string{"bucket"}, "hour", 2
	var hours []string
	for {
		res, err = c.Summarize(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res.GetRows() {
			hours = append(hours, r.GetBucketStart().AsTime().Format("15"))
		}
		if res.GetNextPageToken() == "" {
			break
		}
		q.PageToken = res.GetNextPageToken()
	}
	if strings.Join(hours, ",") != "10,11,12,13,14" {
		t.Errorf("hours paged: got %v", hours)
	}
}

func TestSummarizeRefusals(t *testing.T) {
	h := startReports(t)
	ctx := context.Background()
	for _, c := range []struct {
		who   string
		token string
		want  codes.Code
	}{
		{"supervisor", h.token(t, "acme", "sue", authn.RoleSupervisor), codes.OK},
		{"admin", h.token(t, "acme", "al", authn.RoleAdmin), codes.OK},
		{"analyst", h.token(t, "acme", "ana", authn.RoleAnalyst), codes.OK},
		{"agent", h.token(t, "acme", "ann", authn.RoleAgent), codes.PermissionDenied},
		{"another tenant's analyst", h.token(t, "globex", "gus", authn.RoleAnalyst), codes.PermissionDenied},
		{"no token", "", codes.Unauthenticated},
	} {
		_, err := h.client(t, c.token).Summarize(ctx, dayQuery())
		if status.Code(err) != c.want {
			t.Errorf("%s: got %v, want %v", c.who, err, c.want)
		}
		stream, err := h.client(t, c.token).ExportSessions(ctx, &reportingv1.ExportSessionsRequest{TenantId: "acme", From: timestamppb.New(day), To: timestamppb.New(day.Add(time.Hour))})
		if err == nil {
			_, err = stream.Recv()
			if errors.Is(err, io.EOF) {
				err = nil
			}
		}
		if status.Code(err) != c.want {
			t.Errorf("%s export: got %v, want %v", c.who, err, c.want)
		}
	}

	c := h.client(t, h.token(t, "acme", "ana", authn.RoleAnalyst))
	other := dayQuery()
	other.GroupBy, other.PageSize = []string{"bucket"}, 1
	other.Bucket = "hour"
	first, err := c.Summarize(ctx, other)
	if err != nil || first.GetNextPageToken() == "" {
		t.Fatalf("first page: %v, token %q", err, first.GetNextPageToken())
	}
	for _, bad := range []struct {
		name string
		edit func(*reportingv1.SummarizeRequest)
		want string
	}{
		{"unknown dimension", func(r *reportingv1.SummarizeRequest) { r.GroupBy = []string{"service", "colour"} }, `unknown dimension "colour"`},
		{"inverted range", func(r *reportingv1.SummarizeRequest) { r.From, r.To = r.To, r.From }, "is not before"},
		{"too long", func(r *reportingv1.SummarizeRequest) { r.To = timestamppb.New(day.Add(400 * 24 * time.Hour)) }, "longer than 366 days"},
		{"no range", func(r *reportingv1.SummarizeRequest) { r.From = nil }, "from and to are required"},
		{"bad bucket", func(r *reportingv1.SummarizeRequest) { r.GroupBy, r.Bucket = []string{"bucket"}, "week" }, `unknown bucket "week"`},
		{"bad time zone", func(r *reportingv1.SummarizeRequest) { r.TimeZone = "Mars/Olympus" }, "not an IANA time zone"},
		{"bad service level", func(r *reportingv1.SummarizeRequest) { r.ServiceLevelSeconds = -1 }, "service_level_seconds"},
		{"another query's token", func(r *reportingv1.SummarizeRequest) { r.PageToken = first.GetNextPageToken() }, "another query"},
		{"garbage token", func(r *reportingv1.SummarizeRequest) { r.PageToken = "!!" }, "page_token is invalid"},
	} {
		r := dayQuery()
		bad.edit(r)
		_, err := c.Summarize(ctx, r)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), bad.want) {
			t.Errorf("%s: got %v, want InvalidArgument with %q", bad.name, err, bad.want)
		}
	}
}

func TestTranscriptAccess(t *testing.T) {
	h := startReports(t)
	ctx := context.Background()
	get := func(token, session string) (*reportingv1.GetTranscriptResponse, error) {
		return h.client(t, token).GetTranscript(ctx, &reportingv1.GetTranscriptRequest{TenantId: "acme", SessionId: session})
	}
	for _, c := range []struct {
		who, session string
		token        string
		want         codes.Code
	}{
		{"ann her own chat", "ss_1", h.token(t, "acme", "ann", authn.RoleAgent), codes.OK},
		{"bob ann's chat", "ss_1", h.token(t, "acme", "bob", authn.RoleAgent), codes.NotFound},
		{"ann a chat nobody accepted", "ss_3", h.token(t, "acme", "ann", authn.RoleAgent), codes.NotFound},
		{"ann a chat that does not exist", "ss_9", h.token(t, "acme", "ann", authn.RoleAgent), codes.NotFound},
		{"a supervisor", "ss_1", h.token(t, "acme", "sue", authn.RoleSupervisor), codes.OK},
		{"an analyst", "ss_2", h.token(t, "acme", "ana", authn.RoleAnalyst), codes.OK},
		{"an admin", "ss_1", h.token(t, "acme", "al", authn.RoleAdmin), codes.OK},
		{"another tenant's supervisor", "ss_1", h.token(t, "globex", "gus", authn.RoleSupervisor), codes.PermissionDenied},
		{"another tenant's agent named ann", "ss_1", h.token(t, "globex", "ann", authn.RoleAgent), codes.PermissionDenied},
	} {
		res, err := get(c.token, c.session)
		if status.Code(err) != c.want {
			t.Errorf("%s: got %v, want %v", c.who, err, c.want)
			continue
		}
		if c.want == codes.OK && c.session == "ss_1" {
			var got []string
			for _, m := range res.GetMessages() {
				got = append(got, m.GetMessageId()+":"+m.GetSender()+":"+m.GetStatus())
			}
			if want := "m1:customer: m2:agent:delivered"; strings.Join(got, " ") != want {
				t.Errorf("%s: got %v, want %s", c.who, got, want)
			}
		}
	}
}

func TestExportSessions(t *testing.T) {
	h := startReports(t)
	c := h.client(t, h.token(t, "acme", "sue", authn.RoleSupervisor))
	ctx := context.Background()
	read := func(f reportingv1.ExportFormat, from, to time.Time) (string, int) {
		t.Helper()
		stream, err := c.ExportSessions(ctx, &reportingv1.ExportSessionsRequest{TenantId: "acme", From: timestamppb.New(from), To: timestamppb.New(to), Format: f})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		rows := 0
		for {
			chunk, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return buf.String(), rows
			}
			if err != nil {
				t.Fatal(err)
			}
			buf.Write(chunk.GetData())
			rows += int(chunk.GetRows())
		}
	}
	out, rows := read(reportingv1.ExportFormat_EXPORT_FORMAT_CSV, day, day.Add(24*time.Hour))
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if rows != 3 || len(lines) != 4 || !strings.HasPrefix(lines[0], "session_id,service_id") || !strings.HasPrefix(lines[1], "ss_1,sales") || !strings.HasPrefix(lines[3], "ss_3,") {
		t.Errorf("CSV: %d rows\n%s", rows, out)
	}
	// Started from 10:00: ss_2 and ss_3, one JSON object a line.
	out, rows = read(reportingv1.ExportFormat_EXPORT_FORMAT_NDJSON, day.Add(10*time.Hour), day.Add(24*time.Hour))
	sc := bufio.NewScanner(strings.NewReader(out))
	var ids []string
	for sc.Scan() {
		var obj map[string]any
		if err := json.Unmarshal(sc.Bytes(), &obj); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		ids = append(ids, fmt.Sprint(obj["session_id"], "/", obj["agent_id"]))
	}
	if rows != 2 || strings.Join(ids, " ") != "ss_2/bob ss_3/<nil>" {
		t.Errorf("NDJSON: %d rows, %v\n%s", rows, ids, out)
	}
	stream, err := c.ExportSessions(ctx, &reportingv1.ExportSessionsRequest{TenantId: "acme", From: timestamppb.New(day), To: timestamppb.New(day)})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("empty range: got %v, want InvalidArgument", err)
	}
}

// WatchToday: the day so far at once (the five sessions of startReports,
// by agent), a new answer when a session ends, nothing for an agent, and
// clear errors for a bad interval or a bucket.
func TestWatchToday(t *testing.T) {
	h := startReports(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := h.client(t, h.token(t, "acme", "sue", authn.RoleSupervisor))
	stream, err := c.WatchToday(ctx, &reportingv1.WatchTodayRequest{TenantId: "acme", TimeZone: "UTC", GroupBy: []string{"agent"},
		Interval: durationpb.New(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	handled := func(res *reportingv1.WatchTodayResponse) map[string]int64 {
		out := map[string]int64{}
		for _, r := range res.GetSummary().GetRows() {
			out[r.GetAgentId()] = r.GetSessions()
		}
		return out
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got := handled(first); got["ann"] != 2 || got["bob"] != 2 || got[""] != 1 {
		t.Fatalf("today by agent = %v, want ann 2, bob 2, none 1", got)
	}
	if !first.GetDayStart().AsTime().Equal(day) || !first.GetAt().AsTime().Equal(day.Add(20*time.Hour)) {
		t.Fatalf("day start %v at %v, want %v at 20:00", first.GetDayStart().AsTime(), first.GetAt().AsTime(), day)
	}
	// Another of ann's sessions ends: the next answer counts it.
	at := day.Add(16 * time.Hour)
	d := &records.Doc{Tenant: "acme", SessionID: "r9", ServiceID: "sales", StartedAt: at, QueuedAt: at, AgentID: "ann", AcceptedAt: at.Add(time.Second)}
	if err := h.rollups.Apply(ctx, []rollup.Session{rollup.FromRecord(99, d, &sessionv1.SessionEnded{TenantId: "acme", SessionId: "r9",
		AgentId: "ann", Outcome: sessionv1.Outcome_OUTCOME_HANDLED, EndedAt: timestamppb.New(at.Add(time.Minute))})}); err != nil {
		t.Fatal(err)
	}
	next, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got := handled(next); got["ann"] != 3 {
		t.Fatalf("after ann's third session, today by agent = %v", got)
	}

	for name, tc := range map[string]struct {
		token string
		req   *reportingv1.WatchTodayRequest
		code  codes.Code
	}{
		"an agent":              {h.token(t, "acme", "ann", authn.RoleAgent), &reportingv1.WatchTodayRequest{TenantId: "acme"}, codes.PermissionDenied},
		"another tenant":        {h.token(t, "globex", "sue", authn.RoleSupervisor), &reportingv1.WatchTodayRequest{TenantId: "acme"}, codes.PermissionDenied},
		"an interval too short": {h.token(t, "acme", "sue", authn.RoleSupervisor), &reportingv1.WatchTodayRequest{TenantId: "acme", Interval: durationpb.New(time.Millisecond)}, codes.InvalidArgument},
		"a bucket":              {h.token(t, "acme", "sue", authn.RoleSupervisor), &reportingv1.WatchTodayRequest{TenantId: "acme", GroupBy: []string{"bucket"}}, codes.InvalidArgument},
	} {
		s, err := h.client(t, tc.token).WatchToday(ctx, tc.req)
		if err == nil {
			_, err = s.Recv()
		}
		if status.Code(err) != tc.code {
			t.Errorf("%s: %v, want %s", name, err, tc.code)
		}
	}
}
