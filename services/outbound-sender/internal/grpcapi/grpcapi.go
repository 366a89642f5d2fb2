// Package grpcapi serves OutboundService: contact state (opt-out, WhatsApp
// window) and the delivery ledger, for the sessions service (which shows
// them in the agent console, scoped to each agent's chats) and for
// supervisors, admins and platform operators. Domain errors are mapped to
// gRPC codes here, once.
//
// Agents are refused: outbound-sender cannot know which chats are offered
// or assigned to an agent, so it cannot scope their reads; they read their
// own chats' state through the console (sessions).
package grpcapi

import (
	"context"
	"errors"
	"regexp"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/media"
	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/sender"
	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/templates"
)

// Server implements OutboundService.
type Server struct {
	outboundv1.UnimplementedOutboundServiceServer
	Sender *sender.Sender
	// Templates lists WhatsApp templates; nil answers Unimplemented.
	Templates *templates.Catalog
	// Media downloads customers' attachments; nil answers Unimplemented.
	Media *media.Fetcher
}

var _ outboundv1.OutboundServiceServer = (*Server)(nil)

// readers are the roles that may read any customer's state in their tenant
// (services pass RequireRole whatever the list).
var readers = []string{authn.RoleAdmin, authn.RoleSupervisor, authn.RolePlatform}

// authorize checks the caller may act in tenant and read every customer's
// delivery and contact state there.
func authorize(ctx context.Context, tenant string) error {
	if _, err := grpcserver.RequireTenant(ctx, tenant); err != nil {
		return err
	}
	if _, err := grpcserver.RequireRole(ctx, readers...); err != nil {
		if status.Code(err) != codes.PermissionDenied {
			return err
		}
		return status.Errorf(codes.PermissionDenied,
			"OutboundService needs role %s, %s, %s or %s: it reads any customer's delivery and contact state in the tenant; "+
				"agents read their own chats' delivery and contact state through the agent console",
			authn.RoleService, authn.RoleAdmin, authn.RoleSupervisor, authn.RolePlatform)
	}
	return nil
}

// GetContactState answers whether a send to the conversation's customer
// would be refused.
func (s *Server) GetContactState(ctx context.Context, r *outboundv1.GetContactStateRequest) (*outboundv1.GetContactStateResponse, error) {
	if err := authorize(ctx, r.GetTenantId()); err != nil {
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
	if err := authorize(ctx, r.GetTenantId()); err != nil {
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

// entryIDRe is the config service's id rule for messaging entries.
var entryIDRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// checkEntry validates a request's entry id.
func checkEntry(e string) error {
	switch {
	case e == "":
		return status.Error(codes.InvalidArgument, "entry_id is required")
	case !entryIDRe.MatchString(e):
		return status.Errorf(codes.InvalidArgument, "entry_id %q is not a messaging entry id (lowercase letters, digits, - and _, at most 63)", e)
	}
	return nil
}

// FetchMedia downloads a customer's attachment from Twilio.
func (s *Server) FetchMedia(ctx context.Context, r *outboundv1.FetchMediaRequest) (*outboundv1.FetchMediaResponse, error) {
	if err := authorize(ctx, r.GetTenantId()); err != nil {
		return nil, err
	}
	if err := checkEntry(r.GetEntryId()); err != nil {
		return nil, err
	}
	switch {
	case r.GetUrl() == "":
		return nil, status.Error(codes.InvalidArgument, "url is required")
	case len(r.GetUrl()) > 2048:
		return nil, status.Error(codes.InvalidArgument, "url is longer than 2048 characters")
	case r.GetMaxBytes() < 0 || r.GetMaxBytes() > media.MaxBytes:
		return nil, status.Errorf(codes.InvalidArgument, "max_bytes must be between 0 (16 MB) and %d", media.MaxBytes)
	}
	if s.Media == nil {
		return nil, status.Error(codes.Unimplemented, "media is not served by this outbound-sender")
	}
	ct, data, err := s.Media.Fetch(ctx, r.GetTenantId(), r.GetEntryId(), r.GetUrl(), r.GetMaxBytes())
	switch {
	case errors.Is(err, media.ErrBadURL):
		return nil, status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, media.ErrNoEntry), errors.Is(err, media.ErrNotFound):
		return nil, status.Error(codes.NotFound, err.Error())
	case errors.Is(err, media.ErrTooLarge), errors.Is(err, media.ErrType):
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	case err != nil:
		return nil, status.Errorf(codes.Unavailable, "fetch media: %v", err)
	}
	return &outboundv1.FetchMediaResponse{ContentType: ct, Data: data}, nil
}

// ListTemplates lists the WhatsApp templates of an entry's connector.
func (s *Server) ListTemplates(ctx context.Context, r *outboundv1.ListTemplatesRequest) (*outboundv1.ListTemplatesResponse, error) {
	if err := authorize(ctx, r.GetTenantId()); err != nil {
		return nil, err
	}
	if err := checkEntry(r.GetEntryId()); err != nil {
		return nil, err
	}
	if s.Templates == nil {
		return nil, status.Error(codes.Unimplemented, "templates are not served by this outbound-sender")
	}
	list, err := s.Templates.List(ctx, r.GetTenantId(), r.GetEntryId())
	switch {
	case errors.Is(err, templates.ErrNoEntry):
		return nil, status.Error(codes.NotFound, err.Error())
	case err != nil:
		return nil, status.Errorf(codes.Unavailable, "list templates: %v", err)
	}
	return &outboundv1.ListTemplatesResponse{Templates: list}, nil
}
