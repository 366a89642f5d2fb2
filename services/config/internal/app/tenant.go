package app

import (
	"context"
	"errors"
	"maps"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/switchboard-cc/switchboard/pkg/pricing"
	"github.com/switchboard-cc/switchboard/pkg/retention"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
)

const kindTenant = "tenant"

// Bounds of a tenant's stale_after.
const (
	minStaleAfter = time.Hour
	maxStaleAfter = 90 * 24 * time.Hour
)

var tenantRules = fieldRules{fixed: []string{"id"}, output: append([]string{"secret_hints"}, metaFields...), writeOnly: []string{"secrets"}}

func checkName(vs *violations, field, name string, required bool) {
	switch {
	case strings.TrimSpace(name) == "":
		if required {
			vs.add(field, "is required")
		}
	case utf8.RuneCountInString(name) > 200:
		vs.add(field, "is longer than 200 characters")
	case strings.ContainsAny(name, "\r\n\t"):
		vs.add(field, "must be one line")
	}
}

func validateTenant(t *configv1.Tenant) error {
	var vs violations
	if !subjects.ValidTenantID(t.GetId()) {
		vs.add("id", "%q is not a valid tenant id: 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit", t.GetId())
	}
	checkName(&vs, "display_name", t.GetDisplayName(), true)
	m := t.GetModalities()
	if m.GetTwilio() && !m.GetInstantMessaging() {
		vs.add("modalities.twilio", "Twilio is an Instant Messaging provider: switch on modalities.instant_messaging too")
	}
	if m.GetSms() && !m.GetTwilio() {
		vs.add("modalities.sms", "SMS comes through Twilio: switch on modalities.twilio too")
	}
	if m.GetWhatsapp() && !m.GetTwilio() {
		vs.add("modalities.whatsapp", "WhatsApp comes through Twilio: switch on modalities.twilio too")
	}
	checkCanned(&vs, "canned_responses", t.GetCannedResponses())
	if sa := t.GetStaleAfter(); sa != nil {
		if d := sa.AsDuration(); !sa.IsValid() || (d != 0 && (d < minStaleAfter || d > maxStaleAfter)) {
			vs.add("stale_after", "%s is not 0 (never) or between %s and %s", d, minStaleAfter, maxStaleAfter)
		}
	}
	if z := t.GetTimeZone(); z != "" {
		checkTimeZone(&vs, "time_zone", z)
	}
	if d := t.GetRetentionDays(); d != 0 && (d < retention.MinDays || d > retention.MaxDays) {
		vs.add("retention_days", "%d is not 0 (keep everything) or %d to %d days", d, retention.MinDays, retention.MaxDays)
	}
	for _, p := range pricing.Validate(t.GetMessagePrices()) {
		vs.add("message_prices"+p.Field, "%s", p.Msg)
	}
	return vs.err(CodeInvalid, "invalid tenant")
}

// CreateTenant stores a new tenant.
func (a *App) CreateTenant(ctx context.Context, in *configv1.Tenant) (*configv1.Tenant, error) {
	t := proto.Clone(in).(*configv1.Tenant)
	if t.Modalities == nil {
		t.Modalities = &configv1.ModalitySettings{}
	}
	secrets := takeTenantSecrets(t)
	t.SecretHints = nil
	if err := validateTenant(t); err != nil {
		return nil, err
	}
	if err := validateTenantSecrets(secrets); err != nil {
		return nil, err
	}
	priv, err := a.sealTenantSecrets(t, secrets)
	if err != nil {
		return nil, err
	}
	now := a.now()
	t.Version, t.CreateTime, t.UpdateTime = 1, ts(now), ts(now)
	switch err := a.t.Tenants.Insert(ctx, &Record[*configv1.Tenant]{ID: t.Id, Version: 1, Msg: t, Private: priv}); {
	case errors.Is(err, ErrDuplicate):
		return nil, alreadyExists("id", "tenant %q already exists", t.Id)
	case err != nil:
		return nil, internal("create tenant", err)
	}
	a.changed(ctx, configv1.EntityKind_ENTITY_KIND_TENANT, t.Id, t.Id, configv1.ChangeType_CHANGE_TYPE_CREATED, 1)
	return t, nil
}

// GetTenant reads a tenant.
func (a *App) GetTenant(ctx context.Context, id string) (*configv1.Tenant, error) {
	r, err := getRec(ctx, a.t.Tenants, kindTenant, "", id)
	if err != nil {
		return nil, err
	}
	return r.Msg, nil
}

// ListTenants pages through all tenants.
func (a *App) ListTenants(ctx context.Context, p Page) ([]*configv1.Tenant, string, error) {
	q, err := p.query(nil)
	if err != nil {
		return nil, "", err
	}
	recs, err := a.t.Tenants.List(ctx, "", q)
	if err != nil {
		return nil, "", internal("list tenants", err)
	}
	ts, next := page(recs, q, func(r *Record[*configv1.Tenant]) *configv1.Tenant { return r.Msg })
	return ts, next, nil
}

