// Package subjects is the one place that names JetStream streams, subjects
// and durable consumers. Subjects follow <domain>.<entity>.<event>.<tenant_id>;
// call sites use the builders here, never string literals.
package subjects

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Domains, one stream each.
const (
	DomainChat         = "chat"
	DomainConfig       = "config"
	DomainSession      = "session"
	DomainWorkflow     = "workflow"
	DomainDistribution = "distribution"
	DomainOutbound     = "outbound"
	DomainDeadLetter   = "deadletter"
	// DomainTranscript is sessions' per-session log: its subjects are
	// transcript.<tenant>.<session>, not <entity>.<event>.<tenant>.
	DomainTranscript = "transcript"
	// DomainWorkflowTimer is workflow-runner's durable timers: message
	// schedules on wftimer.schedule.<tenant>.<session>, delivered to
	// wftimer.timer.fired.<tenant> when due.
	DomainWorkflowTimer = "wftimer"
)

var tenantRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ValidTenantID reports whether id can be used as a tenant id: a lower-case
// slug that is also a single subject token.
func ValidTenantID(id string) bool { return tenantRe.MatchString(id) }

// Subject is a concrete event subject split into its parts.
type Subject struct {
	Domain, Entity, Event, Tenant string
}

func (s Subject) String() string {
	return s.Domain + "." + s.Entity + "." + s.Event + "." + s.Tenant
}

// Kind is the subject without its tenant: "chat.message.received".
func (s Subject) Kind() string { return s.Domain + "." + s.Entity + "." + s.Event }

// Parse splits a concrete subject.
func Parse(subject string) (Subject, error) {
	p := strings.Split(subject, ".")
	if len(p) != 4 {
		return Subject{}, fmt.Errorf("subject %q: want <domain>.<entity>.<event>.<tenant>", subject)
	}
	return Subject{Domain: p[0], Entity: p[1], Event: p[2], Tenant: p[3]}, nil
}

func build(domain, entity, event, tenant string) string {
	return domain + "." + entity + "." + event + "." + tenant
}

// Kinds of event, for matching a parsed subject (Subject.Kind).
const (
	KindChatMessageReceived    = "chat.message.received"
	KindChatDeliveryUpdated    = "chat.delivery.updated"
	KindSessionStarted         = "session.session.started"
	KindSessionEnded           = "session.session.ended"
	KindSessionMessageAdded    = "session.message.added"
	KindWorkflowTaskRequested  = "workflow.task.requested"
	KindWorkflowFailed         = "workflow.instance.failed"
	KindWorkflowEndRequested   = "workflow.session.end_requested"
	KindWorkflowStepCompleted  = "workflow.step.completed"
	KindWorkflowTimerFired     = "wftimer.timer.fired"
	KindTaskQueued             = "distribution.task.queued"
	KindTaskOffered            = "distribution.task.offered"
	KindTaskAccepted           = "distribution.task.accepted"
	KindTaskDeclined           = "distribution.task.declined"
	KindTaskOfferTimedOut      = "distribution.task.rona"
	KindTaskCanceled           = "distribution.task.canceled"
	KindTaskWrapUpStarted      = "distribution.task.wrapup_started"
	KindTaskWrapUpEnded        = "distribution.task.wrapup_ended"
	KindTaskCompleted          = "distribution.task.completed"
	KindTaskReprioritized      = "distribution.task.reprioritized"
	KindTaskTransferred        = "distribution.task.transferred"
	KindTaskReplyOverdue       = "distribution.task.reply_overdue"
	KindTaskParked             = "distribution.task.parked"
	KindTaskResumed            = "distribution.task.resumed"
	KindTaskOverflowed         = "distribution.task.overflowed"
	KindOutboundRequested      = "outbound.message.requested"
	KindOutboundSent           = "outbound.message.sent"
	KindOutboundFailed         = "outbound.message.failed"
	KindOutboundDeliveryUpdate = "outbound.delivery.updated"

	KindChatConversationAdded        = "chat.conversation.added"
	KindChatParticipantAdded         = "chat.participant.added"
	KindChatConversationStateUpdated = "chat.conversation.state_updated"
)

func fromKind(kind, tenant string) string { return kind + "." + tenant }

// Chat (chat-handler).
func ChatMessageReceived(tenant string) string { return fromKind(KindChatMessageReceived, tenant) }
func ChatDeliveryUpdated(tenant string) string { return fromKind(KindChatDeliveryUpdated, tenant) }
func ChatConversationAdded(tenant string) string {
	return fromKind(KindChatConversationAdded, tenant)
}
func ChatParticipantAdded(tenant string) string { return fromKind(KindChatParticipantAdded, tenant) }
func ChatConversationStateUpdated(tenant string) string {
	return fromKind(KindChatConversationStateUpdated, tenant)
}

