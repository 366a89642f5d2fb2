package tenantspec

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/switchboard-cc/switchboard/pkg/pricing"
	"github.com/switchboard-cc/switchboard/pkg/workflowdef"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
)

func channel(s string) (messagingv1.Channel, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "sms":
		return messagingv1.Channel_CHANNEL_SMS, nil
	case "whatsapp":
		return messagingv1.Channel_CHANNEL_WHATSAPP, nil
	}
	return 0, fmt.Errorf("%q is not a channel: sms or whatsapp", s)
}

func priceDirection(s string) (configv1.PriceDirection, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "inbound":
		return configv1.PriceDirection_PRICE_DIRECTION_INBOUND, nil
	case "outbound":
		return configv1.PriceDirection_PRICE_DIRECTION_OUTBOUND, nil
	}
	return 0, fmt.Errorf("%q is not a direction: inbound or outbound", s)
}

// pricesProto converts the price table; channel and direction names
// that do not parse stay unspecified (Check reports them).
func pricesProto(rows []MessagePrice) []*configv1.MessagePrice {
	var out []*configv1.MessagePrice
	for _, r := range rows {
		ch, _ := channel(r.Channel)
		d, _ := priceDirection(r.Direction)
		out = append(out, &configv1.MessagePrice{Channel: ch, Direction: d, Country: strings.TrimSpace(r.Country),
			Price: strings.TrimSpace(r.Price), Currency: strings.TrimSpace(r.Currency)})
	}
	return out
}

// checkPrices reports the price table's problems by row, as the server
// would.
func (s *Spec) checkPrices(p *problems) {
	for i, r := range s.Tenant.MessagePrices {
		if _, err := channel(r.Channel); err != nil {
			p.add(fmt.Sprintf("tenant.message_prices[%d].channel", i), "%v", err)
		}
		if _, err := priceDirection(r.Direction); err != nil {
			p.add(fmt.Sprintf("tenant.message_prices[%d].direction", i), "%v", err)
		}
	}
	for _, pr := range pricing.Validate(pricesProto(s.Tenant.MessagePrices)) {
		if strings.HasSuffix(pr.Field, ".channel") || strings.HasSuffix(pr.Field, ".direction") {
			continue // said above, with the name given
		}
		p.add("tenant.message_prices"+pr.Field, "%s", pr.Msg)
	}
}

func twilioPath(s string) (messagingv1.TwilioPath, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return messagingv1.TwilioPath_TWILIO_PATH_UNSPECIFIED, nil
	case "conversations":
		return messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS, nil
	case "messaging":
		return messagingv1.TwilioPath_TWILIO_PATH_MESSAGING, nil
	}
	return 0, fmt.Errorf("%q is not a Twilio path: conversations or messaging", s)
}

// roles are the tenant spec's names of config's roles.
var roles = []struct {
	name string
	role configv1.Role
}{
	{"admin", configv1.Role_ROLE_ADMIN},
	{"supervisor", configv1.Role_ROLE_SUPERVISOR},
	{"agent", configv1.Role_ROLE_AGENT},
	{"analyst", configv1.Role_ROLE_ANALYST},
}

func role(s string) (configv1.Role, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	var names []string
	for _, r := range roles {
		if r.name == s {
			return r.role, nil
		}
		names = append(names, r.name)
	}
	return 0, fmt.Errorf("%q is not a role: %s", s, strings.Join(names, ", "))
}

// RoleName is a role's name in a tenant spec ("analyst"); a role the
// spec does not know is its proto name.
func RoleName(r configv1.Role) string {
	for _, x := range roles {
		if x.role == r {
			return x.name
		}
	}
	return r.String()
}

var dayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// weekdays expands "mon", "mon-fri" and "daily" to 0 (Sunday) … 6.
func weekdays(days []string) ([]int32, error) {
	if len(days) == 0 {
		return nil, fmt.Errorf("at least one day is required: mon … sun, a range such as mon-fri, or daily")
	}
	var out []int32
	day := func(s string) (int, error) {
		s = strings.ToLower(strings.TrimSpace(s))
		if len(s) > 3 {
			s = s[:3]
		}
		if i := slices.Index(dayNames, s); i >= 0 {
			return i, nil
		}
		return 0, fmt.Errorf("%q is not a day: mon, tue, wed, thu, fri, sat or sun", s)
	}
	for _, d := range days {
		if strings.EqualFold(strings.TrimSpace(d), "daily") {
			for i := range 7 {
				out = append(out, int32(i))
			}
			continue
		}
		from, to, isRange := strings.Cut(d, "-")
		a, err := day(from)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = day(to); err != nil {
				return nil, err
			}
		}
		for i := a; ; i = (i + 1) % 7 {
			out = append(out, int32(i))
			if i == b {
				break
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func dur(d Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(time.Duration(d))
}

// Proto is the tenant as the API takes it.
func (t Tenant) Proto() *configv1.Tenant {
	return &configv1.Tenant{
		Id:          t.ID,
		DisplayName: t.DisplayName,
		Modalities: &configv1.ModalitySettings{
			InstantMessaging: t.Modalities.InstantMessaging,
			Twilio:           t.Modalities.Twilio,
			Sms:              t.Modalities.SMS,
			Whatsapp:         t.Modalities.WhatsApp,
		},
		Secrets:         maps.Clone(t.Secrets),
		CannedResponses: cannedProto(t.CannedResponses),
		StaleAfter:      durPtr(t.StaleAfter),
		TimeZone:        t.TimeZone,
		RetentionDays:   t.RetentionDays,
		MessagePrices:   pricesProto(t.MessagePrices),
	}
}

// Proto is the OU as the API takes it.
func (o OrgUnit) Proto(tenant string) *configv1.OrganizationUnit {
	return &configv1.OrganizationUnit{Id: o.ID, TenantId: tenant, Name: o.Name, ParentId: o.Parent}
}

// Proto is the connector as the API takes it.
func (c Connector) Proto(tenant string) *configv1.ProviderConnector {
	return &configv1.ProviderConnector{
		Id: c.ID, TenantId: tenant, Name: c.Name, OrgUnitId: c.OrgUnit,
		AccountSid: c.AccountSID, ApiKeySid: c.APIKeySID, ApiKeySecret: c.APIKeySecret,
		AuthToken: c.AuthToken, SecondaryAuthToken: c.SecondaryAuthToken,
		Region: c.Region, Edge: c.Edge,
	}
}

// Proto is the entry as the API takes it.
func (e Entry) Proto(tenant string) (*configv1.MessagingEntry, error) {
	ch, err := channel(e.Channel)
	if err != nil {
		return nil, err
	}
	path, err := twilioPath(e.Path)
	if err != nil {
		return nil, err
	}
	return &configv1.MessagingEntry{
		Id: e.ID, TenantId: tenant, Name: e.Name, OrgUnitId: e.OrgUnit, ConnectorId: e.Connector,
		Channel: ch, Path: path, ConversationsServiceSid: e.ConversationsServiceSID,
		BusinessAddresses: slices.Clone(e.BusinessAddresses), MessagingServiceSid: e.MessagingServiceSID,
		Disabled: e.Disabled,
	}, nil
}

// Proto is the workflow as the API takes it.
func (w Workflow) Proto(tenant string) (*configv1.Workflow, error) {
	def, err := workflowdef.ToProto(&w.Definition)
	if err != nil {
		return nil, err
	}
	return &configv1.Workflow{Id: w.ID, TenantId: tenant, Name: w.Name, Description: w.Description, Definition: def}, nil
}

// Proto is the service as the API takes it.
func (s Service) Proto(tenant string) (*configv1.Service, error) {
	out := &configv1.Service{
		Id: s.ID, TenantId: tenant, Name: s.Name, OrgUnitId: s.OrgUnit, ImEnabled: s.IM,
		WorkflowId: s.Workflow, WorkflowVersion: s.WorkflowVersion,
		MessagingEntryIds: slices.Clone(s.MessagingEntries), Greeting: s.Greeting,
		WorkflowFailureMessage: s.WorkflowFailureMessage,
		InactivityTimeout:      dur(s.InactivityTimeout), InactivityMessage: s.InactivityMessage,
		CannedResponses: cannedProto(s.CannedResponses),
		Distribution: &configv1.DistributionSettings{
			RonaTimeout:       dur(s.Distribution.RONATimeout),
			MaxParallelTasks:  s.Distribution.MaxParallelTasks,
			AfterCallWork:     dur(s.Distribution.AfterCallWork),
			ServiceCodes:      slices.Clone(s.Distribution.ServiceCodes),
			SalesCodes:        slices.Clone(s.Distribution.SalesCodes),
			Tags:              slices.Clone(s.Distribution.Tags),
			ParkedCounts:      s.Distribution.ParkedCounts,
			FirstReplyTimeout: durPtr(s.Distribution.FirstReplyTimeout),
			FirstReplyRequeue: s.Distribution.FirstReplyRequeue,

			PreferredAgentWithin: dur(s.Distribution.PreferredAgentWithin),
			PreferredAgentWait:   dur(s.Distribution.PreferredAgentWait),
			OverflowAfter:        dur(s.Distribution.OverflowAfter),
			OverflowSkills:       slices.Clone(s.Distribution.OverflowSkills),
		},
	}
	for _, c := range s.Channels {
		ch, err := channel(c)
		if err != nil {
			return nil, err
		}
		out.Channels = append(out.Channels, ch)
	}
	if oh := s.OpeningHours; oh != nil {
		out.OpeningHours = &configv1.OpeningHours{TimeZone: oh.TimeZone, Holidays: slices.Clone(oh.Holidays)}
		for _, w := range oh.Windows {
			days, err := weekdays(w.Days)
			if err != nil {
				return nil, err
			}
			for _, d := range days {
				out.OpeningHours.Windows = append(out.OpeningHours.Windows, &configv1.OpeningWindow{Weekday: d, Start: w.Start, End: w.End})
			}
		}
	}
	return out, nil
}

// Proto is the user as the API takes it.
func (u User) Proto(tenant string) (*configv1.User, error) {
	out := &configv1.User{
		Id: u.ID, TenantId: tenant, DisplayName: u.DisplayName, Email: u.Email, ImLicense: u.IMLicense,
		ServiceIds: slices.Clone(u.Services), Capacity: u.Capacity, Skills: slices.Clone(u.Skills),
		Password: u.Password,
	}
	if len(u.Attributes) > 0 {
		out.Attributes = make(map[string]string, len(u.Attributes))
		for k, v := range u.Attributes {
			out.Attributes[k] = v
		}
	}
	for _, r := range u.Roles {
		pr, err := role(r)
		if err != nil {
			return nil, err
		}
		out.Roles = append(out.Roles, pr)
	}
	return out, nil
}

func cannedProto(list []CannedResponse) []*configv1.CannedResponse {
	var out []*configv1.CannedResponse
	for _, c := range list {
		out = append(out, &configv1.CannedResponse{Shortcut: c.Shortcut, Title: c.Title, Body: c.Body})
	}
	return out
}

// durPtr keeps "unset" apart from zero.
func durPtr(d *Duration) *durationpb.Duration {
	if d == nil {
		return nil
	}
	return durationpb.New(time.Duration(*d))
}
