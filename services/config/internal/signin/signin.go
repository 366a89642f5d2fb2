// Package signin throttles failed sign-ins, per account (tenant and email)
// and per source address, with delays that double after a few free
// failures and a lockout after many, so a password cannot be guessed at
// speed. Its state lives in a JetStream KV bucket and every change is a
// compare-and-set on the key's revision, so every replica of the config
// service counts the same failures and none is lost to a race.
package signin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-cc/switchboard/pkg/kvcas"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// Bucket holds the throttle's records.
const Bucket = subjects.BucketSignIns

// Policy says how failures are throttled.
type Policy struct {
	// AccountFree and SourceFree failures pass without a delay.
	AccountFree int
	SourceFree  int
	// BaseDelay is the first delay; it doubles per failure up to MaxDelay.
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// LockoutFailures consecutive failures of an account lock it for
	// LockoutDuration (0 turns lockouts off).
	LockoutFailures int
	LockoutDuration time.Duration
	// ForgetAfter a quiet period, failures start again from zero.
	ForgetAfter time.Duration
}

// DefaultPolicy: 3 free failures per account and 20 per source address,
// then 1 s, 2 s, 4 s … up to 15 minutes; 10 consecutive failures lock the
// account for 30 minutes; failures are forgotten after an hour without one.
func DefaultPolicy() Policy {
	return Policy{
		AccountFree: 3, SourceFree: 20,
		BaseDelay: time.Second, MaxDelay: 15 * time.Minute,
		LockoutFailures: 10, LockoutDuration: 30 * time.Minute,
		ForgetAfter: time.Hour,
	}
}

// Validate reports every problem at once.
func (p Policy) Validate() error {
	var errs []error
	if p.AccountFree < 0 || p.SourceFree < 0 {
		errs = append(errs, errors.New("sign-in policy: free failures must not be negative"))
	}
	if p.BaseDelay <= 0 || p.MaxDelay < p.BaseDelay {
		errs = append(errs, fmt.Errorf("sign-in policy: want 0 < base delay (%v) <= max delay (%v)", p.BaseDelay, p.MaxDelay))
	}
	if p.LockoutFailures < 0 || (p.LockoutFailures > 0 && p.LockoutDuration <= 0) {
		errs = append(errs, errors.New("sign-in policy: a lockout needs a positive failure count and duration"))
	}
	if p.ForgetAfter <= 0 {
		errs = append(errs, errors.New("sign-in policy: forget-after must be positive"))
	}
	return errors.Join(errs...)
}

// Status is what the throttle knows of one account or source.
type Status struct {
	Failures     int
	LastFailure  time.Time
	LastSource   string
	BlockedUntil time.Time
	Locked       bool
}

// Blocked reports whether sign-ins are refused at now, and for how long.
func (s Status) Blocked(now time.Time) (time.Duration, bool) {
	if now.Before(s.BlockedUntil) {
		return s.BlockedUntil.Sub(now), true
	}
	return 0, false
}

type record struct {
	Failures int    `json:"f"`
	LastMS   int64  `json:"l"`
	UntilMS  int64  `json:"u,omitempty"`
	Locked   bool   `json:"k,omitempty"`
	Source   string `json:"s,omitempty"`
}

func (r record) status() Status {
	s := Status{Failures: r.Failures, LastSource: r.Source, Locked: r.Locked}
	if r.LastMS > 0 {
		s.LastFailure = time.UnixMilli(r.LastMS)
	}
	if r.UntilMS > 0 {
		s.BlockedUntil = time.UnixMilli(r.UntilMS)
	}
	return s
}

// fail adds a failure at now under free failures and the policy.
func (p Policy) fail(r record, now time.Time, free int, lockout bool, source string) record {
	last := time.UnixMilli(r.LastMS)
	if r.Failures > 0 && now.Sub(last) > p.ForgetAfter && !now.Before(time.UnixMilli(r.UntilMS)) {
		r = record{}
	}
	r.Failures++
	r.LastMS, r.Source = now.UnixMilli(), source
	switch {
	case lockout && p.LockoutFailures > 0 && r.Failures >= p.LockoutFailures:
		r.UntilMS, r.Locked = now.Add(p.LockoutDuration).UnixMilli(), true
	case r.Failures > free:
		d := p.BaseDelay
		for i := free + 1; i < r.Failures && d < p.MaxDelay; i++ {
			d *= 2
		}
		d = min(d, p.MaxDelay)
		if until := now.Add(d).UnixMilli(); until > r.UntilMS {
			r.UntilMS = until
		}
	}
	return r
}

