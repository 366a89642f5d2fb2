package app

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/switchboard-cc/switchboard/pkg/ids"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
)

const (
	kindEntry    = "messaging entry"
	maxAddresses = 50
)

var entryRules = fieldRules{fixed: []string{"id", "tenant_id"}, output: metaFields}

var (
	chatServiceSIDRe      = regexp.MustCompile(`^IS[0-9a-f]{32}$`)
	messagingServiceSIDRe = regexp.MustCompile(`^MG[0-9a-f]{32}$`)
	e164Re                = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
)

// WhatsAppPrefix marks a WhatsApp address, as Twilio writes them.
const WhatsAppPrefix = "whatsapp:"

// NormalizeAddress trims an address and lower-cases its channel prefix, the
// form addresses are stored, claimed and looked up in.
func NormalizeAddress(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > len(WhatsAppPrefix) && strings.EqualFold(s[:len(WhatsAppPrefix)], WhatsAppPrefix) {
		return WhatsAppPrefix + strings.TrimSpace(s[len(WhatsAppPrefix):])
	}
	return s
}

func normalizeEntry(e *configv1.MessagingEntry) {
	e.ConversationsServiceSid = strings.TrimSpace(e.ConversationsServiceSid)
	e.MessagingServiceSid = strings.TrimSpace(e.MessagingServiceSid)
	for i, s := range e.BusinessAddresses {
		e.BusinessAddresses[i] = NormalizeAddress(s)
	}
	if e.Path == messagingv1.TwilioPath_TWILIO_PATH_UNSPECIFIED {
		if e.ConversationsServiceSid != "" {
			e.Path = messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS
		} else {
			e.Path = messagingv1.TwilioPath_TWILIO_PATH_MESSAGING
		}
	}
}

func validateEntry(e *configv1.MessagingEntry) error {
	var vs violations
	checkID(&vs, "id", e.GetId())
	checkName(&vs, "name", e.GetName(), true)
	if e.GetOrgUnitId() == "" {
		vs.add("org_unit_id", "is required: the organization unit the entry belongs to")
	} else {
		checkID(&vs, "org_unit_id", e.GetOrgUnitId())
	}
	if e.GetConnectorId() == "" {
		vs.add("connector_id", "is required: the provider connector with the Twilio credentials")
	} else {
		checkID(&vs, "connector_id", e.GetConnectorId())
	}
	switch e.GetChannel() {
	case messagingv1.Channel_CHANNEL_SMS, messagingv1.Channel_CHANNEL_WHATSAPP:
	case messagingv1.Channel_CHANNEL_UNSPECIFIED:
		vs.add("channel", "is required: CHANNEL_SMS or CHANNEL_WHATSAPP")
	default:
		vs.add("channel", "%v is not a known channel", e.GetChannel())
	}
	if sid := e.GetConversationsServiceSid(); sid != "" && !chatServiceSIDRe.MatchString(sid) {
		vs.add("conversations_service_sid", "%q is not a Twilio Conversations Service SID: IS followed by 32 lower-case hex digits", sid)
	}
	if sid := e.GetMessagingServiceSid(); sid != "" && !messagingServiceSIDRe.MatchString(sid) {
		vs.add("messaging_service_sid", "%q is not a Twilio Messaging Service SID: MG followed by 32 lower-case hex digits", sid)
	}
	if len(e.GetBusinessAddresses()) > maxAddresses {
		vs.add("business_addresses", "%d addresses, at most %d allowed", len(e.GetBusinessAddresses()), maxAddresses)
	}
	for i, addr := range e.GetBusinessAddresses() {
		field := fmt.Sprintf("business_addresses[%d]", i)
		if j := slices.Index(e.GetBusinessAddresses(), addr); j < i {
			vs.add(field, "repeats business_addresses[%d]", j)
			continue
		}
		num, isWhatsApp := strings.CutPrefix(addr, WhatsAppPrefix)
		switch {
		case !e164Re.MatchString(num):
			vs.add(field, "%q is not an E.164 number such as +41445551234 (with \"whatsapp:\" in front for WhatsApp)", addr)
		case e.GetChannel() == messagingv1.Channel_CHANNEL_WHATSAPP && !isWhatsApp:
			vs.add(field, "%q: a WhatsApp entry's addresses are written \"whatsapp:+E164\"", addr)
		case e.GetChannel() == messagingv1.Channel_CHANNEL_SMS && isWhatsApp:
			vs.add(field, "%q is a WhatsApp address, but the entry's channel is SMS", addr)
		}
	}
	switch e.GetPath() {
	case messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS:
		if e.GetConversationsServiceSid() == "" {
			vs.add("conversations_service_sid", "is required on the Conversations path")
		}
	case messagingv1.TwilioPath_TWILIO_PATH_MESSAGING:
		if len(e.GetBusinessAddresses()) == 0 {
			vs.add("business_addresses", "the Programmable Messaging path needs at least one business number (or set conversations_service_sid for the Conversations path)")
		}
	default:
		vs.add("path", "%v is not a known Twilio path", e.GetPath())
	}
	return vs.err(CodeInvalid, "invalid messaging entry")
}

