package app

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/switchboard-cc/switchboard/pkg/ids"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	"github.com/switchboard-cc/switchboard/services/config/internal/signin"
)

const (
	kindUser       = "user"
	privPassword   = "password_hash"
	minPassword    = 4
	maxPassword    = 72 // bcrypt's limit
	maxUserCap     = 50
	maxUserStrings = 100
)

var userRules = fieldRules{
	fixed:     []string{"id", "tenant_id"},
	output:    append([]string{"password_set"}, metaFields...),
	writeOnly: []string{"password"},
}

var attrKeyRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func normalizeUser(u *configv1.User) {
	u.Email = strings.ToLower(strings.TrimSpace(u.Email))
	u.DisplayName = strings.TrimSpace(u.DisplayName)
}

// validateUser checks a user; password is the new password, if any.
func validateUser(u *configv1.User, password string) error {
	var vs violations
	checkID(&vs, "id", u.GetId())
	checkName(&vs, "display_name", u.GetDisplayName(), true)
	if addr, err := mail.ParseAddress(u.GetEmail()); err != nil || addr.Address != u.GetEmail() || addr.Name != "" {
		vs.add("email", "%q is not an email address such as alice@example.com", u.GetEmail())
	}
	if len(u.GetRoles()) == 0 {
		vs.add("roles", "at least one role is required: %s", roleNames)
	}
	for i, r := range u.GetRoles() {
		field := fmt.Sprintf("roles[%d]", i)
		switch {
		case !validRole(r):
			vs.add(field, "%v is not a role: %s", r, roleNames)
		case slices.Index(u.GetRoles(), r) < i:
			vs.add(field, "repeats %v", r)
		}
	}
	for i, id := range u.GetServiceIds() {
		field := fmt.Sprintf("service_ids[%d]", i)
		checkID(&vs, field, id)
		if j := slices.Index(u.GetServiceIds(), id); j < i {
			vs.add(field, "repeats service_ids[%d]", j)
		}
	}
	if c := u.GetCapacity(); c < 0 || c > maxUserCap {
		vs.add("capacity", "%d is out of range [0, %d] (0: the services' defaults)", c, maxUserCap)
	}
	if len(u.GetSkills()) > maxUserStrings {
		vs.add("skills", "%d skills, at most %d allowed", len(u.GetSkills()), maxUserStrings)
	}
	for i, s := range u.GetSkills() {
		field := fmt.Sprintf("skills[%d]", i)
		switch {
		case strings.TrimSpace(s) == "" || utf8.RuneCountInString(s) > 64:
			vs.add(field, "must be 1-64 characters")
		case slices.Index(u.GetSkills(), s) < i:
			vs.add(field, "repeats %q", s)
		}
	}
	if len(u.GetAttributes()) > maxUserStrings {
		vs.add("attributes", "%d attributes, at most %d allowed", len(u.GetAttributes()), maxUserStrings)
	}
	for k, v := range u.GetAttributes() {
		if !attrKeyRe.MatchString(k) {
			vs.add("attributes", "key %q must be 1-64 characters of letters, digits, '_' and '-'", k)
		}
		if len(v) > 1024 {
			vs.add("attributes["+k+"]", "is longer than 1024 bytes")
		}
	}
	if password != "" && (utf8.RuneCountInString(password) < minPassword || len(password) > maxPassword) {
		vs.add("password", "must be %d to %d bytes long", minPassword, maxPassword)
	}
	return vs.err(CodeInvalid, "invalid user")
}

// validRole: every declared role but ROLE_UNSPECIFIED.
func validRole(r configv1.Role) bool {
	_, ok := configv1.Role_name[int32(r)]
	return ok && r != configv1.Role_ROLE_UNSPECIFIED
}

// roleNames lists the roles a user may hold, for error messages.
var roleNames = func() string {
	var names []string
	for i := range int32(len(configv1.Role_name)) {
		if r := configv1.Role(i); validRole(r) {
			names = append(names, r.String())
		}
	}
	return strings.Join(names, ", ")
}()

func emailKey(tenant, email string) string { return claimEmail + tenant + "/" + email }

