// Package grpcapi serves OutboundService: contact state (opt-out, WhatsApp
// window) for the agent console and the delivery ledger. Domain errors are
// mapped to gRPC codes here, once.
package grpcapi

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"

	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/sender"
)

// Server implements OutboundService.
type Server struct {
	outboundv1.UnimplementedOutboundServiceServer
	Sender *sender.Sender
}

var _ outboundv1.OutboundServiceServer = (*Server)(nil)

// GetContactState answers whether a send to the conversation's customer
// would be refused.
func (s *Server) GetContactState(ctx context.Context, r *outboundv1.GetContactStateRequest) (*outboundv1.GetContactStateResponse, error) {
	if _, err := grpcserver.RequireTenant(ctx, r.GetTenantId()); err != nil {
		return nil, err
	}
	if r.GetConversation().GetCustomerAddress() == "" {
		return nil, status.Error(codes.InvalidArgument, "conversation.customer_address is required")
	}
	st, err := s.Sender.FreshState(ctx, r.GetTenantId(), r.GetConversation())
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "read contact: %v", err)
	}
	return &outboundv1.GetContactStateResponse{State: sender.ContactStateProto(st)}, nil
}

// GetDelivery returns one request's ledger record.
func (s *Server) GetDelivery(ctx context.Context, r *outboundv1.GetDeliveryRequest) (*outboundv1.GetDeliveryResponse, error) {
	if _, err := grpcserver.RequireTenant(ctx, r.GetTenantId()); err != nil {
		return nil, err
	}
	if r.GetRequestId() == "" {
		return nil, status.Error(codes.InvalidArgument, "request_id is required")
	}
	d, err := s.Sender.Delivery(ctx, r.GetTenantId(), r.GetRequestId())
	switch {
	case errors.Is(err, sender.ErrNotFound):
		return nil, status.Error(codes.NotFound, err.Error())
	case err != nil:
		return nil, status.Errorf(codes.Unavailable, "read ledger: %v", err)
	}
	return &outboundv1.GetDeliveryResponse{Delivery: d}, nil
}
