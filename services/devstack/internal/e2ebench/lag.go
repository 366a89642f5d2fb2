package e2ebench

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// consumerSample is one durable consumer at one moment.
type consumerSample struct {
	Pending    uint64 // NumPending + NumAckPending: what the consumer has yet to finish
	Done       uint64 // deliveries no longer awaiting an ack (Delivered.Consumer - NumAckPending)
	Redelivery int
}

type sample struct {
	at time.Time
	c  map[string]consumerSample
}

// sampler reads every durable consumer of every stream once a second.
type sampler struct {
	js      jetstream.JetStream
	mu      sync.Mutex
	samples []sample
	names   map[string]string // consumer → stream
}

func (s *sampler) run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		s.once(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *sampler) once(ctx context.Context) {
	at := time.Now()
	m := map[string]consumerSample{}
	names := map[string]string{}
	for _, sc := range subjects.Streams(subjects.StreamOptions{}) {
		if sc.Name == subjects.StreamDeadLetter || sc.Name == subjects.StreamConfig {
			continue
		}
		st, err := s.js.Stream(ctx, sc.Name)
		if err != nil {
			continue
		}
		l := st.ListConsumers(ctx)
		for ci := range l.Info() {
			if ci.Config.Durable == "" {
				continue
			}
			m[ci.Name] = consumerSample{
				Pending: ci.NumPending + uint64(ci.NumAckPending),
				Done:    ci.Delivered.Consumer - uint64(ci.NumAckPending), Redelivery: ci.NumRedelivered,
			}
			names[ci.Name] = sc.Name
		}
	}
	s.mu.Lock()
	s.samples = append(s.samples, sample{at: at, c: m})
	if s.names == nil {
		s.names = map[string]string{}
	}
	for k, v := range names {
		s.names[k] = v
	}
	s.mu.Unlock()
}

func (s *sampler) snapshot() ([]sample, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for n := range s.names {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		si, sj := stageOf(names[i]), stageOf(names[j])
		if si != sj {
			return stageIndex(si) < stageIndex(sj)
		}
		return names[i] < names[j]
	})
	return append([]sample(nil), s.samples...), names
}

// stages, in pipeline order; a consumer belongs to the stage its name
// starts with (<service>-<purpose>).
var stages = []string{"chat-handler", "sessions", "workflow-runner", "distribution", "outbound-sender", "reporting"}

func stageOf(consumer string) string {
	for _, s := range stages[1:] {
		if strings.HasPrefix(consumer, s+"-") {
			return s
		}
	}
	return "other"
}

func stageIndex(s string) int {
	for i, x := range stages {
		if x == s {
			return i
		}
	}
	return len(stages)
}

// pauseChatConsumers pauses every consumer of the CHAT stream until t, so
// webhooks during the ceiling measurement stop at JetStream.
func (r *run) pauseChatConsumers(ctx context.Context, until time.Time) error {
	st, err := r.js.Stream(ctx, subjects.StreamChat)
	if err != nil {
		return err
	}
	var errs []error
	for name := range st.ListConsumers(ctx).Info() {
		if _, err := st.PauseConsumer(ctx, name.Name, until); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// resumeChatAfterCeiling drops the ceiling's webhooks from the CHAT stream
// (it holds nothing else unconsumed: the ceiling runs on an idle pipeline)
// and resumes its consumers.
func (r *run) resumeChatAfterCeiling(ctx context.Context) error {
	st, err := r.js.Stream(ctx, subjects.StreamChat)
	if err != nil {
		return err
	}
	errs := []error{st.Purge(ctx)}
	for ci := range st.ListConsumers(ctx).Info() {
		if _, err := st.ResumeConsumer(ctx, ci.Name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
