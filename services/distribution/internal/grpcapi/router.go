package grpcapi

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/engine"
)

// Router serves DistributionService on every replica: a call for a tenant
// this replica holds is answered here; any other is forwarded over NATS
// request/reply to the replica that holds the tenant's partition
// (subjects.DistributionForward), which answers it as if called directly.
//
// The caller's bearer token travels with a forwarded call and the holder
// verifies it again with its own keys (signature, expiry, revocation), then
// runs the same checks a direct call gets: a forwarded call carries no
// identity of the forwarding replica's making, so it cannot reach past the
// caller's tenant. The tenant is also checked here before forwarding.
type Router struct {
	distributionv1.UnimplementedDistributionServiceServer
	Local *Server
	NC    *nats.Conn
	Keys  *authn.Keys
	// Partitions: how many (engine.PartitionOf).
	Partitions int
	// Timeout of a forwarded call (0: 10 s).
	Timeout time.Duration
	// Replica names this replica: answers to its forwarded calls come on
	// subjects.DistributionReplies(Replica), a subject of distribution's
	// own, so replicas need no right to publish to other inboxes.
	Replica string

	mu      sync.Mutex
	subs    map[int]*nats.Subscription
	replies *nats.Subscription
	next    uint64
	pending map[string]chan *nats.Msg
}

const (
	hdrMethod  = "Sb-Method"
	hdrAuth    = "Authorization"
	hdrCode    = "Sb-Status-Code"
	hdrMessage = "Sb-Status-Message"
	// queueGroup: during a hand-over two replicas may both listen on a
	// partition; a forwarded call goes to one of them only.
	queueGroup = "distribution"
	// methodSnapshot is WatchQueues' one message, forwarded.
	methodSnapshot = "QueuesSnapshot"
)

type tenantRequest interface {
	proto.Message
	GetTenantId() string
}

// route answers locally or forwards.
func route[Req tenantRequest, Res proto.Message](ctx context.Context, r *Router, method string, req Req, local func(context.Context, Req) (Res, error), res Res) (Res, error) {
	var zero Res
	if _, err := grpcserver.RequireTenant(ctx, req.GetTenantId()); err != nil {
		return zero, err
	}
	if r.Local.Engine.Owns(req.GetTenantId()) {
		out, err := local(ctx, req)
		if status.Code(err) != codes.Unavailable || r.Local.Engine.Owns(req.GetTenantId()) {
			return out, err
		}
		// The tenant moved away meanwhile: ask its new holder.
	}
	if err := r.forward(ctx, method, req, res); err != nil {
		return zero, err
	}
	return res, nil
}

// forward sends the call to the holder of the tenant's partition and
// decodes its answer into res.
func (r *Router) forward(ctx context.Context, method string, req tenantRequest, res proto.Message) error {
	md, _ := metadata.FromIncomingContext(ctx)
	auth := md.Get("authorization")
	if len(auth) == 0 {
		return status.Error(codes.Unauthenticated, "missing authorization metadata")
	}
	data, err := proto.Marshal(req)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "encode request: %v", err)
	}
	msg := nats.NewMsg(subjects.DistributionForward(engine.PartitionOf(req.GetTenantId(), r.Partitions)))
	msg.Data = data
	msg.Header.Set(hdrMethod, method)
	msg.Header.Set(hdrAuth, auth[0])
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	fctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	reply, err := r.request(fctx, msg)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return status.Errorf(codes.Unavailable, "no distribution replica holds tenant %q right now (a hand-over); retry", req.GetTenantId())
	case err != nil:
		return status.Errorf(codes.Unavailable, "forward %s to the replica holding tenant %q: %v", method, req.GetTenantId(), err)
	}
	if c := reply.Header.Get(hdrCode); c != "" {
		n, err := strconv.Atoi(c)
		if err != nil {
			return status.Errorf(codes.Internal, "forwarded %s: bad status %q", method, c)
		}
		return status.Error(codes.Code(n), reply.Header.Get(hdrMessage))
	}
	if err := proto.Unmarshal(reply.Data, res); err != nil {
		return status.Errorf(codes.Internal, "decode forwarded %s answer: %v", method, err)
	}
	return nil
}

