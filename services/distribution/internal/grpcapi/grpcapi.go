// Package grpcapi is distribution's gRPC adapter: it checks the caller and
// the request, calls the engine, and maps its errors to status codes.
//
// Who may call what, within the tenant of the request:
//   - services (the sessions gateway, workflow-runner): everything;
//   - admins and supervisors: agents' presence, state and wrap-up, and
//     every task and queue question and command, but not answering an
//     offer for an agent;
//   - agents: their own presence, state, offers, wrap-up and the
//     conversations they start (StartAgentTask) only.
package grpcapi

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/engine"
)

// Agents looks up agents.
type Agents interface {
	Agent(ctx context.Context, tenant, userID string) (engine.AgentInfo, error)
}

// Services looks up services.
type Services interface {
	Service(ctx context.Context, tenant, serviceID string) (engine.ServiceInfo, error)
}

// Server implements DistributionService.
type Server struct {
	distributionv1.UnimplementedDistributionServiceServer
	Engine   *engine.Engine
	Agents   Agents
	Services Services
	// WatchInterval: at most one WatchQueues message per interval
	// (0: 500 ms).
	WatchInterval time.Duration
}

// forAgent checks the caller may act for agent in tenant: a service, the
// agent themselves, or (when supervisors is set) an admin or supervisor of
// the tenant. It returns the agent acted for: an agent who names nobody
// acts for themselves.
func forAgent(ctx context.Context, tenant, agent string, supervisors bool) (string, error) {
	return forAgentTo(ctx, tenant, agent, supervisors, "answer offers for")
}

// forAgentTo is forAgent whose refusal of a caller says what they may not
// do ("answer offers for" agent ...).
func forAgentTo(ctx context.Context, tenant, agent string, supervisors bool, what string) (string, error) {
	c, err := grpcserver.RequireTenant(ctx, tenant)
	if err != nil {
		return "", err
	}
	switch {
	case c.Has(authn.RoleService):
	case supervisors && (c.Has(authn.RoleAdmin) || c.Has(authn.RoleSupervisor)):
	case c.Has(authn.RoleAgent) && (agent == "" || agent == c.Subject):
		agent = c.Subject
	case supervisors:
		return "", status.Errorf(codes.PermissionDenied, "caller %q may act only for themselves (role agent); acting for agent %q needs role supervisor or admin", c.Subject, agent)
	default:
		return "", status.Errorf(codes.PermissionDenied, "caller %q may not %s agent %q: only the agent (role agent) or the sessions gateway (role service) may", c.Subject, what, agent)
	}
	return agent, nil
}

// agentID checks the caller may act for the agent named in the request and
// returns it; there must be one.
func agentID(ctx context.Context, tenant, agent string, supervisors bool) (string, error) {
	agent, err := forAgent(ctx, tenant, agent, supervisors)
	if err != nil {
		return "", err
	}
	if agent == "" {
		return "", status.Error(codes.InvalidArgument, "agent_id is required")
	}
	return agent, nil
}

// supervisor checks the caller may read and manage the tenant's queues.
func supervisor(ctx context.Context, tenant string) error {
	if _, err := grpcserver.RequireTenant(ctx, tenant); err != nil {
		return err
	}
	_, err := grpcserver.RequireRole(ctx, authn.RoleSupervisor, authn.RoleAdmin)
	return err
}

func mapErr(err error) error {
	switch {
	case errors.Is(err, engine.ErrOfferNotOpen), errors.Is(err, engine.ErrTaskState), errors.Is(err, engine.ErrAgentBusy):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, engine.ErrNotYourOffer), errors.Is(err, engine.ErrNotYourTask), errors.Is(err, engine.ErrNotEligible), errors.Is(err, engine.ErrNotMember):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, engine.ErrAtCapacity):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, engine.ErrUnknownTask), errors.Is(err, engine.ErrUnknownAgent):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, engine.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case status.Code(err) != codes.Unknown:
		return err
	default:
		return status.Error(codes.Unavailable, err.Error())
	}
}

