package app

import (
	"context"
	"errors"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/switchboard-cc/switchboard/pkg/ids"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
)

const (
	kindOU   = "organization unit"
	maxDepth = 32
)

var ouRules = fieldRules{fixed: []string{"id", "tenant_id"}, output: metaFields}

func validateOU(o *configv1.OrganizationUnit) error {
	var vs violations
	checkID(&vs, "id", o.GetId())
	checkName(&vs, "name", o.GetName(), true)
	if o.GetParentId() != "" {
		checkID(&vs, "parent_id", o.GetParentId())
		if o.GetParentId() == o.GetId() {
			vs.add("parent_id", "an organization unit cannot be its own parent")
		}
	}
	return vs.err(CodeInvalid, "invalid organization unit")
}

// rootOULive: a root claim is live while its OU exists as a root.
func (a *App) rootOULive(ctx context.Context, c Claim) (bool, error) {
	r, err := a.t.OrgUnits.Get(ctx, c.Tenant, c.Owner)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil && r.Msg.GetParentId() == "", err
}

// CreateOrganizationUnit adds an OU: the tenant's one root (no parent) or a
// child of an existing OU.
func (a *App) CreateOrganizationUnit(ctx context.Context, in *configv1.OrganizationUnit) (*configv1.OrganizationUnit, error) {
	o := proto.Clone(in).(*configv1.OrganizationUnit)
	if o.Id == "" {
		o.Id = ids.New("ou_")
	}
	if err := validateOU(o); err != nil {
		return nil, err
	}
	if _, err := a.tenantOf(ctx, o.TenantId); err != nil {
		return nil, err
	}
	fresh := false
	if o.ParentId == "" {
		var err error
		fresh, err = a.claim(ctx, claimRootOU+o.TenantId, o.TenantId, o.Id, a.rootOULive)
		var held *errClaimHeld
		if errors.As(err, &held) {
			return nil, alreadyExists("parent_id", "tenant %q already has the root organization unit %q: give this one a parent", o.TenantId, held.holder.Owner)
		}
		if err != nil {
			return nil, internal("claim root organization unit", err)
		}
	} else if err := a.ouExists(ctx, o.TenantId, o.ParentId, "parent_id"); err != nil {
		return nil, err
	}
	now := a.now()
	o.Version, o.CreateTime, o.UpdateTime = 1, ts(now), ts(now)
	err := a.t.OrgUnits.Insert(ctx, &Record[*configv1.OrganizationUnit]{Tenant: o.TenantId, ID: o.Id, Version: 1, Msg: o})
	if err != nil {
		if fresh {
			a.release(ctx, o.TenantId, o.Id, claimRootOU+o.TenantId)
		}
		if errors.Is(err, ErrDuplicate) {
			return nil, alreadyExists("id", "organization unit %q already exists in tenant %q", o.Id, o.TenantId)
		}
		return nil, internal("create organization unit", err)
	}
	a.changed(ctx, configv1.EntityKind_ENTITY_KIND_ORGANIZATION_UNIT, o.TenantId, o.Id, configv1.ChangeType_CHANGE_TYPE_CREATED, 1)
	return o, nil
}

func (a *App) ouExists(ctx context.Context, tenant, id, field string) error {
	ok, err := exists(ctx, a.t.OrgUnits, tenant, id)
	if err != nil {
		return internal("get organization unit", err)
	}
	if !ok {
		return precondition(field, "organization unit %q does not exist in tenant %q", id, tenant)
	}
	return nil
}

// ancestry returns id and its ancestors up to the root, nearest first.
func (a *App) ancestry(ctx context.Context, tenant, id string) ([]string, error) {
	var chain []string
	for cur := id; cur != ""; {
		if len(chain) > maxDepth || slices.Contains(chain, cur) {
			return nil, precondition("org_unit_id", "organization unit tree above %q is deeper than %d or has a loop", id, maxDepth)
		}
		r, err := a.t.OrgUnits.Get(ctx, tenant, cur)
		if errors.Is(err, ErrNotFound) {
			return nil, precondition("org_unit_id", "organization unit %q does not exist in tenant %q", cur, tenant)
		}
		if err != nil {
			return nil, internal("get organization unit", err)
		}
		chain = append(chain, cur)
		cur = r.Msg.GetParentId()
	}
	return chain, nil
}

// GetOrganizationUnit reads an OU.
func (a *App) GetOrganizationUnit(ctx context.Context, tenant, id string) (*configv1.OrganizationUnit, error) {
	r, err := getRec(ctx, a.t.OrgUnits, kindOU, tenant, id)
	if err != nil {
		return nil, err
	}
	return r.Msg, nil
}

// ListOrganizationUnits pages through a tenant's OUs, optionally the
// children of parent.
func (a *App) ListOrganizationUnits(ctx context.Context, tenant string, p Page, parent string) ([]*configv1.OrganizationUnit, string, error) {
	q, err := p.query(map[string]string{"parent_id": parent})
	if err != nil {
		return nil, "", err
	}
	recs, err := a.t.OrgUnits.List(ctx, tenant, q)
	if err != nil {
		return nil, "", internal("list organization units", err)
	}
	out, next := page(recs, q, func(r *Record[*configv1.OrganizationUnit]) *configv1.OrganizationUnit { return r.Msg })
	return out, next, nil
}

