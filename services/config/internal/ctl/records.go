package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"gopkg.in/yaml.v3"

	"github.com/switchboard-cc/switchboard/pkg/workflowdef"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	"github.com/switchboard-cc/switchboard/services/config/tenantspec"
)

// kind describes one kind of record for list, get and delete.
type kind struct {
	name   string
	header string
	row    func(proto.Message) string
	list   func(ctx context.Context, conn grpc.ClientConnInterface, tenant, token string) ([]proto.Message, string, error)
	get    func(ctx context.Context, conn grpc.ClientConnInterface, tenant, id string) (proto.Message, error)
	del    func(ctx context.Context, conn grpc.ClientConnInterface, tenant, id string) error
}

func msgs[M proto.Message](in []M) []proto.Message {
	out := make([]proto.Message, len(in))
	for i, m := range in {
		out[i] = m
	}
	return out
}

func join(ss []string) string {
	if len(ss) == 0 {
		return "-"
	}
	return strings.Join(ss, ",")
}

var kinds = []kind{
	{
		name: "tenants", header: "ID\tNAME\tIM\tTWILIO\tSMS\tWHATSAPP\tTIME ZONE\tVERSION",
		row: func(m proto.Message) string {
			t := m.(*configv1.Tenant)
			mo := t.GetModalities()
			tz := t.GetTimeZone()
			if tz == "" {
				tz = "UTC"
			}
			return fmt.Sprintf("%s\t%s\t%v\t%v\t%v\t%v\t%s\t%d", t.GetId(), t.GetDisplayName(), mo.GetInstantMessaging(), mo.GetTwilio(), mo.GetSms(), mo.GetWhatsapp(), tz, t.GetVersion())
		},
		list: func(ctx context.Context, conn grpc.ClientConnInterface, _, token string) ([]proto.Message, string, error) {
			r, err := configv1.NewTenantServiceClient(conn).ListTenants(ctx, &configv1.ListTenantsRequest{PageToken: token})
			return msgs(r.GetTenants()), r.GetNextPageToken(), err
		},
		get: func(ctx context.Context, conn grpc.ClientConnInterface, _, id string) (proto.Message, error) {
			r, err := configv1.NewTenantServiceClient(conn).GetTenant(ctx, &configv1.GetTenantRequest{Id: id})
			return r.GetTenant(), err
		},
		del: func(ctx context.Context, conn grpc.ClientConnInterface, _, id string) error {
			_, err := configv1.NewTenantServiceClient(conn).DeleteTenant(ctx, &configv1.DeleteTenantRequest{Id: id})
			return err
		},
	},
	{
		name: "ous", header: "ID\tNAME\tPARENT\tVERSION",
		row: func(m proto.Message) string {
			o := m.(*configv1.OrganizationUnit)
			parent := o.GetParentId()
			if parent == "" {
				parent = "-"
			}
			return fmt.Sprintf("%s\t%s\t%s\t%d", o.GetId(), o.GetName(), parent, o.GetVersion())
		},
		list: func(ctx context.Context, conn grpc.ClientConnInterface, tenant, token string) ([]proto.Message, string, error) {
			r, err := configv1.NewTenantServiceClient(conn).ListOrganizationUnits(ctx, &configv1.ListOrganizationUnitsRequest{TenantId: tenant, PageToken: token})
			return msgs(r.GetOrganizationUnits()), r.GetNextPageToken(), err
		},
		get: func(ctx context.Context, conn grpc.ClientConnInterface, tenant, id string) (proto.Message, error) {
			r, err := configv1.NewTenantServiceClient(conn).GetOrganizationUnit(ctx, &configv1.GetOrganizationUnitRequest{TenantId: tenant, Id: id})
			return r.GetOrganizationUnit(), err
		},
		del: func(ctx context.Context, conn grpc.ClientConnInterface, tenant, id string) error {
			_, err := configv1.NewTenantServiceClient(conn).DeleteOrganizationUnit(ctx, &configv1.DeleteOrganizationUnitRequest{TenantId: tenant, Id: id})
			return err
		},
	},
	{
		name: "connectors", header: "ID\tNAME\tOU\tACCOUNT\tAPI KEY\tSECRET\tAUTH TOKEN\tREGION\tVERSION",
		row: func(m proto.Message) string {
			c := m.(*configv1.ProviderConnector)
			tok := c.GetAuthTokenHint()
			if c.GetSecondaryAuthTokenHint() != "" {
				tok += " (+" + c.GetSecondaryAuthTokenHint() + ")"
			}
			return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s/%s\t%d", c.GetId(), c.GetName(), c.GetOrgUnitId(), c.GetAccountSid(), c.GetApiKeySid(), c.GetApiKeySecretHint(), tok, c.GetRegion(), c.GetEdge(), c.GetVersion())
		},
		list: func(ctx context.Context, conn grpc.ClientConnInterface, tenant, token string) ([]proto.Message, string, error) {
			r, err := configv1.NewChannelServiceClient(conn).ListProviderConnectors(ctx, &configv1.ListProviderConnectorsRequest{TenantId: tenant, PageToken: token})
			return msgs(r.GetProviderConnectors()), r.GetNextPageToken(), err
		},
		get: func(ctx context.Context, conn grpc.ClientConnInterface, tenant, id string) (proto.Message, error) {
			r, err := configv1.NewChannelServiceClient(conn).GetProviderConnector(ctx, &configv1.GetProviderConnectorRequest{TenantId: tenant, Id: id})
			return r.GetProviderConnector(), err
		},
		del: func(ctx context.Context, conn grpc.ClientConnInterface, tenant, id string) error {
			_, err := configv1.NewChannelServiceClient(conn).DeleteProviderConnector(ctx, &configv1.DeleteProviderConnectorRequest{TenantId: tenant, Id: id})
			return err
		},
	},
	{
		name: "entries", header: "ID\tNAME\tOU\tCONNECTOR\tCHANNEL\tPATH\tSERVICE SID\tADDRESSES\tVERSION",
		row: func(m proto.Message) string {
			e := m.(*configv1.MessagingEntry)
			sid := e.GetConversationsServiceSid()
			if sid == "" {
				sid = "-"
			}
			return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d", e.GetId(), e.GetName(), e.GetOrgUnitId(), e.GetConnectorId(),
				strings.ToLower(strings.TrimPrefix(e.GetChannel().String(), "CHANNEL_")), strings.ToLower(strings.TrimPrefix(e.GetPath().String(), "TWILIO_PATH_")),
				sid, join(e.GetBusinessAddresses()), e.GetVersion())
		},
		list: func(ctx context.Context, conn grpc.ClientConnInterface, tenant, token string) ([]proto.Message, string, error) {
			r, err := configv1.NewChannelServiceClient(conn).ListMessagingEntries(ctx, &configv1.ListMessagingEntriesRequest{TenantId: tenant, PageToken: token})
			return msgs(r.GetMessagingEntries()), r.GetNextPageToken(), err
		},
		get: func(ctx context.Context, conn grpc.ClientConnInterface, tenant, id string) (proto.Message, error) {
			r, err := configv1.NewChannelServiceClient(conn).GetMessagingEntry(ctx, &configv1.GetMessagingEntryRequest{TenantId: tenant, Id: id})
			return r.GetMessagingEntry(), err
		},
		del: func(ctx context.Context, conn grpc.ClientConnInterface, tenant, id string) error {
			_, err := configv1.NewChannelServiceClient(conn).DeleteMessagingEntry(ctx, &configv1.DeleteMessagingEntryRequest{TenantId: tenant, Id: id})
			return err
		},
	},
	{
		name: "services", header: "ID\tNAME\tOU\tIM\tCHANNELS\tENTRIES\tWORKFLOW\tRONA\tPARALLEL\tVERSION",
		row: func(m proto.Message) string {
			s := m.(*configv1.Service)
			var chs []string
			for _, c := range s.GetChannels() {
				chs = append(chs, strings.ToLower(strings.TrimPrefix(c.String(), "CHANNEL_")))
			}
			wf := s.GetWorkflowId()
			switch {
			case wf == "":
				wf = "(default)"
			case s.GetWorkflowVersion() > 0:
				wf += "@" + strconv.FormatInt(s.GetWorkflowVersion(), 10)
			}
			d := s.GetDistribution()
			return fmt.Sprintf("%s\t%s\t%s\t%v\t%s\t%s\t%s\t%s\t%d\t%d", s.GetId(), s.GetName(), s.GetOrgUnitId(), s.GetImEnabled(), join(chs),
				join(s.GetMessagingEntryIds()), wf, d.GetRonaTimeout().AsDuration(), d.GetMaxParallelTasks(), s.GetVersion())
		},
		list: func(ctx context.Context, conn grpc.ClientConnInterface, tenant, token string) ([]proto.Message, string, error) {
			r, err := configv1.NewServiceServiceClient(conn).ListServices(ctx, &configv1.ListServicesRequest{TenantId: tenant, PageToken: token})
			return msgs(r.GetServices()), r.GetNextPageToken(), err
		},
		get: func(ctx context.Context, conn grpc.ClientConnInterface, tenant, id string) (proto.Message, error) {
			r, err := configv1.NewServiceServiceClient(conn).GetService(ctx, &configv1.GetServiceRequest{TenantId: tenant, Id: id})
			return r.GetService(), err
		},
		del: func(ctx context.Context, conn grpc.ClientConnInterface, tenant, id string) error {
			_, err := configv1.NewServiceServiceClient(conn).DeleteService(ctx, &configv1.DeleteServiceRequest{TenantId: tenant, Id: id})
			return err
		},
	},
	{
		name: "users", header: "ID\tNAME\tEMAIL\tROLES\tIM\tSERVICES\tVERSION",
		row: func(m proto.Message) string {
			u := m.(*configv1.User)
			var roles []string
			for _, r := range u.GetRoles() {
				roles = append(roles, tenantspec.RoleName(r))
			}
			return fmt.Sprintf("%s\t%s\t%s\t%s\t%v\t%s\t%d", u.GetId(), u.GetDisplayName(), u.GetEmail(), join(roles), u.GetImLicense(), join(u.GetServiceIds()), u.GetVersion())
		},
		list: func(ctx context.Context, conn grpc.ClientConnInterface, tenant, token string) ([]proto.Message, string, error) {
			r, err := configv1.NewUserServiceClient(conn).ListUsers(ctx, &configv1.ListUsersRequest{TenantId: tenant, PageToken: token})
			return msgs(r.GetUsers()), r.GetNextPageToken(), err
		},
		get: func(ctx context.Context, conn grpc.ClientConnInterface, tenant, id string) (proto.Message, error) {
			r, err := configv1.NewUserServiceClient(conn).GetUser(ctx, &configv1.GetUserRequest{TenantId: tenant, Id: id})
			return r.GetUser(), err
		},
		del: func(ctx context.Context, conn grpc.ClientConnInterface, tenant, id string) error {
			_, err := configv1.NewUserServiceClient(conn).DeleteUser(ctx, &configv1.DeleteUserRequest{TenantId: tenant, Id: id})
			return err
		},
	},
	{
		name: "workflows", header: "ID\tNAME\tACTIVITIES\tNOT FOR IM\tVERSION",
		row: func(m proto.Message) string {
			w := m.(*configv1.Workflow)
			return fmt.Sprintf("%s\t%s\t%d\t%s\t%d", w.GetId(), w.GetName(), len(w.GetDefinition().GetActivities()), join(w.GetImUnsupportedActivities()), w.GetVersion())
		},
		list: func(ctx context.Context, conn grpc.ClientConnInterface, tenant, token string) ([]proto.Message, string, error) {
			r, err := configv1.NewWorkflowServiceClient(conn).ListWorkflows(ctx, &configv1.ListWorkflowsRequest{TenantId: tenant, PageToken: token})
			return msgs(r.GetWorkflows()), r.GetNextPageToken(), err
		},
		get: func(ctx context.Context, conn grpc.ClientConnInterface, tenant, id string) (proto.Message, error) {
			r, err := configv1.NewWorkflowServiceClient(conn).GetWorkflow(ctx, &configv1.GetWorkflowRequest{TenantId: tenant, Id: id})
			return r.GetWorkflow(), err
		},
		del: func(ctx context.Context, conn grpc.ClientConnInterface, tenant, id string) error {
			_, err := configv1.NewWorkflowServiceClient(conn).DeleteWorkflow(ctx, &configv1.DeleteWorkflowRequest{TenantId: tenant, Id: id})
			return err
		},
	},
}

