// Package app holds the config service's rules: what makes a tenant,
// organization unit, provider connector, messaging entry, service, user or
// workflow valid, how records reference each other, which unique keys they
// claim, how secrets are sealed, and which change events follow each write.
// It knows nothing of gRPC or of the caller's identity; the adapter checks
// access and maps *Error to status codes.
package app

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	"github.com/switchboard-cc/switchboard/services/config/internal/secretbox"
)

// App is the config service's domain logic.
type App struct {
	t      Tables
	keys   *secretbox.Keyring
	events Publisher
	log    *slog.Logger
	now    func() time.Time

	// claimGrace protects a claim whose owner has not written its record
	// yet; an older claim whose owner does not use it is stale.
	claimGrace time.Duration
	bcryptCost int

	signins SignInThrottle
	revoker Revoker
	audit   Auditor
	checker ConnectorChecker
	// erasures: customer erasure requests and answers (erasure.go).
	erasures Erasures

	dummyOnce sync.Once
	dummy     []byte
	locks     keyedMutex
}

// lockRecord serializes updates of one record (see keyedMutex).
func (a *App) lockRecord(kind, tenant, id string) (unlock func()) {
	return a.locks.lock(kind + "\x00" + tenant + "\x00" + id)
}

// Option tunes an App.
type Option func(*App)

// WithClock replaces time.Now.
func WithClock(now func() time.Time) Option { return func(a *App) { a.now = now } }

// WithBcryptCost sets the password hashing cost (tests lower it).
func WithBcryptCost(cost int) Option { return func(a *App) { a.bcryptCost = cost } }

// WithSignInThrottle counts failed sign-ins and refuses throttled ones.
func WithSignInThrottle(t SignInThrottle) Option { return func(a *App) { a.signins = t } }

// WithRevoker voids a user's tokens when they lose access.
func WithRevoker(r Revoker) Option { return func(a *App) { a.revoker = r } }

// WithAuditor records failed sign-ins and cleared lockouts.
func WithAuditor(au Auditor) Option { return func(a *App) { a.audit = au } }

// New returns the app over t, sealing secrets with keys and announcing
// changes on events.
func New(t Tables, keys *secretbox.Keyring, events Publisher, log *slog.Logger, opts ...Option) *App {
	a := &App{t: t, keys: keys, events: events, log: log, now: time.Now, claimGrace: time.Minute, bcryptCost: 12}
	for _, o := range opts {
		o(a)
	}
	return a
}

// Page asks for one page of a list.
type Page struct {
	Size  int32
	Token string
}

const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

func (p Page) query(eq map[string]string) (Query, error) {
	if p.Size < 0 {
		return Query{}, invalid("page_size", "must not be negative")
	}
	size := int(p.Size)
	if size == 0 {
		size = defaultPageSize
	}
	size = min(size, maxPageSize)
	q := Query{Limit: size + 1, Eq: map[string]string{}}
	for k, v := range eq {
		if v != "" {
			q.Eq[k] = v
		}
	}
	if p.Token != "" {
		after, err := base64.RawURLEncoding.DecodeString(p.Token)
		if err != nil || len(after) == 0 {
			return Query{}, invalid("page_token", "not a token from a previous page")
		}
		q.After = string(after)
	}
	return q, nil
}

// page cuts the extra record a query fetched and makes the next token.
func page[M proto.Message](recs []*Record[M], q Query, out func(*Record[M]) M) ([]M, string) {
	next := ""
	if len(recs) == q.Limit {
		recs = recs[:q.Limit-1]
		next = base64.RawURLEncoding.EncodeToString([]byte(recs[len(recs)-1].ID))
	}
	ms := make([]M, len(recs))
	for i, r := range recs {
		ms[i] = out(r)
	}
	return ms, next
}

var idRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// checkID validates a record id given by the caller.
func checkID(vs *violations, field, id string) {
	if !idRe.MatchString(id) {
		vs.add(field, "%q is not a valid id: 1-63 characters of a-z, 0-9, '_' and '-', starting with a letter or digit", id)
	}
}