// entryKeys are the global claims of an entry: its Conversations service
// SID and its business addresses.
func entryKeys(e *configv1.MessagingEntry) []string {
	var keys []string
	if e.GetConversationsServiceSid() != "" {
		keys = append(keys, claimSID+e.GetConversationsServiceSid())
	}
	for _, addr := range e.GetBusinessAddresses() {
		keys = append(keys, claimAddr+addr)
	}
	return keys
}

// entryClaimLive: a SID or address claim is live while its entry lists it.
func (a *App) entryClaimLive(ctx context.Context, c Claim) (bool, error) {
	r, err := a.t.Entries.Get(ctx, c.Tenant, c.Owner)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return slices.Contains(entryKeys(r.Msg), c.Key), nil
}

// claimEntryKeys claims keys for entry e; on a conflict it releases what it
// took and names the field.
func (a *App) claimEntryKeys(ctx context.Context, e *configv1.MessagingEntry, keys []string) (fresh []string, err error) {
	for _, k := range keys {
		got, err := a.claim(ctx, k, e.TenantId, e.Id, a.entryClaimLive)
		if got {
			fresh = append(fresh, k)
		}
		if err == nil {
			continue
		}
		a.release(ctx, e.TenantId, e.Id, fresh...)
		var held *errClaimHeld
		if !errors.As(err, &held) {
			return nil, internal("claim address", err)
		}
		field, what := "conversations_service_sid", "Conversations service "+strings.TrimPrefix(k, claimSID)
		if addr, ok := strings.CutPrefix(k, claimAddr); ok {
			field = fmt.Sprintf("business_addresses[%d]", slices.Index(e.BusinessAddresses, addr))
			what = "business address " + addr
		}
		// Another tenant's entry is not named: tenants must not learn about
		// each other.
		owner := "another tenant"
		if held.holder.Tenant == e.TenantId {
			owner = fmt.Sprintf("messaging entry %q", held.holder.Owner)
		}
		return nil, alreadyExists(field, "%s already belongs to %s; webhooks for it could not be routed to two entries", what, owner)
	}
	return fresh, nil
}

// checkEntryRefs checks the state an entry depends on: the tenant has
// Twilio and the channel on, the OU exists, and the connector belongs to the
// entry's OU or an ancestor.
func (a *App) checkEntryRefs(ctx context.Context, e *configv1.MessagingEntry) error {
	t, err := a.tenantOf(ctx, e.TenantId)
	if err != nil {
		return err
	}
	if p, bad := channelProblem(t, e.Channel); bad {
		return precondition("channel", "tenant %q has %s off (%s)", e.TenantId, strings.TrimPrefix(e.Channel.String(), "CHANNEL_"), p.field)
	}
	chain, err := a.ancestry(ctx, e.TenantId, e.OrgUnitId)
	if err != nil {
		return err
	}
	c, err := a.t.Connectors.Get(ctx, e.TenantId, e.ConnectorId)
	if errors.Is(err, ErrNotFound) {
		return precondition("connector_id", "provider connector %q does not exist in tenant %q", e.ConnectorId, e.TenantId)
	}
	if err != nil {
		return internal("get provider connector", err)
	}
	if !slices.Contains(chain, c.Msg.GetOrgUnitId()) {
		return precondition("connector_id", "provider connector %q belongs to organization unit %q, which is neither %q nor above it", e.ConnectorId, c.Msg.GetOrgUnitId(), e.OrgUnitId)
	}
	return nil
}