// aliases map what users type to kind names.
var aliases = map[string]string{
	"tenant": "tenants", "ou": "ous", "orgunit": "ous", "orgunits": "ous", "organization-units": "ous",
	"connector": "connectors", "entry": "entries", "service": "services", "user": "users", "workflow": "workflows",
}

func lookupKind(name string) (kind, error) {
	if a, ok := aliases[name]; ok {
		name = a
	}
	for _, k := range kinds {
		if k.name == name {
			return k, nil
		}
	}
	return kind{}, fmt.Errorf("unknown kind %q: tenants, ous, connectors, entries, services, users or workflows", name)
}

func (c *cli) kindArgs(name string, args []string, wantID bool) (kind, string, string, string, error) {
	fs := c.flags(name)
	tenant := fs.String("tenant", "", "tenant")
	output := fs.String("o", "", "output: table (list default), json, yaml (get default)")
	pos, err := parse(fs, args)
	if err != nil {
		return kind{}, "", "", "", err
	}
	want := 1
	if wantID {
		want = 2
	}
	if len(pos) != want {
		if wantID {
			return kind{}, "", "", "", fmt.Errorf("usage: switchboardctl %s <kind> <id> --tenant T", name)
		}
		return kind{}, "", "", "", fmt.Errorf("usage: switchboardctl %s <kind> --tenant T", name)
	}
	k, err := lookupKind(pos[0])
	if err != nil {
		return kind{}, "", "", "", err
	}
	if k.name != "tenants" && *tenant == "" {
		return kind{}, "", "", "", errors.New("--tenant is required")
	}
	id := ""
	if wantID {
		id = pos[1]
	}
	return k, *tenant, id, *output, nil
}