// Config (config service). Entity is one of the Entity* names.
func ConfigChanged(entity, tenant string) string {
	return build(DomainConfig, entity, "changed", tenant)
}

// ConfigChangedAll matches every ConfigChanged subject (caches follow it).
const ConfigChangedAll = DomainConfig + ".*.changed.*"

// ConfigSignInFailed is the audit event of a refused sign-in.
func ConfigSignInFailed(tenant string) string { return build(DomainConfig, "signin", "failed", tenant) }

// ConfigSignInCleared is the audit event of a lockout cleared by an admin.
func ConfigSignInCleared(tenant string) string {
	return build(DomainConfig, "signin", "cleared", tenant)
}

// Config entity names used in ConfigChanged subjects.
const (
	EntityTenant            = "tenant"
	EntityOrganizationUnit  = "orgunit"
	EntityProviderConnector = "connector"
	EntityMessagingEntry    = "entry"
	EntityService           = "service"
	EntityUser              = "user"
	EntityWorkflow          = "workflow"
)

// Session (sessions).
func SessionStarted(tenant string) string      { return fromKind(KindSessionStarted, tenant) }
func SessionEnded(tenant string) string        { return fromKind(KindSessionEnded, tenant) }
func SessionMessageAdded(tenant string) string { return fromKind(KindSessionMessageAdded, tenant) }

// Workflow (workflow-runner).
func WorkflowTaskRequested(tenant string) string { return fromKind(KindWorkflowTaskRequested, tenant) }
func WorkflowFailed(tenant string) string        { return fromKind(KindWorkflowFailed, tenant) }
func WorkflowEndRequested(tenant string) string  { return fromKind(KindWorkflowEndRequested, tenant) }
func WorkflowStepCompleted(tenant string) string { return fromKind(KindWorkflowStepCompleted, tenant) }

// WorkflowTimerFired is where a workflow instance's due timers are
// delivered (stream WORKFLOW_TIMERS).
func WorkflowTimerFired(tenant string) string { return fromKind(KindWorkflowTimerFired, tenant) }

// WorkflowTimerSchedule is the subject of a session's pending workflow
// timer, a JetStream message schedule: it is the timer's identity, so
// publishing again replaces it and purging the subject cancels it.
func WorkflowTimerSchedule(tenant, sessionID string) string {
	return DomainWorkflowTimer + ".schedule." + tenant + "." + sessionID
}

// Distribution.
func TaskQueued(tenant string) string        { return fromKind(KindTaskQueued, tenant) }
func TaskOffered(tenant string) string       { return fromKind(KindTaskOffered, tenant) }
func TaskAccepted(tenant string) string      { return fromKind(KindTaskAccepted, tenant) }
func TaskDeclined(tenant string) string      { return fromKind(KindTaskDeclined, tenant) }
func TaskOfferTimedOut(tenant string) string { return fromKind(KindTaskOfferTimedOut, tenant) }
func TaskCanceled(tenant string) string      { return fromKind(KindTaskCanceled, tenant) }
func TaskWrapUpStarted(tenant string) string { return fromKind(KindTaskWrapUpStarted, tenant) }
func TaskWrapUpEnded(tenant string) string   { return fromKind(KindTaskWrapUpEnded, tenant) }
func TaskCompleted(tenant string) string     { return fromKind(KindTaskCompleted, tenant) }
func TaskReprioritized(tenant string) string { return fromKind(KindTaskReprioritized, tenant) }
func TaskTransferred(tenant string) string   { return fromKind(KindTaskTransferred, tenant) }
func TaskReplyOverdue(tenant string) string  { return fromKind(KindTaskReplyOverdue, tenant) }
func TaskParked(tenant string) string        { return fromKind(KindTaskParked, tenant) }
func TaskResumed(tenant string) string       { return fromKind(KindTaskResumed, tenant) }
func TaskOverflowed(tenant string) string    { return fromKind(KindTaskOverflowed, tenant) }

// Outbound (requests from sessions and workflow-runner; results from outbound-sender).
func OutboundRequested(tenant string) string { return fromKind(KindOutboundRequested, tenant) }
func OutboundSent(tenant string) string      { return fromKind(KindOutboundSent, tenant) }
func OutboundFailed(tenant string) string    { return fromKind(KindOutboundFailed, tenant) }
func OutboundDeliveryUpdated(tenant string) string {
	return fromKind(KindOutboundDeliveryUpdate, tenant)
}

// AllTenants turns a kind into a filter for every tenant: "chat.message.received.*".
func AllTenants(kind string) string { return kind + ".*" }

// DeadLetter is where a consumer puts a message it gave up on.
func DeadLetter(durable string) string { return DomainDeadLetter + "." + durable }

// Transcript is the subject of one session's transcript entries.
func Transcript(tenant, sessionID string) string {
	return DomainTranscript + "." + tenant + "." + sessionID
}

