package subjects

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Streams, one per producing domain (OUTBOUND also takes the requests other
// domains address to outbound-sender).
const (
	StreamChat         = "CHAT"
	StreamConfig       = "CONFIG"
	StreamSession      = "SESSION"
	StreamWorkflow     = "WORKFLOW"
	StreamDistribution = "DISTRIBUTION"
	StreamOutbound     = "OUTBOUND"
	StreamDeadLetter   = "DEADLETTER"
	// StreamTranscript holds every session's transcript, one subject per
	// session (Transcript), so a session's entries are read from the
	// stream's subject index whatever its size (sessions owns it).
	StreamTranscript = "TRANSCRIPT"
	// StreamWorkflowTimers holds workflow-runner's pending timers as
	// message schedules and the timers that fired.
	StreamWorkflowTimers = "WORKFLOW_TIMERS"
)

// StreamOptions are the deployment choices that apply to every stream.
type StreamOptions struct {
	// Replicas: 1 for one machine, 3 for a production cluster.
	Replicas int
	// MaxAge bounds how long events are kept; zero means 7 days.
	MaxAge time.Duration
	// Duplicates is the Nats-Msg-Id dedupe window; zero means 2 minutes.
	Duplicates time.Duration
	// TranscriptMaxAge is how long transcripts are kept; zero means 90 days.
	TranscriptMaxAge time.Duration
}

// Streams returns the definitions of every stream.
func Streams(o StreamOptions) []jetstream.StreamConfig {
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.MaxAge <= 0 {
		o.MaxAge = 7 * 24 * time.Hour
	}
	if o.Duplicates <= 0 {
		o.Duplicates = 2 * time.Minute
	}
	mk := func(name, domain, desc string) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:        name,
			Description: desc,
			Subjects:    []string{domain + ".>"},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Replicas:    o.Replicas,
			MaxAge:      o.MaxAge,
			Duplicates:  o.Duplicates,
			Discard:     jetstream.DiscardOld,
		}
	}
	return []jetstream.StreamConfig{
		mk(StreamChat, DomainChat, "Customer messages and delivery updates from Twilio (chat-handler)"),
		mk(StreamConfig, DomainConfig, "Configuration changes (config)"),
		mk(StreamSession, DomainSession, "Session lifecycle and transcript (sessions)"),
		mk(StreamWorkflow, DomainWorkflow, "Workflow requests and failures (workflow-runner)"),
		mk(StreamDistribution, DomainDistribution, "Task queue, offers and answers (distribution)"),
		mk(StreamOutbound, DomainOutbound, "Outbound message requests and their fate (outbound-sender)"),
		mk(StreamDeadLetter, DomainDeadLetter, "Messages consumers gave up on, with the reason"),
		transcripts(o),
		workflowTimers(o),
	}
}

// Durable consumer names: <service>-<purpose>. A consumer reads one stream,
// so a service that follows several domains has one consumer per stream.
const (
	ConsumerSessionsInbound      = "sessions-inbound"
	ConsumerSessionsDistribution = "sessions-distribution"
	ConsumerSessionsOutbound     = "sessions-outbound"
	ConsumerSessionsWorkflow     = "sessions-workflow"
	ConsumerWorkflowSessions     = "workflow-runner-sessions"
	ConsumerWorkflowDistribution = "workflow-runner-distribution"
	ConsumerWorkflowTimers       = "workflow-runner-timers"
	ConsumerDistributionTasks    = "distribution-tasks"
	ConsumerDistributionSessions = "distribution-sessions"
	ConsumerDistributionReplies  = "distribution-replies"
	ConsumerOutboundRequests     = "outbound-sender-requests"
	ConsumerOutboundDeliveries   = "outbound-sender-deliveries"
	ConsumerReportingSessions    = "reporting-sessions"
	ConsumerReportingTasks       = "reporting-distribution"
	ConsumerReportingOutbound    = "reporting-outbound"
	ConsumerReportingWorkflow    = "reporting-workflow"
)

// ConsumerOutboundInbound follows customer messages (CHAT) for opt-out
// keywords and WhatsApp windows (outbound-sender).
const ConsumerOutboundInbound = "outbound-sender-inbound"

// transcripts is the TRANSCRIPT stream: kept for TranscriptMaxAge (90
// days unless set), with a 10-minute dedupe window so a redelivered
// append is not stored twice.
func transcripts(o StreamOptions) jetstream.StreamConfig {
	age := o.TranscriptMaxAge
	if age <= 0 {
		age = 90 * 24 * time.Hour
	}
	return jetstream.StreamConfig{
		Name:        StreamTranscript,
		Description: "Session transcripts: messages and their delivery statuses, a subject per session (sessions)",
		Subjects:    []string{DomainTranscript + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Replicas:    o.Replicas,
		MaxAge:      age,
		Duplicates:  10 * time.Minute,
		Discard:     jetstream.DiscardOld,
		AllowDirect: true,
	}
}

// workflowTimers is the WORKFLOW_TIMERS stream: message schedules (one
// subject per session, replaced by the next publish) and the timers they
// fire. A schedule must outlive its wait (at most a day), so the stream
// keeps messages for the longer of MaxAge and two days.
func workflowTimers(o StreamOptions) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              StreamWorkflowTimers,
		Description:       "Workflow timers: pending message schedules and fired timers (workflow-runner)",
		Subjects:          []string{DomainWorkflowTimer + ".>"},
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.LimitsPolicy,
		Replicas:          o.Replicas,
		MaxAge:            max(o.MaxAge, 48*time.Hour),
		Duplicates:        o.Duplicates,
		Discard:           jetstream.DiscardOld,
		AllowMsgSchedules: true,
		AllowRollup:       true,
	}
}
