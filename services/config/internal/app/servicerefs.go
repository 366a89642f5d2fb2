package app

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"

	"github.com/switchboard-cc/switchboard/pkg/workflowdef"
)

// A workflow's activities name services (Queue Task, Transfer, Check
// Opening Hours, Get Queue Position ...). A service with IM on runs its
// workflow for every new session, so the services its workflow names must
// exist and have IM on too: otherwise the workflow-runner would fail the
// session at that activity ("service is not configured"), or queue a task
// no IM agent is offered. The rule is checked where a workflow becomes an
// IM service's (CreateService, UpdateService), where the workflow an IM
// service follows changes (UpdateWorkflow), and where a named service goes
// away (DeleteService, UpdateService switching IM off). A workflow no IM
// service uses may name anything: it runs nowhere.

// badServiceRef is the first service def names that is neither self nor an
// IM service of tenant: its path in the definition and why.
func (a *App) badServiceRef(ctx context.Context, tenant, self string, def *workflowdef.Definition) (path, why string, err error) {
	refs := workflowdef.ServiceRefs(def)
	for _, p := range slices.Sorted(maps.Keys(refs)) {
		id := refs[p]
		if id == "" || id == self {
			continue
		}
		r, err := a.t.Services.Get(ctx, tenant, id)
		if errors.Is(err, ErrNotFound) {
			return p, fmt.Sprintf("names service %q, which does not exist in tenant %q", id, tenant), nil
		}
		if err != nil {
			return "", "", internal("get service", err)
		}
		if !r.Msg.GetImEnabled() {
			return p, fmt.Sprintf("names service %q, which has Instant Messaging off", id), nil
		}
	}
	return "", "", nil
}

// checkWorkflowServices refuses s when it has IM on and its workflow names
// a service it could not run with.
func (a *App) checkWorkflowServices(ctx context.Context, s *configv1.Service, wf *configv1.Workflow) error {
	if !s.ImEnabled {
		return nil
	}
	p, why, err := a.badServiceRef(ctx, s.TenantId, s.Id, workflowdef.FromProto(wf.GetDefinition()))
	if err != nil || p == "" {
		return err
	}
	return precondition("workflow_id", "workflow %q version %d %s (%s); an IM service's workflow can only name IM services", wf.Id, wf.Version, why, p)
}

// checkNamedBy refuses removing service id from IM (deleting it, or
// switching its IM off) while another IM service's workflow names it.
func (a *App) checkNamedBy(ctx context.Context, tenant, id, field, what string) error {
	services, err := a.t.Services.List(ctx, tenant, Query{})
	if err != nil {
		return internal("list services", err)
	}
	for _, s := range services {
		if s.ID == id || !s.Msg.GetImEnabled() || s.Msg.GetWorkflowId() == "" {
			continue
		}
		wf, err := a.GetWorkflow(ctx, tenant, s.Msg.GetWorkflowId(), s.Msg.GetWorkflowVersion())
		if CodeOf(err) == CodeNotFound {
			continue
		}
		if err != nil {
			return err
		}
		for p, ref := range workflowdef.ServiceRefs(workflowdef.FromProto(wf.GetDefinition())) {
			if ref == id {
				return precondition(field, "service %q runs workflow %q version %d, which names service %q (%s); change that workflow first, then %s", s.ID, wf.Id, wf.Version, id, p, what)
			}
		}
	}
	return nil
}

// checkFollowers refuses a new latest version of workflow w that an IM
// service following its latest version could not run: one with an
// activity unsupported for IM, or naming a service it could not run with;
// current is the version they follow now.
func (a *App) checkFollowers(ctx context.Context, w *configv1.Workflow, current int64) error {
	services, err := a.t.Services.List(ctx, w.TenantId, Query{Eq: map[string]string{"workflow_id": w.Id}})
	if err != nil {
		return internal("list services", err)
	}
	def := workflowdef.FromProto(w.Definition)
	bad := workflowdef.UnsupportedForIM(def)
	for _, s := range services {
		if !s.Msg.GetImEnabled() || s.Msg.GetWorkflowVersion() != 0 {
			continue
		}
		if len(bad) > 0 {
			return precondition("definition", "%s is not supported for Instant Messaging, and service %q uses the latest version of this workflow for IM; pin the service to version %d first", bad[0], s.ID, current)
		}
		p, why, err := a.badServiceRef(ctx, w.TenantId, s.ID, def)
		if err != nil {
			return err
		}
		if p != "" {
			return precondition("definition", "%s %s, and service %q uses the latest version of this workflow for IM; create the service first, or pin %q to version %d", p, why, s.ID, s.ID, current)
		}
	}
	return nil
}
