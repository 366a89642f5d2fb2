package subjects

import (
	"fmt"
	"slices"
	"strings"
)

// KV buckets (JetStream key-value stores) and who writes them.
const (
	// BucketRevocations holds revoked sign-ins (pkg/revocation): config
	// writes, every service that accepts user tokens reads.
	BucketRevocations = "AUTH_REVOCATIONS"
	// BucketSignIns holds failed sign-in counts (config only).
	BucketSignIns = "AUTH_SIGNINS"
)

// Access is what one service does on NATS: the streams it creates at
// start-up, the streams it consumes, the subjects it publishes, the core
// subjects it subscribes to and the KV buckets it reads or writes.
type Access struct {
	Service   string
	Ensures   []string
	Consumes  []string
	Publishes []string
	// Subscribes are core-NATS subjects (besides its own reply inboxes).
	Subscribes []string
	ReadsKV    []string
	WritesKV   []string
}

// Accesses is every service's access, the source of the per-service NATS
// users in deploy/nats and of the devstack's own users.
func Accesses() []Access {
	return []Access{
		{Service: "chat-handler", Ensures: []string{StreamChat, StreamDeadLetter}, Consumes: []string{StreamConfig},
			Publishes: []string{DomainChat + ".>"}, ReadsKV: []string{BucketRevocations}, WritesKV: []string{BucketChatHandlerUp}},
		// config reads the erasure completions back from CONFIG.
		{Service: "config", Ensures: []string{StreamConfig}, Consumes: []string{StreamConfig},
			Publishes: []string{DomainConfig + ".>"}, WritesKV: []string{BucketRevocations, BucketSignIns}},
		{Service: "sessions",
			Ensures:  []string{StreamChat, StreamSession, StreamDistribution, StreamOutbound, StreamWorkflow, StreamDeadLetter, StreamTranscript},
			Consumes: []string{StreamChat, StreamDistribution, StreamOutbound, StreamWorkflow, StreamConfig, StreamTranscript},
			Publishes: []string{DomainSession + ".>", AllTenants(KindOutboundRequested), AgentPushAll, SessionPushAll, DomainTranscript + ".>",
				// Retention and erasure purge transcripts.
				"$JS.API.STREAM.PURGE." + StreamTranscript,
				"$JS.API.STREAM.PURGE.KV_" + BucketCustomerHistory, AllTenants(KindCustomerErasureCompleted)},
			Subscribes: []string{AgentPushAll, SessionPushAll}, ReadsKV: []string{BucketRevocations}, WritesKV: []string{BucketAgentSessions, BucketCustomerHistory, BucketSessionStates}},
		{Service: "workflow-runner",
			Ensures:  []string{StreamSession, StreamWorkflow, StreamOutbound, StreamDistribution, StreamWorkflowTimers, StreamDeadLetter},
			Consumes: []string{StreamSession, StreamDistribution, StreamWorkflowTimers, StreamConfig},
			// Timers are scheduled on wftimer.> and cancelled by purging their subject.
			Publishes: []string{DomainWorkflow + ".>", AllTenants(KindOutboundRequested), DomainWorkflowTimer + ".>", "$JS.API.STREAM.PURGE." + StreamWorkflowTimers},
			ReadsKV:   []string{BucketRevocations}, WritesKV: []string{BucketWorkflowInstances}},
		// Replicas share the tenants through a partitioned consumer group
		// (pcgroups: its configuration bucket and work-queue stream) and
		// forward gRPC calls to each other on DistributionRPC.
		{Service: "distribution",
			Ensures:    []string{StreamDistribution, StreamWorkflow, StreamSession, StreamOutbound, StreamDeadLetter, StreamDistributionInput, StreamDistributionGroup},
			Consumes:   []string{StreamWorkflow, StreamSession, StreamOutbound, StreamConfig, StreamDistributionGroup},
			Publishes:  []string{DomainDistribution + ".>", DistributionRPC},
			Subscribes: []string{DistributionRPC}, ReadsKV: []string{BucketRevocations},
			WritesKV: []string{BucketDistributionPresence, BucketDistributionTasks, BucketDistributionReplicas, BucketElasticGroups, BucketDistributionLastAgent}},
		{Service: "outbound-sender", Ensures: []string{StreamOutbound, StreamChat, StreamDeadLetter},
			Consumes:   []string{StreamOutbound, StreamChat, StreamConfig},
			Publishes:  []string{DomainOutbound + ".>", AllTenants(KindCustomerErasureCompleted)},
			Subscribes: []string{AllTenants(KindOutboundContactUpdated)}, ReadsKV: []string{BucketRevocations}},
		{Service: "reporting", Ensures: []string{StreamSession, StreamDistribution, StreamOutbound, StreamWorkflow, StreamDeadLetter},
			Consumes:  []string{StreamSession, StreamDistribution, StreamOutbound, StreamWorkflow, StreamConfig},
			Publishes: []string{AllTenants(KindCustomerErasureCompleted)}, ReadsKV: []string{BucketRevocations}},
	}
}

