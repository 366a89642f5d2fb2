// Package partition spreads distribution's tenants over its replicas with
// an elastic partitioned consumer group (orbit.go's pcgroups, on
// JetStream priority groups with pinning).
//
// The inputs (task requests, session ends, agents' replies) are gathered
// from their streams into DISTRIBUTION_INPUT; the group's work-queue stream
// sources it with the tenant's partition (the subject transform
// {{Partition(n,1)}} over the tenant token) put in front of each subject.
// The group's members are the live replicas; pcgroups balances the
// partitions over them and gives each member a consumer of its own
// partitions only. Which replica owns which partition follows from the
// group's configuration alone, which every replica watches: a replica
// loads a tenant's state when its partition becomes its own and drops it
// when it is no longer.
//
// Membership follows liveness: every replica renews its key in the
// DISTRIBUTION_REPLICAS bucket (keys age out after TTL); each replica adds
// itself to the group, and drops members whose key aged out, with the
// compare-and-set updates pcgroups makes on the configuration (whichever
// replica gets there first wins; the others find it done). No replica is
// a leader.
package partition

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/pcgroups"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// Inputs are the subjects distribution consumes, each ending with the
// tenant token, and the durable consumer each had before the group (its
// name stays the dead-letter subject of its messages).
var Inputs = []struct{ Stream, Filter, Consumer string }{
	{subjects.StreamWorkflow, subjects.AllTenants(subjects.KindWorkflowTaskRequested), subjects.ConsumerDistributionTasks},
	{subjects.StreamSession, subjects.AllTenants(subjects.KindSessionEnded), subjects.ConsumerDistributionSessions},
	{subjects.StreamOutbound, subjects.AllTenants(subjects.KindOutboundRequested), subjects.ConsumerDistributionReplies},
}

// Config of the group.
type Config struct {
	// Replica is this replica's member name: letters, digits, - and _.
	Replica string
	// Partitions: how many; every replica must use the same number.
	Partitions int
	// TTL: a replica that has not renewed its key for this long is
	// dropped from the group (it renews every TTL/4).
	TTL time.Duration
	// AckWait of the group's consumers; pcgroups derives from it how soon
	// a dropped member's consumer goes and a new owner's starts.
	AckWait time.Duration
	// MaxAckPending bounds the messages a replica holds unsettled.
	MaxAckPending int
	// StreamReplicas of the input stream and the replicas bucket.
	StreamReplicas int
	// InputMaxAge: how long DISTRIBUTION_INPUT keeps what it gathered (it
	// is sourced into the group's work queue as it arrives).
	InputMaxAge time.Duration
}

var replicaName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if !replicaName.MatchString(c.Replica) {
		errs = append(errs, fmt.Errorf("replica id %q: want 1 to 64 letters, digits, - or _", c.Replica))
	}
	if c.Partitions < 1 || c.Partitions > 1024 {
		errs = append(errs, fmt.Errorf("partitions %d: want 1 to 1024", c.Partitions))
	}
	if c.TTL < time.Second {
		errs = append(errs, fmt.Errorf("replica ttl %v: want at least 1s", c.TTL))
	}
	if c.AckWait < time.Second {
		errs = append(errs, fmt.Errorf("group ack wait %v: want at least 1s", c.AckWait))
	}
	return errors.Join(errs...)
}

// Group is one replica's view of the consumer group.
type Group struct {
	cfg      Config
	js       jetstream.JetStream
	replicas jetstream.KeyValue
	groups   jetstream.KeyValue
	log      *slog.Logger
	// beforeConsume, when set (tests), runs before each consume and
	// fails it with its error.
	beforeConsume func() error
}

