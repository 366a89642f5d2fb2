package engine_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"

	"github.com/switchboard-cc/switchboard/services/distribution/internal/engine"
)

// nopStore and nopPub cost nothing, so the benchmark measures the engine.
type nopStore struct{}

func (nopStore) Save(context.Context, *engine.Task) error                   { return nil }
func (nopStore) Known(context.Context, string, string) (bool, error)        { return false, nil }
func (nopStore) Get(context.Context, string, string) (*engine.Task, error)  { return nil, nil }
func (nopStore) LoadOpen(context.Context) ([]*engine.Task, error)           { return nil, nil }
func (nopStore) MarkSessionEnded(context.Context, string, string) error     { return nil }
func (nopStore) SessionEnded(context.Context, string, string) (bool, error) { return false, nil }
func (nopPub) Emit(context.Context, string, proto.Message, string) error    { return nil }

type nopPub struct{}

// BenchmarkOfferDecision: agents all busy, tasks waiting; one session ends,
// which frees its agent, and the engine offers that agent the best waiting
// task it may take. The timed call is that EndSession (the decision and
// the bookkeeping around it); the agent then accepts and a new task arrives,
// untimed, so the queue stays at its size. Reported: mean and p50/p99 of
// the timed call. Four services, a quarter of the tasks needing a skill
// half of the agents have.
func BenchmarkOfferDecision(b *testing.B) {
	for _, tasks := range []int{1000, 2000, 5000, 10000} {
		b.Run(fmt.Sprintf("tasks=%d/agents=2000", tasks), func(b *testing.B) { benchOffer(b, tasks, 2000) })
	}
}

func benchOffer(b *testing.B, nTasks, nAgents int) {
	ctx := context.Background()
	e := engine.New(nopPub{}, nopStore{}, slog.New(slog.DiscardHandler))
	defer e.Close()
	services := make([]engine.ServiceInfo, 4)
	for i := range services {
		services[i] = engine.ServiceInfo{ID: fmt.Sprintf("s%d", i), Name: "S", RONATimeout: time.Hour, MaxParallelTasks: 1}
	}
	seq := 0
	newT := func() *engine.Task {
		seq++
		task := newTask(fmt.Sprintf("t%07d", seq), services[seq%len(services)])
		task.Priority = int32(seq % 3)
		if seq%4 == 0 {
			task.RequiredSkills = []string{"de"}
		}
		return task
	}
	// Agents take the first tasks; what arrives after them waits.
	for i := range nAgents {
		info := agentInfo(fmt.Sprintf("a%05d", i), 1, services[i%len(services)].ID, services[(i+1)%len(services)].ID)
		if i%2 == 0 {
			info.Skills = []string{"de"}
		}
		if _, err := e.SetPresence(ctx, tenant, info, distributionv1.Presence_PRESENCE_AVAILABLE); err != nil {
			b.Fatal(err)
		}
	}
	// session of the task each agent holds
	holding := map[string]string{}
	accept := func(agent string) {
		st := e.State(tenant, agent)
		for _, o := range st.GetOffers() {
			if _, err := e.Accept(ctx, tenant, agent, o.GetOfferId()); err != nil {
				b.Fatal(err)
			}
			holding[agent] = o.GetSessionId()
		}
	}
	for len(holding) < nAgents {
		before := len(holding)
		for range nAgents {
			if err := e.Enqueue(ctx, newT()); err != nil {
				b.Fatal(err)
			}
		}
		for i := range nAgents {
			accept(fmt.Sprintf("a%05d", i))
		}
		if len(holding) == before {
			break
		}
	}
	waiting := func() int {
		n := 0
		for _, s := range services {
			n += int(e.QueueStatistics(tenant, s).GetWaiting())
		}
		return n
	}
	for w := waiting(); w < nTasks; w++ {
		if err := e.Enqueue(ctx, newT()); err != nil {
			b.Fatal(err)
		}
	}
	agents := make([]string, 0, len(holding))
	for a := range holding {
		agents = append(agents, a)
	}
	slices.Sort(agents)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		a := agents[i%len(agents)]
		start := time.Now()
		if err := e.EndSession(ctx, tenant, holding[a], "done"); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		b.StopTimer()
		delete(holding, a)
		accept(a)
		if _, ok := holding[a]; !ok {
			b.Fatalf("agent %s was offered nothing with %d tasks waiting", a, waiting())
		}
		if err := e.Enqueue(ctx, newT()); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}
