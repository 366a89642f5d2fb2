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

// AuthenticateUser checks a sign-in. Every failure is the same
// CodeUnauthenticated error, whatever was wrong.
func (a *App) AuthenticateUser(ctx context.Context, tenant, email, password string) (*configv1.User, error) {
	denied := &Error{Code: CodeUnauthenticated, Message: "wrong email or password"}
	email = strings.ToLower(strings.TrimSpace(email))
	if tenant == "" || email == "" || password == "" {
		return nil, denied
	}
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
		return nil, internal("get user", err)
	}
	if user == nil || user.Msg.GetEmail() != email || user.Private[privPassword] == "" {
		// Costs as long as a wrong password, so timing reveals nothing.
		_ = bcrypt.CompareHashAndPassword(a.dummyHash(), []byte(password))
		return nil, denied
	}
	if bcrypt.CompareHashAndPassword([]byte(user.Private[privPassword]), []byte(password)) != nil {
		return nil, denied
	}
	return user.Msg, nil
}

// dummyHash is a hash of a random password at the app's cost.
func (a *App) dummyHash() []byte {
	a.dummyOnce.Do(func() {
		a.dummy, _ = bcrypt.GenerateFromPassword([]byte(ids.New("dummy_")), a.bcryptCost)
	})
	return a.dummy
}
