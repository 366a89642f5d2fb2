package grpcapi_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/engine"
)

// Transfers over the API: who may, what a bad target says, and that a
// refusal changes nothing.
func TestTransferOverTheAPI(t *testing.T) {
	h := start(t)
	svc := h.asService(t)
	ctx := context.Background()
	if _, err := svc.SetAgentPresence(ctx, &distributionv1.SetAgentPresenceRequest{TenantId: "acme", AgentId: "alice", Presence: distributionv1.Presence_PRESENCE_AVAILABLE}); err != nil {
		t.Fatal(err)
	}
	sales := engine.ServiceInfo{ID: "sales", Name: "Sales", RONATimeout: time.Hour, MaxParallelTasks: 1}
	if err := h.eng.Enqueue(ctx, &engine.Task{ID: "t1", Tenant: "acme", SessionID: "ss_t1", ServiceID: "sales", Service: sales}); err != nil {
		t.Fatal(err)
	}
	st, err := svc.GetAgentState(ctx, &distributionv1.GetAgentStateRequest{TenantId: "acme", AgentId: "alice"})
	if err != nil || len(st.GetState().GetOffers()) != 1 {
		t.Fatalf("alice's state = %v, %v; want one offer", st, err)
	}
	if _, err := svc.AcceptTask(ctx, &distributionv1.AcceptTaskRequest{TenantId: "acme", AgentId: "alice", OfferId: st.GetState().GetOffers()[0].GetOfferId()}); err != nil {
		t.Fatal(err)
	}
	alice := h.withToken(t, h.token(t, h.keys, "acme", "alice", authn.RoleAgent))
	bob := h.withToken(t, h.token(t, h.keys, "acme", "bob", authn.RoleAgent))
	sup := h.withToken(t, h.token(t, h.keys, "acme", "sue", authn.RoleSupervisor))

	for _, c := range []struct {
		name   string
		client distributionv1.DistributionServiceClient
		req    *distributionv1.TransferTaskRequest
		want   codes.Code
	}{
		{"another agent's task", bob, &distributionv1.TransferTaskRequest{TenantId: "acme", TaskId: "t1", ToServiceId: "support"}, codes.PermissionDenied},
		{"for another agent", bob, &distributionv1.TransferTaskRequest{TenantId: "acme", TaskId: "t1", AgentId: "alice", ToServiceId: "support"}, codes.PermissionDenied},
		{"another tenant", alice, &distributionv1.TransferTaskRequest{TenantId: "globex", TaskId: "t1", ToServiceId: "other"}, codes.PermissionDenied},
		{"unknown service", alice, &distributionv1.TransferTaskRequest{TenantId: "acme", TaskId: "t1", ToServiceId: "nope"}, codes.NotFound},
		{"another tenant's service", alice, &distributionv1.TransferTaskRequest{TenantId: "acme", TaskId: "t1", ToServiceId: "other"}, codes.NotFound},
		{"unknown agent", alice, &distributionv1.TransferTaskRequest{TenantId: "acme", TaskId: "t1", ToAgentId: "nobody"}, codes.NotFound},
		{"another tenant's agent", alice, &distributionv1.TransferTaskRequest{TenantId: "acme", TaskId: "t1", ToAgentId: "gina"}, codes.NotFound},
		{"unlicensed agent", alice, &distributionv1.TransferTaskRequest{TenantId: "acme", TaskId: "t1", ToAgentId: "carl"}, codes.FailedPrecondition},
		{"offline agent", alice, &distributionv1.TransferTaskRequest{TenantId: "acme", TaskId: "t1", ToAgentId: "bob"}, codes.FailedPrecondition},
		{"no target", alice, &distributionv1.TransferTaskRequest{TenantId: "acme", TaskId: "t1"}, codes.InvalidArgument},
		{"two targets", alice, &distributionv1.TransferTaskRequest{TenantId: "acme", TaskId: "t1", ToServiceId: "support", ToAgentId: "bob"}, codes.InvalidArgument},
		{"no task", alice, &distributionv1.TransferTaskRequest{TenantId: "acme", ToServiceId: "support"}, codes.InvalidArgument},
		{"unknown task", sup, &distributionv1.TransferTaskRequest{TenantId: "acme", TaskId: "t9", ToServiceId: "support"}, codes.NotFound},
	} {
		if _, err := c.client.TransferTask(ctx, c.req); code(err) != c.want {
			t.Errorf("%s: code %v (%v), want %v", c.name, code(err), err, c.want)
		}
	}
	got, err := sup.GetTask(ctx, &distributionv1.GetTaskRequest{TenantId: "acme", TaskId: "t1"})
	if err != nil || got.GetTask().GetState() != distributionv1.TaskState_TASK_STATE_ACCEPTED || got.GetTask().GetAgentId() != "alice" {
		t.Fatalf("t1 after refused transfers = %v, %v; want accepted by alice", got, err)
	}

	res, err := alice.TransferTask(ctx, &distributionv1.TransferTaskRequest{TenantId: "acme", TaskId: "t1", ToServiceId: "support", Note: "billing question"})
	if err != nil {
		t.Fatal(err)
	}
	if tk := res.GetTask(); tk.GetState() != distributionv1.TaskState_TASK_STATE_QUEUED || tk.GetServiceId() != "support" || tk.GetNote() != "billing question" || tk.GetTransfers() != 1 {
		t.Errorf("transferred = %v, want queued in support with the note", tk)
	}
}
