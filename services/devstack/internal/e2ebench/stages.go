package e2ebench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	chatv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/chat/v1"
	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"
	workflowv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/workflow/v1"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// stageMarks are the moments one new session passes on its way to an
// offer, each the JetStream timestamp of the event that marks it (the
// server's clock, the same machine's as the benchmark's).
type stageMarks struct {
	stored, started, requested, input, queued, offered time.Time
}

// sessionEvent is an event that names its session.
type sessionEvent interface {
	proto.Message
	GetSessionId() string
}

// stageNames label the legs between the marks, in order, starting from
// the webhook's send and ending at the offer frame.
var stageNames = []string{
	"webhook sent → message in CHAT (chat-handler)",
	"CHAT → session.started (sessions)",
	"session.started → task.requested (workflow-runner)",
	"task.requested → DISTRIBUTION_INPUT (stream sourcing)",
	"DISTRIBUTION_INPUT → task.queued (distribution)",
	"task.queued → task.offered (distribution)",
	"task.offered → offer frame (sessions gateway)",
}

// readStages reads the run's events back from the streams and returns
// each customer's marks, keyed by the customer's address. Only first
// marks count (a re-offer does not move the offer mark).
func readStages(ctx context.Context, js jetstream.JetStream, tenant string) (map[string]*stageMarks, error) {
	byAddr := map[string]*stageMarks{}
	bySession := map[string]*stageMarks{}
	mark := func(m *stageMarks, at *time.Time, t time.Time) {
		if m != nil && at.IsZero() {
			*at = t
		}
	}
	read := func(stream string, filter []string, each func(subject string, data []byte, at time.Time) error) error {
		c, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: filter})
		if err != nil {
			return fmt.Errorf("%s: %w", stream, err)
		}
		info, err := c.Info(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", stream, err)
		}
		left := info.NumPending
		for left > 0 {
			batch, err := c.Fetch(int(min(left, 500)), jetstream.FetchMaxWait(5*time.Second))
			if err != nil {
				return fmt.Errorf("%s: %w", stream, err)
			}
			got := 0
			for msg := range batch.Messages() {
				got++
				md, err := msg.Metadata()
				if err != nil {
					return err
				}
				if err := each(msg.Subject(), msg.Data(), md.Timestamp); err != nil {
					return fmt.Errorf("%s: %w", msg.Subject(), err)
				}
				left = md.NumPending
			}
			if batch.Error() != nil {
				return fmt.Errorf("%s: %w", stream, batch.Error())
			}
			if got == 0 {
				break
			}
		}
		return nil
	}
	if err := read(subjects.StreamChat, []string{subjects.ChatMessageReceived(tenant)}, func(_ string, data []byte, at time.Time) error {
		var e chatv1.MessageReceived
		if err := proto.Unmarshal(data, &e); err != nil {
			return err
		}
		addr := e.GetConversation().GetCustomerAddress()
		if byAddr[addr] == nil {
			byAddr[addr] = &stageMarks{stored: at}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if err := read(subjects.StreamSession, []string{subjects.SessionStarted(tenant)}, func(_ string, data []byte, at time.Time) error {
		var e sessionv1.SessionStarted
		if err := proto.Unmarshal(data, &e); err != nil {
			return err
		}
		if m := byAddr[e.GetConversation().GetCustomerAddress()]; m != nil && bySession[e.GetSessionId()] == nil {
			bySession[e.GetSessionId()] = m
			mark(m, &m.started, at)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	// The other marks are events of a session, each read into its field.
	bySessionMark := func(ev sessionEvent, field func(*stageMarks) *time.Time) func(string, []byte, time.Time) error {
		return func(_ string, data []byte, at time.Time) error {
			if err := proto.Unmarshal(data, ev); err != nil {
				return err
			}
			if m := bySession[ev.GetSessionId()]; m != nil {
				mark(m, field(m), at)
			}
			return nil
		}
	}
	queued, offered := subjects.KindTaskQueued+"."+tenant, subjects.KindTaskOffered+"."+tenant
	onQueued := bySessionMark(&distributionv1.TaskQueued{}, func(m *stageMarks) *time.Time { return &m.queued })
	onOffered := bySessionMark(&distributionv1.TaskOffered{}, func(m *stageMarks) *time.Time { return &m.offered })
	for _, r := range []struct {
		stream  string
		filters []string
		each    func(string, []byte, time.Time) error
	}{
		{subjects.StreamWorkflow, []string{subjects.WorkflowTaskRequested(tenant)},
			bySessionMark(&workflowv1.TaskRequested{}, func(m *stageMarks) *time.Time { return &m.requested })},
		{subjects.StreamDistributionInput, []string{subjects.WorkflowTaskRequested(tenant)},
			bySessionMark(&workflowv1.TaskRequested{}, func(m *stageMarks) *time.Time { return &m.input })},
		{subjects.StreamDistribution, []string{queued, offered}, func(subject string, data []byte, at time.Time) error {
			if subject == queued {
				return onQueued(subject, data, at)
			}
			return onOffered(subject, data, at)
		}},
	} {
		if err := read(r.stream, r.filters, r.each); err != nil {
			return nil, err
		}
	}
	return byAddr, nil
}

// printStages writes p50 and p99 of each leg over the customers whose
// every mark is known (sent and frame from the benchmark's records).
func printStages(out io.Writer, marks map[string]*stageMarks, sent, frame map[string]time.Time) {
	legs := make([][]time.Duration, len(stageNames))
	complete := 0
	for addr, m := range marks {
		s, f := sent[addr], frame[addr]
		points := []time.Time{s, m.stored, m.started, m.requested, m.input, m.queued, m.offered, f}
		if slices.ContainsFunc(points, time.Time.IsZero) {
			continue
		}
		complete++
		for i := range legs {
			legs[i] = append(legs[i], points[i+1].Sub(points[i]))
		}
	}
	fmt.Fprintf(out, "where the time goes (%d sessions with every mark; JetStream timestamps of each stage's event):\n", complete)
	for i, name := range stageNames {
		slices.Sort(legs[i])
		fmt.Fprintf(out, "  %-54s %10s %10s\n", name, ms(pct(legs[i], 0.50)), ms(pct(legs[i], 0.99)))
	}
}