// request sends msg and waits for its answer on this replica's reply
// subject.
func (r *Router) request(ctx context.Context, msg *nats.Msg) (*nats.Msg, error) {
	r.mu.Lock()
	if r.replies == nil {
		sub, err := r.NC.Subscribe(subjects.DistributionReplies(r.Replica)+".*", r.answered)
		if err != nil {
			r.mu.Unlock()
			return nil, err
		}
		r.replies, r.pending = sub, map[string]chan *nats.Msg{}
	}
	r.next++
	msg.Reply = subjects.DistributionReplies(r.Replica) + "." + strconv.FormatUint(r.next, 10)
	ch := make(chan *nats.Msg, 1)
	r.pending[msg.Reply] = ch
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.pending, msg.Reply)
		r.mu.Unlock()
	}()
	if err := r.NC.PublishMsg(msg); err != nil {
		return nil, err
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case m := <-ch:
		if m.Header.Get("Status") == "503" {
			return nil, nats.ErrNoResponders
		}
		return m, nil
	}
}

func (r *Router) answered(m *nats.Msg) {
	r.mu.Lock()
	ch := r.pending[m.Subject]
	r.mu.Unlock()
	if ch != nil {
		select {
		case ch <- m:
		default:
		}
	}
}

// Hold starts answering forwarded calls for the partitions and stops for
// every other: call it with this replica's partitions whenever they change
// (after loading the tenants of new ones, before dropping old ones').
func (r *Router) Hold(parts []int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.subs == nil {
		r.subs = map[int]*nats.Subscription{}
	}
	keep := map[int]bool{}
	for _, p := range parts {
		keep[p] = true
		if r.subs[p] != nil {
			continue
		}
		sub, err := r.NC.QueueSubscribe(subjects.DistributionForward(p), queueGroup, func(m *nats.Msg) { go r.serve(m) })
		if err != nil {
			return err
		}
		r.subs[p] = sub
	}
	for p, sub := range r.subs {
		if !keep[p] {
			_ = sub.Unsubscribe()
			delete(r.subs, p)
		}
	}
	return r.NC.Flush()
}

// Close stops answering and taking answers.
func (r *Router) Close() {
	_ = r.Hold(nil)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.replies != nil {
		_ = r.replies.Unsubscribe()
		r.replies = nil
	}
}

// serve answers one forwarded call.
func (r *Router) serve(m *nats.Msg) {
	respond := func(res proto.Message, err error) {
		out := nats.NewMsg(m.Reply)
		if err != nil {
			st := status.Convert(err)
			out.Header.Set(hdrCode, strconv.Itoa(int(st.Code())))
			out.Header.Set(hdrMessage, st.Message())
		} else if out.Data, err = proto.Marshal(res); err != nil {
			out.Header.Set(hdrCode, strconv.Itoa(int(codes.Internal)))
			out.Header.Set(hdrMessage, "encode answer")
		}
		_ = m.RespondMsg(out)
	}
	if m.Reply == "" {
		return
	}
	tok, ok := strings.CutPrefix(m.Header.Get(hdrAuth), "Bearer ")
	if !ok {
		respond(nil, status.Error(codes.Unauthenticated, "forwarded call without a bearer token"))
		return
	}
	claims, err := r.Keys.Verify(strings.TrimSpace(tok))
	if err != nil {
		respond(nil, status.Error(codes.Unauthenticated, err.Error()))
		return
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(authn.WithClaims(context.Background(), claims), timeout)
	defer cancel()
	h, ok := r.handlers()[m.Header.Get(hdrMethod)]
	if !ok {
		respond(nil, status.Errorf(codes.Unimplemented, "forwarded method %q", m.Header.Get(hdrMethod)))
		return
	}
	respond(h(ctx, m.Data))
}

type handler func(ctx context.Context, data []byte) (proto.Message, error)

// held answers a decoded forwarded call here, never forwarding it again.
func held[Req tenantRequest, Res proto.Message](r *Router, newReq func() Req, local func(context.Context, Req) (Res, error)) handler {
	return func(ctx context.Context, data []byte) (proto.Message, error) {
		req := newReq()
		if err := proto.Unmarshal(data, req); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "decode forwarded request: %v", err)
		}
		if _, err := grpcserver.RequireTenant(ctx, req.GetTenantId()); err != nil {
			return nil, err
		}
		if !r.Local.Engine.Owns(req.GetTenantId()) {
			return nil, status.Errorf(codes.Unavailable, "tenant %q moved to another replica; retry", req.GetTenantId())
		}
		return local(ctx, req)
	}
}

