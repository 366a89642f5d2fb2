package tenantspec

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
)

// Op is what Apply did to one record.
type Op string

// Ops, from most to least significant.
const (
	Created   Op = "created"
	Updated   Op = "updated"
	Unchanged Op = "unchanged"
)

// Action is one record Apply looked at.
type Action struct {
	Kind string
	ID   string
	Op   Op
}

// Result lists what Apply did, in the order it did it.
type Result struct {
	Actions []Action
}

func (r *Result) record(kind, id string, op Op) {
	for i, a := range r.Actions {
		if a.Kind == kind && a.ID == id {
			if op == Created || (op == Updated && a.Op == Unchanged) {
				r.Actions[i].Op = op
			}
			return
		}
	}
	r.Actions = append(r.Actions, Action{Kind: kind, ID: id, Op: op})
}

// Changed counts records created or updated.
func (r Result) Changed() int {
	n := 0
	for _, a := range r.Actions {
		if a.Op != Unchanged {
			n++
		}
	}
	return n
}

// String is one line per record: "created  service support".
func (r Result) String() string {
	var b strings.Builder
	for _, a := range r.Actions {
		fmt.Fprintf(&b, "%-9s %s %s\n", a.Op, a.Kind, a.ID)
	}
	return b.String()
}

type versioned interface {
	proto.Message
	GetVersion() int64
}

// upsert creates a missing record or updates an existing one; the server
// leaves the version alone when nothing changed.
func upsert[M versioned](get func() (M, error), create func() (M, error), update func(cur M) (M, error)) (Op, M, error) {
	cur, err := get()
	if status.Code(err) == codes.NotFound {
		created, err := create()
		return Created, created, err
	}
	if err != nil {
		return "", cur, err
	}
	updated, err := update(cur)
	if err != nil {
		return "", cur, err
	}
	if updated.GetVersion() == cur.GetVersion() {
		return Unchanged, updated, nil
	}
	return Updated, updated, nil
}

type applier struct {
	s       *Spec
	tenant  string
	res     Result
	tenants configv1.TenantServiceClient
	channel configv1.ChannelServiceClient
	svc     configv1.ServiceServiceClient
	users   configv1.UserServiceClient
	wfs     configv1.WorkflowServiceClient
}

func (a *applier) fail(path, kind, id string, err error) error {
	where := fmt.Sprintf("%s %q", kind, id)
	if line := a.s.line(path); line > 0 {
		where = fmt.Sprintf("line %d: %s", line, where)
	}
	if status.Code(err) == codes.PermissionDenied && kind == "tenant" {
		return fmt.Errorf("%s: %w (creating a tenant needs a platform token: switchboardctl token --role platform)", where, err)
	}
	return fmt.Errorf("%s: %w", where, err)
}

// Apply makes the config service hold spec: it creates what is missing and
// updates what differs, in dependency order (tenant, organization units,
// connectors, entries, workflows, services, users), and reports what it did.
// Applying the same spec again changes nothing. Apply never deletes.
//
// conn must carry credentials of the tenant's admin, or of a platform
// operator when the tenant does not exist yet.
func Apply(ctx context.Context, conn grpc.ClientConnInterface, spec *Spec) (Result, error) {
	if err := spec.Check(); err != nil {
		return Result{}, err
	}
	a := &applier{
		s:       spec,
		tenant:  spec.Tenant.ID,
		tenants: configv1.NewTenantServiceClient(conn),
		channel: configv1.NewChannelServiceClient(conn),
		svc:     configv1.NewServiceServiceClient(conn),
		users:   configv1.NewUserServiceClient(conn),
		wfs:     configv1.NewWorkflowServiceClient(conn),
	}
	steps := []func(context.Context) error{
		a.applyTenant, a.applyOrgUnits, a.applyConnectors, a.applyEntries,
		a.applyWorkflowsAndServices, a.applyUsers, a.finishTenant,
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return a.res, err
		}
	}
	return a.res, nil
}