func (s *Server) AcceptTask(ctx context.Context, req *distributionv1.AcceptTaskRequest) (*distributionv1.AcceptTaskResponse, error) {
	agent, err := agentID(ctx, req.GetTenantId(), req.GetAgentId(), false)
	if err != nil {
		return nil, err
	}
	if req.GetOfferId() == "" {
		return nil, status.Error(codes.InvalidArgument, "offer_id is required")
	}
	task, err := s.Engine.Accept(ctx, req.GetTenantId(), agent, req.GetOfferId())
	if err != nil {
		return nil, mapErr(err)
	}
	return &distributionv1.AcceptTaskResponse{TaskId: task.ID, SessionId: task.SessionID}, nil
}

// StartAgentTask creates the task of a session the agent started,
// accepted by them: the agent themselves or a service (the sessions
// gateway) on their behalf may ask, as for AcceptTask.
func (s *Server) StartAgentTask(ctx context.Context, req *distributionv1.StartAgentTaskRequest) (*distributionv1.StartAgentTaskResponse, error) {
	agent, err := forAgentTo(ctx, req.GetTenantId(), req.GetAgentId(), false, "start conversations as")
	if err != nil {
		return nil, err
	}
	switch {
	case req.GetAgentId() == "":
		return nil, status.Error(codes.InvalidArgument, "agent_id is required")
	case req.GetServiceId() == "":
		return nil, status.Error(codes.InvalidArgument, "service_id is required")
	case req.GetSessionId() == "":
		return nil, status.Error(codes.InvalidArgument, "session_id is required")
	}
	svc, err := s.Services.Service(ctx, req.GetTenantId(), req.GetServiceId())
	if err != nil {
		if status.Code(err) == codes.NotFound {
			return nil, status.Errorf(codes.NotFound, "service %q not found", req.GetServiceId())
		}
		return nil, status.Errorf(codes.Unavailable, "look up service: %v", err)
	}
	info, err := s.Agents.Agent(ctx, req.GetTenantId(), agent)
	if err != nil {
		if status.Code(err) == codes.NotFound {
			return nil, status.Errorf(codes.NotFound, "agent %q not found", agent)
		}
		return nil, status.Errorf(codes.Unavailable, "look up agent: %v", err)
	}
	task, err := s.Engine.StartAgentTask(ctx, req.GetTenantId(), svc, info, req.GetSessionId())
	if err != nil {
		return nil, mapErr(err)
	}
	return &distributionv1.StartAgentTaskResponse{TaskId: task.ID}, nil
}

func (s *Server) DeclineTask(ctx context.Context, req *distributionv1.DeclineTaskRequest) (*distributionv1.DeclineTaskResponse, error) {
	agent, err := agentID(ctx, req.GetTenantId(), req.GetAgentId(), false)
	if err != nil {
		return nil, err
	}
	if req.GetOfferId() == "" {
		return nil, status.Error(codes.InvalidArgument, "offer_id is required")
	}
	if err := s.Engine.Decline(ctx, req.GetTenantId(), agent, req.GetOfferId()); err != nil {
		return nil, mapErr(err)
	}
	return &distributionv1.DeclineTaskResponse{}, nil
}

func (s *Server) SetAgentPresence(ctx context.Context, req *distributionv1.SetAgentPresenceRequest) (*distributionv1.SetAgentPresenceResponse, error) {
	agent, err := agentID(ctx, req.GetTenantId(), req.GetAgentId(), true)
	if err != nil {
		return nil, err
	}
	switch req.GetPresence() {
	case distributionv1.Presence_PRESENCE_AVAILABLE, distributionv1.Presence_PRESENCE_AWAY, distributionv1.Presence_PRESENCE_OFFLINE:
	default:
		return nil, status.Error(codes.InvalidArgument, "presence must be AVAILABLE, AWAY or OFFLINE")
	}
	info, err := s.Agents.Agent(ctx, req.GetTenantId(), agent)
	if err != nil {
		if status.Code(err) == codes.NotFound {
			return nil, status.Errorf(codes.NotFound, "agent %q not found", agent)
		}
		return nil, status.Errorf(codes.Unavailable, "look up agent: %v", err)
	}
	var st *distributionv1.AgentState
	if req.GetPresence() == distributionv1.Presence_PRESENCE_OFFLINE && isService(ctx) {
		// The sessions gateway: the agent's last console closed.
		var closedAt time.Time
		if req.GetConsoleClosedAt() != nil {
			closedAt = req.GetConsoleClosedAt().AsTime()
		}
		st, err = s.Engine.ConsoleClosed(ctx, req.GetTenantId(), info, closedAt)
	} else {
		st, err = s.Engine.SetPresence(ctx, req.GetTenantId(), info, req.GetPresence())
	}
	if err != nil {
		return nil, mapErr(err)
	}
	return &distributionv1.SetAgentPresenceResponse{State: st}, nil
}

