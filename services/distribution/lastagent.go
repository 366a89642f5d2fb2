package distribution

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"

	"github.com/switchboard-cc/switchboard/pkg/kvcas"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// lastAgentsMaxAge bounds how long a customer's last agent is kept (the
// longest preferred_agent_within config allows).
const lastAgentsMaxAge = 90 * 24 * time.Hour

// lastAgents keeps, per tenant and customer, the agent who last took their
// chat: one key each in DISTRIBUTION_LAST_AGENT, <tenant>.<hash of the
// customer's address> (no address in the key or the value), written when a
// task is accepted or completed and read when a task of a service with a
// preferred agent arrives. Writes leave the engine's lock through a
// buffered channel and are written in order by one goroutine.
type lastAgents struct {
	kv  jetstream.KeyValue
	log *slog.Logger
	ch  chan lastAgent
}

type lastAgent struct {
	key   string
	Agent string    `json:"agent"`
	At    time.Time `json:"at"`
}

func openLastAgents(ctx context.Context, js jetstream.JetStream, replicas int, log *slog.Logger) (*lastAgents, error) {
	kv, err := kvcas.Bind(ctx, js, jetstream.KeyValueConfig{
		Bucket: subjects.BucketDistributionLastAgent, Description: "Each customer's last agent (distribution's preferred agent)",
		History: 1, TTL: lastAgentsMaxAge, Storage: jetstream.FileStorage, Replicas: max(replicas, 1),
	})
	if err != nil {
		return nil, err
	}
	return &lastAgents{kv: kv, log: log, ch: make(chan lastAgent, 1024)}, nil
}

func lastAgentKey(tenant string, conv *messagingv1.ConversationRef) string {
	h := sha256.Sum256([]byte(conv.GetCustomerAddress()))
	return tenant + "." + hex.EncodeToString(h[:16])
}

// Record queues a write; when the queue is full the write is dropped (the
// customer's next chat then has no preferred agent, or an older one).
func (l *lastAgents) Record(tenant string, conv *messagingv1.ConversationRef, agentID string, at time.Time) {
	select {
	case l.ch <- lastAgent{key: lastAgentKey(tenant, conv), Agent: agentID, At: at}:
	default:
		l.log.Warn("last agent not recorded: writes queued up", "tenant", tenant, "agent", agentID)
	}
}

// run writes the queued records until ctx ends.
func (l *lastAgents) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-l.ch:
			data, _ := json.Marshal(r)
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if _, err := l.kv.Put(wctx, r.key, data); err != nil && ctx.Err() == nil {
				l.log.WarnContext(ctx, "record last agent", "key", r.key, "err", err)
			}
			cancel()
		}
	}
}

// Get returns the customer's last agent and when they took the chat;
// none: "".
func (l *lastAgents) Get(ctx context.Context, tenant string, conv *messagingv1.ConversationRef) (string, time.Time, error) {
	e, err := l.kv.Get(ctx, lastAgentKey(tenant, conv))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", time.Time{}, nil
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("get last agent: %w", err)
	}
	var r lastAgent
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return "", time.Time{}, fmt.Errorf("decode last agent: %w", err)
	}
	return r.Agent, r.At, nil
}
