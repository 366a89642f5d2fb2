package grpcapi

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	"github.com/switchboard-cc/switchboard/services/config/internal/app"
)

type lookupServer struct {
	configv1.UnimplementedLookupServiceServer
	*API
}

var _ configv1.LookupServiceServer = (*lookupServer)(nil)

// requireService: lookups return decrypted secrets and check passwords, so
// only Switchboard services may call them; platform operators and tenant
// admins may not.
func requireService(ctx context.Context) error {
	c := authn.FromContext(ctx)
	if c == nil {
		return status.Error(codes.Unauthenticated, "no caller identity")
	}
	if !c.Has(authn.RoleService) {
		return status.Errorf(codes.PermissionDenied, "caller %q is not a Switchboard service; LookupService is for services only", c.Subject)
	}
	return nil
}

func (s *lookupServer) ResolveWebhook(ctx context.Context, req *configv1.ResolveWebhookRequest) (*configv1.ResolveWebhookResponse, error) {
	if err := requireService(ctx); err != nil {
		return nil, err
	}
	resp, err := s.app.ResolveWebhook(ctx, req.GetTenantId(), req.GetChatServiceSid(), req.GetBusinessAddress())
	if err != nil {
		return nil, s.toStatus(ctx, "ResolveWebhook", err, "")
	}
	return resp, nil
}

func (s *lookupServer) GetSendingCredentials(ctx context.Context, req *configv1.GetSendingCredentialsRequest) (*configv1.GetSendingCredentialsResponse, error) {
	if err := requireService(ctx); err != nil {
		return nil, err
	}
	if req.GetTenantId() == "" {
		return nil, fieldError(codes.InvalidArgument, "tenant_id", "is required")
	}
	if req.GetEntryId() == "" {
		return nil, fieldError(codes.InvalidArgument, "entry_id", "is required")
	}
	resp, err := s.app.GetSendingCredentials(ctx, req.GetTenantId(), req.GetEntryId())
	if err != nil {
		return nil, s.toStatus(ctx, "GetSendingCredentials", err, "")
	}
	return resp, nil
}

func (s *lookupServer) AuthenticateUser(ctx context.Context, req *configv1.AuthenticateUserRequest) (*configv1.AuthenticateUserResponse, error) {
	if err := requireService(ctx); err != nil {
		return nil, err
	}
	u, err := s.app.AuthenticateUser(ctx, app.SignIn{
		Tenant: req.GetTenantId(), Email: req.GetEmail(), Password: req.GetPassword(),
		Source: req.GetSourceAddress(), RequireAgent: req.GetRequireAgent(),
	})
	if err != nil {
		return nil, s.toStatus(ctx, "AuthenticateUser", err, "")
	}
	return &configv1.AuthenticateUserResponse{User: u}, nil
}

// GetTenantSecret returns a decrypted tenant secret, to services only.
func (s *lookupServer) GetTenantSecret(ctx context.Context, req *configv1.GetTenantSecretRequest) (*configv1.GetTenantSecretResponse, error) {
	if err := requireService(ctx); err != nil {
		return nil, err
	}
	v, err := s.app.GetTenantSecret(ctx, req.GetTenantId(), req.GetName())
	if err != nil {
		return nil, s.toStatus(ctx, "GetTenantSecret", err, "")
	}
	return &configv1.GetTenantSecretResponse{Value: v}, nil
}

func (s *lookupServer) ListEntries(ctx context.Context, req *configv1.ListEntriesRequest) (*configv1.ListEntriesResponse, error) {
	if err := requireService(ctx); err != nil {
		return nil, err
	}
	entries, err := s.app.ListEntries(ctx, req.GetTenantId())
	if err != nil {
		return nil, s.toStatus(ctx, "ListEntries", err, "")
	}
	return &configv1.ListEntriesResponse{Entries: entries}, nil
}
