package app

import (
	"context"
	"errors"
	"maps"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	"github.com/switchboard-cc/switchboard/services/config/internal/secretbox"
)

// Tenant secrets: named values workflows use (Web Request headers, the bot
// activity's signing key). Write-only like connector secrets: sealed in the
// tenant record's private map under "secret:<name>", shown as hints.
const (
	MaxTenantSecrets     = 50
	MaxTenantSecretBytes = 4096
	privSecretPrefix     = "secret:"
)

// TenantSecretNameRe is what a secret's name must match.
var TenantSecretNameRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

func tenantSecretAAD(tenant, name string) string {
	return "tenant/" + tenant + "#secret/" + name
}

// validateTenantSecrets checks names and values; messages never include a
// value.
func validateTenantSecrets(secrets map[string]string) error {
	var vs violations
	if len(secrets) > MaxTenantSecrets {
		vs.add("secrets", "%d secrets, at most %d allowed", len(secrets), MaxTenantSecrets)
	}
	for _, name := range slices.Sorted(maps.Keys(secrets)) {
		v := secrets[name]
		field := "secrets." + name
		if !TenantSecretNameRe.MatchString(name) {
			vs.add("secrets", "%q is not a secret name: 1-63 characters of a-z, 0-9 and '_', starting with a letter", name)
			continue
		}
		switch {
		case len(v) > MaxTenantSecretBytes:
			vs.add(field, "is %d bytes, at most %d allowed", len(v), MaxTenantSecretBytes)
		case !utf8.ValidString(v):
			vs.add(field, "is not valid UTF-8")
		case strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }):
			vs.add(field, "must not contain control characters or line breaks (it may be sent in an HTTP header)")
		}
	}
	return vs.err(CodeInvalid, "invalid tenant secrets")
}

// takeTenantSecrets removes the write-only secrets from t and returns the
// non-empty ones, trimmed.
func takeTenantSecrets(t *configv1.Tenant) map[string]string {
	out := map[string]string{}
	for k, v := range t.GetSecrets() {
		if v = strings.TrimSpace(v); v != "" {
			out[k] = v
		}
	}
	t.Secrets = nil
	return out
}

// sealTenantSecrets seals secrets for tenant t, sets t's hints and returns
// the private map of the record.
func (a *App) sealTenantSecrets(t *configv1.Tenant, secrets map[string]string) (map[string]string, error) {
	priv := map[string]string{}
	t.Secrets, t.SecretHints = nil, nil
	for name, v := range secrets {
		sealed, err := a.keys.Seal(v, tenantSecretAAD(t.Id, name))
		if err != nil {
			return nil, internal("seal tenant secret "+name, err)
		}
		priv[privSecretPrefix+name] = sealed
		if t.SecretHints == nil {
			t.SecretHints = map[string]string{}
		}
		t.SecretHints[name] = secretbox.Hint(v)
	}
	if len(priv) == 0 {
		return nil, nil
	}
	return priv, nil
}

// openTenantSecrets decrypts a stored tenant's secrets.
func (a *App) openTenantSecrets(r *Record[*configv1.Tenant]) (map[string]string, error) {
	out := map[string]string{}
	for k, sealed := range r.Private {
		name, ok := strings.CutPrefix(k, privSecretPrefix)
		if !ok {
			continue
		}
		plain, err := a.keys.Open(sealed, tenantSecretAAD(r.ID, name))
		if err != nil {
			// Names the tenant and secret, never a value.
			return nil, internal("open secret "+name+" of tenant "+r.ID, err)
		}
		out[name] = plain
	}
	return out, nil
}