// UpdateTenant changes a tenant. Switching a modality off is refused while
// a service or entry of the tenant uses it.
func (a *App) UpdateTenant(ctx context.Context, in *configv1.Tenant, paths []string) (*configv1.Tenant, error) {
	defer a.lockRecord(kindTenant, "", in.GetId())()
	old, t, err := loadForUpdate(ctx, a.t.Tenants, kindTenant, "", in, paths, tenantRules)
	if err != nil {
		return nil, err
	}
	if t.Modalities == nil {
		t.Modalities = &configv1.ModalitySettings{}
	}
	oldSecrets, err := a.openTenantSecrets(old)
	if err != nil {
		return nil, err
	}
	req := proto.Clone(in).(*configv1.Tenant)
	reqSecrets := takeTenantSecrets(req)
	secrets := applySecretUpdate(oldSecrets, reqSecrets, paths)
	t.Secrets = nil
	if err := validateTenant(t); err != nil {
		return nil, err
	}
	if err := validateTenantSecrets(secrets); err != nil {
		return nil, err
	}
	if maps.Equal(secrets, oldSecrets) && proto.Equal(t, old.Msg) {
		return old.Msg, nil
	}
	if err := a.checkModalitiesInUse(ctx, t); err != nil {
		return nil, err
	}
	priv, err := a.sealTenantSecrets(t, secrets)
	if err != nil {
		return nil, err
	}
	t.Version, t.UpdateTime = old.Version+1, ts(a.now())
	if err := replace(ctx, a.t.Tenants, kindTenant, &Record[*configv1.Tenant]{ID: t.Id, Version: t.Version, Msg: t, Private: priv}, old.Version); err != nil {
		return nil, err
	}
	a.logSecretChanges(t.Id, oldSecrets, secrets)
	a.changed(ctx, configv1.EntityKind_ENTITY_KIND_TENANT, t.Id, t.Id, configv1.ChangeType_CHANGE_TYPE_UPDATED, t.Version)
	return t, nil
}

// checkModalitiesInUse refuses to switch off what a service or entry uses.
func (a *App) checkModalitiesInUse(ctx context.Context, t *configv1.Tenant) error {
	services, err := a.t.Services.List(ctx, t.Id, Query{})
	if err != nil {
		return internal("list services", err)
	}
	var vs violations
	for _, s := range services {
		for _, p := range serviceModalityProblems(t, s.Msg) {
			vs.add(p.field, "service %q %s", s.ID, p.desc)
		}
	}
	entries, err := a.t.Entries.List(ctx, t.Id, Query{})
	if err != nil {
		return internal("list entries", err)
	}
	for _, e := range entries {
		if p, bad := channelProblem(t, e.Msg.GetChannel()); bad {
			vs.add(p.field, "messaging entry %q %s", e.ID, p.desc)
		}
	}
	return vs.err(CodeFailedPrecondition, "modalities in use")
}

type modalityProblem struct{ field, desc string }

// serviceModalityProblems lists what service s uses that tenant t has off;
// fields are the tenant's.
func serviceModalityProblems(t *configv1.Tenant, s *configv1.Service) []modalityProblem {
	var out []modalityProblem
	if s.GetImEnabled() && !t.GetModalities().GetInstantMessaging() {
		out = append(out, modalityProblem{"modalities.instant_messaging", "has Instant Messaging on"})
	}
	for _, ch := range s.GetChannels() {
		if p, bad := channelProblem(t, ch); bad {
			out = append(out, p)
		}
	}
	return out
}

// channelProblem reports a channel tenant t has off.
func channelProblem(t *configv1.Tenant, ch messagingv1.Channel) (modalityProblem, bool) {
	m := t.GetModalities()
	switch ch {
	case messagingv1.Channel_CHANNEL_SMS:
		if !m.GetSms() || !m.GetTwilio() {
			return modalityProblem{"modalities.sms", "uses SMS"}, true
		}
	case messagingv1.Channel_CHANNEL_WHATSAPP:
		if !m.GetWhatsapp() || !m.GetTwilio() {
			return modalityProblem{"modalities.whatsapp", "uses WhatsApp"}, true
		}
	}
	return modalityProblem{}, false
}

// DeleteTenant deletes an empty tenant.
func (a *App) DeleteTenant(ctx context.Context, id string, version int64) error {
	defer a.lockRecord(kindTenant, "", id)()
	old, err := getRec(ctx, a.t.Tenants, kindTenant, "", id)
	if err != nil {
		return err
	}
	for _, c := range []struct {
		what string
		list func() (int, error)
	}{
		{"organization units", func() (int, error) { r, err := a.t.OrgUnits.List(ctx, id, Query{Limit: 1}); return len(r), err }},
		{"users", func() (int, error) { r, err := a.t.Users.List(ctx, id, Query{Limit: 1}); return len(r), err }},
		{"workflows", func() (int, error) { r, err := a.t.Workflows.List(ctx, id, Query{Limit: 1}); return len(r), err }},
	} {
		n, err := c.list()
		if err != nil {
			return internal("list "+c.what, err)
		}
		if n > 0 {
			return precondition("id", "tenant %q still has %s: delete them first", id, c.what)
		}
	}
	if err := deleteRec(ctx, a.t.Tenants, kindTenant, "", id, version, old.Version); err != nil {
		return err
	}
	a.changed(ctx, configv1.EntityKind_ENTITY_KIND_TENANT, id, id, configv1.ChangeType_CHANGE_TYPE_DELETED, old.Version+1)
	return nil
}

// tenantOf reads the tenant a record belongs to, as a precondition.
func (a *App) tenantOf(ctx context.Context, tenant string) (*configv1.Tenant, error) {
	r, err := a.t.Tenants.Get(ctx, "", tenant)
	if errors.Is(err, ErrNotFound) {
		return nil, precondition("tenant_id", "tenant %q does not exist", tenant)
	}
	if err != nil {
		return nil, internal("get tenant", err)
	}
	return r.Msg, nil
}
