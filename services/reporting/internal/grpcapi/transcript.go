package grpcapi

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	reportingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/reporting/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/pricing"
	"github.com/switchboard-cc/switchboard/services/reporting/internal/records"
	"github.com/switchboard-cc/switchboard/services/reporting/internal/rollup"
	"github.com/switchboard-cc/switchboard/services/reporting/internal/transcript"
)

// GetTranscript: a tenant's admins, supervisors and analysts read any of
// its transcripts; an agent only a session whose record names them as its
// agent (others' chats are NotFound to them, as if absent).
func (s *Server) GetTranscript(ctx context.Context, req *reportingv1.GetTranscriptRequest) (*reportingv1.GetTranscriptResponse, error) {
	claims, err := authorizeAny(ctx, req.GetTenantId(), append([]string{authn.RoleAgent}, readers...)...)
	if err != nil {
		return nil, err
	}
	if req.GetSessionId() == "" {
		return nil, status.Error(codes.InvalidArgument, "session_id is required")
	}
	reader := false
	for _, r := range readers {
		reader = reader || claims.Has(r)
	}
	if !reader {
		d, err := s.Records.Raw(ctx, req.GetTenantId(), req.GetSessionId())
		if errors.Is(err, records.ErrNotFound) || (err == nil && (d.Agent() == "" || d.Agent() != claims.Subject)) {
			return nil, status.Errorf(codes.NotFound, "session %q not found among your chats", req.GetSessionId())
		}
		if err != nil {
			return nil, status.Error(codes.Unavailable, err.Error())
		}
	}
	msgs, err := transcript.Read(ctx, s.JS, req.GetTenantId(), req.GetSessionId())
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	res := &reportingv1.GetTranscriptResponse{}
	for _, m := range msgs {
		tm := &reportingv1.TranscriptMessage{
			MessageId: m.ID, Direction: m.Direction, Sender: m.Sender, AgentId: m.AgentID, Body: m.Body,
			Status: m.Status, Reason: m.Reason, ErrorCode: m.ErrorCode, ErrorMessage: m.ErrorMessage,
		}
		if !m.At.IsZero() {
			tm.At = timestamppb.New(m.At)
		}
		for _, md := range m.Media {
			tm.MediaUrls = append(tm.MediaUrls, md.URL)
		}
		res.Messages = append(res.Messages, tm)
	}
	return res, nil
}

// exportColumns are the CSV header and the NDJSON keys; the NDJSON
// values of exportNumbers are numbers, the others strings (the estimated
// cost too: a decimal kept exact, as in SessionRecord).
var exportColumns = []string{
	"session_id", "service_id", "entry_id", "channel", "customer", "business", "state", "outcome", "end_reason", "agent_id",
	"started_at", "queued_at", "accepted_at", "first_reply_at", "ended_at", "inbound_messages", "outbound_messages",
	"offers", "declines", "ronas", "failed_sends", "segments_in", "segments_out", "estimated_cost", "currency",
	"customer_country",
}

var exportNumbers = map[string]bool{
	"inbound_messages": true, "outbound_messages": true, "offers": true, "declines": true, "ronas": true,
	"failed_sends": true, "segments_in": true, "segments_out": true,
}

// exportValues is the record's row, its cost estimated with prices (nil:
// none) as GetSession does.
func exportValues(d *records.Doc, prices *pricing.Table) []string {
	t := func(v time.Time) string {
		if v.IsZero() {
			return ""
		}
		return v.UTC().Format(time.RFC3339Nano)
	}
	p := d.Proto()
	priceRecord(p, prices)
	n := func(v int) string { return strconv.Itoa(v) }
	return []string{
		d.SessionID, d.ServiceID, d.EntryID, p.GetChannel().String(), d.Customer, d.Business, p.GetState().String(),
		p.GetOutcome().String(), d.EndReason, d.Agent(), t(d.StartedAt), t(d.QueuedAt), t(d.AcceptedAt), t(d.FirstReplyAt),
		t(d.EndedAt), n(int(p.GetInboundMessages())), n(int(p.GetOutboundMessages())), n(len(d.Offers)), n(len(d.Declines)), n(len(d.Ronas)),
		n(len(d.FailedSends)), n(int(p.GetSegmentsIn())), n(int(p.GetSegmentsOut())), p.GetEstimatedCost(), p.GetCurrency(),
		p.GetCustomerCountry(),
	}
}

// exportChunk is how many rows one streamed message carries.
const exportChunk = 500

// ExportSessions streams the records of sessions started in [from, to).
func (s *Server) ExportSessions(req *reportingv1.ExportSessionsRequest, stream reportingv1.ReportingService_ExportSessionsServer) error {
	ctx := stream.Context()
	if err := authorize(ctx, req.GetTenantId()); err != nil {
		return err
	}
	if req.GetFrom() == nil || req.GetTo() == nil {
		return status.Error(codes.InvalidArgument, "from and to are required")
	}
	from, to := req.GetFrom().AsTime(), req.GetTo().AsTime()
	switch {
	case !from.Before(to):
		return status.Errorf(codes.InvalidArgument, "from %s is not before to %s", from.Format(time.RFC3339), to.Format(time.RFC3339))
	case to.Sub(from) > rollup.MaxRange:
		return status.Errorf(codes.InvalidArgument, "the range is %s, longer than 366 days", to.Sub(from))
	}
	format := req.GetFormat()
	switch format {
	case reportingv1.ExportFormat_EXPORT_FORMAT_UNSPECIFIED:
		format = reportingv1.ExportFormat_EXPORT_FORMAT_CSV
	case reportingv1.ExportFormat_EXPORT_FORMAT_CSV, reportingv1.ExportFormat_EXPORT_FORMAT_NDJSON:
	default:
		return status.Errorf(codes.InvalidArgument, "format %d is not CSV or NDJSON", format)
	}
	var buf bytes.Buffer
	cw := csv.NewWriter(&buf)
	rows := 0
	flush := func() error {
		cw.Flush()
		if buf.Len() == 0 {
			return nil
		}
		err := stream.Send(&reportingv1.ExportSessionsResponse{Data: bytes.Clone(buf.Bytes()), Rows: int32(rows)})
		buf.Reset()
		rows = 0
		return err
	}
	if format == reportingv1.ExportFormat_EXPORT_FORMAT_CSV {
		_ = cw.Write(exportColumns)
	}
	prices := s.priceTable(ctx, req.GetTenantId())
	err := s.Records.Export(ctx, req.GetTenantId(), from, to, func(d *records.Doc) error {
		vals := exportValues(d, prices)
		if format == reportingv1.ExportFormat_EXPORT_FORMAT_CSV {
			_ = cw.Write(vals)
		} else {
			obj := make(map[string]any, len(vals))
			for i, c := range exportColumns {
				if n, err := strconv.Atoi(vals[i]); err == nil && exportNumbers[c] {
					obj[c] = n
				} else if vals[i] != "" {
					obj[c] = vals[i]
				}
			}
			line, _ := json.Marshal(obj)
			buf.Write(line)
			buf.WriteByte('\n')
		}
		rows++
		if rows >= exportChunk {
			return flush()
		}
		return nil
	})
	if err != nil {
		if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
			return err
		}
		return status.Error(codes.Unavailable, err.Error())
	}
	return flush()
}