// Setup ensures the input stream, the group (its configuration and work
// queue) and the replicas bucket.
func Setup(ctx context.Context, js jetstream.JetStream, cfg Config, log *slog.Logger) (*Group, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.InputMaxAge <= 0 {
		cfg.InputMaxAge = 24 * time.Hour
	}
	sc := jetstream.StreamConfig{
		Name:        subjects.StreamDistributionInput,
		Description: "Distribution's inputs gathered from their streams, for its partitioned consumer group",
		Storage:     jetstream.FileStorage, Retention: jetstream.LimitsPolicy, Replicas: max(cfg.StreamReplicas, 1),
		MaxAge: cfg.InputMaxAge, Discard: jetstream.DiscardOld,
	}
	for _, in := range Inputs {
		sc.Sources = append(sc.Sources, &jetstream.StreamSource{Name: in.Stream, FilterSubject: in.Filter})
	}
	if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", sc.Name, err)
	}
	// The durable consumers a single replica read the inputs with before:
	// the group reads them now (DISTRIBUTION_INPUT sources the streams
	// from their start, and handling is idempotent).
	for _, in := range Inputs {
		if err := js.DeleteConsumer(ctx, in.Stream, in.Consumer); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("delete the former consumer %s: %w", in.Consumer, err)
		}
	}
	var filters []pcgroups.PartitioningFilter
	for _, in := range Inputs {
		filters = append(filters, pcgroups.PartitioningFilter{Filter: in.Filter, PartitioningWildcards: []int{1}})
	}
	if _, err := pcgroups.CreateElastic(ctx, js, subjects.StreamDistributionInput, subjects.GroupDistribution,
		uint(cfg.Partitions), filters, 0, 0); err != nil {
		return nil, fmt.Errorf("ensure consumer group %s (every replica must use the same number of partitions): %w", subjects.GroupDistribution, err)
	}
	groups, err := js.KeyValue(ctx, subjects.BucketElasticGroups)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", subjects.BucketElasticGroups, err)
	}
	replicas, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: subjects.BucketDistributionReplicas, Description: "Live distribution replicas (keys renewed; aged out: dropped from the group)",
		History: 1, TTL: cfg.TTL, Storage: jetstream.MemoryStorage, Replicas: max(cfg.StreamReplicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("ensure bucket %s: %w", subjects.BucketDistributionReplicas, err)
	}
	return &Group{cfg: cfg, js: js, replicas: replicas, groups: groups, log: log}, nil
}

// configKey is the group's key in the pcgroups bucket.
var configKey = subjects.StreamDistributionInput + "." + subjects.GroupDistribution

// Owned lists the partitions member owns under the group configuration.
func Owned(c *pcgroups.ElasticConsumerGroupConfig, member string) []int {
	var out []int
	for _, f := range pcgroups.ElasticGetPartitionFilters(*c, member) {
		n, _, _ := strings.Cut(f, ".")
		if p, err := strconv.Atoi(n); err == nil && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// Run joins the group and consumes until ctx ends: handle gets every
// message of the partitions this replica owns (it must settle it), and
// owned is called with this replica's partitions whenever they change
// (from the group's configuration, before or as pcgroups moves the
// consumer). On return the replica has left the group.
func (g *Group) Run(ctx context.Context, handle func(jetstream.Msg), owned func([]int)) error {
	// Be live before joining, so no other replica drops us at once.
	if err := g.heartbeat(ctx); err != nil {
		return err
	}
	watcher, err := g.groups.Watch(ctx, configKey)
	if err != nil {
		return fmt.Errorf("watch group %s: %w", configKey, err)
	}
	defer func() { _ = watcher.Stop() }()
	consume := func() (pcgroups.ConsumerGroupConsumeContext, error) {
		if g.beforeConsume != nil {
			if err := g.beforeConsume(); err != nil {
				return nil, err
			}
		}
		return pcgroups.ElasticConsume(ctx, g.js, subjects.StreamDistributionInput, subjects.GroupDistribution, g.cfg.Replica, handle,
			jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy, AckWait: g.cfg.AckWait, MaxAckPending: max(g.cfg.MaxAckPending, 1), MaxDeliver: -1})
	}
	cc, err := consume()
	if err != nil {
		return fmt.Errorf("join group %s as %s: %w", subjects.GroupDistribution, g.cfg.Replica, err)
	}
	defer func() { g.leave(cc) }()
	// done is the running consume's end; nil while none runs (a consume
	// again that failed: the next tick tries again).
	done := cc.Done()
	again := func(why string, err error) {
		g.log.WarnContext(ctx, why+": consuming again", "replica", g.cfg.Replica, "err", err)
		if cc != nil {
			cc.Stop()
		}
		cc, done = nil, nil
		next, err := consume()
		if err != nil {
			g.log.WarnContext(ctx, "consume again (retrying at the next tick)", "err", err)
			return
		}
		cc, done = next, next.Done()
	}
	g.reconcile(ctx)

	tick := time.NewTicker(g.cfg.TTL / 4)
	defer tick.Stop()
	var mine []int
	first := true
	stalled := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-done:
			// The consume ended on its own, or a consume again failed
			// and left it stopped: join again (now or at the next
			// tick) rather than leave the partitions by exiting.
			if ctx.Err() != nil {
				return nil
			}
			again("the consumer group's consume ended", err)
			stalled = 0
		case <-tick.C:
			if err := g.heartbeat(ctx); err != nil && ctx.Err() == nil {
				g.log.WarnContext(ctx, "renew replica key", "replica", g.cfg.Replica, "err", err)
			}
			g.reconcile(ctx)
			if cc == nil {
				again("no consume running", nil)
				continue
			}
			// Two ticks in a row with its partitions unread: consume
			// again (a new pcgroups consumer, which creates the server's
			// consumer anew).
			if stalled = g.stalled(ctx, stalled, len(mine) > 0); stalled >= 2 {
				again("this replica's consumer is gone or nobody pulls from it", nil)
				stalled = 0
			}
		case e, ok := <-watcher.Updates():
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return errors.New("group configuration watch ended")
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			var c pcgroups.ElasticConsumerGroupConfig
			if err := json.Unmarshal(e.Value(), &c); err != nil {
				return fmt.Errorf("group configuration %s: %w", configKey, err)
			}
			now := Owned(&c, g.cfg.Replica)
			if first || !slices.Equal(now, mine) {
				first = false
				mine = now
				owned(slices.Clone(now))
			}
		}
	}
}