// Permissions are NATS publish and subscribe allow-lists.
type Permissions struct {
	Publish   []string
	Subscribe []string
}

// Permissions derives the service's NATS allow-lists: the JetStream API
// calls for its own streams and consumers only, its own subjects, its
// dead letters, and its reply inboxes. Anything else is refused by the
// server: a service cannot read another domain's stream it does not
// consume, nor inject events into one it does not own.
func (a Access) Permissions() Permissions {
	pub := []string{"$JS.API.INFO"}
	add := func(ps ...string) {
		for _, p := range ps {
			if !slices.Contains(pub, p) {
				pub = append(pub, p)
			}
		}
	}
	for _, s := range a.Ensures {
		add("$JS.API.STREAM.INFO."+s, "$JS.API.STREAM.CREATE."+s, "$JS.API.STREAM.UPDATE."+s)
	}
	for _, s := range a.Consumes {
		add("$JS.API.STREAM.INFO."+s,
			"$JS.API.CONSUMER.CREATE."+s, "$JS.API.CONSUMER.CREATE."+s+".>",
			"$JS.API.CONSUMER.DURABLE.CREATE."+s+".>",
			"$JS.API.CONSUMER.INFO."+s+".>", "$JS.API.CONSUMER.DELETE."+s+".>",
			"$JS.API.CONSUMER.MSG.NEXT."+s+".>", "$JS.ACK."+s+".>",
			// Reading one message by subject or sequence: nothing a
			// consumer of the stream could not read anyway.
			"$JS.API.DIRECT.GET."+s, "$JS.API.DIRECT.GET."+s+".>", "$JS.API.STREAM.MSG.GET."+s)
	}
	if len(a.Consumes) > 0 {
		add(DomainDeadLetter + ".>")
	}
	kv := func(b string) string { return "KV_" + b }
	for _, b := range append(slices.Clone(a.ReadsKV), a.WritesKV...) {
		s := kv(b)
		add("$JS.API.STREAM.INFO."+s, "$JS.API.STREAM.CREATE."+s, "$JS.API.STREAM.UPDATE."+s,
			"$JS.API.CONSUMER.CREATE."+s, "$JS.API.CONSUMER.CREATE."+s+".>",
			"$JS.API.CONSUMER.DELETE."+s+".>", "$JS.API.CONSUMER.MSG.NEXT."+s+".>",
			"$JS.API.DIRECT.GET."+s, "$JS.API.DIRECT.GET."+s+".>", "$JS.API.STREAM.MSG.GET."+s, "$JS.FC."+s+".>")
	}
	for _, b := range a.WritesKV {
		add("$KV." + b + ".>")
	}
	add(a.Publishes...)
	sub := append([]string{"_INBOX.>"}, a.Subscribes...)
	return Permissions{Publish: pub, Subscribe: sub}
}

// NATSConf renders the services' users for a nats-server configuration:
// each user's password comes from an environment variable of the NATS
// server (for example CHAT_HANDLER_NATS_PASSWORD, from a Kubernetes
// Secret), never from the file.
func NATSConf() string {
	var b strings.Builder
	b.WriteString("# Per-service NATS users for Switchboard, generated from pkg/subjects\n")
	b.WriteString("# (Accesses); after changing them run: UPDATE_NATS_CONF=1 go test ./pkg/subjects -run NATSConf\n")
	b.WriteString("# Include it in the server's configuration:  include \"switchboard-users.conf\"\n")
	b.WriteString("# and give the server each <SERVICE>_NATS_PASSWORD variable.\n")
	b.WriteString("authorization {\n  users = [\n")
	for _, a := range Accesses() {
		p := a.Permissions()
		fmt.Fprintf(&b, "    {\n      user: %q\n      password: $%s\n      permissions: {\n", a.Service, PasswordVar(a.Service))
		fmt.Fprintf(&b, "        publish: { allow: %s }\n", quoteList(p.Publish))
		fmt.Fprintf(&b, "        subscribe: { allow: %s }\n", quoteList(p.Subscribe))
		b.WriteString("      }\n    }\n")
	}
	b.WriteString("  ]\n}\n")
	return b.String()
}

// PasswordVar is the environment variable that holds a service's NATS
// password on the server (and NATS_PASSWORD in the service itself).
func PasswordVar(service string) string {
	return strings.ToUpper(strings.ReplaceAll(service, "-", "_")) + "_NATS_PASSWORD"
}

func quoteList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = fmt.Sprintf("%q", x)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
