// Package tenantspec describes a whole tenant in one YAML file (tenant,
// organization units, Twilio connectors, messaging entries, workflows,
// services, users) and applies it to the config service over gRPC:
// switchboardctl apply uses it, and so does the all-in-one binary to seed
// the demo tenant (Demo).
//
// Records reference each other by explicit ids. Apply is idempotent: it
// creates what is missing, updates what differs, and leaves the rest alone;
// it never deletes.
package tenantspec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/switchboard-cc/switchboard/pkg/workflowdef"
)

// Spec is one tenant's configuration.
type Spec struct {
	Tenant            Tenant      `yaml:"tenant"`
	OrganizationUnits []OrgUnit   `yaml:"organization_units,omitempty"`
	Connectors        []Connector `yaml:"connectors,omitempty"`
	MessagingEntries  []Entry     `yaml:"messaging_entries,omitempty"`
	Workflows         []Workflow  `yaml:"workflows,omitempty"`
	Services          []Service   `yaml:"services,omitempty"`
	Users             []User      `yaml:"users,omitempty"`
	root              *yaml.Node  `yaml:"-"`
}

// Tenant is the tenant, its modality settings and its named secrets.
type Tenant struct {
	ID          string     `yaml:"id"`
	DisplayName string     `yaml:"display_name"`
	Modalities  Modalities `yaml:"modalities"`
	// Secrets are the tenant's named secrets for workflows (Web Request
	// headers "${secret.NAME}", the bot activity's signing key); values
	// are usually written ${ENV_VAR} and filled by ExpandEnv. Apply sets
	// the secrets named here and keeps the others.
	Secrets map[string]string `yaml:"secrets,omitempty"`
	// CannedResponses every agent of the tenant can insert with "/shortcut".
	CannedResponses []CannedResponse `yaml:"canned_responses,omitempty"`
	// StaleAfter ends sessions with no message for this long as stale
	// (unset: 24h; "0s": never).
	StaleAfter *Duration `yaml:"stale_after,omitempty"`
	// TimeZone is the tenant's IANA time zone (reporting's days and
	// months); empty: UTC.
	TimeZone string `yaml:"time_zone,omitempty"`
	// RetentionDays is how many days the tenant's session data is kept
	// (0 or unset: for ever; else 1 to 3650).
	RetentionDays int32 `yaml:"retention_days,omitempty"`
	// MessagePrices is what Twilio charges per segment, for reporting's
	// estimated costs: one row per channel, direction and country (or "*").
	MessagePrices []MessagePrice `yaml:"message_prices,omitempty"`
}

// MessagePrice is the price of one segment: {channel: sms, direction:
// outbound, country: CH, price: "0.0612", currency: USD}. Country is an
// ISO 3166-1 alpha-2 code of the customer's number or "*" (any other);
// price a decimal with at most 6 places; one currency per tenant.
type MessagePrice struct {
	Channel   string `yaml:"channel"`
	Direction string `yaml:"direction"`
	Country   string `yaml:"country"`
	Price     string `yaml:"price"`
	Currency  string `yaml:"currency"`
}

// CannedResponse is a reply agents insert with "/shortcut"; ${customer_name},
// ${customer}, ${agent_name}, ${service_name} and ${channel} are filled in.
type CannedResponse struct {
	Shortcut string `yaml:"shortcut"`
	Title    string `yaml:"title,omitempty"`
	Body     string `yaml:"body"`
}

// Modalities switch channels on for the tenant.
type Modalities struct {
	InstantMessaging bool `yaml:"instant_messaging"`
	Twilio           bool `yaml:"twilio"`
	SMS              bool `yaml:"sms"`
	WhatsApp         bool `yaml:"whatsapp"`
}

// OrgUnit is a node of the OU tree; the root has no parent.
type OrgUnit struct {
	ID     string `yaml:"id"`
	Name   string `yaml:"name"`
	Parent string `yaml:"parent,omitempty"`
}

// Connector holds a Twilio account's credentials. Secret values may be
// written ${ENV_VAR} and filled by ExpandEnv.
type Connector struct {
	ID                 string `yaml:"id"`
	Name               string `yaml:"name"`
	OrgUnit            string `yaml:"org_unit"`
	AccountSID         string `yaml:"account_sid"`
	APIKeySID          string `yaml:"api_key_sid"`
	APIKeySecret       string `yaml:"api_key_secret"`
	AuthToken          string `yaml:"auth_token"`
	SecondaryAuthToken string `yaml:"secondary_auth_token,omitempty"`
	Region             string `yaml:"region,omitempty"`
	Edge               string `yaml:"edge,omitempty"`
}

