package grpcapi

import (
	"context"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	"github.com/switchboard-cc/switchboard/services/config/internal/app"
)

type userServer struct {
	configv1.UnimplementedUserServiceServer
	*API
}

var _ configv1.UserServiceServer = (*userServer)(nil)

func (s *userServer) CreateUser(ctx context.Context, req *configv1.CreateUserRequest) (*configv1.CreateUserResponse, error) {
	if err := requireResource(req.GetUser() != nil, "user"); err != nil {
		return nil, err
	}
	if err := canWrite(ctx, req.GetUser().GetTenantId()); err != nil {
		return nil, err
	}
	u, err := s.app.CreateUser(ctx, req.GetUser())
	if err != nil {
		return nil, s.toStatus(ctx, "CreateUser", err, "user")
	}
	return &configv1.CreateUserResponse{User: u}, nil
}

func (s *userServer) GetUser(ctx context.Context, req *configv1.GetUserRequest) (*configv1.GetUserResponse, error) {
	if err := canRead(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	if err := requireID(req.GetId()); err != nil {
		return nil, err
	}
	u, err := s.app.GetUser(ctx, req.GetTenantId(), req.GetId())
	if err != nil {
		return nil, s.toStatus(ctx, "GetUser", err, "")
	}
	return &configv1.GetUserResponse{User: u}, nil
}

func (s *userServer) ListUsers(ctx context.Context, req *configv1.ListUsersRequest) (*configv1.ListUsersResponse, error) {
	if err := canRead(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	us, next, err := s.app.ListUsers(ctx, req.GetTenantId(), app.Page{Size: req.GetPageSize(), Token: req.GetPageToken()}, req.GetServiceId(), req.GetEmail())
	if err != nil {
		return nil, s.toStatus(ctx, "ListUsers", err, "")
	}
	return &configv1.ListUsersResponse{Users: us, NextPageToken: next}, nil
}

func (s *userServer) UpdateUser(ctx context.Context, req *configv1.UpdateUserRequest) (*configv1.UpdateUserResponse, error) {
	if err := requireResource(req.GetUser() != nil, "user"); err != nil {
		return nil, err
	}
	if err := canWrite(ctx, req.GetUser().GetTenantId()); err != nil {
		return nil, err
	}
	u, err := s.app.UpdateUser(ctx, req.GetUser(), req.GetUpdateMask().GetPaths())
	if err != nil {
		return nil, s.toStatus(ctx, "UpdateUser", err, "user")
	}
	return &configv1.UpdateUserResponse{User: u}, nil
}

func (s *userServer) DeleteUser(ctx context.Context, req *configv1.DeleteUserRequest) (*configv1.DeleteUserResponse, error) {
	if err := canWrite(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	if err := requireID(req.GetId()); err != nil {
		return nil, err
	}
	if err := s.app.DeleteUser(ctx, req.GetTenantId(), req.GetId(), req.GetVersion()); err != nil {
		return nil, s.toStatus(ctx, "DeleteUser", err, "")
	}
	return &configv1.DeleteUserResponse{}, nil
}

func (s *userServer) GetSignInStatus(ctx context.Context, req *configv1.GetSignInStatusRequest) (*configv1.GetSignInStatusResponse, error) {
	if err := canWrite(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	if err := requireID(req.GetUserId()); err != nil {
		return nil, err
	}
	st, err := s.app.GetSignInStatus(ctx, req.GetTenantId(), req.GetUserId())
	if err != nil {
		return nil, s.toStatus(ctx, "GetSignInStatus", err, "")
	}
	return &configv1.GetSignInStatusResponse{Status: st}, nil
}

func (s *userServer) ClearSignInLockout(ctx context.Context, req *configv1.ClearSignInLockoutRequest) (*configv1.ClearSignInLockoutResponse, error) {
	if err := canWrite(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	if err := requireID(req.GetUserId()); err != nil {
		return nil, err
	}
	st, err := s.app.ClearSignInLockout(ctx, req.GetTenantId(), req.GetUserId(), authn.FromContext(ctx).Subject)
	if err != nil {
		return nil, s.toStatus(ctx, "ClearSignInLockout", err, "")
	}
	return &configv1.ClearSignInLockoutResponse{Status: st}, nil
}
