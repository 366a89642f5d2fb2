package app

import (
	"context"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	"github.com/switchboard-cc/switchboard/services/config/internal/conncheck"
)

// ConnectorChecker checks a connector against Twilio (conncheck.Checker).
type ConnectorChecker interface {
	Check(ctx context.Context, t conncheck.Target) []*configv1.ConnectorFinding
}

// WithConnectorChecker enables CheckProviderConnector.
func WithConnectorChecker(c ConnectorChecker) Option { return func(a *App) { a.checker = c } }

// CheckProviderConnector checks a connector's credentials, the webhooks of
// its entries' numbers and services, and chat-handler's answer to a signed
// self-test. Problems with Twilio are findings; errors are about the
// request (NotFound) or the service.
func (a *App) CheckProviderConnector(ctx context.Context, tenant, id string) ([]*configv1.ConnectorFinding, error) {
	if a.checker == nil {
		return nil, precondition("id", "connector checks are not configured in this config service")
	}
	conn, err := getRec(ctx, a.t.Connectors, kindConnector, tenant, id)
	if err != nil {
		return nil, err
	}
	secrets, err := a.openConnector(conn)
	if err != nil {
		return nil, err
	}
	var entries []*configv1.MessagingEntry
	for p := (Page{Size: maxPageSize}); ; {
		es, next, err := a.ListMessagingEntries(ctx, tenant, p, "", id)
		if err != nil {
			return nil, err
		}
		entries = append(entries, es...)
		if next == "" {
			break
		}
		p.Token = next
	}
	out := a.checker.Check(ctx, conncheck.Target{
		Tenant: tenant, Connector: conn.Msg, Entries: entries,
		APIKeySecret: secrets[secretAPIKey], AuthToken: secrets[secretAuthToken], SecondaryAuthToken: secrets[secretSecondary],
	})
	failed := 0
	for _, f := range out {
		if !f.GetOk() {
			failed++
		}
	}
	a.log.InfoContext(ctx, "connector checked", "tenant", tenant, "connector", id, "entries", len(entries), "findings", len(out), "failed", failed)
	return out, nil
}