// stalled counts the ticks in a row at which this replica owns
// partitions (owns: as the watched group configuration last said) and yet
// nothing reads them: its consumer on the group's work
// queue is gone (the server deletes one no client pulled from for its
// inactivity threshold, AckWait: a NATS node down, the process paused),
// or no pull request waits on it while messages do. pcgroups does not
// notice either: its consume stops on "consumer deleted", and it
// recreates a consumer only when it holds none. A read that fails counts
// as nothing (NATS itself is in trouble; the next tick asks again).
func (g *Group) stalled(ctx context.Context, before int, owns bool) int {
	if !owns {
		return 0
	}
	cons, err := g.js.Consumer(ctx, subjects.StreamDistributionGroup, g.cfg.Replica)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return before + 1
	}
	if err != nil {
		return before
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return before
	}
	if info.NumWaiting == 0 && info.NumPending > 0 && info.NumAckPending == 0 {
		return before + 1
	}
	return 0
}

func (g *Group) heartbeat(ctx context.Context) error {
	_, err := g.replicas.Put(ctx, g.cfg.Replica, []byte(time.Now().UTC().Format(time.RFC3339Nano)))
	return err
}

// reconcile makes the membership the live replicas: this one added, those
// whose key aged out dropped (and their consumers deleted, so the new
// owners' consumers of those partitions can start at once).
func (g *Group) reconcile(ctx context.Context) {
	c, err := pcgroups.GetElasticConsumerGroupConfig(ctx, g.js, subjects.StreamDistributionInput, subjects.GroupDistribution)
	if err != nil {
		g.log.WarnContext(ctx, "read group configuration", "err", err)
		return
	}
	live := map[string]bool{}
	lister, err := g.replicas.ListKeys(ctx)
	if err != nil {
		g.log.WarnContext(ctx, "list live replicas", "err", err)
		return
	}
	for k := range lister.Keys() {
		live[k] = true
	}
	live[g.cfg.Replica] = true
	var dead []string
	for _, m := range c.Members {
		if live[m] {
			continue
		}
		// A listing may miss a key renewed while it lists: ask for it.
		if _, err := g.replicas.Get(ctx, m); errors.Is(err, jetstream.ErrKeyNotFound) {
			dead = append(dead, m)
		}
	}
	if len(dead) > 0 {
		if _, err := pcgroups.DeleteMembers(ctx, g.js, subjects.StreamDistributionInput, subjects.GroupDistribution, dead); err != nil {
			g.log.DebugContext(ctx, "drop members (another replica may have)", "members", dead, "err", err)
			return
		}
		g.log.InfoContext(ctx, "dropped replicas that stopped renewing their key", "members", dead)
		for _, m := range dead {
			_ = g.js.DeleteConsumer(ctx, subjects.StreamDistributionGroup, m)
		}
		return // the next round adds this one if need be, at the new revision
	}
	if !slices.Contains(c.Members, g.cfg.Replica) {
		if _, err := pcgroups.AddMembers(ctx, g.js, subjects.StreamDistributionInput, subjects.GroupDistribution, []string{g.cfg.Replica}); err != nil {
			g.log.DebugContext(ctx, "join membership (retrying)", "err", err)
			return
		}
		g.log.InfoContext(ctx, "joined the distribution replicas", "replica", g.cfg.Replica)
	}
}

// leave stops consuming and takes this replica out of the group, so the
// others take its partitions over at once rather than after TTL.
func (g *Group) leave(cc pcgroups.ConsumerGroupConsumeContext) {
	if cc != nil {
		cc.Stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = g.replicas.Delete(ctx, g.cfg.Replica)
	for range 5 {
		_, err := pcgroups.DeleteMembers(ctx, g.js, subjects.StreamDistributionInput, subjects.GroupDistribution, []string{g.cfg.Replica})
		if err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = g.js.DeleteConsumer(ctx, subjects.StreamDistributionGroup, g.cfg.Replica)
}
