// Package revocation keeps the list of revoked sign-ins: for a tenant's
// user, the moment before which every token issued to them is void. The
// config service writes an entry when a user is deleted or disabled, loses
// a role or the IM license, or gets a new password; every service that
// accepts user tokens watches the list (a JetStream KV bucket, so every
// replica sees a change within milliseconds and a restart loses nothing)
// and refuses such tokens, and the sessions gateway closes their sockets.
//
// Entries expire after authn.MaxTTL and a margin: by then every token they
// void has expired anyway, so the list stays as small as the day's
// revocations.
package revocation

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-cc/switchboard/pkg/subjects"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/kvcas"
)

// Bucket is the KV bucket holding the list.
const Bucket = subjects.BucketRevocations

// List is a live copy of the revocation list.
type List struct {
	kv jetstream.KeyValue

	mu        sync.RWMutex
	notBefore map[string]int64 // key -> unix ms
}

var _ authn.Revoker = (*List)(nil)

// Open binds (or creates, with replicas) the bucket, loads every entry and
// keeps following changes until ctx ends.
func Open(ctx context.Context, js jetstream.JetStream, replicas int) (*List, error) {
	if replicas < 1 {
		replicas = 1
	}
	kv, err := kvcas.Bind(ctx, js, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "revoked sign-ins: tenant.user -> unix ms before which their tokens are void",
		TTL:         authn.MaxTTL + time.Hour,
		Replicas:    replicas,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("revocation list: %w", err)
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch revocations: %w", err)
	}
	l := &List{kv: kv, notBefore: map[string]int64{}}
	// Everything stored arrives first, then a nil marker.
	for loaded := false; !loaded; {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("watch revocations: closed while loading")
			}
			if e == nil {
				loaded = true
				continue
			}
			l.apply(e)
		case <-ctx.Done():
			_ = w.Stop()
			return nil, ctx.Err()
		}
	}
	go func() {
		defer func() { _ = w.Stop() }()
		for {
			select {
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e != nil {
					l.apply(e)
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return l, nil
}

// OpenWaiting is Open tried again, a second apart, while JetStream cannot
// answer yet (bus.IsTransient: a cluster electing its leaders, a node
// restarting), each failure logged, until wait ends: a service starting
// beside its broker waits for it instead of exiting. The list then
// follows changes until ctx ends.
func OpenWaiting(wait, ctx context.Context, js jetstream.JetStream, replicas int, log *slog.Logger) (*List, error) {
	for {
		l, err := Open(ctx, js, replicas)
		if err == nil || !bus.IsTransient(err) {
			return l, err
		}
		log.Warn("revocation list not ready, trying again", "in", time.Second, "err", err)
		select {
		case <-wait.Done():
			return nil, fmt.Errorf("%w (the revocation list was not ready: %w)", wait.Err(), err)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func (l *List) apply(e jetstream.KeyValueEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(l.notBefore, e.Key())
		return
	}
	ms, err := strconv.ParseInt(string(e.Value()), 10, 64)
	if err != nil {
		return
	}
	if ms > l.notBefore[e.Key()] {
		l.notBefore[e.Key()] = ms
	}
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// key is tenant.subject, the subject hex-encoded when it holds characters
// a KV key cannot.
func key(tenant, subject string) string {
	if !plainKey.MatchString(subject) {
		subject = "x-" + hex.EncodeToString([]byte(subject))
	}
	if tenant == "" {
		tenant = "_"
	}
	return tenant + "." + subject
}

// Revoke voids every token of tenant's subject issued before at. It is
// durable when it returns.
func (l *List) Revoke(ctx context.Context, tenant, subject string, at time.Time) error {
	ms := at.UnixMilli()
	if _, err := l.kv.Put(ctx, key(tenant, subject), []byte(strconv.FormatInt(ms, 10))); err != nil {
		return fmt.Errorf("revoke %s/%s: %w", tenant, subject, err)
	}
	l.mu.Lock()
	if ms > l.notBefore[key(tenant, subject)] {
		l.notBefore[key(tenant, subject)] = ms
	}
	l.mu.Unlock()
	return nil
}

// Revoked reports whether c was issued before its subject's revocation.
func (l *List) Revoked(c *authn.Claims) bool {
	l.mu.RLock()
	nb, ok := l.notBefore[key(c.Tenant, c.Subject)]
	l.mu.RUnlock()
	return ok && c.Issued().UnixMilli() < nb
}
