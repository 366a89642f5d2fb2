package grpcapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	reportingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/reporting/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"

	"github.com/switchboard-cc/switchboard/pkg/pricing"
	"github.com/switchboard-cc/switchboard/services/reporting/internal/rollup"
)

// DefaultServiceLevel is the service level's threshold when a request
// names none.
const DefaultServiceLevel = 20

type pageToken struct {
	Query  uint64 `json:"q"`
	Offset int    `json:"o"`
}

// queryHash identifies a query, so a page token of another is refused;
// zone is the one used (the tenant's may change between pages).
func queryHash(req *reportingv1.SummarizeRequest, zone string) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s|%d|%d|%s|%s|%s|%d", req.GetTenantId(), req.GetFrom().AsTime().UnixNano(), req.GetTo().AsTime().UnixNano(),
		zone, strings.Join(req.GetGroupBy(), ","), req.GetBucket(), req.GetServiceLevelSeconds())
	return h.Sum64()
}

// zone is the request's time zone, or the tenant's when it names none.
func (s *Server) zone(ctx context.Context, req *reportingv1.SummarizeRequest) (*time.Location, error) {
	z := req.GetTimeZone()
	if z == "" && s.Zones != nil {
		tz, err := s.Zones.TimeZone(ctx, req.GetTenantId())
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "the tenant's time zone cannot be read now (%v): name a time_zone", err)
		}
		z = tz
	}
	if z == "" {
		return time.UTC, nil
	}
	l, err := time.LoadLocation(z)
	if err != nil || z == "Local" {
		return nil, status.Errorf(codes.InvalidArgument, "time_zone %q is not an IANA time zone", z)
	}
	return l, nil
}

