// Package presence keeps agents' presence in a JetStream KV bucket, one key
// per agent (<tenant>.<agent>), written with revision checks: each write
// names the revision this process last saw, so a write from a process that
// missed a newer one fails instead of overwriting it silently.
package presence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-cc/switchboard/pkg/kvcas"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/engine"
)

// ErrConflict: the record changed since this process read or wrote it.
var ErrConflict = fmt.Errorf("presence record: %w", engine.ErrConflict)

// Store implements engine.PresenceStore.
type Store struct {
	kv   jetstream.KeyValue
	js   jetstream.JetStream
	mu   sync.Mutex
	revs map[string]uint64 // key -> last revision seen
}

// Open ensures the bucket and returns a store over it.
func Open(ctx context.Context, js jetstream.JetStream, replicas int) (*Store, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: subjects.BucketDistributionPresence, Description: "Agents' presence and RONA flags (distribution)",
		History: 1, Storage: jetstream.FileStorage, Replicas: max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("ensure bucket %s: %w", subjects.BucketDistributionPresence, err)
	}
	return &Store{kv: kv, js: js, revs: map[string]uint64{}}, nil
}

// Key is the record's key: <tenant>.<agent>.
func Key(tenant, agent string) string { return tenant + "." + agent }

// SavePresence writes the record if it is still at the revision last seen
// (absent if none was seen).
func (s *Store) SavePresence(ctx context.Context, r engine.PresenceRecord) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode presence %s/%s: %w", r.Tenant, r.Agent, err)
	}
	key := Key(r.Tenant, r.Agent)
	// The lock guards the revisions only: different agents are written at
	// once (one agent never twice at once).
	s.mu.Lock()
	last := s.revs[key]
	s.mu.Unlock()
	rev, err := kvcas.Put(ctx, s.kv, key, data, last)
	s.mu.Lock()
	defer s.mu.Unlock()
	if errors.Is(err, kvcas.ErrConflict) {
		// Forget the revision: the next load sees the newer record.
		delete(s.revs, key)
		return fmt.Errorf("save presence %s: %w", key, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("save presence %s: %w", key, err)
	}
	s.revs[key] = rev
	return nil
}

// LoadPresence reads every record (at start-up) and remembers their
// revisions for the writes that follow.
func (s *Store) LoadPresence(ctx context.Context) ([]engine.PresenceRecord, error) {
	return s.LoadPresenceOf(ctx, func(string) bool { return true })
}

// LoadPresenceOf reads the records of the tenants match accepts (a
// replica taking them over) and remembers their revisions.
func (s *Store) LoadPresenceOf(ctx context.Context, match func(tenant string) bool) ([]engine.PresenceRecord, error) {
	all, err := kvcas.Keys(ctx, s.js, subjects.BucketDistributionPresence)
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, k := range all {
		if tenant, _, ok := strings.Cut(k, "."); ok && match(tenant) {
			keys = append(keys, k)
		}
	}
	var out []engine.PresenceRecord
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		e, err := s.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("load presence %s: %w", k, err)
		}
		var r engine.PresenceRecord
		if err := json.Unmarshal(e.Value(), &r); err != nil {
			return nil, fmt.Errorf("decode presence %s: %w", k, err)
		}
		s.revs[k] = e.Revision()
		out = append(out, r)
	}
	return out, nil
}
