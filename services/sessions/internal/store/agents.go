package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

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

// agentList is the value of an agent's key: the active sessions, and the
// chats that ended recently, newest first, that the agent has not yet
// dismissed (a console shows them until then, a reconnect too). The
// first version of the value was the active list alone, a JSON array; it
// is still read.
type agentList struct {
	Active []string     `json:"active"`
	Ended  []endedEntry `json:"ended,omitempty"`
}

type endedEntry struct {
	ID string    `json:"id"`
	At time.Time `json:"at"`
}

// An agent's ended chats are kept for a shift at most, and only the most
// recent: each costs its reconnecting console a transcript read.
const (
	maxEnded     = 10
	keepEndedFor = 8 * time.Hour
)

func decodeAgentList(b []byte) agentList {
	var l agentList
	switch {
	case len(b) == 0:
	case b[0] == '[':
		_ = json.Unmarshal(b, &l.Active)
	default:
		_ = json.Unmarshal(b, &l)
	}
	return l
}

// get returns the agent's active sessions and recently ended chats.
func (x *agentIndex) get(ctx context.Context, tenant, agentID string) (agentList, error) {
	b, _, err := kvcas.GetLatest(ctx, x.js, x.kv.Bucket(), agentKey(tenant, agentID))
	if err != nil {
		return agentList{}, fmt.Errorf("agent sessions: %w", err)
	}
	return decodeAgentList(b), nil
}

// change applies f to the agent's list with a compare-and-set, retrying
// when another writer got in first.
func (x *agentIndex) change(ctx context.Context, tenant, agentID string, f func(*agentList)) error {
	_, err := kvcas.ChangeLatest(ctx, x.js, x.kv, agentKey(tenant, agentID), func(cur []byte) ([]byte, error) {
		was := decodeAgentList(cur)
		next := agentList{Active: slices.Clone(was.Active), Ended: slices.Clone(was.Ended)}
		f(&next)
		if slices.Equal(next.Active, was.Active) && slices.Equal(next.Ended, was.Ended) {
			return cur, nil
		}
		return json.Marshal(next)
	})
	if err != nil {
		return fmt.Errorf("update agent sessions: %w", err)
	}
	return nil
}

func endedIDs(es []endedEntry) []string {
	ids := make([]string, len(es))
	for i, e := range es {
		ids[i] = e.ID
	}
	return ids
}

func dropEnded(l *agentList, sessionID string) {
	l.Ended = slices.DeleteFunc(l.Ended, func(e endedEntry) bool { return e.ID == sessionID })
}

// add lists a session as the agent's (an assignment).
func (x *agentIndex) add(ctx context.Context, tenant, agentID, sessionID string) error {
	return x.change(ctx, tenant, agentID, func(l *agentList) {
		dropEnded(l, sessionID)
		if !slices.Contains(l.Active, sessionID) {
			l.Active = append(l.Active, sessionID)
		}
	})
}

// remove takes a session off the agent's lists (a transfer to someone
// else).
func (x *agentIndex) remove(ctx context.Context, tenant, agentID, sessionID string) error {
	return x.change(ctx, tenant, agentID, func(l *agentList) {
		l.Active = slices.DeleteFunc(l.Active, func(id string) bool { return id == sessionID })
		dropEnded(l, sessionID)
	})
}

// ended moves a session whose end was announced from the agent's active
// list to their ended chats, and forgets ended chats past the limits.
func (x *agentIndex) ended(ctx context.Context, tenant, agentID, sessionID string, now time.Time) error {
	return x.change(ctx, tenant, agentID, func(l *agentList) { endIn(l, sessionID, now) })
}

func endIn(l *agentList, sessionID string, now time.Time) {
	was := len(l.Active)
	l.Active = slices.DeleteFunc(l.Active, func(id string) bool { return id == sessionID })
	if len(l.Active) < was && !slices.ContainsFunc(l.Ended, func(e endedEntry) bool { return e.ID == sessionID }) {
		l.Ended = slices.Insert(l.Ended, 0, endedEntry{ID: sessionID, At: now.UTC()})
	}
	l.Ended = slices.DeleteFunc(l.Ended, func(e endedEntry) bool { return now.Sub(e.At) > keepEndedFor })
	if len(l.Ended) > maxEnded {
		l.Ended = l.Ended[:maxEnded]
	}
}

// dismiss forgets an ended chat the agent closed.
func (x *agentIndex) dismiss(ctx context.Context, tenant, agentID, sessionID string) error {
	return x.change(ctx, tenant, agentID, func(l *agentList) { dropEnded(l, sessionID) })
}
