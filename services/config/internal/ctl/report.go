package ctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	reportingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/reporting/v1"
)

// Reporting's address.
const (
	EnvReportingAddr     = "SWITCHBOARD_REPORTING_ADDR"
	DefaultReportingAddr = "127.0.0.1:9092"
)

const reportUsage = `switchboardctl report: read the reporting service.

  switchboardctl report summarize --tenant T --from 2026-03-01 --to 2026-04-01 [--tz Europe/Zurich]
                                  [--by service,agent,bucket] [--bucket day] [--sl 20] [--csv]
      a table of sessions, outcomes, service level, abandonment, wait, first reply and handle time
      (dimensions: service, channel, entry, agent, outcome, bucket; buckets: 15m, hour, day, month),
      Twilio segments in and out and their estimated cost (the tenant's price table)
  switchboardctl report export --tenant T --from … --to … [--format csv|ndjson] [-o sessions.csv]
      the session records started in the range, each with its Twilio segments in and out and
      their estimated cost (stdout without -o)
  switchboardctl report transcript <session> --tenant T
      a session's messages with their delivery statuses
  switchboardctl report session <session> --tenant T [--tz Europe/Zurich]
      a session's record: times, outcome, messages, segments and estimated cost, and the
      workflow's path (each step's activity, branch and time)
  switchboardctl report today --tenant T [--tz Europe/Zurich] [--by service,channel] [--sl 20] [--every 5s] [--once]
      today's running totals, printed again whenever they change (until interrupted, or once)

  --from and --to take a date (midnight in --tz) or an RFC 3339 time; --to defaults to now.
  Without --tz, summarize uses the tenant's time zone (config's tenant time_zone; UTC when unset).
  --addr is the reporting service (env SWITCHBOARD_REPORTING_ADDR, default 127.0.0.1:9092).
  The token: --token, SWITCHBOARD_TOKEN, or the one switchboardctl login saved (an analyst's).
`

func (c *cli) report(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(c.io.Stdout, reportUsage)
		return nil
	}
	switch args[0] {
	case "summarize", "summary":
		return c.summarize(ctx, args[1:])
	case "export":
		return c.export(ctx, args[1:])
	case "transcript":
		return c.transcript(ctx, args[1:])
	case "session":
		return c.session(ctx, args[1:])
	case "today":
		return c.today(ctx, args[1:])
	}
	fmt.Fprint(c.io.Stderr, reportUsage)
	return fmt.Errorf("unknown report %q", args[0])
}

// reportFlags are the connection flags with reporting's address.
func (c *cli) reportFlags(name string) *flag.FlagSet {
	fs := c.flags(name)
	addr := c.env(EnvReportingAddr)
	if addr == "" {
		addr = DefaultReportingAddr
	}
	_ = fs.Set("addr", addr)
	fs.Lookup("addr").DefValue = addr
	return fs
}

func (c *cli) reporting() (reportingv1.ReportingServiceClient, func(), error) {
	conn, err := c.dial()
	if err != nil {
		return nil, nil, err
	}
	return reportingv1.NewReportingServiceClient(conn), func() { _ = conn.Close() }, nil
}

// parseWhen reads a date (midnight in loc) or an RFC 3339 time.
func parseWhen(s string, loc *time.Location, def time.Time) (time.Time, error) {
	if s == "" {
		if def.IsZero() {
			return def, errors.New("required")
		}
		return def, nil
	}
	if t, err := time.ParseInLocation("2006-01-02", s, loc); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02T15:04", s, loc); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return t, fmt.Errorf("%q is neither a date (2006-01-02) nor an RFC 3339 time", s)
	}
	return t, nil
}

func (c *cli) rangeFlags(fs *flag.FlagSet) (tenant, from, to, tz *string) {
	return fs.String("tenant", "", "tenant"), fs.String("from", "", "start: date or RFC 3339 time"),
		fs.String("to", "", "end (exclusive): date or RFC 3339 time; default now"), fs.String("tz", "", "IANA time zone (default: the tenant's for summarize, UTC for export)")
}