// BucketWorkflowInstances holds each session's workflow instance
// (workflow-runner), updated with revision checks.
const BucketWorkflowInstances = "WORKFLOW_INSTANCES"

// BucketChatHandlerUp holds when chat-handler last answered Twilio, and
// which outages have been reconciled from Twilio's history since.
const BucketChatHandlerUp = "CHAT_HANDLER_UP"

// BucketDistributionPresence holds each agent's presence and RONA flag
// (distribution), key <tenant>.<agent>, written with revision checks.
const BucketDistributionPresence = "DISTRIBUTION_PRESENCE"

// BucketDistributionTasks holds distribution's open tasks with their
// offers, key <tenant>.<task>, written with revision checks, so a replica
// taking a tenant over loads them and two replicas never both offer one.
const BucketDistributionTasks = "DISTRIBUTION_TASKS"

// BucketDistributionLastAgent holds each customer's last agent
// (distribution's preferred agent), key <tenant>.<hash of the customer's
// address>, aged out after 90 days.
const BucketDistributionLastAgent = "DISTRIBUTION_LAST_AGENT"

// BucketDistributionReplicas holds one key per live distribution replica,
// renewed well within the bucket's max age: a replica whose key aged out
// is dropped from the consumer group's membership by the others.
const BucketDistributionReplicas = "DISTRIBUTION_REPLICAS"

// BucketElasticGroups is where orbit.go's partitioned consumer groups keep
// their configuration (membership included); named by that library.
const BucketElasticGroups = "elastic-consumer-groups"

// StreamDistributionInput gathers distribution's inputs (task requests,
// session ends, outbound requests) from their streams, and
// StreamDistributionGroup is the work queue the partitioned consumer
// group of distribution's replicas reads it through (named by orbit.go's
// pcgroups: <stream>-<group>).
const (
	StreamDistributionInput = "DISTRIBUTION_INPUT"
	GroupDistribution       = "replicas"
	StreamDistributionGroup = StreamDistributionInput + "-" + GroupDistribution
)

// DistributionForward is the subject the distribution replica holding a
// partition answers gRPC calls forwarded by the others on; a core NATS
// request, outside every stream.
func DistributionForward(partition int) string {
	return "rpc.distribution." + strconv.Itoa(partition)
}

// DistributionReplies prefixes the subjects a distribution replica takes
// the answers to its forwarded calls on (<prefix>.<n>).
func DistributionReplies(replica string) string { return "rpc.distribution.reply." + replica }

// DistributionRPC matches the forwarding subjects and the replies.
const DistributionRPC = "rpc.distribution.>"

// BucketAgentSessions holds each agent's active sessions (sessions).
const BucketAgentSessions = "SESSIONS_AGENT_CHATS"

// BucketCustomerHistory holds each customer's latest sessions (sessions).
const BucketCustomerHistory = "SESSIONS_CUSTOMER_HISTORY"

// BucketSessionStates holds the active sessions as the inbound path needs
// them, watched by every sessions replica (sessions).
const BucketSessionStates = "SESSIONS_STATE"

// AgentPush is the core-NATS subject (not JetStream) on which a sessions
// replica forwards a frame to an agent connected to any replica.
func AgentPush(tenant, agentID string) string { return "push.agent." + tenant + "." + agentID }

// AgentPushAll subscribes to every agent push.
const AgentPushAll = "push.agent.>"

// SessionPush is the core-NATS subject on which a session's live frames
// (messages, statuses, its end) reach the supervisors monitoring it on any
// replica.
func SessionPush(tenant, sessionID string) string { return "push.session." + tenant + "." + sessionID }

// SessionPushAll subscribes to every session's frames.
const SessionPushAll = "push.session.>"

// Outbound contact state (outbound-sender: consent and WhatsApp window).
const KindOutboundContactUpdated = "outbound.contact.updated"

func OutboundContactUpdated(tenant string) string {
	return fromKind(KindOutboundContactUpdated, tenant)
}

// Erasure of one customer: config publishes the audited request, and
// sessions, reporting and outbound-sender each answer with what they
// removed (stream CONFIG).
const (
	KindCustomerErasureRequested = "config.customer.erasure_requested"
	KindCustomerErasureCompleted = "config.customer.erasure_completed"
)

func CustomerErasureRequested(tenant string) string {
	return fromKind(KindCustomerErasureRequested, tenant)
}
func CustomerErasureCompleted(tenant string) string {
	return fromKind(KindCustomerErasureCompleted, tenant)
}

// Durable consumers of erasure requests, one per service holding a
// customer's data.
const (
	ConsumerSessionsErasure  = "sessions-erasure"
	ConsumerReportingErasure = "reporting-erasure"
	ConsumerOutboundErasure  = "outbound-sender-erasure"
)
