package app

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/switchboard-cc/switchboard/pkg/ids"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	"github.com/switchboard-cc/switchboard/services/config/internal/secretbox"
)

const kindConnector = "provider connector"

// Secret fields of a connector, also the keys of its private map.
const (
	secretAPIKey    = "api_key_secret"
	secretAuthToken = "auth_token"
	secretSecondary = "secondary_auth_token"
)

var connectorSecrets = []string{secretAPIKey, secretAuthToken, secretSecondary}

var connectorRules = fieldRules{
	fixed:     []string{"id", "tenant_id"},
	output:    append([]string{"api_key_secret_hint", "auth_token_hint", "secondary_auth_token_hint"}, metaFields...),
	writeOnly: connectorSecrets,
}

var (
	accountSIDRe = regexp.MustCompile(`^AC[0-9a-f]{32}$`)
	apiKeySIDRe  = regexp.MustCompile(`^SK[0-9a-f]{32}$`)
	authTokenRe  = regexp.MustCompile(`^[0-9a-f]{32}$`)
	apiSecretRe  = regexp.MustCompile(`^[\x21-\x7e]{16,128}$`)
)

// Twilio regions and the edges that serve them. us1 is Twilio's default
// region; an empty edge there means Twilio's default (global) endpoint.
var regionEdges = map[string][]string{
	"us1": {"", "ashburn", "umatilla"},
	"ie1": {"dublin"},
	"au1": {"sydney"},
}

// normalizeConnector fills defaults: region us1, the region's edge.
func normalizeConnector(c *configv1.ProviderConnector) {
	c.Region = strings.ToLower(strings.TrimSpace(c.Region))
	c.Edge = strings.ToLower(strings.TrimSpace(c.Edge))
	if c.Region == "" {
		c.Region = "us1"
	}
	if edges, ok := regionEdges[c.Region]; ok && c.Edge == "" {
		c.Edge = edges[0]
	}
}

// validateConnector checks the resource; secrets holds the plaintext
// secrets the record will have. Messages never include secret values.
func validateConnector(c *configv1.ProviderConnector, secrets map[string]string) error {
	var vs violations
	checkID(&vs, "id", c.GetId())
	checkName(&vs, "name", c.GetName(), true)
	if c.GetOrgUnitId() == "" {
		vs.add("org_unit_id", "is required: the organization unit the connector belongs to")
	} else {
		checkID(&vs, "org_unit_id", c.GetOrgUnitId())
	}
	if !accountSIDRe.MatchString(c.GetAccountSid()) {
		vs.add("account_sid", "%q is not a Twilio Account SID: AC followed by 32 lower-case hex digits", c.GetAccountSid())
	}
	if !apiKeySIDRe.MatchString(c.GetApiKeySid()) {
		vs.add("api_key_sid", "%q is not a Twilio API Key SID: SK followed by 32 lower-case hex digits", c.GetApiKeySid())
	}
	switch s := secrets[secretAPIKey]; {
	case s == "":
		vs.add(secretAPIKey, "is required: the secret Twilio showed when the API key was created")
	case !apiSecretRe.MatchString(s):
		vs.add(secretAPIKey, "must be 16-128 printable characters without spaces")
	}
	switch s := secrets[secretAuthToken]; {
	case s == "":
		vs.add(secretAuthToken, "is required: webhooks are signed with the account's Auth Token")
	case !authTokenRe.MatchString(s):
		vs.add(secretAuthToken, "must be 32 lower-case hex digits, as in the Twilio console")
	}
	if s := secrets[secretSecondary]; s != "" {
		if !authTokenRe.MatchString(s) {
			vs.add(secretSecondary, "must be 32 lower-case hex digits, as in the Twilio console")
		} else if s == secrets[secretAuthToken] {
			vs.add(secretSecondary, "must differ from auth_token")
		}
	}
	edges, ok := regionEdges[c.GetRegion()]
	switch {
	case !ok:
		vs.add("region", "%q is not a supported Twilio region: us1, ie1 or au1", c.GetRegion())
	case !slices.Contains(edges, c.GetEdge()):
		vs.add("edge", "%q does not serve region %s; use %s", c.GetEdge(), c.GetRegion(), strings.Join(nonEmpty(edges), " or "))
	}
	return vs.err(CodeInvalid, "invalid provider connector")
}

