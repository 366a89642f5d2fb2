// Package grpcapi is distribution's gRPC adapter: it checks the caller and
// the request, calls the engine, and maps its errors to status codes.
package grpcapi

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"

	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/engine"
)

// Agents looks up agents.
type Agents interface {
	Agent(ctx context.Context, tenant, userID string) (engine.AgentInfo, error)
}

// Server implements DistributionService.
type Server struct {
	distributionv1.UnimplementedDistributionServiceServer
	Engine *engine.Engine
	Agents Agents
}

// Only Switchboard services (the agent gateway) call distribution: it acts
// for an agent it has authenticated itself.
func authorize(ctx context.Context, tenant, agent string) error {
	if _, err := grpcserver.RequireRole(ctx); err != nil {
		return err
	}
	if _, err := grpcserver.RequireTenant(ctx, tenant); err != nil {
		return err
	}
	if agent == "" {
		return status.Error(codes.InvalidArgument, "agent_id is required")
	}
	return nil
}

func mapErr(err error) error {
	switch {
	case errors.Is(err, engine.ErrOfferNotOpen):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, engine.ErrNotYourOffer), errors.Is(err, engine.ErrNotEligible):
		return status.Error(codes.PermissionDenied, err.Error())
	case status.Code(err) != codes.Unknown:
		return err
	default:
		return status.Error(codes.Unavailable, err.Error())
	}
}

func (s *Server) AcceptTask(ctx context.Context, req *distributionv1.AcceptTaskRequest) (*distributionv1.AcceptTaskResponse, error) {
	if err := authorize(ctx, req.GetTenantId(), req.GetAgentId()); err != nil {
		return nil, err
	}
	if req.GetOfferId() == "" {
		return nil, status.Error(codes.InvalidArgument, "offer_id is required")
	}
	task, err := s.Engine.Accept(ctx, req.GetTenantId(), req.GetAgentId(), req.GetOfferId())
	if err != nil {
		return nil, mapErr(err)
	}
	return &distributionv1.AcceptTaskResponse{TaskId: task.ID, SessionId: task.SessionID}, nil
}

func (s *Server) DeclineTask(ctx context.Context, req *distributionv1.DeclineTaskRequest) (*distributionv1.DeclineTaskResponse, error) {
	if err := authorize(ctx, req.GetTenantId(), req.GetAgentId()); err != nil {
		return nil, err
	}
	if req.GetOfferId() == "" {
		return nil, status.Error(codes.InvalidArgument, "offer_id is required")
	}
	if err := s.Engine.Decline(ctx, req.GetTenantId(), req.GetAgentId(), req.GetOfferId()); err != nil {
		return nil, mapErr(err)
	}
	return &distributionv1.DeclineTaskResponse{}, nil
}

func (s *Server) SetAgentPresence(ctx context.Context, req *distributionv1.SetAgentPresenceRequest) (*distributionv1.SetAgentPresenceResponse, error) {
	if err := authorize(ctx, req.GetTenantId(), req.GetAgentId()); err != nil {
		return nil, err
	}
	switch req.GetPresence() {
	case distributionv1.Presence_PRESENCE_AVAILABLE, distributionv1.Presence_PRESENCE_AWAY, distributionv1.Presence_PRESENCE_OFFLINE:
	default:
		return nil, status.Error(codes.InvalidArgument, "presence must be AVAILABLE, AWAY or OFFLINE")
	}
	info, err := s.Agents.Agent(ctx, req.GetTenantId(), req.GetAgentId())
	if err != nil {
		if status.Code(err) == codes.NotFound {
			return nil, status.Errorf(codes.NotFound, "agent %q not found", req.GetAgentId())
		}
		return nil, status.Errorf(codes.Unavailable, "look up agent: %v", err)
	}
	st, err := s.Engine.SetPresence(ctx, req.GetTenantId(), info, req.GetPresence())
	if err != nil {
		return nil, mapErr(err)
	}
	return &distributionv1.SetAgentPresenceResponse{State: st}, nil
}

func (s *Server) GetAgentState(ctx context.Context, req *distributionv1.GetAgentStateRequest) (*distributionv1.GetAgentStateResponse, error) {
	if err := authorize(ctx, req.GetTenantId(), req.GetAgentId()); err != nil {
		return nil, err
	}
	return &distributionv1.GetAgentStateResponse{State: s.Engine.State(req.GetTenantId(), req.GetAgentId())}, nil
}
