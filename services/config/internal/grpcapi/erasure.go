package grpcapi

import (
	"context"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
)

// EraseCustomer: a tenant's admins and platform operators.
func (s *tenantServer) EraseCustomer(ctx context.Context, req *configv1.EraseCustomerRequest) (*configv1.EraseCustomerResponse, error) {
	if err := canWrite(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	id, services, err := s.app.EraseCustomer(ctx, req.GetTenantId(), req.GetAddress(), authn.FromContext(ctx).Subject)
	if err != nil {
		return nil, s.toStatus(ctx, "EraseCustomer", err, "")
	}
	return &configv1.EraseCustomerResponse{ErasureId: id, Services: services}, nil
}

// GetCustomerErasure: whoever may ask for an erasure.
func (s *tenantServer) GetCustomerErasure(ctx context.Context, req *configv1.GetCustomerErasureRequest) (*configv1.GetCustomerErasureResponse, error) {
	if err := canWrite(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	done, pending, err := s.app.CustomerErasure(ctx, req.GetTenantId(), req.GetErasureId())
	if err != nil {
		return nil, s.toStatus(ctx, "GetCustomerErasure", err, "")
	}
	return &configv1.GetCustomerErasureResponse{Completions: done, Pending: pending}, nil
}
