// Package grpcapi serves ReportingService.
package grpcapi

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	reportingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/reporting/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/pkg/pricing"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/reporting/internal/records"
	"github.com/switchboard-cc/switchboard/services/reporting/internal/rollup"
)

// Server implements ReportingService.
type Server struct {
	reportingv1.UnimplementedReportingServiceServer
	Records *records.Store
	Rollups *rollup.Store
	// JS reads the TRANSCRIPT stream.
	JS jetstream.JetStream
	// Zones says a tenant's time zone, Summarize's default; nil: UTC.
	Zones rollup.TenantZones
	// Prices says a tenant's price table, for estimated costs; nil: none.
	Prices rollup.TenantPrices
	// Now is WatchToday's clock (nil: time.Now).
	Now func() time.Time
}

// readers may read a tenant's reports and any of its transcripts.
var readers = []string{authn.RoleAdmin, authn.RoleSupervisor, authn.RoleAnalyst, authn.RolePlatform}

// Admins, supervisors and analysts of a tenant read its reports; agents
// do not.
func authorize(ctx context.Context, tenant string) error {
	_, err := authorizeAny(ctx, tenant, readers...)
	return err
}

func authorizeAny(ctx context.Context, tenant string, roles ...string) (*authn.Claims, error) {
	if !subjects.ValidTenantID(tenant) {
		return nil, status.Errorf(codes.InvalidArgument, "tenant_id %q is not a valid tenant id", tenant)
	}
	if _, err := grpcserver.RequireTenant(ctx, tenant); err != nil {
		return nil, err
	}
	return grpcserver.RequireRole(ctx, roles...)
}

func (s *Server) GetSession(ctx context.Context, req *reportingv1.GetSessionRequest) (*reportingv1.GetSessionResponse, error) {
	if err := authorize(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	if req.GetSessionId() == "" {
		return nil, status.Error(codes.InvalidArgument, "session_id is required")
	}
	rec, err := s.Records.Get(ctx, req.GetTenantId(), req.GetSessionId())
	if errors.Is(err, records.ErrNotFound) {
		return nil, status.Errorf(codes.NotFound, "session %q not found", req.GetSessionId())
	}
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	s.estimate(ctx, rec)
	return &reportingv1.GetSessionResponse{Session: rec}, nil
}

// estimate fills in the record's estimated cost from the tenant's price
// table as it is now; a tenant without one (or config out of reach)
// leaves it empty.
func (s *Server) estimate(ctx context.Context, rec *reportingv1.SessionRecord) {
	priceRecord(rec, s.priceTable(ctx, rec.GetTenantId()))
}

// priceTable is the tenant's price table now: nil when it has none or
// config cannot say.
func (s *Server) priceTable(ctx context.Context, tenant string) *pricing.Table {
	if s.Prices == nil {
		return nil
	}
	t, err := s.Prices.Prices(ctx, tenant)
	if err != nil || t.Empty() {
		return nil
	}
	return t
}

// priceRecord sets the record's estimated cost and currency with t: its
// segments in and out at the price of its channel, each direction and the
// customer's country (GetSession's, ListSessions' and the exports' one
// computation). A nil table leaves them empty.
func priceRecord(rec *reportingv1.SessionRecord, t *pricing.Table) {
	if t.Empty() {
		return
	}
	rec.EstimatedCost = pricing.Format(t.Estimate(rec.GetChannel(), rec.GetCustomerCountry(), int64(rec.GetSegmentsIn()), int64(rec.GetSegmentsOut())))
	rec.Currency = t.Currency
}

// currency is the tenant's price table's currency, "" when it has none or
// config cannot say.
func (s *Server) currency(ctx context.Context, tenant string) string {
	if s.Prices == nil {
		return ""
	}
	t, err := s.Prices.Prices(ctx, tenant)
	if err != nil || t == nil {
		return ""
	}
	return t.Currency
}

func (s *Server) ListSessions(ctx context.Context, req *reportingv1.ListSessionsRequest) (*reportingv1.ListSessionsResponse, error) {
	if err := authorize(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	size := int(req.GetPageSize())
	switch {
	case size < 0 || size > 500:
		return nil, status.Errorf(codes.InvalidArgument, "page_size %d is outside 0..500", size)
	case size == 0:
		size = 50
	}
	recs, next, err := s.Records.List(ctx, req.GetTenantId(), records.Filter{
		ServiceID: req.GetServiceId(), Channel: req.GetChannel(), State: req.GetState(),
	}, size, req.GetPageToken())
	if errors.Is(err, records.ErrBadPageToken) {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	prices := s.priceTable(ctx, req.GetTenantId())
	for _, rec := range recs {
		priceRecord(rec, prices)
	}
	return &reportingv1.ListSessionsResponse{Sessions: recs, NextPageToken: next}, nil
}
