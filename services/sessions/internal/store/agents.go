package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-cc/switchboard/pkg/kvcas"
)

// Each agent's active sessions live in a JetStream KV bucket
// (tenant.agent -> session ids), changed only by compare-and-set on the
// key's revision: assignments and ends arrive on different consumers, and
// FerretDB's updates are not atomic, so a list kept there could lose one.
// A reconnecting console reads it with one get instead of a query on
// agent_id, which FerretDB answers by scanning every session.
//
// The list is read from the bucket's stream leader (kvcas.GetLatest): a
// console's snapshot must hold every chat assigned before it was read,
// and a replica catching up after a restart answers a plain get from
// before the latest assignments.
type agentIndex struct {
	kv jetstream.KeyValue
	js jetstream.JetStream
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

func (x *agentIndex) get(ctx context.Context, tenant, agentID string) ([]string, error) {
	b, _, err := kvcas.GetLatest(ctx, x.js, x.kv.Bucket(), agentKey(tenant, agentID))
	if err != nil {
		return nil, fmt.Errorf("agent sessions: %w", err)
	}
	var ids []string
	if b != nil && json.Unmarshal(b, &ids) != nil {
		return nil, nil
	}
	return ids, nil
}

// change applies f to the agent's list with a compare-and-set, retrying
// when another writer got in first.
func (x *agentIndex) change(ctx context.Context, tenant, agentID string, f func([]string) []string) error {
	_, err := kvcas.Change(ctx, x.kv, agentKey(tenant, agentID), func(cur []byte) ([]byte, error) {
		var ids []string
		if cur != nil && json.Unmarshal(cur, &ids) != nil {
			ids = nil
		}
		next := f(slices.Clone(ids))
		if slices.Equal(next, ids) {
			return cur, nil
		}
		return json.Marshal(next)
	})
	if err != nil {
		return fmt.Errorf("update agent sessions: %w", err)
	}
	return nil
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