// UpdateOrganizationUnit renames or moves an OU. A move must not make a
// loop, and every messaging entry below must still reach its connector.
func (a *App) UpdateOrganizationUnit(ctx context.Context, in *configv1.OrganizationUnit, paths []string) (*configv1.OrganizationUnit, error) {
	defer a.lockRecord(kindOU, in.GetTenantId(), in.GetId())()
	old, o, err := loadForUpdate(ctx, a.t.OrgUnits, kindOU, in.GetTenantId(), in, paths, ouRules)
	if err != nil {
		return nil, err
	}
	if err := validateOU(o); err != nil {
		return nil, err
	}
	if proto.Equal(o, old.Msg) {
		return old.Msg, nil
	}
	if o.ParentId != old.Msg.ParentId {
		if err := a.checkMove(ctx, old.Msg, o.ParentId); err != nil {
			return nil, err
		}
	}
	o.Version, o.UpdateTime = old.Version+1, ts(a.now())
	if err := replace(ctx, a.t.OrgUnits, kindOU, &Record[*configv1.OrganizationUnit]{Tenant: o.TenantId, ID: o.Id, Version: o.Version, Msg: o}, old.Version); err != nil {
		return nil, err
	}
	a.changed(ctx, configv1.EntityKind_ENTITY_KIND_ORGANIZATION_UNIT, o.TenantId, o.Id, configv1.ChangeType_CHANGE_TYPE_UPDATED, o.Version)
	return o, nil
}

func (a *App) checkMove(ctx context.Context, old *configv1.OrganizationUnit, newParent string) error {
	if old.ParentId == "" {
		return precondition("parent_id", "the root organization unit %q cannot be moved", old.Id)
	}
	if newParent == "" {
		return precondition("parent_id", "a tenant has one root organization unit; %q must keep a parent", old.Id)
	}
	chain, err := a.ancestry(ctx, old.TenantId, newParent)
	if err != nil {
		return err
	}
	if slices.Contains(chain, old.Id) {
		return precondition("parent_id", "moving %q below %q would make a loop", old.Id, newParent)
	}
	// Entries in the moved subtree keep only connectors of the subtree or
	// of the new ancestors.
	tree, err := a.t.OrgUnits.List(ctx, old.TenantId, Query{})
	if err != nil {
		return internal("list organization units", err)
	}
	parent := map[string]string{}
	for _, r := range tree {
		parent[r.ID] = r.Msg.GetParentId()
	}
	parent[old.Id] = newParent
	reach := func(from string) []string {
		var out []string
		for cur := from; cur != "" && len(out) <= maxDepth; cur = parent[cur] {
			out = append(out, cur)
		}
		return out
	}
	entries, err := a.t.Entries.List(ctx, old.TenantId, Query{})
	if err != nil {
		return internal("list entries", err)
	}
	conns := map[string]string{}
	for _, e := range entries {
		up := reach(e.Msg.GetOrgUnitId())
		if !slices.Contains(up, old.Id) {
			continue
		}
		cid := e.Msg.GetConnectorId()
		if _, ok := conns[cid]; !ok {
			c, err := a.t.Connectors.Get(ctx, old.TenantId, cid)
			if err != nil && !errors.Is(err, ErrNotFound) {
				return internal("get connector", err)
			}
			if c != nil {
				conns[cid] = c.Msg.GetOrgUnitId()
			}
		}
		if !slices.Contains(up, conns[cid]) {
			return precondition("parent_id", "after the move, messaging entry %q could no longer use connector %q of organization unit %q", e.ID, cid, conns[cid])
		}
	}
	return nil
}

// DeleteOrganizationUnit deletes an OU nothing is in.
func (a *App) DeleteOrganizationUnit(ctx context.Context, tenant, id string, version int64) error {
	defer a.lockRecord(kindOU, tenant, id)()
	old, err := getRec(ctx, a.t.OrgUnits, kindOU, tenant, id)
	if err != nil {
		return err
	}
	checks := []struct {
		what string
		n    func() (int, error)
	}{
		{"child organization units", func() (int, error) {
			r, err := a.t.OrgUnits.List(ctx, tenant, Query{Limit: 1, Eq: map[string]string{"parent_id": id}})
			return len(r), err
		}},
		{"provider connectors", func() (int, error) {
			r, err := a.t.Connectors.List(ctx, tenant, Query{Limit: 1, Eq: map[string]string{"org_unit_id": id}})
			return len(r), err
		}},
		{"messaging entries", func() (int, error) {
			r, err := a.t.Entries.List(ctx, tenant, Query{Limit: 1, Eq: map[string]string{"org_unit_id": id}})
			return len(r), err
		}},
		{"services", func() (int, error) {
			r, err := a.t.Services.List(ctx, tenant, Query{Limit: 1, Eq: map[string]string{"org_unit_id": id}})
			return len(r), err
		}},
	}
	for _, c := range checks {
		n, err := c.n()
		if err != nil {
			return internal("list "+c.what, err)
		}
		if n > 0 {
			return precondition("id", "organization unit %q still has %s", id, c.what)
		}
	}
	if err := deleteRec(ctx, a.t.OrgUnits, kindOU, tenant, id, version, old.Version); err != nil {
		return err
	}
	if old.Msg.GetParentId() == "" {
		a.release(ctx, tenant, id, claimRootOU+tenant)
	}
	a.changed(ctx, configv1.EntityKind_ENTITY_KIND_ORGANIZATION_UNIT, tenant, id, configv1.ChangeType_CHANGE_TYPE_DELETED, old.Version+1)
	return nil
}
