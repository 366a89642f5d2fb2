// Package erasure is the services' side of erasing one customer (the
// "right to be forgotten"): config publishes the audited request on
// config.customer.erasure_requested.<tenant>; each service holding the
// customer's data consumes it durably, removes or masks what it has, and
// answers on config.customer.erasure_completed.<tenant> with the counts.
// Handlers must be idempotent: a redelivery, or the same customer erased
// twice, finds nothing left and reports zeros.
package erasure

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
)

// Masked replaces an erased customer's address wherever a record is kept.
const Masked = "erased"

// Services are the services that hold customer data and answer erasures.
var Services = []string{"sessions", "reporting", "outbound-sender"}

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// Normalize checks a customer address, E.164 or whatsapp:+E.164, and
// returns it as +E.164: a number's SMS and WhatsApp conversations are one
// customer.
func Normalize(address string) (string, error) {
	a := strings.TrimPrefix(strings.TrimSpace(address), "whatsapp:")
	if !e164.MatchString(a) {
		return "", fmt.Errorf("%q is not a customer address: E.164 (+41791234567) or whatsapp:+E.164", address)
	}
	return a, nil
}

// Matches reports whether a stored address (either channel's form) is the
// customer's (+E.164, from Normalize).
func Matches(stored, customer string) bool {
	return stored != "" && strings.TrimPrefix(stored, "whatsapp:") == customer
}

// Handler erases one customer of one tenant and reports what it removed
// or masked, by kind.
type Handler func(ctx context.Context, req *configv1.CustomerErasureRequested) (map[string]int64, error)

// Consume follows erasure requests with the durable consumer named
// durable until ctx ends: each is handed to h and answered with a
// CustomerErasureCompleted from service (its Nats-Msg-Id is the erasure
// and the service, so a redelivery answers once).
func Consume(ctx context.Context, b *bus.Bus, service, durable string, log *slog.Logger, h Handler) error {
	spec := bus.ConsumerSpec{
		Stream: subjects.StreamConfig, Durable: durable,
		FilterSubjects: []string{subjects.AllTenants(subjects.KindCustomerErasureRequested)},
		AckWait:        2 * time.Minute,
	}
	// CONFIG is config's stream: wait for it rather than fail a service
	// started before config ever ran.
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 10*time.Second) {
		_, err := b.JS.Stream(ctx, subjects.StreamConfig)
		if err == nil {
			break
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			log.DebugContext(ctx, "erasure requests: CONFIG stream", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
	return b.Consume(ctx, spec, func(ctx context.Context, m *bus.Message) error {
		var req configv1.CustomerErasureRequested
		if err := m.Decode(&req); err != nil {
			return bus.Permanent(err)
		}
		if req.GetTenantId() != m.Tenant() || req.GetErasureId() == "" {
			return bus.Permanentf("erasure request on %s names tenant %q, erasure %q", m.Subject, req.GetTenantId(), req.GetErasureId())
		}
		if _, err := Normalize(req.GetAddress()); err != nil {
			return bus.Permanent(err)
		}
		counts, err := h(ctx, &req)
		if err != nil {
			return fmt.Errorf("erase customer (erasure %s): %w", req.GetErasureId(), err)
		}
		done := &configv1.CustomerErasureCompleted{
			TenantId: req.GetTenantId(), ErasureId: req.GetErasureId(), Service: service,
			Counts: counts, OccurredAt: timestamppb.Now(),
		}
		if err := b.Emit(ctx, subjects.CustomerErasureCompleted(req.GetTenantId()), done, CompletionID(req.GetTenantId(), req.GetErasureId(), service)); err != nil {
			return err
		}
		log.InfoContext(ctx, "customer erased", "tenant", req.GetTenantId(), "erasure", req.GetErasureId(), "counts", counts)
		return nil
	})
}

// CompletionID is the Nats-Msg-Id of a service's answer to an erasure.
func CompletionID(tenant, erasureID, service string) string {
	return tenant + "/erasure/" + erasureID + "/" + service
}
