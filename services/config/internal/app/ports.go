package app

import (
	"context"
	"time"

	"google.golang.org/protobuf/proto"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	"github.com/switchboard-cc/switchboard/services/config/internal/signin"
)

// Record is one stored configuration record: the resource as the API shows
// it (secrets cleared) and private fields that never leave the service
// (sealed secrets, the password hash).
type Record[M proto.Message] struct {
	Tenant  string
	ID      string
	Version int64
	Msg     M
	Private map[string]string
}

// Query selects records of one tenant in id order.
type Query struct {
	// After is the last id of the previous page.
	After string
	// Limit caps the result; 0 means no limit.
	Limit int
	// Eq filters on resource fields by their proto name
	// ("org_unit_id"); a repeated field matches when any element is equal.
	Eq map[string]string
	// In keeps records whose field equals one of the values.
	In map[string][]string
	// Prefix keeps ids that start with it.
	Prefix string
}

// Table stores one kind of record, keyed by tenant and id. Every operation
// is by _id so it stays fast on FerretDB (see BRIEF.md); List is for admin
// paths only.
type Table[M proto.Message] interface {
	// Get returns ErrNotFound when there is no such record.
	Get(ctx context.Context, tenant, id string) (*Record[M], error)
	// Insert returns ErrDuplicate when the id is taken.
	Insert(ctx context.Context, r *Record[M]) error
	// Replace writes r only if the stored version is prev; otherwise (or if
	// the record is gone) it returns ErrVersionMismatch.
	Replace(ctx context.Context, r *Record[M], prev int64) error
	// Delete removes the record (only at version, when version is non-zero);
	// ErrNotFound when absent, ErrVersionMismatch on another version.
	Delete(ctx context.Context, tenant, id string, version int64) error
	// List returns the tenant's records ("" lists a table without tenants).
	List(ctx context.Context, tenant string, q Query) ([]*Record[M], error)
}

// Claim reserves a unique key for an owner: a Conversations service SID or a
// business address across all tenants, a user's email within a tenant, an
// entry's assignment to a service, a tenant's root OU.
type Claim struct {
	Key    string
	Tenant string
	Owner  string
	At     time.Time
}

// Claims stores claims by key.
type Claims interface {
	// Insert returns ErrDuplicate when the key is claimed.
	Insert(ctx context.Context, c Claim) error
	// Get returns ErrNotFound when the key is free.
	Get(ctx context.Context, key string) (Claim, error)
	// Replace swaps old for c only if old is still the stored claim;
	// otherwise ErrVersionMismatch.
	Replace(ctx context.Context, old, c Claim) error
	// Release deletes the claim if tenant/owner still hold it.
	Release(ctx context.Context, key, tenant, owner string) error
}

// Publisher sends ConfigChanged events. It must not lose an event it
// accepted: the change is already stored when Publish is called.
type Publisher interface {
	Publish(ctx context.Context, ev *configv1.ConfigChanged)
}

// SignInThrottle counts failed sign-ins per account and source address
// (implemented by package signin).
type SignInThrottle interface {
	// Check: whether sign-ins are refused now, for how long, and whether
	// that is a lockout.
	Check(ctx context.Context, tenant, email, source string) (wait time.Duration, locked, blocked bool, err error)
	Fail(ctx context.Context, tenant, email, source string) (signin.Status, error)
	Succeed(ctx context.Context, tenant, email string) error
	Status(ctx context.Context, tenant, email string) (signin.Status, error)
	Clear(ctx context.Context, tenant, email string) (signin.Status, error)
	Policy() signin.Policy
}

// Revoker voids every token of a user issued before at (pkg/revocation).
type Revoker interface {
	Revoke(ctx context.Context, tenant, subject string, at time.Time) error
}

// Auditor records security events.
type Auditor interface {
	SignInFailed(ctx context.Context, ev *configv1.SignInFailed)
	SignInLockoutCleared(ctx context.Context, ev *configv1.SignInLockoutCleared)
}

// Tables are the stores the app works on.
type Tables struct {
	Tenants          Table[*configv1.Tenant]
	OrgUnits         Table[*configv1.OrganizationUnit]
	Connectors       Table[*configv1.ProviderConnector]
	Entries          Table[*configv1.MessagingEntry]
	Services         Table[*configv1.Service]
	Users            Table[*configv1.User]
	Workflows        Table[*configv1.Workflow]
	WorkflowVersions Table[*configv1.Workflow]
	Claims           Claims
}