func (c *cli) list(ctx context.Context, args []string) error {
	k, tenant, _, output, err := c.kindArgs("list", args, false)
	if err != nil {
		return err
	}
	conn, err := c.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	var all []proto.Message
	for token := ""; ; {
		page, next, err := k.list(ctx, conn, tenant, token)
		if err != nil {
			return err
		}
		all = append(all, page...)
		if token = next; token == "" {
			break
		}
	}
	if output == "" || output == "table" {
		w := tabwriter.NewWriter(c.io.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, k.header)
		for _, m := range all {
			fmt.Fprintln(w, k.row(m))
		}
		return w.Flush()
	}
	for _, m := range all {
		if err := c.print(m, output); err != nil {
			return err
		}
	}
	return nil
}

func (c *cli) get(ctx context.Context, args []string) error {
	k, tenant, id, output, err := c.kindArgs("get", args, true)
	if err != nil {
		return err
	}
	conn, err := c.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	m, err := k.get(ctx, conn, tenant, id)
	if err != nil {
		return err
	}
	return c.print(m, output)
}

func (c *cli) delete(ctx context.Context, args []string) error {
	k, tenant, id, _, err := c.kindArgs("delete", args, true)
	if err != nil {
		return err
	}
	conn, err := c.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := k.del(ctx, conn, tenant, id); err != nil {
		return err
	}
	fmt.Fprintf(c.io.Stdout, "deleted %s %s\n", strings.TrimSuffix(k.name, "s"), id)
	return nil
}