// emailLive: an email claim is live while its user has that email.
func (a *App) emailLive(ctx context.Context, c Claim) (bool, error) {
	r, err := a.t.Users.Get(ctx, c.Tenant, c.Owner)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return emailKey(c.Tenant, r.Msg.GetEmail()) == c.Key, nil
}

func (a *App) claimEmail(ctx context.Context, u *configv1.User) (bool, error) {
	fresh, err := a.claim(ctx, emailKey(u.TenantId, u.Email), u.TenantId, u.Id, a.emailLive)
	var held *errClaimHeld
	if errors.As(err, &held) {
		return false, alreadyExists("email", "user %q already signs in with %q", held.holder.Owner, u.Email)
	}
	if err != nil {
		return false, internal("claim email", err)
	}
	return fresh, nil
}

// checkUserRefs: the tenant exists (with IM on for an IM license) and the
// services exist.
func (a *App) checkUserRefs(ctx context.Context, u *configv1.User) error {
	t, err := a.tenantOf(ctx, u.TenantId)
	if err != nil {
		return err
	}
	if u.ImLicense && !t.GetModalities().GetInstantMessaging() {
		return precondition("im_license", "tenant %q has the Instant Messaging modality off", u.TenantId)
	}
	for i, id := range u.ServiceIds {
		ok, err := exists(ctx, a.t.Services, u.TenantId, id)
		if err != nil {
			return internal("get service", err)
		}
		if !ok {
			return precondition(fmt.Sprintf("service_ids[%d]", i), "service %q does not exist in tenant %q", id, u.TenantId)
		}
	}
	return nil
}

func (a *App) hash(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), a.bcryptCost)
	if err != nil {
		return "", internal("hash password", err)
	}
	return string(h), nil
}

// CreateUser stores a user; the password is kept only as a bcrypt hash.
func (a *App) CreateUser(ctx context.Context, in *configv1.User) (*configv1.User, error) {
	u := proto.Clone(in).(*configv1.User)
	if u.Id == "" {
		u.Id = ids.New("usr_")
	}
	password := u.Password
	u.Password, u.PasswordSet = "", false
	normalizeUser(u)
	if err := validateUser(u, password); err != nil {
		return nil, err
	}
	if err := a.checkUserRefs(ctx, u); err != nil {
		return nil, err
	}
	priv := map[string]string{}
	if password != "" {
		h, err := a.hash(password)
		if err != nil {
			return nil, err
		}
		priv[privPassword] = h
		u.PasswordSet = true
	}
	fresh, err := a.claimEmail(ctx, u)
	if err != nil {
		return nil, err
	}
	now := a.now()
	u.Version, u.CreateTime, u.UpdateTime = 1, ts(now), ts(now)
	if err := a.t.Users.Insert(ctx, &Record[*configv1.User]{Tenant: u.TenantId, ID: u.Id, Version: 1, Msg: u, Private: priv}); err != nil {
		if fresh {
			a.release(ctx, u.TenantId, u.Id, emailKey(u.TenantId, u.Email))
		}
		if errors.Is(err, ErrDuplicate) {
			return nil, alreadyExists("id", "user %q already exists in tenant %q", u.Id, u.TenantId)
		}
		return nil, internal("create user", err)
	}
	a.changed(ctx, configv1.EntityKind_ENTITY_KIND_USER, u.TenantId, u.Id, configv1.ChangeType_CHANGE_TYPE_CREATED, 1)
	return u, nil
}

// GetUser reads a user (never the password).
func (a *App) GetUser(ctx context.Context, tenant, id string) (*configv1.User, error) {
	r, err := getRec(ctx, a.t.Users, kindUser, tenant, id)
	if err != nil {
		return nil, err
	}
	return r.Msg, nil
}

// ListUsers pages through a tenant's users, optionally the members of a
// service or the one with an email.
func (a *App) ListUsers(ctx context.Context, tenant string, p Page, service, email string) ([]*configv1.User, string, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if email != "" && service == "" && p.Token == "" {
		// By the email claim's _id, not a scan.
		return a.userByEmail(ctx, tenant, email)
	}
	q, err := p.query(map[string]string{"service_ids": service, "email": email})
	if err != nil {
		return nil, "", err
	}
	recs, err := a.t.Users.List(ctx, tenant, q)
	if err != nil {
		return nil, "", internal("list users", err)
	}
	out, next := page(recs, q, func(r *Record[*configv1.User]) *configv1.User { return r.Msg })
	return out, next, nil
}