func ts(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

// changed announces a stored change.
func (a *App) changed(ctx context.Context, kind configv1.EntityKind, tenant, id string, change configv1.ChangeType, version int64) {
	a.log.InfoContext(ctx, "config changed", "tenant", tenant, "kind", kind.String(), "id", id, "change", change.String(), "version", version)
	a.events.Publish(ctx, &configv1.ConfigChanged{
		TenantId:   tenant,
		Kind:       kind,
		Id:         id,
		Change:     change,
		Version:    version,
		OccurredAt: ts(a.now()),
	})
}

// liveFunc reports whether the owner of a claim still uses it.
type liveFunc func(ctx context.Context, c Claim) (bool, error)

// errClaimHeld is returned by claim when another owner holds the key.
type errClaimHeld struct{ holder Claim }

func (e *errClaimHeld) Error() string {
	return fmt.Sprintf("claimed by %s/%s", e.holder.Tenant, e.holder.Owner)
}

// claim reserves key for tenant/owner. fresh reports whether this call took
// it (so a failed write must release it). A claim of another owner is taken
// over only when it is older than claimGrace and its owner no longer uses
// it: that is how a claim left behind by a crash between the claim and the
// record write (or between a record delete and the release) heals itself.
func (a *App) claim(ctx context.Context, key, tenant, owner string, live liveFunc) (fresh bool, err error) {
	c := Claim{Key: key, Tenant: tenant, Owner: owner, At: a.now()}
	for range 3 {
		err := a.t.Claims.Insert(ctx, c)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, ErrDuplicate) {
			return false, err
		}
		held, err := a.t.Claims.Get(ctx, key)
		if errors.Is(err, ErrNotFound) {
			continue // released meanwhile: try again
		}
		if err != nil {
			return false, err
		}
		if held.Tenant == tenant && held.Owner == owner {
			return false, nil
		}
		if a.now().Sub(held.At) < a.claimGrace {
			return false, &errClaimHeld{held}
		}
		ok, err := live(ctx, held)
		if err != nil {
			return false, err
		}
		if ok {
			return false, &errClaimHeld{held}
		}
		unlock := a.locks.lock("claim\x00" + key)
		err = a.t.Claims.Replace(ctx, held, c)
		unlock()
		switch {
		case err == nil:
			a.log.InfoContext(ctx, "took over stale claim", "key_kind", claimKind(key), "old_tenant", held.Tenant, "tenant", tenant)
			return true, nil
		case errors.Is(err, ErrVersionMismatch):
			continue
		default:
			return false, err
		}
	}
	return false, fmt.Errorf("claim %s: contended, try again", claimKind(key))
}

// release frees keys held by tenant/owner. A failure leaves a stale claim
// that the next claimant heals, so it is logged, not returned.
func (a *App) release(ctx context.Context, tenant, owner string, keys ...string) {
	for _, k := range keys {
		unlock := a.locks.lock("claim\x00" + k)
		err := a.t.Claims.Release(context.WithoutCancel(ctx), k, tenant, owner)
		unlock()
		if err != nil {
			a.log.WarnContext(ctx, "release claim; it heals on next use", "key_kind", claimKind(k), "tenant", tenant, "err", err)
		}
	}
}

// Claim key spaces. Addresses and SIDs are global (a webhook names no
// tenant we could trust before routing it); the others are per tenant.
const (
	claimSID    = "sid:"
	claimAddr   = "addr:"
	claimAssign = "assign:"
	claimEmail  = "email:"
	claimRootOU = "rootou:"
)

func claimKind(key string) string {
	for i := range key {
		if key[i] == ':' {
			return key[:i]
		}
	}
	return "unknown"
}

// internal wraps an unexpected storage error.
func internal(op string, err error) error { return fmt.Errorf("%s: %w", op, err) }

// getRec reads a record and maps ErrNotFound.
func getRec[M proto.Message](ctx context.Context, t Table[M], kind, tenant, id string) (*Record[M], error) {
	r, err := t.Get(ctx, tenant, id)
	if errors.Is(err, ErrNotFound) {
		return nil, notFound(kind, tenant, id)
	}
	if err != nil {
		return nil, internal("get "+kind, err)
	}
	return r, nil
}

// exists reports whether a record is there.
func exists[M proto.Message](ctx context.Context, t Table[M], tenant, id string) (bool, error) {
	_, err := t.Get(ctx, tenant, id)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// deleteRec deletes with the version check and maps errors.
func deleteRec[M proto.Message](ctx context.Context, t Table[M], kind, tenant, id string, version int64, current int64) error {
	switch err := t.Delete(ctx, tenant, id, version); {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound):
		return notFound(kind, tenant, id)
	case errors.Is(err, ErrVersionMismatch):
		return stale(kind, id, version, current)
	default:
		return internal("delete "+kind, err)
	}
}

// checkVersion rejects a stale version.
// loadForUpdate reads the stored record, checks the version the caller
// read, and merges the request into it. The caller holds the record's lock.
func loadForUpdate[M interface {
	proto.Message
	GetId() string
	GetVersion() int64
}](ctx context.Context, t Table[M], kind, tenant string, in M, paths []string, rules fieldRules) (*Record[M], M, error) {
	var zero M
	old, err := getRec(ctx, t, kind, tenant, in.GetId())
	if err != nil {
		return nil, zero, err
	}
	if err := checkVersion(kind, in.GetId(), in.GetVersion(), old.Version); err != nil {
		return nil, zero, err
	}
	merged, err := merge(old.Msg, in, paths, rules)
	if err != nil {
		return nil, zero, err
	}
	return old, merged, nil
}

func checkVersion(kind, id string, got, stored int64) error {
	if got == 0 {
		return invalid("version", "version is required: send the version you read, so concurrent changes are not lost")
	}
	if got != stored {
		return stale(kind, id, got, stored)
	}
	return nil
}

// replace writes r over version prev and maps a lost race.
func replace[M proto.Message](ctx context.Context, t Table[M], kind string, r *Record[M], prev int64) error {
	switch err := t.Replace(ctx, r, prev); {
	case err == nil:
		return nil
	case errors.Is(err, ErrVersionMismatch):
		cur, gerr := t.Get(ctx, r.Tenant, r.ID)
		if errors.Is(gerr, ErrNotFound) {
			return notFound(kind, r.Tenant, r.ID)
		}
		if gerr != nil {
			return internal("get "+kind, gerr)
		}
		return stale(kind, r.ID, prev, cur.Version)
	default:
		return internal("update "+kind, err)
	}
}