// applyTenant switches on, first, every modality the spec or the stored
// tenant has on: services may need a new one, and the old ones may still be
// in use until the services are updated. finishTenant switches off what the
// spec has off.
func (a *applier) applyTenant(ctx context.Context) error {
	want := a.s.Tenant.Proto()
	op, _, err := upsert(
		func() (*configv1.Tenant, error) {
			r, err := a.tenants.GetTenant(ctx, &configv1.GetTenantRequest{Id: a.tenant})
			return r.GetTenant(), err
		},
		func() (*configv1.Tenant, error) {
			r, err := a.tenants.CreateTenant(ctx, &configv1.CreateTenantRequest{Tenant: want})
			return r.GetTenant(), err
		},
		func(cur *configv1.Tenant) (*configv1.Tenant, error) {
			t := proto.Clone(want).(*configv1.Tenant)
			m, c := t.Modalities, cur.GetModalities()
			m.InstantMessaging = m.InstantMessaging || c.GetInstantMessaging()
			m.Twilio = m.Twilio || c.GetTwilio()
			m.Sms = m.Sms || c.GetSms()
			m.Whatsapp = m.Whatsapp || c.GetWhatsapp()
			t.Version = cur.GetVersion()
			r, err := a.tenants.UpdateTenant(ctx, &configv1.UpdateTenantRequest{Tenant: t})
			return r.GetTenant(), err
		})
	if err != nil {
		return a.fail("tenant", "tenant", a.tenant, err)
	}
	a.res.record("tenant", a.tenant, op)
	return nil
}

func (a *applier) finishTenant(ctx context.Context) error {
	r, err := a.tenants.GetTenant(ctx, &configv1.GetTenantRequest{Id: a.tenant})
	if err != nil {
		return a.fail("tenant", "tenant", a.tenant, err)
	}
	want := a.s.Tenant.Proto()
	want.Version = r.GetTenant().GetVersion()
	u, err := a.tenants.UpdateTenant(ctx, &configv1.UpdateTenantRequest{Tenant: want})
	if err != nil {
		return a.fail("tenant.modalities", "tenant", a.tenant, err)
	}
	if u.GetTenant().GetVersion() != want.Version {
		a.res.record("tenant", a.tenant, Updated)
	}
	return nil
}

func (a *applier) applyOrgUnits(ctx context.Context) error {
	ordered, err := a.s.ouOrder()
	if err != nil {
		return err
	}
	for _, o := range ordered {
		want := o.Proto(a.tenant)
		op, _, err := upsert(
			func() (*configv1.OrganizationUnit, error) {
				r, err := a.tenants.GetOrganizationUnit(ctx, &configv1.GetOrganizationUnitRequest{TenantId: a.tenant, Id: o.ID})
				return r.GetOrganizationUnit(), err
			},
			func() (*configv1.OrganizationUnit, error) {
				r, err := a.tenants.CreateOrganizationUnit(ctx, &configv1.CreateOrganizationUnitRequest{OrganizationUnit: want})
				return r.GetOrganizationUnit(), err
			},
			func(cur *configv1.OrganizationUnit) (*configv1.OrganizationUnit, error) {
				want.Version = cur.GetVersion()
				r, err := a.tenants.UpdateOrganizationUnit(ctx, &configv1.UpdateOrganizationUnitRequest{OrganizationUnit: want})
				return r.GetOrganizationUnit(), err
			})
		if err != nil {
			i := slices.IndexFunc(a.s.OrganizationUnits, func(x OrgUnit) bool { return x.ID == o.ID })
			return a.fail(fmt.Sprintf("organization_units[%d]", i), "organization unit", o.ID, err)
		}
		a.res.record("organization unit", o.ID, op)
	}
	return nil
}

func (a *applier) applyConnectors(ctx context.Context) error {
	for i, c := range a.s.Connectors {
		want := c.Proto(a.tenant)
		op, _, err := upsert(
			func() (*configv1.ProviderConnector, error) {
				r, err := a.channel.GetProviderConnector(ctx, &configv1.GetProviderConnectorRequest{TenantId: a.tenant, Id: c.ID})
				return r.GetProviderConnector(), err
			},
			func() (*configv1.ProviderConnector, error) {
				r, err := a.channel.CreateProviderConnector(ctx, &configv1.CreateProviderConnectorRequest{ProviderConnector: want})
				return r.GetProviderConnector(), err
			},
			func(cur *configv1.ProviderConnector) (*configv1.ProviderConnector, error) {
				want.Version = cur.GetVersion()
				// Without a mask, an empty secondary token keeps the stored
				// one; name it so the spec's "none" ends a rotation.
				var mask []string
				if c.SecondaryAuthToken == "" && cur.GetSecondaryAuthTokenHint() != "" {
					mask = connectorMask
				}
				r, err := a.channel.UpdateProviderConnector(ctx, &configv1.UpdateProviderConnectorRequest{ProviderConnector: want, UpdateMask: fieldMask(mask)})
				return r.GetProviderConnector(), err
			})
		if err != nil {
			return a.fail(fmt.Sprintf("connectors[%d]", i), "provider connector", c.ID, err)
		}
		a.res.record("provider connector", c.ID, op)
	}
	return nil
}