// UpdateUser changes a user. The password is write-only: without a mask an
// empty password keeps the stored one; a mask naming "password" with an
// empty value removes it (the user can no longer sign in).
func (a *App) UpdateUser(ctx context.Context, in *configv1.User, paths []string) (*configv1.User, error) {
	defer a.lockRecord(kindUser, in.GetTenantId(), in.GetId())()
	old, u, err := loadForUpdate(ctx, a.t.Users, kindUser, in.GetTenantId(), in, paths, userRules)
	if err != nil {
		return nil, err
	}
	u.Password = ""
	normalizeUser(u)
	password, setPassword := in.GetPassword(), false
	switch {
	case len(paths) == 0:
		setPassword = password != ""
	default:
		setPassword = masked(paths, "password")
	}
	if err := validateUser(u, password); err != nil {
		return nil, err
	}
	priv := map[string]string{}
	for k, v := range old.Private {
		priv[k] = v
	}
	passwordChanged := false
	if setPassword {
		switch {
		case password == "":
			passwordChanged = priv[privPassword] != ""
			delete(priv, privPassword)
		case bcrypt.CompareHashAndPassword([]byte(priv[privPassword]), []byte(password)) == nil:
			// Same password: nothing to change (keeps apply idempotent).
		default:
			h, err := a.hash(password)
			if err != nil {
				return nil, err
			}
			priv[privPassword], passwordChanged = h, true
		}
	}
	u.PasswordSet = priv[privPassword] != ""
	if !passwordChanged && proto.Equal(u, old.Msg) {
		return old.Msg, nil
	}
	if err := a.checkUserRefs(ctx, u); err != nil {
		return nil, err
	}
	fresh := false
	if u.Email != old.Msg.Email {
		if fresh, err = a.claimEmail(ctx, u); err != nil {
			return nil, err
		}
	}
	if loses := accessLost(old.Msg, u, passwordChanged); loses != "" {
		if err := a.revoke(ctx, u.TenantId, u.Id, loses); err != nil {
			return nil, err
		}
	}
	u.Version, u.UpdateTime = old.Version+1, ts(a.now())
	if err := replace(ctx, a.t.Users, kindUser, &Record[*configv1.User]{Tenant: u.TenantId, ID: u.Id, Version: u.Version, Msg: u, Private: priv}, old.Version); err != nil {
		if fresh {
			a.release(ctx, u.TenantId, u.Id, emailKey(u.TenantId, u.Email))
		}
		return nil, err
	}
	if u.Email != old.Msg.Email {
		a.release(ctx, u.TenantId, u.Id, emailKey(u.TenantId, old.Msg.Email))
	}
	a.changed(ctx, configv1.EntityKind_ENTITY_KIND_USER, u.TenantId, u.Id, configv1.ChangeType_CHANGE_TYPE_UPDATED, u.Version)
	return u, nil
}

// DeleteUser deletes a user and frees the email.
func (a *App) DeleteUser(ctx context.Context, tenant, id string, version int64) error {
	defer a.lockRecord(kindUser, tenant, id)()
	old, err := getRec(ctx, a.t.Users, kindUser, tenant, id)
	if err != nil {
		return err
	}
	if version != 0 && version != old.Version {
		return stale(kindUser, id, version, old.Version)
	}
	if err := a.revoke(ctx, tenant, id, "deleted"); err != nil {
		return err
	}
	if err := deleteRec(ctx, a.t.Users, kindUser, tenant, id, version, old.Version); err != nil {
		return err
	}
	a.release(ctx, tenant, id, emailKey(tenant, old.Msg.Email))
	a.changed(ctx, configv1.EntityKind_ENTITY_KIND_USER, tenant, id, configv1.ChangeType_CHANGE_TYPE_DELETED, old.Version+1)
	return nil
}