func isService(ctx context.Context) bool {
	c := authn.FromContext(ctx)
	return c != nil && c.Has(authn.RoleService)
}

func (s *Server) ResetAgentRona(ctx context.Context, req *distributionv1.ResetAgentRonaRequest) (*distributionv1.ResetAgentRonaResponse, error) {
	agent, err := agentID(ctx, req.GetTenantId(), req.GetAgentId(), true)
	if err != nil {
		return nil, err
	}
	st, err := s.Engine.ResetRona(ctx, req.GetTenantId(), agent)
	if err != nil {
		return nil, mapErr(err)
	}
	return &distributionv1.ResetAgentRonaResponse{State: st}, nil
}

// WatchQueues sends a snapshot at once and then after changes, at most one
// per WatchInterval and none when nothing a watcher sees changed.
func (s *Server) WatchQueues(req *distributionv1.WatchQueuesRequest, stream distributionv1.DistributionService_WatchQueuesServer) error {
	ctx := stream.Context()
	if err := supervisor(ctx, req.GetTenantId()); err != nil {
		return err
	}
	svcs, err := s.watched(ctx, req)
	if err != nil {
		return err
	}
	interval := s.WatchInterval
	if interval <= 0 {
		interval = 500 * time.Millisecond
	}
	var last *distributionv1.WatchQueuesResponse
	for {
		changed := s.Engine.Changes()
		snap := s.Engine.Snapshot(req.GetTenantId(), svcs)
		if last == nil || !sameView(last, snap) {
			if err := stream.Send(snap); err != nil {
				return err
			}
			last = snap
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
		// Coalesce: whatever else changes meanwhile goes in one message.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

// watched looks up the services a WatchQueues request names.
func (s *Server) watched(ctx context.Context, req *distributionv1.WatchQueuesRequest) ([]engine.ServiceInfo, error) {
	var svcs []engine.ServiceInfo
	for _, id := range req.GetServiceIds() {
		svc, err := s.service(ctx, req.GetTenantId(), id)
		if err != nil {
			return nil, err
		}
		svcs = append(svcs, svc)
	}
	return svcs, nil
}

// queuesSnapshot is one WatchQueues message, with the same checks.
func (s *Server) queuesSnapshot(ctx context.Context, req *distributionv1.WatchQueuesRequest) (*distributionv1.WatchQueuesResponse, error) {
	if err := supervisor(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	svcs, err := s.watched(ctx, req)
	if err != nil {
		return nil, err
	}
	return s.Engine.Snapshot(req.GetTenantId(), svcs), nil
}

// sameView: nothing but the time differs.
func sameView(a, b *distributionv1.WatchQueuesResponse) bool {
	x, y := proto.CloneOf(a), proto.CloneOf(b)
	x.At, y.At = nil, nil
	for _, s := range append(x.Services, y.Services...) {
		s.LongestWait = nil // grows by itself; clients compute it from At
	}
	return proto.Equal(x, y)
}

func (s *Server) GetAgentState(ctx context.Context, req *distributionv1.GetAgentStateRequest) (*distributionv1.GetAgentStateResponse, error) {
	agent, err := agentID(ctx, req.GetTenantId(), req.GetAgentId(), true)
	if err != nil {
		return nil, err
	}
	return &distributionv1.GetAgentStateResponse{State: s.Engine.State(req.GetTenantId(), agent)}, nil
}

func (s *Server) SubmitWrapUp(ctx context.Context, req *distributionv1.SubmitWrapUpRequest) (*distributionv1.SubmitWrapUpResponse, error) {
	// Services, admins and supervisors may leave the agent out.
	agent, err := forAgent(ctx, req.GetTenantId(), req.GetAgentId(), true)
	if err != nil {
		return nil, err
	}
	if (req.GetTaskId() == "") == (req.GetSessionId() == "") {
		return nil, status.Error(codes.InvalidArgument, "name the task: exactly one of task_id and session_id")
	}
	task, err := s.Engine.SubmitWrapUp(ctx, req.GetTenantId(), agent, req.GetTaskId(), req.GetSessionId(), req.GetServiceCodes(), req.GetSalesCodes(), req.GetTags())
	if err != nil {
		return nil, mapErr(err)
	}
	return &distributionv1.SubmitWrapUpResponse{Task: task}, nil
}

func taskID(id string) error {
	if id == "" {
		return status.Error(codes.InvalidArgument, "task_id is required")
	}
	return nil
}

func (s *Server) GetTask(ctx context.Context, req *distributionv1.GetTaskRequest) (*distributionv1.GetTaskResponse, error) {
	if err := supervisor(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	if err := taskID(req.GetTaskId()); err != nil {
		return nil, err
	}
	task, err := s.Engine.GetTask(ctx, req.GetTenantId(), req.GetTaskId())
	if err != nil {
		return nil, mapErr(err)
	}
	return &distributionv1.GetTaskResponse{Task: task}, nil
}

func (s *Server) CancelTask(ctx context.Context, req *distributionv1.CancelTaskRequest) (*distributionv1.CancelTaskResponse, error) {
	if err := supervisor(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	if err := taskID(req.GetTaskId()); err != nil {
		return nil, err
	}
	task, err := s.Engine.CancelTask(ctx, req.GetTenantId(), req.GetTaskId(), req.GetReason())
	if err != nil {
		return nil, mapErr(err)
	}
	return &distributionv1.CancelTaskResponse{Task: task}, nil
}

func (s *Server) ReprioritizeTask(ctx context.Context, req *distributionv1.ReprioritizeTaskRequest) (*distributionv1.ReprioritizeTaskResponse, error) {
	if err := supervisor(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	if err := taskID(req.GetTaskId()); err != nil {
		return nil, err
	}
	task, err := s.Engine.Reprioritize(ctx, req.GetTenantId(), req.GetTaskId(), req.GetPriority())
	if err != nil {
		return nil, mapErr(err)
	}
	return &distributionv1.ReprioritizeTaskResponse{Task: task}, nil
}

func (s *Server) GetQueuePosition(ctx context.Context, req *distributionv1.GetQueuePositionRequest) (*distributionv1.GetQueuePositionResponse, error) {
	if err := supervisor(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	if err := taskID(req.GetTaskId()); err != nil {
		return nil, err
	}
	res, err := s.Engine.QueuePosition(ctx, req.GetTenantId(), req.GetTaskId())
	if err != nil {
		return nil, mapErr(err)
	}
	return res, nil
}

// service looks the service up in config: unknown ids (and other tenants'
// ids) are NotFound.
func (s *Server) service(ctx context.Context, tenant, id string) (engine.ServiceInfo, error) {
	if err := supervisor(ctx, tenant); err != nil {
		return engine.ServiceInfo{}, err
	}
	if id == "" {
		return engine.ServiceInfo{}, status.Error(codes.InvalidArgument, "service_id is required")
	}
	svc, err := s.Services.Service(ctx, tenant, id)
	if err != nil {
		if status.Code(err) == codes.NotFound {
			return engine.ServiceInfo{}, status.Errorf(codes.NotFound, "service %q not found", id)
		}
		return engine.ServiceInfo{}, status.Errorf(codes.Unavailable, "look up service: %v", err)
	}
	return svc, nil
}

func (s *Server) GetServiceAvailability(ctx context.Context, req *distributionv1.GetServiceAvailabilityRequest) (*distributionv1.GetServiceAvailabilityResponse, error) {
	svc, err := s.service(ctx, req.GetTenantId(), req.GetServiceId())
	if err != nil {
		return nil, err
	}
	return s.Engine.ServiceAvailability(req.GetTenantId(), svc), nil
}

func (s *Server) GetQueueStatistics(ctx context.Context, req *distributionv1.GetQueueStatisticsRequest) (*distributionv1.GetQueueStatisticsResponse, error) {
	svc, err := s.service(ctx, req.GetTenantId(), req.GetServiceId())
	if err != nil {
		return nil, err
	}
	return s.Engine.QueueStatistics(req.GetTenantId(), svc), nil
}

// TransferTask: the task's agent (for themselves), supervisors and admins
// (any task of the tenant), services (naming the agent or not).
func (s *Server) TransferTask(ctx context.Context, req *distributionv1.TransferTaskRequest) (*distributionv1.TransferTaskResponse, error) {
	by, err := forAgent(ctx, req.GetTenantId(), req.GetAgentId(), true)
	if err != nil {
		return nil, err
	}
	if err := taskID(req.GetTaskId()); err != nil {
		return nil, err
	}
	if (req.GetToServiceId() == "") == (req.GetToAgentId() == "") {
		return nil, status.Error(codes.InvalidArgument, "name exactly one of to_service_id and to_agent_id")
	}
	if len(req.GetNote()) > engine.MaxNoteLen {
		return nil, status.Errorf(codes.InvalidArgument, "note is %d characters, more than %d", len(req.GetNote()), engine.MaxNoteLen)
	}
	caller := authn.FromContext(ctx).Subject
	if by != "" && authn.FromContext(ctx).Has(authn.RoleService) {
		caller = by // the agent desk (a service) transferring for its agent
	}
	tr := engine.Transfer{TaskID: req.GetTaskId(), By: caller, ByAgent: by, Note: req.GetNote()}
	if id := req.GetToServiceId(); id != "" {
		svc, err := s.Services.Service(ctx, req.GetTenantId(), id)
		if err != nil {
			if status.Code(err) == codes.NotFound {
				return nil, status.Errorf(codes.NotFound, "service %q not found", id)
			}
			return nil, status.Errorf(codes.Unavailable, "look up service: %v", err)
		}
		tr.ToService = &svc
	} else {
		id := req.GetToAgentId()
		info, err := s.Agents.Agent(ctx, req.GetTenantId(), id)
		if err != nil {
			if status.Code(err) == codes.NotFound {
				return nil, status.Errorf(codes.NotFound, "agent %q not found", id)
			}
			return nil, status.Errorf(codes.Unavailable, "look up agent: %v", err)
		}
		if !info.Eligible {
			return nil, status.Errorf(codes.FailedPrecondition, "user %q may not take IM tasks (needs role agent and an IM license)", id)
		}
		tr.ToAgent = info.ID
	}
	task, err := s.Engine.Transfer(ctx, req.GetTenantId(), tr)
	if err != nil {
		return nil, mapErr(err)
	}
	return &distributionv1.TransferTaskResponse{Task: task}, nil
}

// ParkTask and ResumeTask: the task's agent (for themselves), supervisors
// and admins (any task of the tenant), services (naming the agent or not),
// as TransferTask.
func (s *Server) ParkTask(ctx context.Context, req *distributionv1.ParkTaskRequest) (*distributionv1.ParkTaskResponse, error) {
	task, err := s.park(ctx, req.GetTenantId(), req.GetTaskId(), req.GetAgentId(), true)
	if err != nil {
		return nil, err
	}
	return &distributionv1.ParkTaskResponse{Task: task}, nil
}

func (s *Server) ResumeTask(ctx context.Context, req *distributionv1.ResumeTaskRequest) (*distributionv1.ResumeTaskResponse, error) {
	task, err := s.park(ctx, req.GetTenantId(), req.GetTaskId(), req.GetAgentId(), false)
	if err != nil {
		return nil, err
	}
	return &distributionv1.ResumeTaskResponse{Task: task}, nil
}

func (s *Server) park(ctx context.Context, tenantID, id, agent string, park bool) (*distributionv1.Task, error) {
	by, err := forAgent(ctx, tenantID, agent, true)
	if err != nil {
		return nil, err
	}
	if err := taskID(id); err != nil {
		return nil, err
	}
	caller := authn.FromContext(ctx).Subject
	if by != "" && authn.FromContext(ctx).Has(authn.RoleService) {
		caller = by // the agent desk (a service) acting for its agent
	}
	var task *distributionv1.Task
	if park {
		task, err = s.Engine.Park(ctx, tenantID, id, caller, by)
	} else {
		task, err = s.Engine.Resume(ctx, tenantID, id, caller, by)
	}
	if err != nil {
		return nil, mapErr(err)
	}
	return task, nil
}