// applySecretUpdate computes a tenant's secrets after an update: without a
// mask the request's secrets are set and the others kept; a mask
// "secrets" replaces the set; "secrets.<name>" sets or (no value) deletes
// one.
func applySecretUpdate(stored, req map[string]string, paths []string) map[string]string {
	out := maps.Clone(stored)
	if out == nil {
		out = map[string]string{}
	}
	if len(paths) == 0 {
		maps.Copy(out, req)
		return out
	}
	for _, p := range paths {
		switch {
		case p == "secrets":
			out = maps.Clone(req)
		case strings.HasPrefix(p, "secrets."):
			name := strings.TrimPrefix(p, "secrets.")
			if v, ok := req[name]; ok {
				out[name] = v
			} else {
				delete(out, name)
			}
		}
	}
	return out
}

// logSecretChanges records which secrets an update set or deleted (names
// only), as the audit trail of a write that the event cannot tell.
func (a *App) logSecretChanges(tenant string, old, cur map[string]string) {
	var set, deleted []string
	for name, v := range cur {
		if ov, ok := old[name]; !ok || ov != v {
			set = append(set, name)
		}
	}
	for name := range old {
		if _, ok := cur[name]; !ok {
			deleted = append(deleted, name)
		}
	}
	if len(set)+len(deleted) == 0 {
		return
	}
	slices.Sort(set)
	slices.Sort(deleted)
	a.log.Info("tenant secrets changed", "tenant", tenant, "set", set, "deleted", deleted)
}

// GetTenantSecret returns the decrypted value of a tenant's secret (for
// services only; the adapter checks).
func (a *App) GetTenantSecret(ctx context.Context, tenant, name string) (string, error) {
	switch {
	case tenant == "":
		return "", invalid("tenant_id", "is required")
	case !TenantSecretNameRe.MatchString(name):
		return "", invalid("name", "%q is not a secret name: 1-63 characters of a-z, 0-9 and '_', starting with a letter", name)
	}
	r, err := getRec(ctx, a.t.Tenants, kindTenant, "", tenant)
	if err != nil {
		return "", err
	}
	sealed, ok := r.Private[privSecretPrefix+name]
	if !ok {
		return "", &Error{Code: CodeNotFound, Message: "tenant " + tenant + " has no secret " + name}
	}
	v, err := a.keys.Open(sealed, tenantSecretAAD(tenant, name))
	if err != nil {
		return "", internal("open secret "+name+" of tenant "+tenant, err)
	}
	return v, nil
}

// reencryptTenants re-seals the secrets of tenant ("" for all) that an
// older key sealed.
func (a *App) reencryptTenants(ctx context.Context, tenant string) (reencrypted, checked int, err error) {
	var ids []string
	if tenant != "" {
		ids = []string{tenant}
	} else {
		recs, err := a.t.Tenants.List(ctx, "", Query{})
		if err != nil {
			return 0, 0, internal("list tenants", err)
		}
		for _, r := range recs {
			ids = append(ids, r.ID)
		}
	}
	for _, id := range ids {
		checked++
		done, err := a.resealTenant(ctx, id)
		if err != nil {
			return reencrypted, checked, err
		}
		if done {
			reencrypted++
		}
	}
	return reencrypted, checked, nil
}

func (a *App) resealTenant(ctx context.Context, id string) (bool, error) {
	defer a.lockRecord(kindTenant, "", id)()
	r, err := a.t.Tenants.Get(ctx, "", id)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, internal("get tenant", err)
	}
	current := true
	for _, sealed := range r.Private {
		current = current && a.keys.Current(sealed)
	}
	if current {
		return false, nil
	}
	secrets, err := a.openTenantSecrets(r)
	if err != nil {
		return false, err
	}
	t := proto.Clone(r.Msg).(*configv1.Tenant)
	priv, err := a.sealTenantSecrets(t, secrets)
	if err != nil {
		return false, err
	}
	err = a.t.Tenants.Replace(ctx, &Record[*configv1.Tenant]{ID: r.ID, Version: r.Version, Msg: t, Private: priv}, r.Version)
	if errors.Is(err, ErrVersionMismatch) {
		return false, nil
	}
	if err != nil {
		return false, internal("re-seal tenant secrets", err)
	}
	return true, nil
}
