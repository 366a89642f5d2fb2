package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/switchboard-cc/switchboard/pkg/ids"
	"github.com/switchboard-cc/switchboard/pkg/workflowdef"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
)

const kindWorkflow = "workflow"

var workflowRules = fieldRules{
	fixed:  []string{"id", "tenant_id"},
	output: append([]string{"im_unsupported_activities"}, metaFields...),
}

// versionID keys a saved version: "<workflow id>@<version, zero-padded>",
// so a prefix scan lists a workflow's versions in order.
func versionID(id string, v int64) string { return fmt.Sprintf("%s@%08d", id, v) }

func versionPrefix(id string) string { return id + "@" }

// prepareWorkflow validates w and sets its output fields.
func prepareWorkflow(w *configv1.Workflow) error {
	var vs violations
	checkID(&vs, "id", w.GetId())
	checkName(&vs, "name", w.GetName(), true)
	if utf8Len(w.GetDescription()) > 2000 {
		vs.add("description", "is longer than 2000 characters")
	}
	if w.GetDefinition() == nil {
		vs.add("definition", "is required")
	} else {
		def := workflowdef.FromProto(w.GetDefinition())
		var verr *workflowdef.ValidationError
		if err := workflowdef.Validate(def); errors.As(err, &verr) {
			for _, p := range verr.Problems {
				vs.add("definition."+p.Path, "%s", p.Message)
			}
		}
		w.ImUnsupportedActivities = nil
		for _, u := range workflowdef.UnsupportedForIM(def) {
			w.ImUnsupportedActivities = append(w.ImUnsupportedActivities, u.String())
		}
	}
	return vs.err(CodeInvalid, "invalid workflow")
}

func utf8Len(s string) int { return len([]rune(s)) }

// putVersion stores a saved version; saving it again is harmless (versions
// are immutable, so the content is the same).
func (a *App) putVersion(ctx context.Context, w *configv1.Workflow) error {
	r := &Record[*configv1.Workflow]{Tenant: w.TenantId, ID: versionID(w.Id, w.Version), Version: w.Version, Msg: w}
	err := a.t.WorkflowVersions.Insert(ctx, r)
	if errors.Is(err, ErrDuplicate) {
		// A leftover of a deleted workflow with the same id: overwrite it.
		if err = a.t.WorkflowVersions.Replace(ctx, r, w.Version); errors.Is(err, ErrVersionMismatch) {
			err = nil
		}
	}
	if err != nil {
		return internal("save workflow version", err)
	}
	return nil
}

// CreateWorkflow validates and saves version 1 of a workflow.
func (a *App) CreateWorkflow(ctx context.Context, in *configv1.Workflow) (*configv1.Workflow, error) {
	w := proto.Clone(in).(*configv1.Workflow)
	if w.Id == "" {
		w.Id = ids.New("wf_")
	}
	w.Name = strings.TrimSpace(w.Name)
	if err := prepareWorkflow(w); err != nil {
		return nil, err
	}
	if _, err := a.tenantOf(ctx, w.TenantId); err != nil {
		return nil, err
	}
	now := a.now()
	w.Version, w.CreateTime, w.UpdateTime = 1, ts(now), ts(now)
	switch err := a.t.Workflows.Insert(ctx, &Record[*configv1.Workflow]{Tenant: w.TenantId, ID: w.Id, Version: 1, Msg: w}); {
	case errors.Is(err, ErrDuplicate):
		return nil, alreadyExists("id", "workflow %q already exists in tenant %q", w.Id, w.TenantId)
	case err != nil:
		return nil, internal("create workflow", err)
	}
	if err := a.putVersion(ctx, w); err != nil {
		// The latest record holds the version too; the next save writes
		// the history entry again.
		a.log.WarnContext(ctx, "save workflow history; it is written again on the next save", "tenant", w.TenantId, "workflow", w.Id, "err", err)
	}
	a.changed(ctx, configv1.EntityKind_ENTITY_KIND_WORKFLOW, w.TenantId, w.Id, configv1.ChangeType_CHANGE_TYPE_CREATED, 1)
	return w, nil
}

// workflowVersion reads version v of a workflow (0: the latest), as a
// precondition of a service.
func (a *App) workflowVersion(ctx context.Context, tenant, id string, v int64) (*configv1.Workflow, error) {
	w, err := a.GetWorkflow(ctx, tenant, id, v)
	if CodeOf(err) == CodeNotFound {
		if v == 0 {
			return nil, precondition("workflow_id", "workflow %q does not exist in tenant %q", id, tenant)
		}
		return nil, precondition("workflow_version", "workflow %q has no version %d", id, v)
	}
	return w, err
}

// GetWorkflow reads the latest version of a workflow, or version v.
func (a *App) GetWorkflow(ctx context.Context, tenant, id string, v int64) (*configv1.Workflow, error) {
	latest, err := getRec(ctx, a.t.Workflows, kindWorkflow, tenant, id)
	if err != nil {
		return nil, err
	}
	if v == 0 || v == latest.Version {
		return latest.Msg, nil
	}
	if v < 0 || v > latest.Version {
		return nil, &Error{Code: CodeNotFound, Message: fmt.Sprintf("workflow %q has no version %d (latest is %d)", id, v, latest.Version)}
	}
	r, err := a.t.WorkflowVersions.Get(ctx, tenant, versionID(id, v))
	if errors.Is(err, ErrNotFound) {
		return nil, &Error{Code: CodeNotFound, Message: fmt.Sprintf("workflow %q version %d is not in the history", id, v)}
	}
	if err != nil {
		return nil, internal("get workflow version", err)
	}
	return r.Msg, nil
}