func (r *Router) handlers() map[string]handler {
	s := r.Local
	return map[string]handler{
		"AcceptTask":       held(r, func() *distributionv1.AcceptTaskRequest { return &distributionv1.AcceptTaskRequest{} }, s.AcceptTask),
		"DeclineTask":      held(r, func() *distributionv1.DeclineTaskRequest { return &distributionv1.DeclineTaskRequest{} }, s.DeclineTask),
		"StartAgentTask":   held(r, func() *distributionv1.StartAgentTaskRequest { return &distributionv1.StartAgentTaskRequest{} }, s.StartAgentTask),
		"SetAgentPresence": held(r, func() *distributionv1.SetAgentPresenceRequest { return &distributionv1.SetAgentPresenceRequest{} }, s.SetAgentPresence),
		"ResetAgentRona":   held(r, func() *distributionv1.ResetAgentRonaRequest { return &distributionv1.ResetAgentRonaRequest{} }, s.ResetAgentRona),
		"GetAgentState":    held(r, func() *distributionv1.GetAgentStateRequest { return &distributionv1.GetAgentStateRequest{} }, s.GetAgentState),
		"SubmitWrapUp":     held(r, func() *distributionv1.SubmitWrapUpRequest { return &distributionv1.SubmitWrapUpRequest{} }, s.SubmitWrapUp),
		"GetTask":          held(r, func() *distributionv1.GetTaskRequest { return &distributionv1.GetTaskRequest{} }, s.GetTask),
		"CancelTask":       held(r, func() *distributionv1.CancelTaskRequest { return &distributionv1.CancelTaskRequest{} }, s.CancelTask),
		"ReprioritizeTask": held(r, func() *distributionv1.ReprioritizeTaskRequest { return &distributionv1.ReprioritizeTaskRequest{} }, s.ReprioritizeTask),
		"GetQueuePosition": held(r, func() *distributionv1.GetQueuePositionRequest { return &distributionv1.GetQueuePositionRequest{} }, s.GetQueuePosition),
		"GetServiceAvailability": held(r, func() *distributionv1.GetServiceAvailabilityRequest {
			return &distributionv1.GetServiceAvailabilityRequest{}
		}, s.GetServiceAvailability),
		"GetQueueStatistics": held(r, func() *distributionv1.GetQueueStatisticsRequest { return &distributionv1.GetQueueStatisticsRequest{} }, s.GetQueueStatistics),
		"TransferTask":       held(r, func() *distributionv1.TransferTaskRequest { return &distributionv1.TransferTaskRequest{} }, s.TransferTask),
		"ParkTask":           held(r, func() *distributionv1.ParkTaskRequest { return &distributionv1.ParkTaskRequest{} }, s.ParkTask),
		"ResumeTask":         held(r, func() *distributionv1.ResumeTaskRequest { return &distributionv1.ResumeTaskRequest{} }, s.ResumeTask),
		methodSnapshot:       held(r, func() *distributionv1.WatchQueuesRequest { return &distributionv1.WatchQueuesRequest{} }, s.queuesSnapshot),
	}
}

func (r *Router) AcceptTask(ctx context.Context, req *distributionv1.AcceptTaskRequest) (*distributionv1.AcceptTaskResponse, error) {
	return route(ctx, r, "AcceptTask", req, r.Local.AcceptTask, &distributionv1.AcceptTaskResponse{})
}

func (r *Router) StartAgentTask(ctx context.Context, req *distributionv1.StartAgentTaskRequest) (*distributionv1.StartAgentTaskResponse, error) {
	return route(ctx, r, "StartAgentTask", req, r.Local.StartAgentTask, &distributionv1.StartAgentTaskResponse{})
}

func (r *Router) DeclineTask(ctx context.Context, req *distributionv1.DeclineTaskRequest) (*distributionv1.DeclineTaskResponse, error) {
	return route(ctx, r, "DeclineTask", req, r.Local.DeclineTask, &distributionv1.DeclineTaskResponse{})
}

func (r *Router) SetAgentPresence(ctx context.Context, req *distributionv1.SetAgentPresenceRequest) (*distributionv1.SetAgentPresenceResponse, error) {
	return route(ctx, r, "SetAgentPresence", req, r.Local.SetAgentPresence, &distributionv1.SetAgentPresenceResponse{})
}

func (r *Router) ResetAgentRona(ctx context.Context, req *distributionv1.ResetAgentRonaRequest) (*distributionv1.ResetAgentRonaResponse, error) {
	return route(ctx, r, "ResetAgentRona", req, r.Local.ResetAgentRona, &distributionv1.ResetAgentRonaResponse{})
}

func (r *Router) GetAgentState(ctx context.Context, req *distributionv1.GetAgentStateRequest) (*distributionv1.GetAgentStateResponse, error) {
	return route(ctx, r, "GetAgentState", req, r.Local.GetAgentState, &distributionv1.GetAgentStateResponse{})
}

