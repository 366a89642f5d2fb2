package app

import (
	"context"
	"errors"
	"slices"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/switchboard-cc/switchboard/pkg/ids"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
)

// ResolveWebhook finds what a Twilio webhook for tenant is addressed to: by
// Conversations service SID or by business address. Every read is by _id.
// A SID or number of another tenant is NotFound, exactly as an unknown one.
func (a *App) ResolveWebhook(ctx context.Context, tenant, chatServiceSID, address string) (*configv1.ResolveWebhookResponse, error) {
	var key string
	switch {
	case tenant == "":
		return nil, invalid("tenant_id", "is required")
	case chatServiceSID != "":
		key = claimSID + strings.TrimSpace(chatServiceSID)
	case address != "":
		key = claimAddr + NormalizeAddress(address)
	default:
		return nil, invalid("chat_service_sid", "one of chat_service_sid or business_address is required")
	}
	unknown := &Error{Code: CodeNotFound, Message: "no messaging entry of tenant " + tenant + " has this " + claimKind(key)}
	c, err := a.t.Claims.Get(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return nil, unknown
	}
	if err != nil {
		return nil, internal("get claim", err)
	}
	if c.Tenant != tenant {
		return nil, unknown
	}
	entry, err := a.t.Entries.Get(ctx, tenant, c.Owner)
	if errors.Is(err, ErrNotFound) {
		return nil, unknown
	}
	if err != nil {
		return nil, internal("get messaging entry", err)
	}
	// The claim may be left over from a crash or in flight; only the entry
	// is the truth.
	if !slices.Contains(entryKeys(entry.Msg), key) {
		return nil, unknown
	}
	t, err := getRec(ctx, a.t.Tenants, kindTenant, "", tenant)
	if err != nil {
		return nil, err
	}
	conn, err := getRec(ctx, a.t.Connectors, kindConnector, tenant, entry.Msg.GetConnectorId())
	if err != nil {
		return nil, err
	}
	secrets, err := a.openConnector(conn)
	if err != nil {
		return nil, err
	}
	svc, err := a.assignedService(ctx, tenant, entry.ID)
	if err != nil {
		return nil, err
	}
	tokens := []string{secrets[secretAuthToken]}
	if s := secrets[secretSecondary]; s != "" {
		tokens = append(tokens, s)
	}
	return &configv1.ResolveWebhookResponse{
		Tenant:     t.Msg,
		Entry:      entry.Msg,
		Service:    svc,
		AccountSid: conn.Msg.GetAccountSid(),
		AuthTokens: tokens,
	}, nil
}

// GetSendingCredentials returns the decrypted API key behind an entry.
func (a *App) GetSendingCredentials(ctx context.Context, tenant, entryID string) (*configv1.GetSendingCredentialsResponse, error) {
	entry, err := getRec(ctx, a.t.Entries, kindEntry, tenant, entryID)
	if err != nil {
		return nil, err
	}
	conn, err := getRec(ctx, a.t.Connectors, kindConnector, tenant, entry.Msg.GetConnectorId())
	if err != nil {
		return nil, err
	}
	secrets, err := a.openConnector(conn)
	if err != nil {
		return nil, err
	}
	return &configv1.GetSendingCredentialsResponse{
		AccountSid:   conn.Msg.GetAccountSid(),
		ApiKeySid:    conn.Msg.GetApiKeySid(),
		ApiKeySecret: secrets[secretAPIKey],
		Region:       conn.Msg.GetRegion(),
		Edge:         conn.Msg.GetEdge(),
		Entry:        entry.Msg,
	}, nil
}

// SignIn is one sign-in attempt.
type SignIn struct {
	Tenant, Email, Password string
	// Source is the client's address, for per-source throttling.
	Source string
	// RequireAgent refuses users who are not agents with the IM license,
	// exactly as a wrong password.
	RequireAgent bool
}