func resolveRange(from, to, tz string) (time.Time, time.Time, *time.Location, error) {
	loc := time.UTC
	if tz != "" {
		l, err := time.LoadLocation(tz)
		if err != nil {
			return time.Time{}, time.Time{}, nil, fmt.Errorf("--tz: %w", err)
		}
		loc = l
	}
	f, err := parseWhen(from, loc, time.Time{})
	if err != nil {
		return f, f, nil, fmt.Errorf("--from: %w", err)
	}
	t, err := parseWhen(to, loc, time.Now())
	if err != nil {
		return f, t, nil, fmt.Errorf("--to: %w", err)
	}
	return f, t, loc, nil
}

func (c *cli) summarize(ctx context.Context, args []string) error {
	fs := c.reportFlags("report summarize")
	tenant, from, to, tz := c.rangeFlags(fs)
	by := fs.String("by", "", "comma-separated dimensions: service, channel, entry, agent, outcome, bucket")
	bucket := fs.String("bucket", "", "bucket with --by bucket: 15m, hour, day (default), month")
	sl := fs.Int("sl", 20, "service level threshold, seconds")
	asCSV := fs.Bool("csv", false, "comma-separated values instead of a table")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *tenant == "" {
		return errors.New("--tenant is required")
	}
	client, done, err := c.reporting()
	if err != nil {
		return err
	}
	defer done()
	zone := *tz
	if zone == "" && (isLocal(*from) || isLocal(*to)) {
		// A date is midnight in the tenant's zone: ask which it is.
		if zone, err = tenantZone(ctx, client, *tenant); err != nil {
			return err
		}
	}
	f, t, loc, err := resolveRange(*from, *to, zone)
	if err != nil {
		return err
	}
	req := &reportingv1.SummarizeRequest{
		TenantId: *tenant, From: timestamppb.New(f), To: timestamppb.New(t), TimeZone: zone,
		Bucket: *bucket, ServiceLevelSeconds: int32(*sl), PageSize: 5000,
	}
	dims := splitDims(*by)
	req.GroupBy = dims
	var rows []*reportingv1.SummaryRow
	read := 0
	for {
		res, err := client.Summarize(ctx, req)
		if err != nil {
			return err
		}
		rows = append(rows, res.GetRows()...)
		read += int(res.GetDocumentsRead())
		if z := res.GetTimeZone(); z != "" && z != loc.String() {
			if l, err := time.LoadLocation(z); err == nil {
				loc = l // the tenant's, which the request left to reporting
			}
		}
		if res.GetNextPageToken() == "" {
			break
		}
		req.PageToken = res.GetNextPageToken()
	}
	if err := c.printSummary(rows, dims, *sl, loc, *asCSV); err != nil {
		return err
	}
	if !*asCSV {
		fmt.Fprintf(c.io.Stderr, "%d rows, %s to %s (%s), %d rollup documents read\n", len(rows), f.In(loc).Format(time.RFC3339), t.In(loc).Format(time.RFC3339), loc, read)
	}
	return nil
}