// ListWorkflows pages through the latest versions of a tenant's workflows.
func (a *App) ListWorkflows(ctx context.Context, tenant string, p Page) ([]*configv1.Workflow, string, error) {
	q, err := p.query(nil)
	if err != nil {
		return nil, "", err
	}
	recs, err := a.t.Workflows.List(ctx, tenant, q)
	if err != nil {
		return nil, "", internal("list workflows", err)
	}
	out, next := page(recs, q, func(r *Record[*configv1.Workflow]) *configv1.Workflow { return r.Msg })
	return out, next, nil
}

// ListWorkflowVersions pages through the saved versions of a workflow,
// oldest first.
func (a *App) ListWorkflowVersions(ctx context.Context, tenant, id string, p Page) ([]*configv1.Workflow, string, error) {
	latest, err := getRec(ctx, a.t.Workflows, kindWorkflow, tenant, id)
	if err != nil {
		return nil, "", err
	}
	q, err := p.query(nil)
	if err != nil {
		return nil, "", err
	}
	q.Prefix = versionPrefix(id)
	recs, err := a.t.WorkflowVersions.List(ctx, tenant, q)
	if err != nil {
		return nil, "", internal("list workflow versions", err)
	}
	out, next := page(recs, q, func(r *Record[*configv1.Workflow]) *configv1.Workflow { return r.Msg })
	// Versions above the latest are leftovers of a deleted namesake.
	out = slices.DeleteFunc(out, func(w *configv1.Workflow) bool { return w.Version > latest.Version })
	if next == "" && (len(out) == 0 || out[len(out)-1].Version < latest.Version) {
		// The history write of the latest save did not happen (crash).
		out = append(out, latest.Msg)
	}
	return out, next, nil
}

// UpdateWorkflow saves a new version. The caller's version must be the
// latest. A new version with an activity unsupported for IM is refused
// while a service with IM on follows this workflow's latest version: it
// would fail every new session (Nimbus lets that happen; we do not).
func (a *App) UpdateWorkflow(ctx context.Context, in *configv1.Workflow, paths []string) (*configv1.Workflow, error) {
	defer a.lockRecord(kindWorkflow, in.GetTenantId(), in.GetId())()
	old, w, err := loadForUpdate(ctx, a.t.Workflows, kindWorkflow, in.GetTenantId(), in, paths, workflowRules)
	if err != nil {
		return nil, err
	}
	w.Name = strings.TrimSpace(w.Name)
	if err := prepareWorkflow(w); err != nil {
		return nil, err
	}
	if proto.Equal(w, old.Msg) {
		return old.Msg, nil
	}
	if err := a.checkFollowers(ctx, w, old.Version); err != nil {
		return nil, err
	}
	// History of the current version first, so a crash below loses none.
	if err := a.putVersion(ctx, old.Msg); err != nil {
		return nil, err
	}
	w.Version, w.UpdateTime = old.Version+1, ts(a.now())
	if err := replace(ctx, a.t.Workflows, kindWorkflow, &Record[*configv1.Workflow]{Tenant: w.TenantId, ID: w.Id, Version: w.Version, Msg: w}, old.Version); err != nil {
		return nil, err
	}
	if err := a.putVersion(ctx, w); err != nil {
		a.log.WarnContext(ctx, "save workflow history; it is written again on the next save", "tenant", w.TenantId, "workflow", w.Id, "err", err)
	}
	a.changed(ctx, configv1.EntityKind_ENTITY_KIND_WORKFLOW, w.TenantId, w.Id, configv1.ChangeType_CHANGE_TYPE_UPDATED, w.Version)
	return w, nil
}

// DeleteWorkflow deletes a workflow no service uses, with its history.
func (a *App) DeleteWorkflow(ctx context.Context, tenant, id string, version int64) error {
	defer a.lockRecord(kindWorkflow, tenant, id)()
	old, err := getRec(ctx, a.t.Workflows, kindWorkflow, tenant, id)
	if err != nil {
		return err
	}
	users, err := a.t.Services.List(ctx, tenant, Query{Limit: 1, Eq: map[string]string{"workflow_id": id}})
	if err != nil {
		return internal("list services", err)
	}
	if len(users) > 0 {
		return precondition("id", "service %q uses workflow %q", users[0].ID, id)
	}
	if err := deleteRec(ctx, a.t.Workflows, kindWorkflow, tenant, id, version, old.Version); err != nil {
		return err
	}
	versions, err := a.t.WorkflowVersions.List(ctx, tenant, Query{Prefix: versionPrefix(id)})
	if err == nil {
		for _, v := range versions {
			if derr := a.t.WorkflowVersions.Delete(ctx, tenant, v.ID, 0); derr != nil && !errors.Is(derr, ErrNotFound) {
				err = derr
			}
		}
	}
	if err != nil {
		// Leftover history is overwritten if the id is used again.
		a.log.WarnContext(ctx, "delete workflow history", "tenant", tenant, "workflow", id, "err", err)
	}
	a.changed(ctx, configv1.EntityKind_ENTITY_KIND_WORKFLOW, tenant, id, configv1.ChangeType_CHANGE_TYPE_DELETED, old.Version+1)
	return nil
}