// AuthenticateUser checks a sign-in. Every refusal is the same
// CodeUnauthenticated error, whatever was wrong (unknown email, wrong
// password, disabled, not an agent), so it confirms nothing; a throttled
// account or source gets CodeThrottled before the password is looked at.
// Failures are counted by the throttle and announced as audit events.
func (a *App) AuthenticateUser(ctx context.Context, in SignIn) (*configv1.User, error) {
	denied := &Error{Code: CodeUnauthenticated, Message: "wrong email or password"}
	email := strings.ToLower(strings.TrimSpace(in.Email))
	if in.Tenant == "" || email == "" || in.Password == "" {
		return nil, denied
	}
	if a.signins != nil {
		wait, locked, blocked, err := a.signins.Check(ctx, in.Tenant, email, in.Source)
		if err != nil {
			return nil, internal("check sign-in throttle", err)
		}
		if blocked {
			msg := "too many failed sign-ins; try again later"
			if locked {
				msg = "this account is locked after too many failed sign-ins; try again later or ask an admin to clear the lockout"
			}
			return nil, &Error{Code: CodeThrottled, Message: msg, RetryAfter: wait}
		}
	}
	user, reason, err := a.checkPassword(ctx, in.Tenant, email, in.Password)
	if err != nil {
		return nil, err
	}
	if reason == "" {
		switch u := user.Msg; {
		case u.GetDisabled():
			reason = "disabled"
		case in.RequireAgent && (!slices.Contains(u.GetRoles(), configv1.Role_ROLE_AGENT) || !u.GetImLicense()):
			reason = "not_agent"
		}
	}
	if reason != "" {
		a.signInFailed(ctx, in, email, user, reason)
		return nil, denied
	}
	if a.signins != nil {
		if err := a.signins.Succeed(ctx, in.Tenant, email); err != nil {
			a.log.WarnContext(ctx, "forget failed sign-ins", "tenant", in.Tenant, "user", user.ID, "err", err)
		}
	}
	return user.Msg, nil
}

// checkPassword returns the user, or the reason the credentials fail.
func (a *App) checkPassword(ctx context.Context, tenant, email, password string) (*Record[*configv1.User], string, error) {
	var user *Record[*configv1.User]
	c, err := a.t.Claims.Get(ctx, emailKey(tenant, email))
	switch {
	case err == nil:
		user, err = a.t.Users.Get(ctx, tenant, c.Owner)
		if errors.Is(err, ErrNotFound) {
			user, err = nil, nil
		}
	case errors.Is(err, ErrNotFound):
		err = nil
	}
	if err != nil {
		return nil, "", internal("get user", err)
	}
	if user == nil || user.Msg.GetEmail() != email || user.Private[privPassword] == "" {
		// Costs as long as a wrong password, so timing reveals nothing.
		_ = bcrypt.CompareHashAndPassword(a.dummyHash(), []byte(password))
		return nil, "wrong_credentials", nil
	}
	if bcrypt.CompareHashAndPassword([]byte(user.Private[privPassword]), []byte(password)) != nil {
		return user, "wrong_credentials", nil
	}
	return user, "", nil
}

// signInFailed counts a failure and records it in the audit trail.
func (a *App) signInFailed(ctx context.Context, in SignIn, email string, user *Record[*configv1.User], reason string) {
	ev := &configv1.SignInFailed{
		TenantId: in.Tenant, Email: email, SourceAddress: in.Source, Reason: reason, OccurredAt: ts(a.now()),
	}
	if user != nil {
		ev.UserId = user.ID
	}
	if a.signins != nil {
		st, err := a.signins.Fail(ctx, in.Tenant, email, in.Source)
		if err != nil {
			a.log.WarnContext(ctx, "count failed sign-in", "tenant", in.Tenant, "err", err)
		}
		ev.ConsecutiveFailures = int32(st.Failures)
		if !st.BlockedUntil.IsZero() && st.BlockedUntil.After(a.now()) {
			ev.BlockedUntil, ev.LockedOut = ts(st.BlockedUntil), st.Locked
		}
	}
	a.log.WarnContext(ctx, "sign-in refused", "tenant", in.Tenant, "user", ev.UserId, "source", in.Source, "reason", reason,
		"consecutive_failures", ev.ConsecutiveFailures, "locked_out", ev.LockedOut)
	if a.audit != nil {
		a.audit.SignInFailed(ctx, ev)
	}
}

// dummyHash is a hash of a random password at the app's cost.
func (a *App) dummyHash() []byte {
	a.dummyOnce.Do(func() {
		a.dummy, _ = bcrypt.GenerateFromPassword([]byte(ids.New("dummy_")), a.bcryptCost)
	})
	return a.dummy
}

// ListEntries returns the tenant's messaging entries, ordered by id, each
// with the service it is assigned to (nil when none): what an agent may
// start a conversation from. One read per entry's assignment, by _id.
func (a *App) ListEntries(ctx context.Context, tenant string) ([]*configv1.EntryRoute, error) {
	if tenant == "" {
		return nil, invalid("tenant_id", "is required")
	}
	recs, err := a.t.Entries.List(ctx, tenant, Query{})
	if err != nil {
		return nil, internal("list messaging entries", err)
	}
	out := make([]*configv1.EntryRoute, 0, len(recs))
	for _, r := range recs {
		svc, err := a.assignedService(ctx, tenant, r.ID)
		if err != nil {
			return nil, err
		}
		out = append(out, &configv1.EntryRoute{Entry: r.Msg, Service: svc})
	}
	return out, nil
}