// printSummary writes Summarize's rows as a table (or CSV): the
// dimensions grouped by, then the figures.
func (c *cli) printSummary(rows []*reportingv1.SummaryRow, dims []string, sl int, loc *time.Location, asCSV bool) error {
	sep := "\t"
	var w io.Writer = c.io.Stdout
	var tw *tabwriter.Writer
	if asCSV {
		sep = ","
	} else {
		tw = tabwriter.NewWriter(c.io.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		w = tw
	}
	header := append(append([]string{}, dims...), "sessions", "handled", "abandoned", "queued", "answered", fmt.Sprintf("SL%ds", sl), "aband%",
		"wait avg", "wait p50", "wait p90", "reply p50", "handle avg", "handle p90", "msgs in", "msgs out", "declines", "ronas",
		"segs in", "segs out", "est cost", "currency", "agent-started")
	fmt.Fprintln(w, strings.Join(header, sep)+sep)
	for _, r := range rows {
		var cells []string
		for _, d := range dims {
			switch d {
			case "bucket":
				cells = append(cells, r.GetBucketStart().AsTime().In(loc).Format("2006-01-02 15:04"))
			case "service":
				cells = append(cells, orDash(r.GetServiceId()))
			case "channel":
				cells = append(cells, strings.TrimPrefix(r.GetChannel().String(), "CHANNEL_"))
			case "entry":
				cells = append(cells, orDash(r.GetEntryId()))
			case "agent":
				cells = append(cells, orDash(r.GetAgentId()))
			case "outcome":
				cells = append(cells, strings.TrimPrefix(r.GetOutcome().String(), "OUTCOME_"))
			default:
				cells = append(cells, "")
			}
		}
		cells = append(cells, fmt.Sprint(r.GetSessions()), fmt.Sprint(r.GetHandled()), fmt.Sprint(r.GetAbandonedInQueue()),
			fmt.Sprint(r.GetQueued()), fmt.Sprint(r.GetAnswered()), pct(r.GetServiceLevel(), r.GetQueued()), pct(r.GetAbandonmentRate(), r.GetQueued()),
			dur(r.GetWait().GetAverage()), dur(r.GetWait().GetP50()), dur(r.GetWait().GetP90()), dur(r.GetFirstReply().GetP50()),
			dur(r.GetHandle().GetAverage()), dur(r.GetHandle().GetP90()), fmt.Sprint(r.GetInboundMessages()), fmt.Sprint(r.GetOutboundMessages()),
			fmt.Sprint(r.GetDeclines()), fmt.Sprint(r.GetRonas()),
			fmt.Sprint(r.GetSegmentsIn()), fmt.Sprint(r.GetSegmentsOut()), orDash(r.GetEstimatedCost()), orDash(r.GetCurrency()),
			fmt.Sprint(r.GetStartedByAgent()))
		fmt.Fprintln(w, strings.Join(cells, sep)+sep)
	}
	if tw != nil {
		return tw.Flush()
	}
	return nil
}

// isLocal reports whether s is a date or time without an offset, read in
// the zone of the range.
func isLocal(s string) bool {
	if s == "" {
		return false
	}
	_, err := time.Parse(time.RFC3339, s)
	return err != nil
}

// tenantZone asks reporting for the tenant's zone with a summary of one
// quarter hour (one small document).
func tenantZone(ctx context.Context, client reportingv1.ReportingServiceClient, tenant string) (string, error) {
	to := time.Now().UTC().Truncate(15 * time.Minute)
	res, err := client.Summarize(ctx, &reportingv1.SummarizeRequest{TenantId: tenant, From: timestamppb.New(to.Add(-15 * time.Minute)), To: timestamppb.New(to), PageSize: 1})
	if err != nil {
		return "", err
	}
	return res.GetTimeZone(), nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func pct(v float64, of int64) string {
	if of == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", v*100)
}

func dur(d *durationpb.Duration) string {
	if d == nil {
		return "-"
	}
	return d.AsDuration().Round(100 * time.Millisecond).String()
}

func (c *cli) export(ctx context.Context, args []string) error {
	fs := c.reportFlags("report export")
	tenant, from, to, tz := c.rangeFlags(fs)
	format := fs.String("format", "csv", "csv or ndjson")
	out := fs.String("o", "", "file to write (default stdout)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *tenant == "" {
		return errors.New("--tenant is required")
	}
	f, t, _, err := resolveRange(*from, *to, *tz)
	if err != nil {
		return err
	}
	var fmtv reportingv1.ExportFormat
	switch strings.ToLower(*format) {
	case "csv":
		fmtv = reportingv1.ExportFormat_EXPORT_FORMAT_CSV
	case "ndjson", "jsonl":
		fmtv = reportingv1.ExportFormat_EXPORT_FORMAT_NDJSON
	default:
		return fmt.Errorf("--format %q: csv or ndjson", *format)
	}
	client, done, err := c.reporting()
	if err != nil {
		return err
	}
	defer done()
	stream, err := client.ExportSessions(ctx, &reportingv1.ExportSessionsRequest{TenantId: *tenant, From: timestamppb.New(f), To: timestamppb.New(t), Format: fmtv})
	if err != nil {
		return err
	}
	w := c.io.Stdout
	if *out != "" {
		file, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer file.Close()
		w = file
	}
	rows := 0
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if _, err := w.Write(chunk.GetData()); err != nil {
			return err
		}
		rows += int(chunk.GetRows())
	}
	if *out != "" {
		fmt.Fprintf(c.io.Stderr, "%d sessions written to %s\n", rows, *out)
	}
	return nil
}

func (c *cli) transcript(ctx context.Context, args []string) error {
	fs := c.reportFlags("report transcript")
	tenant := fs.String("tenant", "", "tenant")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *tenant == "" || len(pos) != 1 {
		return errors.New("usage: switchboardctl report transcript <session> --tenant T")
	}
	client, done, err := c.reporting()
	if err != nil {
		return err
	}
	defer done()
	res, err := client.GetTranscript(ctx, &reportingv1.GetTranscriptRequest{TenantId: *tenant, SessionId: pos[0]})
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.io.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tFROM\tSTATUS\tMESSAGE")
	for _, m := range res.GetMessages() {
		from := m.GetSender()
		if m.GetAgentId() != "" {
			from += " " + m.GetAgentId()
		}
		st := orDash(m.GetStatus())
		if m.GetReason() != "" {
			st += " (" + m.GetReason() + ")"
		}
		body := strings.ReplaceAll(m.GetBody(), "\n", " ⏎ ")
		for _, u := range m.GetMediaUrls() {
			body += " [" + u + "]"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.GetAt().AsTime().UTC().Format("2006-01-02 15:04:05"), from, st, body)
	}
	return tw.Flush()
}

// today follows WatchToday: a table per change of today's totals.
func (c *cli) today(ctx context.Context, args []string) error {
	fs := c.reportFlags("report today")
	tenant := fs.String("tenant", "", "tenant id")
	tz := fs.String("tz", "", "IANA zone of the day (default: the tenant's)")
	by := fs.String("by", "", "comma-separated dimensions: service, channel, entry, agent, outcome")
	sl := fs.Int("sl", 20, "service level threshold, seconds")
	every := fs.Duration("every", 5*time.Second, "how often reporting checks the figures (1s to 5m)")
	once := fs.Bool("once", false, "print the first answer and stop")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *tenant == "" {
		return errors.New("--tenant is required")
	}
	client, done, err := c.reporting()
	if err != nil {
		return err
	}
	defer done()
	dims := splitDims(*by)
	stream, err := client.WatchToday(ctx, &reportingv1.WatchTodayRequest{TenantId: *tenant, TimeZone: *tz, GroupBy: dims,
		ServiceLevelSeconds: int32(*sl), Interval: durationpb.New(*every)})
	if err != nil {
		return err
	}
	for {
		res, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return err
		}
		loc := time.UTC
		if l, err := time.LoadLocation(res.GetSummary().GetTimeZone()); err == nil {
			loc = l
		}
		fmt.Fprintf(c.io.Stdout, "%s, today since %s (%s)\n", res.GetAt().AsTime().In(loc).Format("15:04:05"),
			res.GetDayStart().AsTime().In(loc).Format("2006-01-02 15:04"), loc)
		if err := c.printSummary(res.GetSummary().GetRows(), dims, *sl, loc, false); err != nil {
			return err
		}
		if *once {
			return nil
		}
	}
}

// splitDims reads a comma-separated list of dimensions.
func splitDims(by string) []string {
	var dims []string
	if by != "" {
		for _, d := range strings.Split(by, ",") {
			dims = append(dims, strings.TrimSpace(d))
		}
	}
	return dims
}
