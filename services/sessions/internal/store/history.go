package store

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-cc/switchboard/pkg/kvcas"
)

// A customer's history is a KV entry (tenant.<customer, hex>) with their
// latest sessions, newest last: one get answers "this customer's earlier
// chats" however many sessions are stored, where a query on the customer
// would scan every session on FerretDB. Written by compare-and-set, since
// a customer's SMS and WhatsApp conversations are handled in different
// lanes. SMS and WhatsApp share one history ("whatsapp:" is dropped).

// MaxHistory bounds the sessions remembered per customer.
const MaxHistory = 50

// HistoryEntry is one session of a customer.
type HistoryEntry struct {
	SessionID string    `json:"id"`
	StartedAt time.Time `json:"at"`
	Channel   string    `json:"ch,omitempty"`
}

type historyIndex struct {
	kv jetstream.KeyValue
	js jetstream.JetStream // to purge a key without a marker (purge.go)
}

func customerKey(tenant, customer string) string {
	return tenant + "." + hex.EncodeToString([]byte(strings.TrimPrefix(customer, "whatsapp:")))
}

// RecordHistory adds a session to its customer's history (once).
func (s *Store) RecordHistory(ctx context.Context, tenant, customer string, e HistoryEntry) error {
	if customer == "" {
		return nil
	}
	_, err := kvcas.Change(ctx, s.history.kv, customerKey(tenant, customer), func(cur []byte) ([]byte, error) {
		var list []HistoryEntry
		if cur != nil && json.Unmarshal(cur, &list) != nil {
			list = nil
		}
		if slices.ContainsFunc(list, func(x HistoryEntry) bool { return x.SessionID == e.SessionID }) {
			return cur, nil
		}
		list = append(list, e)
		if len(list) > MaxHistory {
			list = list[len(list)-MaxHistory:]
		}
		return json.Marshal(list)
	})
	if err != nil {
		return fmt.Errorf("customer history: %w", err)
	}
	return nil
}

// History returns the customer's latest sessions, newest first.
func (s *Store) History(ctx context.Context, tenant, customer string) ([]HistoryEntry, error) {
	if customer == "" {
		return nil, nil
	}
	b, _, err := kvcas.Get(ctx, s.history.kv, customerKey(tenant, customer))
	if err != nil {
		return nil, fmt.Errorf("customer history: %w", err)
	}
	var list []HistoryEntry
	if b != nil && json.Unmarshal(b, &list) != nil {
		return nil, nil
	}
	slices.Reverse(list)
	return list, nil
}