func nonEmpty(ss []string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func connectorAAD(tenant, id, field string) string {
	return "connector/" + tenant + "/" + id + "#" + field
}

// seal encrypts the secrets for c's record and sets the hints.
func (a *App) sealConnector(c *configv1.ProviderConnector, secrets map[string]string) (map[string]string, error) {
	priv := map[string]string{}
	for _, f := range connectorSecrets {
		sealed, err := a.keys.Seal(secrets[f], connectorAAD(c.TenantId, c.Id, f))
		if err != nil {
			return nil, internal("seal "+f, err)
		}
		if sealed != "" {
			priv[f] = sealed
		}
	}
	c.ApiKeySecret, c.AuthToken, c.SecondaryAuthToken = "", "", ""
	c.ApiKeySecretHint = secretbox.Hint(secrets[secretAPIKey])
	c.AuthTokenHint = secretbox.Hint(secrets[secretAuthToken])
	c.SecondaryAuthTokenHint = secretbox.Hint(secrets[secretSecondary])
	return priv, nil
}

// openConnector decrypts a stored connector's secrets.
func (a *App) openConnector(r *Record[*configv1.ProviderConnector]) (map[string]string, error) {
	out := map[string]string{}
	for _, f := range connectorSecrets {
		plain, err := a.keys.Open(r.Private[f], connectorAAD(r.Tenant, r.ID, f))
		if err != nil {
			// Names the key id and field, never a value.
			return nil, internal("open "+f+" of connector "+r.Tenant+"/"+r.ID, err)
		}
		out[f] = plain
	}
	return out, nil
}

func takeSecrets(c *configv1.ProviderConnector) map[string]string {
	return map[string]string{
		secretAPIKey:    strings.TrimSpace(c.GetApiKeySecret()),
		secretAuthToken: strings.TrimSpace(c.GetAuthToken()),
		secretSecondary: strings.TrimSpace(c.GetSecondaryAuthToken()),
	}
}

// CreateProviderConnector stores a connector with its secrets sealed.
func (a *App) CreateProviderConnector(ctx context.Context, in *configv1.ProviderConnector) (*configv1.ProviderConnector, error) {
	c := proto.Clone(in).(*configv1.ProviderConnector)
	if c.Id == "" {
		c.Id = ids.New("pc_")
	}
	secrets := takeSecrets(c)
	normalizeConnector(c)
	c.ApiKeySecretHint, c.AuthTokenHint, c.SecondaryAuthTokenHint = "", "", ""
	if err := validateConnector(c, secrets); err != nil {
		return nil, err
	}
	t, err := a.tenantOf(ctx, c.TenantId)
	if err != nil {
		return nil, err
	}
	if !t.GetModalities().GetTwilio() {
		return nil, precondition("tenant_id", "tenant %q has the Twilio modality off; switch it on first", c.TenantId)
	}
	if err := a.ouExists(ctx, c.TenantId, c.OrgUnitId, "org_unit_id"); err != nil {
		return nil, err
	}
	priv, err := a.sealConnector(c, secrets)
	if err != nil {
		return nil, err
	}
	now := a.now()
	c.Version, c.CreateTime, c.UpdateTime = 1, ts(now), ts(now)
	switch err := a.t.Connectors.Insert(ctx, &Record[*configv1.ProviderConnector]{Tenant: c.TenantId, ID: c.Id, Version: 1, Msg: c, Private: priv}); {
	case errors.Is(err, ErrDuplicate):
		return nil, alreadyExists("id", "provider connector %q already exists in tenant %q", c.Id, c.TenantId)
	case err != nil:
		return nil, internal("create provider connector", err)
	}
	a.changed(ctx, configv1.EntityKind_ENTITY_KIND_PROVIDER_CONNECTOR, c.TenantId, c.Id, configv1.ChangeType_CHANGE_TYPE_CREATED, 1)
	return c, nil
}

// GetProviderConnector reads a connector; secrets come back as hints only.
func (a *App) GetProviderConnector(ctx context.Context, tenant, id string) (*configv1.ProviderConnector, error) {
	r, err := getRec(ctx, a.t.Connectors, kindConnector, tenant, id)
	if err != nil {
		return nil, err
	}
	return r.Msg, nil
}

// ListProviderConnectors pages through a tenant's connectors. With an OU,
// it lists the connectors a messaging entry of that OU may use: those of
// the OU and of its ancestors up to the root.
func (a *App) ListProviderConnectors(ctx context.Context, tenant string, p Page, ou string) ([]*configv1.ProviderConnector, string, error) {
	q, err := p.query(nil)
	if err != nil {
		return nil, "", err
	}
	if ou != "" {
		chain, err := a.ancestry(ctx, tenant, ou)
		if err != nil {
			return nil, "", err
		}
		q.In = map[string][]string{"org_unit_id": chain}
	}
	recs, err := a.t.Connectors.List(ctx, tenant, q)
	if err != nil {
		return nil, "", internal("list provider connectors", err)
	}
	out, next := page(recs, q, func(r *Record[*configv1.ProviderConnector]) *configv1.ProviderConnector { return r.Msg })
	return out, next, nil
}

// UpdateProviderConnector changes a connector. Secrets are write-only: an
// empty secret in a request without a mask keeps the stored one; with a
// mask, a named secret is replaced (an empty secondary_auth_token ends a
// rotation). Every write re-seals with the current key.
func (a *App) UpdateProviderConnector(ctx context.Context, in *configv1.ProviderConnector, paths []string) (*configv1.ProviderConnector, error) {
	defer a.lockRecord(kindConnector, in.GetTenantId(), in.GetId())()
	old, c, err := loadForUpdate(ctx, a.t.Connectors, kindConnector, in.GetTenantId(), in, paths, connectorRules)
	if err != nil {
		return nil, err
	}
	secrets, err := a.openConnector(old)
	if err != nil {
		return nil, err
	}
	oldSecrets := map[string]string{}
	for k, v := range secrets {
		oldSecrets[k] = v
	}
	reqSecrets := takeSecrets(in)
	for _, f := range connectorSecrets {
		switch {
		case len(paths) == 0 && reqSecrets[f] != "":
			secrets[f] = reqSecrets[f]
		case len(paths) > 0 && masked(paths, f):
			secrets[f] = reqSecrets[f]
		}
	}
	normalizeConnector(c)
	if err := validateConnector(c, secrets); err != nil {
		return nil, err
	}
	c.ApiKeySecret, c.AuthToken, c.SecondaryAuthToken = "", "", ""
	c.ApiKeySecretHint, c.AuthTokenHint, c.SecondaryAuthTokenHint = old.Msg.ApiKeySecretHint, old.Msg.AuthTokenHint, old.Msg.SecondaryAuthTokenHint
	sameSecrets := true
	for _, f := range connectorSecrets {
		sameSecrets = sameSecrets && secrets[f] == oldSecrets[f]
	}
	if sameSecrets && proto.Equal(c, old.Msg) {
		return old.Msg, nil
	}
	if c.OrgUnitId != old.Msg.OrgUnitId {
		if err := a.checkConnectorMove(ctx, c); err != nil {
			return nil, err
		}
	}
	priv, err := a.sealConnector(c, secrets)
	if err != nil {
		return nil, err
	}
	c.Version, c.UpdateTime = old.Version+1, ts(a.now())
	if err := replace(ctx, a.t.Connectors, kindConnector, &Record[*configv1.ProviderConnector]{Tenant: c.TenantId, ID: c.Id, Version: c.Version, Msg: c, Private: priv}, old.Version); err != nil {
		return nil, err
	}
	a.changed(ctx, configv1.EntityKind_ENTITY_KIND_PROVIDER_CONNECTOR, c.TenantId, c.Id, configv1.ChangeType_CHANGE_TYPE_UPDATED, c.Version)
	return c, nil
}

// checkConnectorMove: every entry using c must still be in c's OU or below.
func (a *App) checkConnectorMove(ctx context.Context, c *configv1.ProviderConnector) error {
	if err := a.ouExists(ctx, c.TenantId, c.OrgUnitId, "org_unit_id"); err != nil {
		return err
	}
	users, err := a.t.Entries.List(ctx, c.TenantId, Query{Eq: map[string]string{"connector_id": c.Id}})
	if err != nil {
		return internal("list entries", err)
	}
	for _, e := range users {
		chain, err := a.ancestry(ctx, c.TenantId, e.Msg.GetOrgUnitId())
		if err != nil {
			return err
		}
		if !slices.Contains(chain, c.OrgUnitId) {
			return precondition("org_unit_id", "messaging entry %q in organization unit %q uses this connector and could not reach organization unit %q", e.ID, e.Msg.GetOrgUnitId(), c.OrgUnitId)
		}
	}
	return nil
}

// DeleteProviderConnector deletes a connector no entry uses.
func (a *App) DeleteProviderConnector(ctx context.Context, tenant, id string, version int64) error {
	defer a.lockRecord(kindConnector, tenant, id)()
	old, err := getRec(ctx, a.t.Connectors, kindConnector, tenant, id)
	if err != nil {
		return err
	}
	users, err := a.t.Entries.List(ctx, tenant, Query{Limit: 1, Eq: map[string]string{"connector_id": id}})
	if err != nil {
		return internal("list entries", err)
	}
	if len(users) > 0 {
		return precondition("id", "messaging entry %q uses provider connector %q", users[0].ID, id)
	}
	if err := deleteRec(ctx, a.t.Connectors, kindConnector, tenant, id, version, old.Version); err != nil {
		return err
	}
	a.changed(ctx, configv1.EntityKind_ENTITY_KIND_PROVIDER_CONNECTOR, tenant, id, configv1.ChangeType_CHANGE_TYPE_DELETED, old.Version+1)
	return nil
}

// Reencrypted counts what ReencryptConnectorSecrets looked at and re-sealed.
type Reencrypted struct {
	Connectors, ConnectorsChecked int
	Tenants, TenantsChecked       int
}

// ReencryptConnectorSecrets re-seals, with the current key, the secrets of
// the connectors of tenant ("" for all tenants) and the tenants' own named
// secrets that an older key sealed. The resources do not change, so neither
// do their versions.
func (a *App) ReencryptConnectorSecrets(ctx context.Context, tenant string) (Reencrypted, error) {
	var out Reencrypted
	var err error
	out.Connectors, out.ConnectorsChecked, err = a.reencryptConnectors(ctx, tenant)
	if err != nil {
		return out, err
	}
	out.Tenants, out.TenantsChecked, err = a.reencryptTenants(ctx, tenant)
	if out.Tenants > 0 {
		a.log.InfoContext(ctx, "re-encrypted tenant secrets", "tenant", tenant, "tenants", out.Tenants, "key_id", a.keys.CurrentKeyID())
	}
	return out, err
}

func (a *App) reencryptConnectors(ctx context.Context, tenant string) (reencrypted, checked int, err error) {
	recs, err := a.t.Connectors.List(ctx, tenant, Query{})
	if err != nil {
		return 0, 0, internal("list provider connectors", err)
	}
	for _, listed := range recs {
		checked++
		done, err := a.reseal(ctx, listed.Tenant, listed.ID)
		if err != nil {
			return reencrypted, checked, err
		}
		if done {
			reencrypted++
		}
	}
	if reencrypted > 0 {
		a.log.InfoContext(ctx, "re-encrypted connector secrets", "tenant", tenant, "connectors", reencrypted, "key_id", a.keys.CurrentKeyID())
	}
	return reencrypted, checked, nil
}

// reseal re-seals one connector's secrets if an older key sealed them.
func (a *App) reseal(ctx context.Context, tenant, id string) (bool, error) {
	defer a.lockRecord(kindConnector, tenant, id)()
	r, err := a.t.Connectors.Get(ctx, tenant, id)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, internal("get provider connector", err)
	}
	current := true
	for _, f := range connectorSecrets {
		current = current && a.keys.Current(r.Private[f])
	}
	if current {
		return false, nil
	}
	secrets, err := a.openConnector(r)
	if err != nil {
		return false, err
	}
	c := proto.Clone(r.Msg).(*configv1.ProviderConnector)
	priv, err := a.sealConnector(c, secrets)
	if err != nil {
		return false, err
	}
	err = a.t.Connectors.Replace(ctx, &Record[*configv1.ProviderConnector]{Tenant: r.Tenant, ID: r.ID, Version: r.Version, Msg: c, Private: priv}, r.Version)
	if errors.Is(err, ErrVersionMismatch) {
		return false, nil // changed meanwhile, so sealed with the current key
	}
	if err != nil {
		return false, internal("re-seal provider connector", err)
	}
	return true, nil
}