func (a *App) userByEmail(ctx context.Context, tenant, email string) ([]*configv1.User, string, error) {
	c, err := a.t.Claims.Get(ctx, emailKey(tenant, email))
	if errors.Is(err, ErrNotFound) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", internal("get email claim", err)
	}
	u, err := a.t.Users.Get(ctx, tenant, c.Owner)
	if errors.Is(err, ErrNotFound) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", internal("get user", err)
	}
	if u.Msg.GetEmail() != email {
		return nil, "", nil // a stale claim
	}
	return []*configv1.User{u.Msg}, "", nil
}

// accessLost names why a change voids the user's tokens: they were
// disabled, lost a role or the IM license, or got a new password (or none).
// Empty when their tokens stay good.
func accessLost(old, u *configv1.User, passwordChanged bool) string {
	switch {
	case u.GetDisabled() && !old.GetDisabled():
		return "disabled"
	case passwordChanged:
		return "password changed"
	case old.GetImLicense() && !u.GetImLicense():
		return "IM license removed"
	}
	for _, r := range old.GetRoles() {
		if !slices.Contains(u.GetRoles(), r) {
			return "role " + r.String() + " removed"
		}
	}
	return ""
}

// revoke voids the user's tokens before the change that ends their access
// is stored: if it fails nothing changes, and if the change then fails the
// user only has to sign in again.
func (a *App) revoke(ctx context.Context, tenant, id, why string) error {
	if a.revoker == nil {
		return nil
	}
	if err := a.revoker.Revoke(ctx, tenant, id, a.now()); err != nil {
		return internal("revoke the user's sign-ins", err)
	}
	a.log.InfoContext(ctx, "user's sign-ins revoked", "tenant", tenant, "user", id, "why", why)
	return nil
}

// GetSignInStatus shows how the user's sign-ins are throttled.
func (a *App) GetSignInStatus(ctx context.Context, tenant, id string) (*configv1.SignInStatus, error) {
	u, err := a.GetUser(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	if a.signins == nil {
		return &configv1.SignInStatus{TenantId: tenant, UserId: id}, nil
	}
	st, err := a.signins.Status(ctx, tenant, u.GetEmail())
	if err != nil {
		return nil, internal("read sign-in status", err)
	}
	return a.signInStatus(tenant, id, st), nil
}

// ClearSignInLockout forgets the user's failed sign-ins; by names the admin.
func (a *App) ClearSignInLockout(ctx context.Context, tenant, id, by string) (*configv1.SignInStatus, error) {
	u, err := a.GetUser(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	if a.signins == nil {
		return &configv1.SignInStatus{TenantId: tenant, UserId: id}, nil
	}
	was, err := a.signins.Clear(ctx, tenant, u.GetEmail())
	if err != nil {
		return nil, internal("clear sign-in lockout", err)
	}
	a.log.InfoContext(ctx, "sign-in lockout cleared", "tenant", tenant, "user", id, "by", by, "failures", was.Failures)
	if a.audit != nil {
		a.audit.SignInLockoutCleared(ctx, &configv1.SignInLockoutCleared{
			TenantId: tenant, UserId: id, ClearedBy: by, FailuresCleared: int32(was.Failures), OccurredAt: ts(a.now()),
		})
	}
	return a.signInStatus(tenant, id, signin.Status{}), nil
}

func (a *App) signInStatus(tenant, id string, st signin.Status) *configv1.SignInStatus {
	p := a.signins.Policy()
	out := &configv1.SignInStatus{
		TenantId: tenant, UserId: id, ConsecutiveFailures: int32(st.Failures), LastFailureSource: st.LastSource,
		Policy: &configv1.SignInPolicy{
			AccountFreeFailures: int32(p.AccountFree), SourceFreeFailures: int32(p.SourceFree),
			BaseDelay: durationpb.New(p.BaseDelay), MaxDelay: durationpb.New(p.MaxDelay),
			LockoutFailures: int32(p.LockoutFailures), LockoutDuration: durationpb.New(p.LockoutDuration),
			ForgetAfter: durationpb.New(p.ForgetAfter),
		},
	}
	if !st.LastFailure.IsZero() {
		out.LastFailureTime = ts(st.LastFailure)
	}
	if st.BlockedUntil.After(a.now()) {
		out.BlockedUntil, out.LockedOut = ts(st.BlockedUntil), st.Locked
	}
	return out
}
