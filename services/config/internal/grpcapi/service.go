package grpcapi

import (
	"context"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	"github.com/switchboard-cc/switchboard/services/config/internal/app"
)

type serviceServer struct {
	configv1.UnimplementedServiceServiceServer
	*API
}

var _ configv1.ServiceServiceServer = (*serviceServer)(nil)

func (s *serviceServer) CreateService(ctx context.Context, req *configv1.CreateServiceRequest) (*configv1.CreateServiceResponse, error) {
	if err := requireResource(req.GetService() != nil, "service"); err != nil {
		return nil, err
	}
	if err := canWrite(ctx, req.GetService().GetTenantId()); err != nil {
		return nil, err
	}
	svc, err := s.app.CreateService(ctx, req.GetService())
	if err != nil {
		return nil, s.toStatus(ctx, "CreateService", err, "service")
	}
	return &configv1.CreateServiceResponse{Service: svc}, nil
}

func (s *serviceServer) GetService(ctx context.Context, req *configv1.GetServiceRequest) (*configv1.GetServiceResponse, error) {
	if err := canRead(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	if err := requireID(req.GetId()); err != nil {
		return nil, err
	}
	svc, err := s.app.GetService(ctx, req.GetTenantId(), req.GetId())
	if err != nil {
		return nil, s.toStatus(ctx, "GetService", err, "")
	}
	return &configv1.GetServiceResponse{Service: svc}, nil
}

func (s *serviceServer) ListServices(ctx context.Context, req *configv1.ListServicesRequest) (*configv1.ListServicesResponse, error) {
	if err := canRead(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	svcs, next, err := s.app.ListServices(ctx, req.GetTenantId(), app.Page{Size: req.GetPageSize(), Token: req.GetPageToken()}, req.GetOrgUnitId())
	if err != nil {
		return nil, s.toStatus(ctx, "ListServices", err, "")
	}
	return &configv1.ListServicesResponse{Services: svcs, NextPageToken: next}, nil
}

func (s *serviceServer) UpdateService(ctx context.Context, req *configv1.UpdateServiceRequest) (*configv1.UpdateServiceResponse, error) {
	if err := requireResource(req.GetService() != nil, "service"); err != nil {
		return nil, err
	}
	if err := canWrite(ctx, req.GetService().GetTenantId()); err != nil {
		return nil, err
	}
	svc, err := s.app.UpdateService(ctx, req.GetService(), req.GetUpdateMask().GetPaths())
	if err != nil {
		return nil, s.toStatus(ctx, "UpdateService", err, "service")
	}
	return &configv1.UpdateServiceResponse{Service: svc}, nil
}

func (s *serviceServer) DeleteService(ctx context.Context, req *configv1.DeleteServiceRequest) (*configv1.DeleteServiceResponse, error) {
	if err := canWrite(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	if err := requireID(req.GetId()); err != nil {
		return nil, err
	}
	if err := s.app.DeleteService(ctx, req.GetTenantId(), req.GetId(), req.GetVersion()); err != nil {
		return nil, s.toStatus(ctx, "DeleteService", err, "")
	}
	return &configv1.DeleteServiceResponse{}, nil
}