var connectorMask = []string{"name", "org_unit_id", "account_sid", "api_key_sid", "api_key_secret", "auth_token", "secondary_auth_token", "region", "edge"}

func (a *applier) applyEntries(ctx context.Context) error {
	for i, e := range a.s.MessagingEntries {
		path := fmt.Sprintf("messaging_entries[%d]", i)
		want, err := e.Proto(a.tenant)
		if err != nil {
			return a.fail(path, "messaging entry", e.ID, err)
		}
		op, _, err := upsert(
			func() (*configv1.MessagingEntry, error) {
				r, err := a.channel.GetMessagingEntry(ctx, &configv1.GetMessagingEntryRequest{TenantId: a.tenant, Id: e.ID})
				return r.GetMessagingEntry(), err
			},
			func() (*configv1.MessagingEntry, error) {
				r, err := a.channel.CreateMessagingEntry(ctx, &configv1.CreateMessagingEntryRequest{MessagingEntry: want})
				return r.GetMessagingEntry(), err
			},
			func(cur *configv1.MessagingEntry) (*configv1.MessagingEntry, error) {
				want.Version = cur.GetVersion()
				r, err := a.channel.UpdateMessagingEntry(ctx, &configv1.UpdateMessagingEntryRequest{MessagingEntry: want})
				return r.GetMessagingEntry(), err
			})
		if err != nil {
			return a.fail(path, "messaging entry", e.ID, err)
		}
		a.res.record("messaging entry", e.ID, op)
	}
	return nil
}

// applyWorkflow creates or updates workflow i of the spec.
func (a *applier) applyWorkflow(ctx context.Context, i int) error {
	w := a.s.Workflows[i]
	want, err := w.Proto(a.tenant)
	if err != nil {
		return err
	}
	op, _, err := upsert(
		func() (*configv1.Workflow, error) {
			r, err := a.wfs.GetWorkflow(ctx, &configv1.GetWorkflowRequest{TenantId: a.tenant, Id: w.ID})
			return r.GetWorkflow(), err
		},
		func() (*configv1.Workflow, error) {
			r, err := a.wfs.CreateWorkflow(ctx, &configv1.CreateWorkflowRequest{Workflow: want})
			return r.GetWorkflow(), err
		},
		func(cur *configv1.Workflow) (*configv1.Workflow, error) {
			want.Version = cur.GetVersion()
			r, err := a.wfs.UpdateWorkflow(ctx, &configv1.UpdateWorkflowRequest{Workflow: want})
			return r.GetWorkflow(), err
		})
	if err != nil {
		return err
	}
	a.res.record("workflow", w.ID, op)
	return nil
}

// applyWorkflowsAndServices applies the workflows, then the services. Each
// can need the other first: a new version of a workflow an IM service
// follows may name a service the spec creates, and a new service may need
// the new version of its workflow. What config refuses as a failed
// precondition is tried again once everything else is in, until a round
// makes no progress; its first refusal is the error.
func (a *applier) applyWorkflowsAndServices(ctx context.Context) error {
	type item struct {
		path, kind, id string
		apply          func() error
	}
	var pending []item
	for i, w := range a.s.Workflows {
		pending = append(pending, item{fmt.Sprintf("workflows[%d]", i), "workflow", w.ID, func() error { return a.applyWorkflow(ctx, i) }})
	}
	if err := a.dropServiceEntries(ctx); err != nil {
		return err
	}
	for i, s := range a.s.Services {
		pending = append(pending, item{fmt.Sprintf("services[%d]", i), "service", s.ID, func() error { return a.applyService(ctx, i) }})
	}
	for len(pending) > 0 {
		var later []item
		var first error
		for _, it := range pending {
			err := it.apply()
			if status.Code(err) == codes.FailedPrecondition {
				later = append(later, it)
				if first == nil {
					first = a.fail(it.path, it.kind, it.id, err)
				}
				continue
			}
			if err != nil {
				return a.fail(it.path, it.kind, it.id, err)
			}
		}
		if len(later) == len(pending) {
			return first
		}
		pending = later
	}
	return nil
}