func (s *Server) Summarize(ctx context.Context, req *reportingv1.SummarizeRequest) (*reportingv1.SummarizeResponse, error) {
	if err := authorize(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	if req.GetFrom() == nil || req.GetTo() == nil {
		return nil, status.Error(codes.InvalidArgument, "from and to are required")
	}
	loc, err := s.zone(ctx, req)
	if err != nil {
		return nil, err
	}
	sl := int64(req.GetServiceLevelSeconds())
	switch {
	case sl < 0 || sl > 86400:
		return nil, status.Errorf(codes.InvalidArgument, "service_level_seconds %d is outside 0..86400", sl)
	case sl == 0:
		sl = DefaultServiceLevel
	}
	size := int(req.GetPageSize())
	switch {
	case size < 0 || size > 5000:
		return nil, status.Errorf(codes.InvalidArgument, "page_size %d is outside 0..5000", size)
	case size == 0:
		size = 1000
	}
	offset := 0
	if t := req.GetPageToken(); t != "" {
		raw, err := base64.RawURLEncoding.DecodeString(t)
		var pt pageToken
		if err != nil || json.Unmarshal(raw, &pt) != nil || pt.Offset <= 0 {
			return nil, status.Error(codes.InvalidArgument, "page_token is invalid")
		}
		if pt.Query != queryHash(req, loc.String()) {
			return nil, status.Error(codes.InvalidArgument, "page_token belongs to another query: repeat the query's parameters with it")
		}
		offset = pt.Offset
	}
	q := rollup.Query{
		Tenant: req.GetTenantId(), From: req.GetFrom().AsTime(), To: req.GetTo().AsTime(), Loc: loc,
		GroupBy: req.GetGroupBy(), Bucket: req.GetBucket(),
	}
	groups, read, err := s.Rollups.Summarize(ctx, q)
	if errors.Is(err, rollup.ErrInvalid) {
		return nil, status.Error(codes.InvalidArgument, strings.TrimPrefix(err.Error(), rollup.ErrInvalid.Error()+": "))
	}
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	_ = q.Normalize() // the range as rounded, for the answer
	res := &reportingv1.SummarizeResponse{From: timestamppb.New(q.From), To: timestamppb.New(q.To), DocumentsRead: int32(read), TimeZone: loc.String()}
	if offset > len(groups) {
		offset = len(groups)
	}
	end := min(offset+size, len(groups))
	currency := s.currency(ctx, req.GetTenantId())
	for i := offset; i < end; i++ {
		r := summaryRow(&groups[i], q, sl)
		r.Currency = currency
		res.Rows = append(res.Rows, r)
	}
	if end < len(groups) {
		raw, _ := json.Marshal(pageToken{Query: queryHash(req, loc.String()), Offset: end})
		res.NextPageToken = base64.RawURLEncoding.EncodeToString(raw)
	}
	return res, nil
}

func stats(h *rollup.Hist, sumMS int64) *reportingv1.DurationStats {
	n := h.Count()
	if n == 0 {
		return &reportingv1.DurationStats{}
	}
	return &reportingv1.DurationStats{
		Count:   n,
		Average: durationpb.New(time.Duration(sumMS/n) * time.Millisecond),
		P50:     durationpb.New(h.Quantile(0.5)), P90: durationpb.New(h.Quantile(0.9)), P99: durationpb.New(h.Quantile(0.99)),
	}
}

func summaryRow(g *rollup.Group, q rollup.Query, sl int64) *reportingv1.SummaryRow {
	c := &g.C
	r := &reportingv1.SummaryRow{
		Sessions:       c[rollup.Sessions],
		Handled:        g.Outcomes[sessionv1.Outcome_OUTCOME_HANDLED],
		NotHandled:     g.Outcomes[sessionv1.Outcome_OUTCOME_NOT_HANDLED],
		Failed:         g.Outcomes[sessionv1.Outcome_OUTCOME_FAILED],
		Expired:        g.Outcomes[sessionv1.Outcome_OUTCOME_EXPIRED],
		Abandoned:      g.Outcomes[sessionv1.Outcome_OUTCOME_ABANDONED],
		NoAgent:        g.Outcomes[sessionv1.Outcome_OUTCOME_NO_AGENT],
		OutOfHours:     g.Outcomes[sessionv1.Outcome_OUTCOME_OUT_OF_HOURS],
		Canceled:       g.Outcomes[sessionv1.Outcome_OUTCOME_CANCELED],
		StartedByAgent: c[rollup.StartedByAgent],
		Queued:         c[rollup.Queued], Answered: c[rollup.Answered], AbandonedInQueue: c[rollup.AbandonedInQueue],
		InboundMessages: c[rollup.InboundMessages], OutboundMessages: c[rollup.OutboundMessages],
		Offers: c[rollup.Offers], Declines: c[rollup.Declines], Ronas: c[rollup.Ronas], FailedSends: c[rollup.FailedSends],
		SegmentsIn: c[rollup.SegmentsIn], SegmentsOut: c[rollup.SegmentsOut], EstimatedCost: pricing.Format(c[rollup.CostMicros]),
		Wait:       stats(&g.H[rollup.HWait], c[rollup.WaitSumMS]),
		FirstReply: stats(&g.H[rollup.HReply], c[rollup.ReplySumMS]),
		Handle:     stats(&g.H[rollup.HHandle], c[rollup.HandleSumMS]),
		Workflow:   stats(&g.H[rollup.HWorkflow], c[rollup.WorkflowSumMS]),
	}
	for _, d := range q.GroupBy {
		switch d {
		case rollup.DimBucket:
			r.BucketStart = timestamppb.New(g.BucketStart)
		case rollup.DimService:
			r.ServiceId = g.Service
		case rollup.DimChannel:
			r.Channel = messagingv1.Channel(g.Channel)
		case rollup.DimEntry:
			r.EntryId = g.Entry
		case rollup.DimAgent:
			r.AgentId = g.Agent
		case rollup.DimOutcome:
			r.Outcome = sessionv1.Outcome(g.Outcome)
		}
	}
	if queued := c[rollup.Queued]; queued > 0 {
		r.AbandonmentRate = float64(c[rollup.AbandonedInQueue]) / float64(queued)
		within, exact := -1.0, false
		for i, t := range rollup.SLThresholds {
			if t == sl {
				within, exact = float64(c[rollup.SL0+i]), true
			}
		}
		if !exact {
			within = g.H[rollup.HWait].Within(sl * 1000)
		}
		r.ServiceLevel, r.ServiceLevelExact = within/float64(queued), exact
	}
	return r
}
