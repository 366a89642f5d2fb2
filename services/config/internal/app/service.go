package app

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	// Time zones are validated with the embedded database so a container
	// without /usr/share/zoneinfo behaves like a workstation.
	_ "time/tzdata"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/switchboard-cc/switchboard/pkg/ids"
	"github.com/switchboard-cc/switchboard/pkg/workflowdef"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
)

const kindService = "service"

var serviceRules = fieldRules{fixed: []string{"id", "tenant_id"}, output: metaFields}

// Distribution defaults and bounds.
const (
	DefaultRONATimeout = 30 * time.Second
	DefaultMaxParallel = 1
	minRONATimeout     = 5 * time.Second
	maxRONATimeout     = time.Hour
	// A service's inactivity timeout, when set.
	minInactivityTimeout = time.Minute
	maxInactivityTimeout = 7 * 24 * time.Hour
	maxParallelTasks     = 20
	maxAfterCallWork     = time.Hour
	maxFirstReply        = 24 * time.Hour
	maxPreferredWithin   = 90 * 24 * time.Hour
	maxPreferredWait     = 10 * time.Minute
	maxOverflowAfter     = 24 * time.Hour
	maxCodes             = 100
	maxEntriesPerService = 20
	maxGreeting          = 1600
)

var hhmmRe = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$`)

func assignKey(tenant, entry string) string { return claimAssign + tenant + "/" + entry }

// normalizeService fills the distribution defaults, so every reader sees
// the same values.
func normalizeService(s *configv1.Service) {
	s.Name = strings.TrimSpace(s.Name)
	if s.Distribution == nil {
		s.Distribution = &configv1.DistributionSettings{}
	}
	d := s.Distribution
	if d.RonaTimeout == nil || d.RonaTimeout.AsDuration() == 0 {
		d.RonaTimeout = durationpb.New(DefaultRONATimeout)
	}
	if d.MaxParallelTasks == 0 {
		d.MaxParallelTasks = DefaultMaxParallel
	}
	if d.AfterCallWork != nil && d.AfterCallWork.AsDuration() == 0 {
		d.AfterCallWork = nil
	}
	if oh := s.OpeningHours; oh != nil && oh.TimeZone == "" && len(oh.Windows) == 0 && len(oh.Holidays) == 0 {
		s.OpeningHours = nil
	}
}

func validateService(s *configv1.Service) error {
	var vs violations
	checkID(&vs, "id", s.GetId())
	checkName(&vs, "name", s.GetName(), true)
	if s.GetOrgUnitId() == "" {
		vs.add("org_unit_id", "is required: the organization unit the service belongs to")
	} else {
		checkID(&vs, "org_unit_id", s.GetOrgUnitId())
	}
	for i, ch := range s.GetChannels() {
		field := fmt.Sprintf("channels[%d]", i)
		switch {
		case ch != messagingv1.Channel_CHANNEL_SMS && ch != messagingv1.Channel_CHANNEL_WHATSAPP:
			vs.add(field, "%v is not a channel: CHANNEL_SMS or CHANNEL_WHATSAPP", ch)
		case slices.Index(s.GetChannels(), ch) < i:
			vs.add(field, "repeats %v", ch)
		}
	}
	if s.GetImEnabled() && len(s.GetChannels()) == 0 {
		vs.add("channels", "a service with Instant Messaging on needs at least one channel")
	}
	if len(s.GetMessagingEntryIds()) > maxEntriesPerService {
		vs.add("messaging_entry_ids", "%d entries, at most %d allowed", len(s.GetMessagingEntryIds()), maxEntriesPerService)
	}
	for i, id := range s.GetMessagingEntryIds() {
		field := fmt.Sprintf("messaging_entry_ids[%d]", i)
		checkID(&vs, field, id)
		if j := slices.Index(s.GetMessagingEntryIds(), id); j < i {
			vs.add(field, "repeats messaging_entry_ids[%d]", j)
		}
	}
	if s.GetWorkflowId() != "" {
		checkID(&vs, "workflow_id", s.GetWorkflowId())
	}
	switch {
	case s.GetWorkflowVersion() < 0:
		vs.add("workflow_version", "must not be negative")
	case s.GetWorkflowVersion() > 0 && s.GetWorkflowId() == "":
		vs.add("workflow_version", "pins a version of workflow_id, which is empty")
	}
	if n := utf8.RuneCountInString(s.GetGreeting()); n > maxGreeting {
		vs.add("greeting", "is %d characters, at most %d allowed", n, maxGreeting)
	}
	if n := utf8.RuneCountInString(s.GetWorkflowFailureMessage()); n > maxGreeting {
		vs.add("workflow_failure_message", "is %d characters, at most %d allowed", n, maxGreeting)
	}
	if d := s.GetInactivityTimeout(); d != nil {
		if err := d.CheckValid(); err != nil || (d.AsDuration() != 0 && (d.AsDuration() < minInactivityTimeout || d.AsDuration() > maxInactivityTimeout)) {
			vs.add("inactivity_timeout", "must be 0 (off) or between %s and %s", minInactivityTimeout, maxInactivityTimeout)
		}
	}
	if n := utf8.RuneCountInString(s.GetInactivityMessage()); n > maxGreeting {
		vs.add("inactivity_message", "is %d characters, at most %d allowed", n, maxGreeting)
	}
	validateDistribution(&vs, s.GetDistribution())
	validateOpeningHours(&vs, s.GetOpeningHours())
	checkCanned(&vs, "canned_responses", s.GetCannedResponses())
	return vs.err(CodeInvalid, "invalid service")
}

func validateDistribution(vs *violations, d *configv1.DistributionSettings) {
	if d == nil {
		return
	}
	if r := d.GetRonaTimeout(); r != nil {
		if err := r.CheckValid(); err != nil || r.AsDuration() < minRONATimeout || r.AsDuration() > maxRONATimeout {
			vs.add("distribution.rona_timeout", "must be between %s and %s", minRONATimeout, maxRONATimeout)
		}
	}
	if n := d.GetMaxParallelTasks(); n < 1 || n > maxParallelTasks {
		vs.add("distribution.max_parallel_tasks", "%d is out of range [1, %d]", n, maxParallelTasks)
	}
	if acw := d.GetAfterCallWork(); acw != nil {
		if err := acw.CheckValid(); err != nil || acw.AsDuration() < 0 || acw.AsDuration() > maxAfterCallWork {
			vs.add("distribution.after_call_work", "must be between 0 (off) and %s", maxAfterCallWork)
		}
	}
	if fr := d.GetFirstReplyTimeout(); fr != nil {
		if err := fr.CheckValid(); err != nil || fr.AsDuration() < 0 || fr.AsDuration() > maxFirstReply {
			vs.add("distribution.first_reply_timeout", "must be between 0 (off) and %s", maxFirstReply)
		}
	}
	for _, b := range []struct {
		field string
		d     interface {
			CheckValid() error
			AsDuration() time.Duration
		}
		set bool
		max time.Duration
	}{
		{"distribution.preferred_agent_within", d.GetPreferredAgentWithin(), d.GetPreferredAgentWithin() != nil, maxPreferredWithin},
		{"distribution.preferred_agent_wait", d.GetPreferredAgentWait(), d.GetPreferredAgentWait() != nil, maxPreferredWait},
		{"distribution.overflow_after", d.GetOverflowAfter(), d.GetOverflowAfter() != nil, maxOverflowAfter},
	} {
		if b.set && (b.d.CheckValid() != nil || b.d.AsDuration() < 0 || b.d.AsDuration() > b.max) {
			vs.add(b.field, "must be between 0 (off) and %s", b.max)
		}
	}
	if n := len(d.GetOverflowSkills()); n > maxCodes {
		vs.add("distribution.overflow_skills", "%d values, at most %d allowed", n, maxCodes)
	}
	for i, v := range d.GetOverflowSkills() {
		if strings.TrimSpace(v) == "" || utf8.RuneCountInString(v) > 64 {
			vs.add(fmt.Sprintf("distribution.overflow_skills[%d]", i), "must be 1-64 characters")
		}
	}
	if d.GetFirstReplyRequeue() && d.GetFirstReplyTimeout() != nil && d.GetFirstReplyTimeout().AsDuration() == 0 {
		vs.add("distribution.first_reply_requeue", "needs a first_reply_timeout (it is 0: off)")
	}
	for name, list := range map[string][]string{
		"distribution.service_codes": d.GetServiceCodes(),
		"distribution.sales_codes":   d.GetSalesCodes(),
		"distribution.tags":          d.GetTags(),
	} {
		if len(list) > maxCodes {
			vs.add(name, "%d values, at most %d allowed", len(list), maxCodes)
		}
		for i, v := range list {
			field := fmt.Sprintf("%s[%d]", name, i)
			switch {
			case strings.TrimSpace(v) == "" || utf8.RuneCountInString(v) > 64:
				vs.add(field, "must be 1-64 characters")
			case slices.Index(list, v) < i:
				vs.add(field, "repeats %q", v)
			}
		}
	}
}

// checkTimeZone refuses a zone Go's time zone database does not know.
func checkTimeZone(vs *violations, field, zone string) {
	if _, err := time.LoadLocation(zone); err != nil || zone == "Local" {
		vs.add(field, "%q is not an IANA time zone such as Europe/Zurich", zone)
	}
}

func validateOpeningHours(vs *violations, oh *configv1.OpeningHours) {
	if oh == nil {
		return
	}
	if oh.GetTimeZone() == "" {
		vs.add("opening_hours.time_zone", "is required with opening hours: an IANA zone such as Europe/Zurich")
	} else {
		checkTimeZone(vs, "opening_hours.time_zone", oh.GetTimeZone())
	}
	for i, w := range oh.GetWindows() {
		field := fmt.Sprintf("opening_hours.windows[%d]", i)
		if w.GetWeekday() < 0 || w.GetWeekday() > 6 {
			vs.add(field+".weekday", "%d is not a weekday: 0 (Sunday) to 6 (Saturday)", w.GetWeekday())
		}
		okStart, okEnd := hhmmRe.MatchString(w.GetStart()), hhmmRe.MatchString(w.GetEnd())
		if !okStart || w.GetStart() == "24:00" {
			vs.add(field+".start", "%q is not a time HH:MM between 00:00 and 23:59", w.GetStart())
		}
		if !okEnd {
			vs.add(field+".end", "%q is not a time HH:MM between 00:01 and 24:00", w.GetEnd())
		}
		if okStart && okEnd && w.GetEnd() <= w.GetStart() {
			vs.add(field+".end", "%s is not after start %s", w.GetEnd(), w.GetStart())
		}
	}
	for i, h := range oh.GetHolidays() {
		field := fmt.Sprintf("opening_hours.holidays[%d]", i)
		if _, err := time.Parse(time.DateOnly, h); err != nil {
			vs.add(field, "%q is not a date YYYY-MM-DD", h)
		} else if slices.Index(oh.GetHolidays(), h) < i {
			vs.add(field, "repeats %s", h)
		}
	}
}

// assignLive: an entry assignment is live while its service lists the entry.
func (a *App) assignLive(ctx context.Context, c Claim) (bool, error) {
	r, err := a.t.Services.Get(ctx, c.Tenant, c.Owner)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	entry := strings.TrimPrefix(c.Key, claimAssign+c.Tenant+"/")
	return slices.Contains(r.Msg.GetMessagingEntryIds(), entry), nil
}

// checkServiceRefs checks what a service depends on: tenant modalities,
// OU, entries (existing, on one of the service's channels) and the
// workflow (existing; for IM, free of activities IM does not support).
func (a *App) checkServiceRefs(ctx context.Context, s *configv1.Service) error {
	t, err := a.tenantOf(ctx, s.TenantId)
	if err != nil {
		return err
	}
	var vs violations
	if s.ImEnabled && !t.GetModalities().GetInstantMessaging() {
		vs.add("im_enabled", "tenant %q has the Instant Messaging modality off", s.TenantId)
	}
	for i, ch := range s.Channels {
		if p, bad := channelProblem(t, ch); bad {
			vs.add(fmt.Sprintf("channels[%d]", i), "tenant %q has %s off (%s), so the service cannot enable it", s.TenantId, strings.TrimPrefix(ch.String(), "CHANNEL_"), p.field)
		}
	}
	if err := vs.err(CodeFailedPrecondition, "tenant modalities are off"); err != nil {
		return err
	}
	if err := a.ouExists(ctx, s.TenantId, s.OrgUnitId, "org_unit_id"); err != nil {
		return err
	}
	for i, id := range s.MessagingEntryIds {
		field := fmt.Sprintf("messaging_entry_ids[%d]", i)
		e, err := a.t.Entries.Get(ctx, s.TenantId, id)
		if errors.Is(err, ErrNotFound) {
			return precondition(field, "messaging entry %q does not exist in tenant %q", id, s.TenantId)
		}
		if err != nil {
			return internal("get messaging entry", err)
		}
		if !slices.Contains(s.Channels, e.Msg.GetChannel()) {
			return precondition(field, "messaging entry %q is on channel %s, which the service does not have on", id, e.Msg.GetChannel())
		}
	}
	if s.WorkflowId != "" {
		wf, err := a.workflowVersion(ctx, s.TenantId, s.WorkflowId, s.WorkflowVersion)
		if err != nil {
			return err
		}
		if s.ImEnabled {
			if bad := workflowdef.UnsupportedForIM(workflowdef.FromProto(wf.GetDefinition())); len(bad) > 0 {
				return precondition("workflow_id", "workflow %q version %d contains %s, which is not supported for Instant Messaging; it cannot be the service's IM workflow", wf.Id, wf.Version, bad[0])
			}
		}
		return a.checkWorkflowServices(ctx, s, wf)
	}
	return nil
}

// claimAssignments assigns entries to service s.
func (a *App) claimAssignments(ctx context.Context, s *configv1.Service, entries []string) (fresh []string, err error) {
	for _, id := range entries {
		key := assignKey(s.TenantId, id)
		got, err := a.claim(ctx, key, s.TenantId, s.Id, a.assignLive)
		if got {
			fresh = append(fresh, key)
		}
		if err == nil {
			continue
		}
		a.release(ctx, s.TenantId, s.Id, fresh...)
		var held *errClaimHeld
		if errors.As(err, &held) {
			return nil, alreadyExists(fmt.Sprintf("messaging_entry_ids[%d]", slices.Index(s.MessagingEntryIds, id)),
				"messaging entry %q is already assigned to service %q; an entry belongs to at most one service", id, held.holder.Owner)
		}
		return nil, internal("assign messaging entry", err)
	}
	return fresh, nil
}

// CreateService stores a service and assigns its entries to it.
func (a *App) CreateService(ctx context.Context, in *configv1.Service) (*configv1.Service, error) {
	s := proto.Clone(in).(*configv1.Service)
	if s.Id == "" {
		s.Id = ids.New("svc_")
	}
	normalizeService(s)
	if err := validateService(s); err != nil {
		return nil, err
	}
	if err := a.checkServiceRefs(ctx, s); err != nil {
		return nil, err
	}
	fresh, err := a.claimAssignments(ctx, s, s.MessagingEntryIds)
	if err != nil {
		return nil, err
	}
	now := a.now()
	s.Version, s.CreateTime, s.UpdateTime = 1, ts(now), ts(now)
	if err := a.t.Services.Insert(ctx, &Record[*configv1.Service]{Tenant: s.TenantId, ID: s.Id, Version: 1, Msg: s}); err != nil {
		a.release(ctx, s.TenantId, s.Id, fresh...)
		if errors.Is(err, ErrDuplicate) {
			return nil, alreadyExists("id", "service %q already exists in tenant %q", s.Id, s.TenantId)
		}
		return nil, internal("create service", err)
	}
	a.changed(ctx, configv1.EntityKind_ENTITY_KIND_SERVICE, s.TenantId, s.Id, configv1.ChangeType_CHANGE_TYPE_CREATED, 1)
	return s, nil
}

// GetService reads a service.
func (a *App) GetService(ctx context.Context, tenant, id string) (*configv1.Service, error) {
	r, err := getRec(ctx, a.t.Services, kindService, tenant, id)
	if err != nil {
		return nil, err
	}
	return r.Msg, nil
}

// ListServices pages through a tenant's services, optionally of one OU.
func (a *App) ListServices(ctx context.Context, tenant string, p Page, ou string) ([]*configv1.Service, string, error) {
	q, err := p.query(map[string]string{"org_unit_id": ou})
	if err != nil {
		return nil, "", err
	}
	recs, err := a.t.Services.List(ctx, tenant, q)
	if err != nil {
		return nil, "", internal("list services", err)
	}
	out, next := page(recs, q, func(r *Record[*configv1.Service]) *configv1.Service { return r.Msg })
	return out, next, nil
}

// UpdateService changes a service; entries it gains are assigned before the
// write, entries it drops released after.
func (a *App) UpdateService(ctx context.Context, in *configv1.Service, paths []string) (*configv1.Service, error) {
	defer a.lockRecord(kindService, in.GetTenantId(), in.GetId())()
	old, s, err := loadForUpdate(ctx, a.t.Services, kindService, in.GetTenantId(), in, paths, serviceRules)
	if err != nil {
		return nil, err
	}
	normalizeService(s)
	if err := validateService(s); err != nil {
		return nil, err
	}
	if proto.Equal(s, old.Msg) {
		return old.Msg, nil
	}
	if err := a.checkServiceRefs(ctx, s); err != nil {
		return nil, err
	}
	if old.Msg.GetImEnabled() && !s.ImEnabled {
		if err := a.checkNamedBy(ctx, s.TenantId, s.Id, "im_enabled", "switch its Instant Messaging off"); err != nil {
			return nil, err
		}
	}
	var added, removed []string
	for _, id := range s.MessagingEntryIds {
		if !slices.Contains(old.Msg.MessagingEntryIds, id) {
			added = append(added, id)
		}
	}
	for _, id := range old.Msg.MessagingEntryIds {
		if !slices.Contains(s.MessagingEntryIds, id) {
			removed = append(removed, assignKey(s.TenantId, id))
		}
	}
	fresh, err := a.claimAssignments(ctx, s, added)
	if err != nil {
		return nil, err
	}
	s.Version, s.UpdateTime = old.Version+1, ts(a.now())
	if err := replace(ctx, a.t.Services, kindService, &Record[*configv1.Service]{Tenant: s.TenantId, ID: s.Id, Version: s.Version, Msg: s}, old.Version); err != nil {
		a.release(ctx, s.TenantId, s.Id, fresh...)
		return nil, err
	}
	a.release(ctx, s.TenantId, s.Id, removed...)
	a.changed(ctx, configv1.EntityKind_ENTITY_KIND_SERVICE, s.TenantId, s.Id, configv1.ChangeType_CHANGE_TYPE_UPDATED, s.Version)
	return s, nil
}

// DeleteService deletes a service no user is a member of, and frees its
// entries.
func (a *App) DeleteService(ctx context.Context, tenant, id string, version int64) error {
	defer a.lockRecord(kindService, tenant, id)()
	old, err := getRec(ctx, a.t.Services, kindService, tenant, id)
	if err != nil {
		return err
	}
	members, err := a.t.Users.List(ctx, tenant, Query{Limit: 1, Eq: map[string]string{"service_ids": id}})
	if err != nil {
		return internal("list users", err)
	}
	if len(members) > 0 {
		return precondition("id", "user %q is a member of service %q; remove the membership first", members[0].ID, id)
	}
	if err := a.checkNamedBy(ctx, tenant, id, "id", "delete it"); err != nil {
		return err
	}
	if err := deleteRec(ctx, a.t.Services, kindService, tenant, id, version, old.Version); err != nil {
		return err
	}
	var keys []string
	for _, e := range old.Msg.MessagingEntryIds {
		keys = append(keys, assignKey(tenant, e))
	}
	a.release(ctx, tenant, id, keys...)
	a.changed(ctx, configv1.EntityKind_ENTITY_KIND_SERVICE, tenant, id, configv1.ChangeType_CHANGE_TYPE_DELETED, old.Version+1)
	return nil
}