// dropServiceEntries removes from existing services the entries they lose,
// so another service of the spec can take them.
func (a *applier) dropServiceEntries(ctx context.Context) error {
	for i, s := range a.s.Services {
		want, err := s.Proto(a.tenant)
		if err != nil {
			return a.fail(fmt.Sprintf("services[%d]", i), "service", s.ID, err)
		}
		cur, err := a.svc.GetService(ctx, &configv1.GetServiceRequest{TenantId: a.tenant, Id: s.ID})
		if status.Code(err) == codes.NotFound {
			continue
		}
		if err != nil {
			return a.fail(fmt.Sprintf("services[%d]", i), "service", s.ID, err)
		}
		keep := slices.DeleteFunc(slices.Clone(cur.GetService().GetMessagingEntryIds()), func(id string) bool {
			return !slices.Contains(want.MessagingEntryIds, id)
		})
		if len(keep) == len(cur.GetService().GetMessagingEntryIds()) {
			continue
		}
		r, err := a.svc.UpdateService(ctx, &configv1.UpdateServiceRequest{
			Service:    &configv1.Service{TenantId: a.tenant, Id: s.ID, Version: cur.GetService().GetVersion(), MessagingEntryIds: keep},
			UpdateMask: fieldMask([]string{"messaging_entry_ids"}),
		})
		if err != nil {
			return a.fail(fmt.Sprintf("services[%d].messaging_entries", i), "service", s.ID, err)
		}
		if r.GetService().GetVersion() != cur.GetService().GetVersion() {
			a.res.record("service", s.ID, Updated)
		}
	}
	return nil
}

// applyService creates or updates service i of the spec.
func (a *applier) applyService(ctx context.Context, i int) error {
	s := a.s.Services[i]
	want, err := s.Proto(a.tenant)
	if err != nil {
		return err
	}
	op, _, err := upsert(
		func() (*configv1.Service, error) {
			r, err := a.svc.GetService(ctx, &configv1.GetServiceRequest{TenantId: a.tenant, Id: s.ID})
			return r.GetService(), err
		},
		func() (*configv1.Service, error) {
			r, err := a.svc.CreateService(ctx, &configv1.CreateServiceRequest{Service: want})
			return r.GetService(), err
		},
		func(cur *configv1.Service) (*configv1.Service, error) {
			want.Version = cur.GetVersion()
			r, err := a.svc.UpdateService(ctx, &configv1.UpdateServiceRequest{Service: want})
			return r.GetService(), err
		})
	if err != nil {
		return err
	}
	a.res.record("service", s.ID, op)
	return nil
}

func (a *applier) applyUsers(ctx context.Context) error {
	for i, u := range a.s.Users {
		path := fmt.Sprintf("users[%d]", i)
		want, err := u.Proto(a.tenant)
		if err != nil {
			return a.fail(path, "user", u.ID, err)
		}
		op, _, err := upsert(
			func() (*configv1.User, error) {
				r, err := a.users.GetUser(ctx, &configv1.GetUserRequest{TenantId: a.tenant, Id: u.ID})
				return r.GetUser(), err
			},
			func() (*configv1.User, error) {
				r, err := a.users.CreateUser(ctx, &configv1.CreateUserRequest{User: want})
				return r.GetUser(), err
			},
			func(cur *configv1.User) (*configv1.User, error) {
				want.Version = cur.GetVersion()
				r, err := a.users.UpdateUser(ctx, &configv1.UpdateUserRequest{User: want})
				return r.GetUser(), err
			})
		if err != nil {
			return a.fail(path, "user", u.ID, err)
		}
		a.res.record("user", u.ID, op)
	}
	return nil
}

func fieldMask(paths []string) *fieldmaskpb.FieldMask {
	if len(paths) == 0 {
		return nil
	}
	return &fieldmaskpb.FieldMask{Paths: paths}
}