// Throttle counts failures in the bucket.
type Throttle struct {
	kv     jetstream.KeyValue
	policy Policy
	now    func() time.Time
}

// Open binds or creates the bucket (with replicas).
func Open(ctx context.Context, js jetstream.JetStream, replicas int, p Policy) (*Throttle, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	kv, err := kvcas.Bind(ctx, js, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "failed sign-ins per account and source address",
		TTL:         max(p.ForgetAfter, p.LockoutDuration, p.MaxDelay) + time.Hour,
		Replicas:    max(replicas, 1),
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, err
	}
	return &Throttle{kv: kv, policy: p, now: time.Now}, nil
}

// Policy in force.
func (t *Throttle) Policy() Policy { return t.policy }

func hashed(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func accountKey(tenant, email string) string { return "acct." + tenant + "." + hashed(email) }
func sourceKey(source string) string         { return "src." + hashed(source) }

func (t *Throttle) get(ctx context.Context, key string) (record, error) {
	b, _, err := kvcas.Get(ctx, t.kv, key)
	if err != nil {
		return record{}, fmt.Errorf("get %s: %w", key, err)
	}
	var r record
	if b != nil && json.Unmarshal(b, &r) != nil {
		return record{}, nil // unreadable: start over
	}
	return r, nil
}

// update applies f to the record at key with a compare-and-set, retrying
// when another replica wrote in between.
func (t *Throttle) update(ctx context.Context, key string, f func(record) record) (record, error) {
	var next record
	_, err := kvcas.Change(ctx, t.kv, key, func(cur []byte) ([]byte, error) {
		var r record
		if cur != nil && json.Unmarshal(cur, &r) != nil {
			r = record{} // unreadable: start over
		}
		next = f(r)
		return json.Marshal(next)
	})
	return next, err
}

// Check returns how long sign-ins of the account or from the source are
// refused; ok is false when they are not.
func (t *Throttle) Check(ctx context.Context, tenant, email, source string) (wait time.Duration, locked, blocked bool, err error) {
	now := t.now()
	a, err := t.get(ctx, accountKey(tenant, email))
	if err != nil {
		return 0, false, false, err
	}
	if d, ok := a.status().Blocked(now); ok {
		return d, a.Locked, true, nil
	}
	if source == "" {
		return 0, false, false, nil
	}
	s, err := t.get(ctx, sourceKey(source))
	if err != nil {
		return 0, false, false, err
	}
	if d, ok := s.status().Blocked(now); ok {
		return d, false, true, nil
	}
	return 0, false, false, nil
}

// Fail records a failed sign-in of the account from source and returns the
// account's status after it.
func (t *Throttle) Fail(ctx context.Context, tenant, email, source string) (Status, error) {
	now := t.now()
	if source != "" {
		if _, err := t.update(ctx, sourceKey(source), func(r record) record {
			return t.policy.fail(r, now, t.policy.SourceFree, false, "")
		}); err != nil {
			return Status{}, err
		}
	}
	r, err := t.update(ctx, accountKey(tenant, email), func(r record) record {
		return t.policy.fail(r, now, t.policy.AccountFree, true, source)
	})
	return r.status(), err
}

// Succeed forgets the account's failures (not the source's: a success
// must not buy an address more guesses at other accounts).
func (t *Throttle) Succeed(ctx context.Context, tenant, email string) error {
	if err := t.kv.Delete(ctx, accountKey(tenant, email)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("forget failures: %w", err)
	}
	return nil
}

// Status of an account.
func (t *Throttle) Status(ctx context.Context, tenant, email string) (Status, error) {
	r, err := t.get(ctx, accountKey(tenant, email))
	return r.status(), err
}

// Clear forgets an account's failures and lifts its delay or lockout; it
// returns the status it cleared.
func (t *Throttle) Clear(ctx context.Context, tenant, email string) (Status, error) {
	r, err := t.get(ctx, accountKey(tenant, email))
	if err != nil {
		return Status{}, err
	}
	if err := t.Succeed(ctx, tenant, email); err != nil {
		return Status{}, err
	}
	return r.status(), nil
}