func (r *Router) SubmitWrapUp(ctx context.Context, req *distributionv1.SubmitWrapUpRequest) (*distributionv1.SubmitWrapUpResponse, error) {
	return route(ctx, r, "SubmitWrapUp", req, r.Local.SubmitWrapUp, &distributionv1.SubmitWrapUpResponse{})
}

func (r *Router) GetTask(ctx context.Context, req *distributionv1.GetTaskRequest) (*distributionv1.GetTaskResponse, error) {
	return route(ctx, r, "GetTask", req, r.Local.GetTask, &distributionv1.GetTaskResponse{})
}

func (r *Router) CancelTask(ctx context.Context, req *distributionv1.CancelTaskRequest) (*distributionv1.CancelTaskResponse, error) {
	return route(ctx, r, "CancelTask", req, r.Local.CancelTask, &distributionv1.CancelTaskResponse{})
}

func (r *Router) ReprioritizeTask(ctx context.Context, req *distributionv1.ReprioritizeTaskRequest) (*distributionv1.ReprioritizeTaskResponse, error) {
	return route(ctx, r, "ReprioritizeTask", req, r.Local.ReprioritizeTask, &distributionv1.ReprioritizeTaskResponse{})
}

func (r *Router) GetQueuePosition(ctx context.Context, req *distributionv1.GetQueuePositionRequest) (*distributionv1.GetQueuePositionResponse, error) {
	return route(ctx, r, "GetQueuePosition", req, r.Local.GetQueuePosition, &distributionv1.GetQueuePositionResponse{})
}

func (r *Router) GetServiceAvailability(ctx context.Context, req *distributionv1.GetServiceAvailabilityRequest) (*distributionv1.GetServiceAvailabilityResponse, error) {
	return route(ctx, r, "GetServiceAvailability", req, r.Local.GetServiceAvailability, &distributionv1.GetServiceAvailabilityResponse{})
}

func (r *Router) GetQueueStatistics(ctx context.Context, req *distributionv1.GetQueueStatisticsRequest) (*distributionv1.GetQueueStatisticsResponse, error) {
	return route(ctx, r, "GetQueueStatistics", req, r.Local.GetQueueStatistics, &distributionv1.GetQueueStatisticsResponse{})
}

func (r *Router) TransferTask(ctx context.Context, req *distributionv1.TransferTaskRequest) (*distributionv1.TransferTaskResponse, error) {
	return route(ctx, r, "TransferTask", req, r.Local.TransferTask, &distributionv1.TransferTaskResponse{})
}

func (r *Router) ParkTask(ctx context.Context, req *distributionv1.ParkTaskRequest) (*distributionv1.ParkTaskResponse, error) {
	return route(ctx, r, "ParkTask", req, r.Local.ParkTask, &distributionv1.ParkTaskResponse{})
}

func (r *Router) ResumeTask(ctx context.Context, req *distributionv1.ResumeTaskRequest) (*distributionv1.ResumeTaskResponse, error) {
	return route(ctx, r, "ResumeTask", req, r.Local.ResumeTask, &distributionv1.ResumeTaskResponse{})
}

// WatchQueues streams the tenant's queues from whichever replica holds
// the tenant: here, after every change (as Server.WatchQueues); elsewhere,
// by asking the holder for a snapshot every interval.
func (r *Router) WatchQueues(req *distributionv1.WatchQueuesRequest, stream distributionv1.DistributionService_WatchQueuesServer) error {
	ctx := stream.Context()
	if err := supervisor(ctx, req.GetTenantId()); err != nil {
		return err
	}
	interval := r.Local.WatchInterval
	if interval <= 0 {
		interval = 500 * time.Millisecond
	}
	var last *distributionv1.WatchQueuesResponse
	for {
		var changed <-chan struct{}
		var snap *distributionv1.WatchQueuesResponse
		var err error
		if r.Local.Engine.Owns(req.GetTenantId()) {
			changed = r.Local.Engine.Changes()
			snap, err = r.Local.queuesSnapshot(ctx, req)
		} else {
			snap = &distributionv1.WatchQueuesResponse{}
			err = r.forward(ctx, methodSnapshot, req, snap)
		}
		switch {
		case status.Code(err) == codes.Unavailable:
			// A hand-over: the next round asks again.
		case err != nil:
			return err
		case last == nil || !sameView(last, snap):
			if err := stream.Send(snap); err != nil {
				return err
			}
			last = snap
		}
		if changed != nil {
			select {
			case <-ctx.Done():
				return nil
			case <-changed:
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}
