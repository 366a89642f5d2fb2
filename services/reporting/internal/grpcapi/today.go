package grpcapi

import (
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	reportingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/reporting/v1"
)

// WatchToday's interval: its default and bounds.
const (
	DefaultTodayInterval = 5 * time.Second
	minTodayInterval     = time.Second
	maxTodayInterval     = 5 * time.Minute
)

// WatchToday sends Summarize's answer over the day so far at once, then
// again whenever its rows change, read every interval from the rollups
// (by _id, as Summarize reads them: a day costs its hour documents until
// the day's own exists).
func (s *Server) WatchToday(req *reportingv1.WatchTodayRequest, stream reportingv1.ReportingService_WatchTodayServer) error {
	ctx := stream.Context()
	if err := authorize(ctx, req.GetTenantId()); err != nil {
		return err
	}
	every := DefaultTodayInterval
	if d := req.GetInterval(); d != nil {
		every = d.AsDuration()
		if every < minTodayInterval || every > maxTodayInterval {
			return status.Errorf(codes.InvalidArgument, "interval %s is outside %s..%s", every, minTodayInterval, maxTodayInterval)
		}
	}
	for _, g := range req.GetGroupBy() {
		if g == "bucket" {
			return status.Error(codes.InvalidArgument, "group_by bucket: today is one bucket; Summarize splits a day")
		}
	}
	q := &reportingv1.SummarizeRequest{TenantId: req.GetTenantId(), TimeZone: req.GetTimeZone(), GroupBy: req.GetGroupBy(),
		ServiceLevelSeconds: req.GetServiceLevelSeconds(), PageSize: 5000}
	loc, err := s.zone(ctx, q)
	if err != nil {
		return err
	}
	q.TimeZone = loc.String()
	now := s.Now
	if now == nil {
		now = time.Now
	}
	var last []*reportingv1.SummaryRow
	first := true
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		at := now().In(loc)
		start := time.Date(at.Year(), at.Month(), at.Day(), 0, 0, 0, 0, loc)
		q.From, q.To = timestamppb.New(start), timestamppb.New(at)
		sum, err := s.Summarize(ctx, q)
		if err != nil {
			return err
		}
		if first || !sameRows(last, sum.GetRows()) {
			if err := stream.Send(&reportingv1.WatchTodayResponse{At: timestamppb.New(at), DayStart: timestamppb.New(start), Summary: sum}); err != nil {
				return err
			}
			last, first = sum.GetRows(), false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func sameRows(a, b []*reportingv1.SummaryRow) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