// CreateMessagingEntry stores an entry after claiming its SID and numbers.
func (a *App) CreateMessagingEntry(ctx context.Context, in *configv1.MessagingEntry) (*configv1.MessagingEntry, error) {
	e := proto.Clone(in).(*configv1.MessagingEntry)
	if e.Id == "" {
		e.Id = ids.New("me_")
	}
	normalizeEntry(e)
	if err := validateEntry(e); err != nil {
		return nil, err
	}
	if err := a.checkEntryRefs(ctx, e); err != nil {
		return nil, err
	}
	// Claims first, record second: a crash in between leaves claims whose
	// entry does not list them, which the next claimant takes over.
	fresh, err := a.claimEntryKeys(ctx, e, entryKeys(e))
	if err != nil {
		return nil, err
	}
	now := a.now()
	e.Version, e.CreateTime, e.UpdateTime = 1, ts(now), ts(now)
	if err := a.t.Entries.Insert(ctx, &Record[*configv1.MessagingEntry]{Tenant: e.TenantId, ID: e.Id, Version: 1, Msg: e}); err != nil {
		a.release(ctx, e.TenantId, e.Id, fresh...)
		if errors.Is(err, ErrDuplicate) {
			return nil, alreadyExists("id", "messaging entry %q already exists in tenant %q", e.Id, e.TenantId)
		}
		return nil, internal("create messaging entry", err)
	}
	a.changed(ctx, configv1.EntityKind_ENTITY_KIND_MESSAGING_ENTRY, e.TenantId, e.Id, configv1.ChangeType_CHANGE_TYPE_CREATED, 1)
	return e, nil
}

// GetMessagingEntry reads an entry.
func (a *App) GetMessagingEntry(ctx context.Context, tenant, id string) (*configv1.MessagingEntry, error) {
	r, err := getRec(ctx, a.t.Entries, kindEntry, tenant, id)
	if err != nil {
		return nil, err
	}
	return r.Msg, nil
}

// ListMessagingEntries pages through a tenant's entries, optionally of one
// OU or connector.
func (a *App) ListMessagingEntries(ctx context.Context, tenant string, p Page, ou, connector string) ([]*configv1.MessagingEntry, string, error) {
	q, err := p.query(map[string]string{"org_unit_id": ou, "connector_id": connector})
	if err != nil {
		return nil, "", err
	}
	recs, err := a.t.Entries.List(ctx, tenant, q)
	if err != nil {
		return nil, "", internal("list messaging entries", err)
	}
	out, next := page(recs, q, func(r *Record[*configv1.MessagingEntry]) *configv1.MessagingEntry { return r.Msg })
	return out, next, nil
}