// print writes one record as JSON or YAML (the proto JSON form).
func (c *cli) print(m proto.Message, output string) error {
	js, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return err
	}
	switch output {
	case "json":
		// Re-indented: protojson's own spacing is deliberately unstable.
		var buf bytes.Buffer
		if err := json.Indent(&buf, js, "", "  "); err != nil {
			return err
		}
		_, err = fmt.Fprintln(c.io.Stdout, buf.String())
		return err
	case "", "yaml":
		var v any
		if err := yaml.Unmarshal(js, &v); err != nil {
			return err
		}
		out, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.io.Stdout, "---\n%s", out)
		return err
	}
	return fmt.Errorf("unknown output %q: table, json or yaml", output)
}

// listFlag is a comma-separated list flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

func (c *cli) create(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: switchboardctl create <tenant|ou|connector|entry|service|user|workflow> [flags]")
	}
	k, err := lookupKind(args[0])
	if err != nil {
		return err
	}
	fs := c.flags("create " + args[0])
	tenant := fs.String("tenant", "", "tenant")
	id := fs.String("id", "", "id (generated when empty)")
	name := fs.String("name", "", "name")
	ou := fs.String("ou", "", "organization unit")
	var build func() (func(context.Context, grpc.ClientConnInterface) (proto.Message, error), error)

	switch k.name {
	case "tenants":
		var mods listFlag
		fs.Var(&mods, "modalities", "modalities to switch on: im, twilio, sms, whatsapp (or all)")
		tz := fs.String("time-zone", "", "IANA time zone for reporting's days and months (default UTC)")
		build = func() (func(context.Context, grpc.ClientConnInterface) (proto.Message, error), error) {
			t := tenantspec.Tenant{ID: *id, DisplayName: *name, TimeZone: *tz}
			for _, m := range mods {
				switch m {
				case "im", "instant_messaging":
					t.Modalities.InstantMessaging = true
				case "twilio":
					t.Modalities.Twilio = true
				case "sms":
					t.Modalities.SMS = true
				case "whatsapp":
					t.Modalities.WhatsApp = true
				case "all":
					t.Modalities = tenantspec.Modalities{InstantMessaging: true, Twilio: true, SMS: true, WhatsApp: true}
				default:
					return nil, fmt.Errorf("unknown modality %q", m)
				}
			}
			return func(ctx context.Context, conn grpc.ClientConnInterface) (proto.Message, error) {
				r, err := configv1.NewTenantServiceClient(conn).CreateTenant(ctx, &configv1.CreateTenantRequest{Tenant: t.Proto()})
				return r.GetTenant(), err
			}, nil
		}
	case "ous":
		parent := fs.String("parent", "", "parent OU (empty for the root)")
		build = func() (func(context.Context, grpc.ClientConnInterface) (proto.Message, error), error) {
			o := tenantspec.OrgUnit{ID: *id, Name: *name, Parent: *parent}
			return func(ctx context.Context, conn grpc.ClientConnInterface) (proto.Message, error) {
				r, err := configv1.NewTenantServiceClient(conn).CreateOrganizationUnit(ctx, &configv1.CreateOrganizationUnitRequest{OrganizationUnit: o.Proto(*tenant)})
				return r.GetOrganizationUnit(), err
			}, nil
		}
	case "connectors":
		var cn tenantspec.Connector
		fs.StringVar(&cn.AccountSID, "account-sid", "", "Twilio Account SID (AC…)")
		fs.StringVar(&cn.APIKeySID, "api-key-sid", "", "API Key SID (SK…)")
		fs.StringVar(&cn.APIKeySecret, "api-key-secret", "", "API Key secret (prefer apply -f with ${VAR})")
		fs.StringVar(&cn.AuthToken, "auth-token", "", "Auth Token (prefer apply -f with ${VAR})")
		fs.StringVar(&cn.SecondaryAuthToken, "secondary-auth-token", "", "second Auth Token during a rotation")
		fs.StringVar(&cn.Region, "region", "", "us1 (default), ie1 or au1")
		fs.StringVar(&cn.Edge, "edge", "", "edge (dublin for ie1, sydney for au1)")
		build = func() (func(context.Context, grpc.ClientConnInterface) (proto.Message, error), error) {
			cn.ID, cn.Name, cn.OrgUnit = *id, *name, *ou
			return func(ctx context.Context, conn grpc.ClientConnInterface) (proto.Message, error) {
				r, err := configv1.NewChannelServiceClient(conn).CreateProviderConnector(ctx, &configv1.CreateProviderConnectorRequest{ProviderConnector: cn.Proto(*tenant)})
				return r.GetProviderConnector(), err
			}, nil
		}
	case "entries":
		var e tenantspec.Entry
		var addrs listFlag
		fs.StringVar(&e.Connector, "connector", "", "provider connector")
		fs.StringVar(&e.Channel, "channel", "", "sms or whatsapp")
		fs.StringVar(&e.Path, "path", "", "conversations or messaging (derived when empty)")
		fs.StringVar(&e.ConversationsServiceSID, "conversations-service-sid", "", "Conversations service SID (IS…)")
		fs.StringVar(&e.MessagingServiceSID, "messaging-service-sid", "", "Messaging Service SID (MG…)")
		fs.Var(&addrs, "addresses", "business numbers, comma-separated (+E164, whatsapp:+E164)")
		build = func() (func(context.Context, grpc.ClientConnInterface) (proto.Message, error), error) {
			e.ID, e.Name, e.OrgUnit, e.BusinessAddresses = *id, *name, *ou, addrs
			p, err := e.Proto(*tenant)
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context, conn grpc.ClientConnInterface) (proto.Message, error) {
				r, err := configv1.NewChannelServiceClient(conn).CreateMessagingEntry(ctx, &configv1.CreateMessagingEntryRequest{MessagingEntry: p})
				return r.GetMessagingEntry(), err
			}, nil
		}
	case "services":
		var s tenantspec.Service
		var chans, entries listFlag
		var rona, acw time.Duration
		fs.BoolVar(&s.IM, "im", true, "Instant Messaging on")
		fs.Var(&chans, "channels", "channels: sms, whatsapp")
		fs.Var(&entries, "entries", "messaging entries")
		fs.StringVar(&s.Workflow, "workflow", "", "IM workflow (empty: greet, then queue)")
		fs.Int64Var(&s.WorkflowVersion, "workflow-version", 0, "pinned workflow version (0: latest)")
		fs.StringVar(&s.Greeting, "greeting", "", "greeting of the default workflow")
		fs.StringVar(&s.WorkflowFailureMessage, "failure-message", "", "sent when the workflow cannot go on (empty: the default)")
		var inactivity time.Duration
		fs.DurationVar(&inactivity, "inactivity-timeout", 0, "a customer silent this long while the workflow waits for them ends the session abandoned (0: off; 1m-168h)")
		fs.StringVar(&s.InactivityMessage, "inactivity-message", "", "sent then (empty: the default goodbye)")
		fs.DurationVar(&rona, "rona", 0, "RONA timeout (default 30s)")
		fs.DurationVar(&acw, "acw", 0, "after-call work (0: off)")
		max := fs.Int("max-parallel", 0, "parallel IM tasks per agent (default 1)")
		build = func() (func(context.Context, grpc.ClientConnInterface) (proto.Message, error), error) {
			s.ID, s.Name, s.OrgUnit, s.Channels, s.MessagingEntries = *id, *name, *ou, chans, entries
			s.Distribution = tenantspec.Distribution{RONATimeout: tenantspec.Duration(rona), AfterCallWork: tenantspec.Duration(acw), MaxParallelTasks: int32(*max)}
			s.InactivityTimeout = tenantspec.Duration(inactivity)
			p, err := s.Proto(*tenant)
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context, conn grpc.ClientConnInterface) (proto.Message, error) {
				r, err := configv1.NewServiceServiceClient(conn).CreateService(ctx, &configv1.CreateServiceRequest{Service: p})
				return r.GetService(), err
			}, nil
		}
	case "users":
		var u tenantspec.User
		var roles, services, skills listFlag
		fs.StringVar(&u.Email, "email", "", "sign-in email")
		fs.Var(&roles, "roles", "roles: admin, supervisor, agent, analyst")
		fs.BoolVar(&u.IMLicense, "im-license", true, "Instant Messaging license")
		fs.Var(&services, "services", "services the user is a member of")
		fs.Var(&skills, "skills", "skills")
		capacity := fs.Int("capacity", 0, "parallel IM tasks across services (0: services' default)")
		fs.StringVar(&u.Password, "password", "", "initial password")
		build = func() (func(context.Context, grpc.ClientConnInterface) (proto.Message, error), error) {
			u.ID, u.DisplayName, u.Roles, u.Services, u.Skills, u.Capacity = *id, *name, roles, services, skills, int32(*capacity)
			p, err := u.Proto(*tenant)
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context, conn grpc.ClientConnInterface) (proto.Message, error) {
				r, err := configv1.NewUserServiceClient(conn).CreateUser(ctx, &configv1.CreateUserRequest{User: p})
				return r.GetUser(), err
			}, nil
		}
	case "workflows":
		file := fs.String("f", "", "definition YAML or JSON file (start, activities)")
		description := fs.String("description", "", "description")
		build = func() (func(context.Context, grpc.ClientConnInterface) (proto.Message, error), error) {
			if *file == "" {
				return nil, errors.New("create workflow needs -f <definition file>")
			}
			data, err := c.io.ReadFile(*file)
			if err != nil {
				return nil, err
			}
			w := tenantspec.Workflow{ID: *id, Name: *name, Description: *description}
			if err := yaml.Unmarshal(data, &w.Definition); err != nil {
				return nil, fmt.Errorf("%s: %w", *file, err)
			}
			if err := workflowdef.Validate(&w.Definition); err != nil {
				return nil, fmt.Errorf("%s: %w", *file, err)
			}
			p, err := w.Proto(*tenant)
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context, conn grpc.ClientConnInterface) (proto.Message, error) {
				r, err := configv1.NewWorkflowServiceClient(conn).CreateWorkflow(ctx, &configv1.CreateWorkflowRequest{Workflow: p})
				return r.GetWorkflow(), err
			}, nil
		}
	}
	if _, err := parse(fs, args[1:]); err != nil {
		return err
	}
	if k.name != "tenants" && *tenant == "" {
		return errors.New("--tenant is required")
	}
	call, err := build()
	if err != nil {
		return err
	}
	conn, err := c.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	m, err := call(ctx, conn)
	if err != nil {
		return err
	}
	return c.print(m, "yaml")
}