// Entry is a messaging entry: a Conversations service and/or numbers.
type Entry struct {
	ID                      string   `yaml:"id"`
	Name                    string   `yaml:"name"`
	OrgUnit                 string   `yaml:"org_unit"`
	Connector               string   `yaml:"connector"`
	Channel                 string   `yaml:"channel"`
	Path                    string   `yaml:"path,omitempty"`
	ConversationsServiceSID string   `yaml:"conversations_service_sid,omitempty"`
	BusinessAddresses       []string `yaml:"business_addresses,omitempty"`
	MessagingServiceSID     string   `yaml:"messaging_service_sid,omitempty"`
	Disabled                bool     `yaml:"disabled,omitempty"`
}

// Workflow is an IM workflow; each change applied saves a new version.
type Workflow struct {
	ID          string                 `yaml:"id"`
	Name        string                 `yaml:"name"`
	Description string                 `yaml:"description,omitempty"`
	Definition  workflowdef.Definition `yaml:"definition"`
}

// Service is a team customers are routed to.
type Service struct {
	ID               string   `yaml:"id"`
	Name             string   `yaml:"name"`
	OrgUnit          string   `yaml:"org_unit"`
	IM               bool     `yaml:"im"`
	Channels         []string `yaml:"channels,omitempty"`
	Workflow         string   `yaml:"workflow,omitempty"`
	WorkflowVersion  int64    `yaml:"workflow_version,omitempty"`
	MessagingEntries []string `yaml:"messaging_entries,omitempty"`
	Greeting         string   `yaml:"greeting,omitempty"`
	// WorkflowFailureMessage is sent when the workflow cannot go on.
	WorkflowFailureMessage string `yaml:"workflow_failure_message,omitempty"`
	// InactivityTimeout ends a session as abandoned when the customer is
	// silent this long while the workflow waits for them (0: off).
	InactivityTimeout Duration `yaml:"inactivity_timeout,omitempty"`
	// InactivityMessage is the goodbye sent then (empty: the default).
	InactivityMessage string `yaml:"inactivity_message,omitempty"`
	// CannedResponses the service's agents can insert, besides the tenant's.
	CannedResponses []CannedResponse `yaml:"canned_responses,omitempty"`
	Distribution    Distribution     `yaml:"distribution,omitempty"`
	OpeningHours    *OpeningHours    `yaml:"opening_hours,omitempty"`
}

// Distribution settings of a service.
type Distribution struct {
	RONATimeout      Duration `yaml:"rona_timeout,omitempty"`
	MaxParallelTasks int32    `yaml:"max_parallel_tasks,omitempty"`
	AfterCallWork    Duration `yaml:"after_call_work,omitempty"`
	ServiceCodes     []string `yaml:"service_codes,omitempty"`
	SalesCodes       []string `yaml:"sales_codes,omitempty"`
	Tags             []string `yaml:"tags,omitempty"`
	// ParkedCounts: a parked chat still counts toward its agent's capacity.
	ParkedCounts bool `yaml:"parked_counts,omitempty"`
	// FirstReplyTimeout: the agent's first reply is due within it after an
	// accept; unset: distribution's FIRST_REPLY_TIMEOUT, 0: off.
	FirstReplyTimeout *Duration `yaml:"first_reply_timeout,omitempty"`
	// FirstReplyRequeue: an overdue chat goes back to the queue.
	FirstReplyRequeue bool `yaml:"first_reply_requeue,omitempty"`
	// PreferredAgentWithin: a customer's chat waits PreferredAgentWait
	// (default 30s) for the agent who took their chat within it; 0: off.
	PreferredAgentWithin Duration `yaml:"preferred_agent_within,omitempty"`
	PreferredAgentWait   Duration `yaml:"preferred_agent_wait,omitempty"`
	// OverflowAfter: a chat waiting this long keeps only the required
	// skills in OverflowSkills (none: all dropped); 0: off.
	OverflowAfter  Duration `yaml:"overflow_after,omitempty"`
	OverflowSkills []string `yaml:"overflow_skills,omitempty"`
}

