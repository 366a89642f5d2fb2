package grpcapi

import (
	"context"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	"github.com/switchboard-cc/switchboard/services/config/internal/app"
)

type tenantServer struct {
	configv1.UnimplementedTenantServiceServer
	*API
}

var _ configv1.TenantServiceServer = (*tenantServer)(nil)

func (s *tenantServer) CreateTenant(ctx context.Context, req *configv1.CreateTenantRequest) (*configv1.CreateTenantResponse, error) {
	if _, err := grpcserver.RequireRole(ctx, authn.RolePlatform); err != nil {
		return nil, err
	}
	if err := requireResource(req.GetTenant() != nil, "tenant"); err != nil {
		return nil, err
	}
	t, err := s.app.CreateTenant(ctx, req.GetTenant())
	if err != nil {
		return nil, s.toStatus(ctx, "CreateTenant", err, "tenant")
	}
	return &configv1.CreateTenantResponse{Tenant: t}, nil
}

func (s *tenantServer) GetTenant(ctx context.Context, req *configv1.GetTenantRequest) (*configv1.GetTenantResponse, error) {
	if err := requireID(req.GetId()); err != nil {
		return nil, err
	}
	if err := canRead(ctx, req.GetId()); err != nil {
		return nil, err
	}
	t, err := s.app.GetTenant(ctx, req.GetId())
	if err != nil {
		return nil, s.toStatus(ctx, "GetTenant", err, "")
	}
	return &configv1.GetTenantResponse{Tenant: t}, nil
}

// ListTenants lists every tenant for platform operators and services, and
// only their own to a tenant's admins and supervisors.
func (s *tenantServer) ListTenants(ctx context.Context, req *configv1.ListTenantsRequest) (*configv1.ListTenantsResponse, error) {
	if _, err := grpcserver.RequireRole(ctx, authn.RoleAdmin, authn.RoleSupervisor, authn.RolePlatform); err != nil {
		return nil, err
	}
	if !isPlatform(ctx) {
		c := authn.FromContext(ctx)
		if req.GetPageToken() != "" {
			return &configv1.ListTenantsResponse{}, nil
		}
		t, err := s.app.GetTenant(ctx, c.Tenant)
		if app.CodeOf(err) == app.CodeNotFound {
			return &configv1.ListTenantsResponse{}, nil
		}
		if err != nil {
			return nil, s.toStatus(ctx, "ListTenants", err, "")
		}
		return &configv1.ListTenantsResponse{Tenants: []*configv1.Tenant{t}}, nil
	}
	ts, next, err := s.app.ListTenants(ctx, app.Page{Size: req.GetPageSize(), Token: req.GetPageToken()})
	if err != nil {
		return nil, s.toStatus(ctx, "ListTenants", err, "")
	}
	return &configv1.ListTenantsResponse{Tenants: ts, NextPageToken: next}, nil
}

func (s *tenantServer) UpdateTenant(ctx context.Context, req *configv1.UpdateTenantRequest) (*configv1.UpdateTenantResponse, error) {
	if err := requireResource(req.GetTenant() != nil, "tenant"); err != nil {
		return nil, err
	}
	if err := canWrite(ctx, req.GetTenant().GetId()); err != nil {
		return nil, err
	}
	t, err := s.app.UpdateTenant(ctx, req.GetTenant(), req.GetUpdateMask().GetPaths())
	if err != nil {
		return nil, s.toStatus(ctx, "UpdateTenant", err, "tenant")
	}
	return &configv1.UpdateTenantResponse{Tenant: t}, nil
}

func (s *tenantServer) DeleteTenant(ctx context.Context, req *configv1.DeleteTenantRequest) (*configv1.DeleteTenantResponse, error) {
	if _, err := grpcserver.RequireRole(ctx, authn.RolePlatform); err != nil {
		return nil, err
	}
	if err := requireID(req.GetId()); err != nil {
		return nil, err
	}
	if err := s.app.DeleteTenant(ctx, req.GetId(), req.GetVersion()); err != nil {
		return nil, s.toStatus(ctx, "DeleteTenant", err, "")
	}
	return &configv1.DeleteTenantResponse{}, nil
}

func (s *tenantServer) CreateOrganizationUnit(ctx context.Context, req *configv1.CreateOrganizationUnitRequest) (*configv1.CreateOrganizationUnitResponse, error) {
	if err := requireResource(req.GetOrganizationUnit() != nil, "organization_unit"); err != nil {
		return nil, err
	}
	if err := canWrite(ctx, req.GetOrganizationUnit().GetTenantId()); err != nil {
		return nil, err
	}
	o, err := s.app.CreateOrganizationUnit(ctx, req.GetOrganizationUnit())
	if err != nil {
		return nil, s.toStatus(ctx, "CreateOrganizationUnit", err, "organization_unit")
	}
	return &configv1.CreateOrganizationUnitResponse{OrganizationUnit: o}, nil
}

func (s *tenantServer) GetOrganizationUnit(ctx context.Context, req *configv1.GetOrganizationUnitRequest) (*configv1.GetOrganizationUnitResponse, error) {
	if err := canRead(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	if err := requireID(req.GetId()); err != nil {
		return nil, err
	}
	o, err := s.app.GetOrganizationUnit(ctx, req.GetTenantId(), req.GetId())
	if err != nil {
		return nil, s.toStatus(ctx, "GetOrganizationUnit", err, "")
	}
	return &configv1.GetOrganizationUnitResponse{OrganizationUnit: o}, nil
}

func (s *tenantServer) ListOrganizationUnits(ctx context.Context, req *configv1.ListOrganizationUnitsRequest) (*configv1.ListOrganizationUnitsResponse, error) {
	if err := canRead(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	os, next, err := s.app.ListOrganizationUnits(ctx, req.GetTenantId(), app.Page{Size: req.GetPageSize(), Token: req.GetPageToken()}, req.GetParentId())
	if err != nil {
		return nil, s.toStatus(ctx, "ListOrganizationUnits", err, "")
	}
	return &configv1.ListOrganizationUnitsResponse{OrganizationUnits: os, NextPageToken: next}, nil
}

func (s *tenantServer) UpdateOrganizationUnit(ctx context.Context, req *configv1.UpdateOrganizationUnitRequest) (*configv1.UpdateOrganizationUnitResponse, error) {
	if err := requireResource(req.GetOrganizationUnit() != nil, "organization_unit"); err != nil {
		return nil, err
	}
	if err := canWrite(ctx, req.GetOrganizationUnit().GetTenantId()); err != nil {
		return nil, err
	}
	o, err := s.app.UpdateOrganizationUnit(ctx, req.GetOrganizationUnit(), req.GetUpdateMask().GetPaths())
	if err != nil {
		return nil, s.toStatus(ctx, "UpdateOrganizationUnit", err, "organization_unit")
	}
	return &configv1.UpdateOrganizationUnitResponse{OrganizationUnit: o}, nil
}

func (s *tenantServer) DeleteOrganizationUnit(ctx context.Context, req *configv1.DeleteOrganizationUnitRequest) (*configv1.DeleteOrganizationUnitResponse, error) {
	if err := canWrite(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	if err := requireID(req.GetId()); err != nil {
		return nil, err
	}
	if err := s.app.DeleteOrganizationUnit(ctx, req.GetTenantId(), req.GetId(), req.GetVersion()); err != nil {
		return nil, s.toStatus(ctx, "DeleteOrganizationUnit", err, "")
	}
	return &configv1.DeleteOrganizationUnitResponse{}, nil
}
