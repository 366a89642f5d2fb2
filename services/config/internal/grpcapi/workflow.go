package grpcapi

import (
	"context"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	"github.com/switchboard-cc/switchboard/services/config/internal/app"
)

type workflowServer struct {
	configv1.UnimplementedWorkflowServiceServer
	*API
}

var _ configv1.WorkflowServiceServer = (*workflowServer)(nil)

func (s *workflowServer) CreateWorkflow(ctx context.Context, req *configv1.CreateWorkflowRequest) (*configv1.CreateWorkflowResponse, error) {
	if err := requireResource(req.GetWorkflow() != nil, "workflow"); err != nil {
		return nil, err
	}
	if err := canWrite(ctx, req.GetWorkflow().GetTenantId()); err != nil {
		return nil, err
	}
	w, err := s.app.CreateWorkflow(ctx, req.GetWorkflow())
	if err != nil {
		return nil, s.toStatus(ctx, "CreateWorkflow", err, "workflow")
	}
	return &configv1.CreateWorkflowResponse{Workflow: w}, nil
}

func (s *workflowServer) GetWorkflow(ctx context.Context, req *configv1.GetWorkflowRequest) (*configv1.GetWorkflowResponse, error) {
	if err := canRead(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	if err := requireID(req.GetId()); err != nil {
		return nil, err
	}
	w, err := s.app.GetWorkflow(ctx, req.GetTenantId(), req.GetId(), req.GetVersion())
	if err != nil {
		return nil, s.toStatus(ctx, "GetWorkflow", err, "")
	}
	return &configv1.GetWorkflowResponse{Workflow: w}, nil
}

func (s *workflowServer) ListWorkflows(ctx context.Context, req *configv1.ListWorkflowsRequest) (*configv1.ListWorkflowsResponse, error) {
	if err := canRead(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	ws, next, err := s.app.ListWorkflows(ctx, req.GetTenantId(), app.Page{Size: req.GetPageSize(), Token: req.GetPageToken()})
	if err != nil {
		return nil, s.toStatus(ctx, "ListWorkflows", err, "")
	}
	return &configv1.ListWorkflowsResponse{Workflows: ws, NextPageToken: next}, nil
}

func (s *workflowServer) ListWorkflowVersions(ctx context.Context, req *configv1.ListWorkflowVersionsRequest) (*configv1.ListWorkflowVersionsResponse, error) {
	if err := canRead(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	if err := requireID(req.GetId()); err != nil {
		return nil, err
	}
	ws, next, err := s.app.ListWorkflowVersions(ctx, req.GetTenantId(), req.GetId(), app.Page{Size: req.GetPageSize(), Token: req.GetPageToken()})
	if err != nil {
		return nil, s.toStatus(ctx, "ListWorkflowVersions", err, "")
	}
	return &configv1.ListWorkflowVersionsResponse{Workflows: ws, NextPageToken: next}, nil
}

func (s *workflowServer) UpdateWorkflow(ctx context.Context, req *configv1.UpdateWorkflowRequest) (*configv1.UpdateWorkflowResponse, error) {
	if err := requireResource(req.GetWorkflow() != nil, "workflow"); err != nil {
		return nil, err
	}
	if err := canWrite(ctx, req.GetWorkflow().GetTenantId()); err != nil {
		return nil, err
	}
	w, err := s.app.UpdateWorkflow(ctx, req.GetWorkflow(), req.GetUpdateMask().GetPaths())
	if err != nil {
		return nil, s.toStatus(ctx, "UpdateWorkflow", err, "workflow")
	}
	return &configv1.UpdateWorkflowResponse{Workflow: w}, nil
}

func (s *workflowServer) DeleteWorkflow(ctx context.Context, req *configv1.DeleteWorkflowRequest) (*configv1.DeleteWorkflowResponse, error) {
	if err := canWrite(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	if err := requireID(req.GetId()); err != nil {
		return nil, err
	}
	if err := s.app.DeleteWorkflow(ctx, req.GetTenantId(), req.GetId(), req.GetVersion()); err != nil {
		return nil, s.toStatus(ctx, "DeleteWorkflow", err, "")
	}
	return &configv1.DeleteWorkflowResponse{}, nil
}