// UpdateMessagingEntry changes an entry: new SIDs and numbers are claimed
// before the write, dropped ones released after it.
func (a *App) UpdateMessagingEntry(ctx context.Context, in *configv1.MessagingEntry, paths []string) (*configv1.MessagingEntry, error) {
	defer a.lockRecord(kindEntry, in.GetTenantId(), in.GetId())()
	old, e, err := loadForUpdate(ctx, a.t.Entries, kindEntry, in.GetTenantId(), in, paths, entryRules)
	if err != nil {
		return nil, err
	}
	if masked(paths, "conversations_service_sid") || masked(paths, "business_addresses") {
		if !masked(paths, "path") || in.GetPath() == messagingv1.TwilioPath_TWILIO_PATH_UNSPECIFIED {
			e.Path = messagingv1.TwilioPath_TWILIO_PATH_UNSPECIFIED // derive again
		}
	}
	normalizeEntry(e)
	if err := validateEntry(e); err != nil {
		return nil, err
	}
	if proto.Equal(e, old.Msg) {
		return old.Msg, nil
	}
	if err := a.checkEntryRefs(ctx, e); err != nil {
		return nil, err
	}
	if e.Channel != old.Msg.Channel {
		if err := a.checkAssignedChannel(ctx, e); err != nil {
			return nil, err
		}
	}
	oldKeys, newKeys := entryKeys(old.Msg), entryKeys(e)
	var added, removed []string
	for _, k := range newKeys {
		if !slices.Contains(oldKeys, k) {
			added = append(added, k)
		}
	}
	for _, k := range oldKeys {
		if !slices.Contains(newKeys, k) {
			removed = append(removed, k)
		}
	}
	fresh, err := a.claimEntryKeys(ctx, e, added)
	if err != nil {
		return nil, err
	}
	e.Version, e.UpdateTime = old.Version+1, ts(a.now())
	if err := replace(ctx, a.t.Entries, kindEntry, &Record[*configv1.MessagingEntry]{Tenant: e.TenantId, ID: e.Id, Version: e.Version, Msg: e}, old.Version); err != nil {
		a.release(ctx, e.TenantId, e.Id, fresh...)
		return nil, err
	}
	a.release(ctx, e.TenantId, e.Id, removed...)
	a.changed(ctx, configv1.EntityKind_ENTITY_KIND_MESSAGING_ENTRY, e.TenantId, e.Id, configv1.ChangeType_CHANGE_TYPE_UPDATED, e.Version)
	return e, nil
}

// checkAssignedChannel: the service an entry is assigned to must offer the
// entry's channel.
func (a *App) checkAssignedChannel(ctx context.Context, e *configv1.MessagingEntry) error {
	svc, err := a.assignedService(ctx, e.TenantId, e.Id)
	if err != nil || svc == nil {
		return err
	}
	if !slices.Contains(svc.GetChannels(), e.Channel) {
		return precondition("channel", "the entry is assigned to service %q, which does not have channel %s on", svc.Id, e.Channel)
	}
	return nil
}

// assignedService returns the service an entry is assigned to, or nil.
func (a *App) assignedService(ctx context.Context, tenant, entry string) (*configv1.Service, error) {
	c, err := a.t.Claims.Get(ctx, assignKey(tenant, entry))
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, internal("get entry assignment", err)
	}
	s, err := a.t.Services.Get(ctx, tenant, c.Owner)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, internal("get service", err)
	}
	if !slices.Contains(s.Msg.GetMessagingEntryIds(), entry) {
		return nil, nil
	}
	return s.Msg, nil
}

// DeleteMessagingEntry deletes an entry no service uses and frees its SID
// and numbers.
func (a *App) DeleteMessagingEntry(ctx context.Context, tenant, id string, version int64) error {
	defer a.lockRecord(kindEntry, tenant, id)()
	old, err := getRec(ctx, a.t.Entries, kindEntry, tenant, id)
	if err != nil {
		return err
	}
	svc, err := a.assignedService(ctx, tenant, id)
	if err != nil {
		return err
	}
	if svc != nil {
		return precondition("id", "messaging entry %q is assigned to service %q; remove it there first", id, svc.Id)
	}
	if err := deleteRec(ctx, a.t.Entries, kindEntry, tenant, id, version, old.Version); err != nil {
		return err
	}
	// Record first, claims second: a crash in between leaves claims of a
	// missing entry, which are stale and taken over on next use.
	a.release(ctx, tenant, id, entryKeys(old.Msg)...)
	a.changed(ctx, configv1.EntityKind_ENTITY_KIND_MESSAGING_ENTRY, tenant, id, configv1.ChangeType_CHANGE_TYPE_DELETED, old.Version+1)
	return nil
}