// OpeningHours of a service.
type OpeningHours struct {
	TimeZone string   `yaml:"time_zone"`
	Windows  []Window `yaml:"windows,omitempty"`
	Holidays []string `yaml:"holidays,omitempty"`
}

// Window opens the service on some days ("mon-fri", "sat") from start to
// end ("08:00", "17:30").
type Window struct {
	Days  []string `yaml:"days"`
	Start string   `yaml:"start"`
	End   string   `yaml:"end"`
}

// User is an admin, supervisor, agent or analyst. Password is the initial password
// (may be ${ENV_VAR}); applying the same password again changes nothing.
type User struct {
	ID          string            `yaml:"id"`
	DisplayName string            `yaml:"display_name"`
	Email       string            `yaml:"email"`
	Roles       []string          `yaml:"roles"`
	IMLicense   bool              `yaml:"im_license"`
	Services    []string          `yaml:"services,omitempty"`
	Capacity    int32             `yaml:"capacity,omitempty"`
	Skills      []string          `yaml:"skills,omitempty"`
	Attributes  map[string]string `yaml:"attributes,omitempty"`
	Password    string            `yaml:"password,omitempty"`
}

// Duration is a time.Duration written "30s" in YAML.
type Duration time.Duration

// UnmarshalYAML reads "30s", "2m".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration such as \"30s\" or \"5m\"", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes "30s".
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Parse reads a tenant spec. Unknown fields are errors; every problem found
// is reported, each with its line and field path.
func Parse(data []byte) (*Spec, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("parse tenant spec: %w", err)
	}
	if len(root.Content) == 0 {
		return nil, errors.New("parse tenant spec: the document is empty")
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var s Spec
	if err := dec.Decode(&s); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse tenant spec: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, errors.New("parse tenant spec: one tenant per file; found a second YAML document")
	}
	s.root = &root
	if err := s.Check(); err != nil {
		return nil, err
	}
	return &s, nil
}

// problems collects spec errors with their lines.
type problems struct {
	s    *Spec
	errs []error
}

func (p *problems) add(path string, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if line := p.s.line(path); line > 0 {
		p.errs = append(p.errs, fmt.Errorf("line %d: %s: %s", line, path, msg))
		return
	}
	p.errs = append(p.errs, fmt.Errorf("%s: %s", path, msg))
}

var pathPart = regexp.MustCompile(`([a-z_]+)|\[(\d+)\]`)

// line finds the line of a path such as "services[1].channels[0]" in the
// parsed document (0 when unknown, e.g. for Demo's programmatic changes).
func (s *Spec) line(path string) int {
	if s.root == nil || len(s.root.Content) == 0 {
		return 0
	}
	n := s.root.Content[0]
	line := n.Line
	for _, m := range pathPart.FindAllStringSubmatch(path, -1) {
		switch {
		case m[1] != "" && n.Kind == yaml.MappingNode:
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == m[1] {
					line, n, found = n.Content[i].Line, n.Content[i+1], true
					break
				}
			}
			if !found {
				return line
			}
		case m[2] != "" && n.Kind == yaml.SequenceNode:
			i, _ := strconv.Atoi(m[2])
			if i >= len(n.Content) {
				return line
			}
			n = n.Content[i]
			line = n.Line
		default:
			return line
		}
	}
	return line
}

var idRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Check validates what can be checked without the server: ids present,
// unique and well-formed, names of channels, roles, days and paths known,
// references within the file resolvable, workflow graphs valid. The server
// checks everything else when the spec is applied.
func (s *Spec) Check() error {
	p := &problems{s: s}
	if s.Tenant.ID == "" {
		p.add("tenant.id", "is required")
	}
	ids := func(kind string, n int, id func(int) string) map[string]bool {
		seen := map[string]bool{}
		for i := range n {
			path := fmt.Sprintf("%s[%d].id", kind, i)
			switch v := id(i); {
			case v == "":
				p.add(path, "is required: records reference each other by id")
			case !idRe.MatchString(v):
				p.add(path, "%q must be 1-63 characters of a-z, 0-9, '_' and '-'", v)
			case seen[v]:
				p.add(path, "%q is used twice", v)
			default:
				seen[v] = true
			}
		}
		return seen
	}
	ids("organization_units", len(s.OrganizationUnits), func(i int) string { return s.OrganizationUnits[i].ID })
	ids("connectors", len(s.Connectors), func(i int) string { return s.Connectors[i].ID })
	ids("messaging_entries", len(s.MessagingEntries), func(i int) string { return s.MessagingEntries[i].ID })
	ids("workflows", len(s.Workflows), func(i int) string { return s.Workflows[i].ID })
	ids("services", len(s.Services), func(i int) string { return s.Services[i].ID })
	ids("users", len(s.Users), func(i int) string { return s.Users[i].ID })
	if _, err := s.ouOrder(); err != nil {
		p.add("organization_units", "%v", err)
	}
	for i, e := range s.MessagingEntries {
		if _, err := channel(e.Channel); err != nil {
			p.add(fmt.Sprintf("messaging_entries[%d].channel", i), "%v", err)
		}
		if _, err := twilioPath(e.Path); err != nil {
			p.add(fmt.Sprintf("messaging_entries[%d].path", i), "%v", err)
		}
	}
	for i, w := range s.Workflows {
		var verr *workflowdef.ValidationError
		if err := workflowdef.Validate(&w.Definition); errors.As(err, &verr) {
			for _, pr := range verr.Problems {
				p.add(fmt.Sprintf("workflows[%d].definition.%s", i, pr.Path), "%s", pr.Message)
			}
		}
	}
	for i, svc := range s.Services {
		for j, ch := range svc.Channels {
			if _, err := channel(ch); err != nil {
				p.add(fmt.Sprintf("services[%d].channels[%d]", i, j), "%v", err)
			}
		}
		if svc.OpeningHours != nil {
			for j, w := range svc.OpeningHours.Windows {
				if _, err := weekdays(w.Days); err != nil {
					p.add(fmt.Sprintf("services[%d].opening_hours.windows[%d].days", i, j), "%v", err)
				}
			}
		}
	}
	s.checkPrices(p)
	for i, u := range s.Users {
		for j, r := range u.Roles {
			if _, err := role(r); err != nil {
				p.add(fmt.Sprintf("users[%d].roles[%d]", i, j), "%v", err)
			}
		}
	}
	return errors.Join(p.errs...)
}

// ouOrder sorts OUs so parents come before children.
func (s *Spec) ouOrder() ([]OrgUnit, error) {
	byID := map[string]OrgUnit{}
	for _, o := range s.OrganizationUnits {
		byID[o.ID] = o
	}
	var out []OrgUnit
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(o OrgUnit) error
	visit = func(o OrgUnit) error {
		switch state[o.ID] {
		case 1:
			return fmt.Errorf("parent loop through %q", o.ID)
		case 2:
			return nil
		}
		state[o.ID] = 1
		if parent, ok := byID[o.Parent]; ok && o.Parent != "" {
			if err := visit(parent); err != nil {
				return err
			}
		}
		state[o.ID] = 2
		out = append(out, o)
		return nil
	}
	for _, o := range s.OrganizationUnits {
		if err := visit(o); err != nil {
			return nil, err
		}
	}
	return out, nil
}

var envRe = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// ExpandEnv replaces ${NAME} in connector fields, user passwords and tenant
// secrets with lookup(NAME), so secrets need not be written into the file.
// An unset variable is an error.
func (s *Spec) ExpandEnv(lookup func(string) (string, bool)) error {
	var errs []error
	expand := func(path string, v *string) {
		*v = envRe.ReplaceAllStringFunc(*v, func(m string) string {
			name := envRe.FindStringSubmatch(m)[1]
			val, ok := lookup(name)
			if !ok {
				errs = append(errs, fmt.Errorf("%s: environment variable %s is not set", path, name))
			}
			return val
		})
	}
	for i := range s.Connectors {
		c := &s.Connectors[i]
		for name, f := range map[string]*string{
			"account_sid": &c.AccountSID, "api_key_sid": &c.APIKeySID, "api_key_secret": &c.APIKeySecret,
			"auth_token": &c.AuthToken, "secondary_auth_token": &c.SecondaryAuthToken,
		} {
			expand(fmt.Sprintf("connectors[%d].%s", i, name), f)
		}
	}
	for i := range s.Users {
		expand(fmt.Sprintf("users[%d].password", i), &s.Users[i].Password)
	}
	for name, v := range s.Tenant.Secrets {
		expand("tenant.secrets."+name, &v)
		s.Tenant.Secrets[name] = v
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}
