package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"
)

// Each agent's active sessions live in a JetStream KV bucket
// (tenant.agent -> session ids), changed only by compare-and-set on the
// key's revision: assignments and ends arrive on different consumers, and
// FerretDB's updates are not atomic, so a list kept there could lose one.
// A reconnecting console reads it with one get instead of a query on
// agent_id, which FerretDB answers by scanning every session.
type agentIndex struct {
	kv jetstream.KeyValue
}

func agentKey(tenant, agentID string) string { return tenant + "." + safeToken(agentID) }

// safeToken keeps a KV key token valid whatever the agent id holds.
func safeToken(s string) string {
	out := []byte(s)
	for i, c := range out {
		ok := c == '-' || c == '_' || c == '=' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !ok {
			out[i] = '_'
		}
	}
	return string(out)
}

func (x *agentIndex) get(ctx context.Context, tenant, agentID string) ([]string, uint64, error) {
	e, err := x.kv.Get(ctx, agentKey(tenant, agentID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("agent sessions: %w", err)
	}
	var ids []string
	if err := json.Unmarshal(e.Value(), &ids); err != nil {
		return nil, e.Revision(), nil
	}
	return ids, e.Revision(), nil
}

// change applies f to the agent's list with a compare-and-set, retrying
// when another writer got in first.
func (x *agentIndex) change(ctx context.Context, tenant, agentID string, f func([]string) []string) error {
	key := agentKey(tenant, agentID)
	for attempt := 0; ; attempt++ {
		ids, rev, err := x.get(ctx, tenant, agentID)
		if err != nil {
			return err
		}
		next := f(slices.Clone(ids))
		if slices.Equal(next, ids) {
			return nil
		}
		b, _ := json.Marshal(next)
		if rev == 0 {
			_, err = x.kv.Create(ctx, key, b)
		} else {
			_, err = x.kv.Update(ctx, key, b, rev)
		}
		if err == nil {
			return nil
		}
		var apiErr *jetstream.APIError
		conflict := errors.Is(err, jetstream.ErrKeyExists) || (errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence)
		if !conflict || attempt >= 20 {
			return fmt.Errorf("update agent sessions: %w", err)
		}
	}
}

func (x *agentIndex) add(ctx context.Context, tenant, agentID, sessionID string) error {
	return x.change(ctx, tenant, agentID, func(ids []string) []string {
		if slices.Contains(ids, sessionID) {
			return ids
		}
		return append(ids, sessionID)
	})
}

func (x *agentIndex) remove(ctx context.Context, tenant, agentID, sessionID string) error {
	return x.change(ctx, tenant, agentID, func(ids []string) []string {
		return slices.DeleteFunc(ids, func(id string) bool { return id == sessionID })
	})
}
