package distribution

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	workflowv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/workflow/v1"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/natsembed/natstest"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/directory"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/engine"
)

// A customer's second chat is offered first to the agent who took the
// first (recorded in DISTRIBUTION_LAST_AGENT over real NATS), not to the
// agent idle longest; a service without preferred_agent_within ignores it.
func TestPreferredAgentFromLastAgentBucket(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	srv := natstest.Start(t)
	b, err := bus.Connect(srv.ClientURL(), t.Name(), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	last, err := openLastAgents(ctx, b.JS, 1, log)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	go last.run(rctx)

	for _, tc := range []struct {
		name   string
		within *durationpb.Duration
		want   string
	}{
		{"preferred", durationpb.New(7 * 24 * time.Hour), "bob"},
		{"off", nil, "alice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc := configClients{services: map[string]*configv1.Service{"acme/sales": {
				Id: "sales", TenantId: "acme", Name: "Sales",
				Distribution: &configv1.DistributionSettings{RonaTimeout: durationpb.New(time.Hour), MaxParallelTasks: 2, PreferredAgentWithin: tc.within},
			}}}
			pub := &recPub{}
			eng := engine.New(pub, &memStore{known: map[string]bool{}, ended: map[string]bool{}}, log)
			t.Cleanup(eng.Close)
			eng.SetLastAgents(last)
			h := handlers{eng: eng, dir: directory.New(cc, cc, time.Minute), last: last, log: log}
			tenant := "acme" + tc.name
			cc.services[tenant+"/sales"] = cc.services["acme/sales"]
			request := func(task, session string) {
				t.Helper()
				ev := taskRequest(func(e *workflowv1.TaskRequested) {
					e.TenantId, e.TaskId, e.SessionId, e.RequiredSkills, e.RequestedAt = tenant, task, session, nil, nil
				})
				if err := h.taskRequested(ctx, message(t, subjects.WorkflowTaskRequested(tenant), ev)); err != nil {
					t.Fatal(err)
				}
			}
			presence := func(id string, p distributionv1.Presence) {
				t.Helper()
				if _, err := eng.SetPresence(ctx, tenant, engine.AgentInfo{ID: id, Eligible: true, Services: []string{"sales"}}, p); err != nil {
					t.Fatal(err)
				}
			}
			set := func(id string) { t.Helper(); presence(id, distributionv1.Presence_PRESENCE_AVAILABLE) }
			// Only bob is there for the first chat; he takes it and ends it.
			set("bob")
			request("tk_1", "ss_1")
			o := lastOffer(t, pub, "tk_1")
			if _, err := eng.Accept(ctx, tenant, "bob", o.GetOfferId()); err != nil {
				t.Fatal(err)
			}
			if err := eng.EndSession(ctx, tenant, "ss_1", "done"); err != nil {
				t.Fatal(err)
			}
			// alice arrives and has been idle longer than bob since.
			set("alice")
			deadline := time.Now().Add(10 * time.Second)
			for {
				agent, _, err := last.Get(ctx, tenant, taskRequest(nil).GetConversation())
				if err != nil {
					t.Fatal(err)
				}
				if agent == "bob" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("bob never recorded as the customer's last agent")
				}
				time.Sleep(5 * time.Millisecond)
			}
			presence("bob", distributionv1.Presence_PRESENCE_AWAY)
			set("bob") // bob's idle time restarts: alice idle longest
			request("tk_2", "ss_2")
			o = lastOffer(t, pub, "tk_2")
			if o.GetAgentId() != tc.want || o.GetPreferred() != (tc.want == "bob") {
				t.Errorf("second chat offered to %s (preferred %v), want %s", o.GetAgentId(), o.GetPreferred(), tc.want)
			}
		})
	}
}

func lastOffer(t *testing.T, pub *recPub, task string) *distributionv1.TaskOffered {
	t.Helper()
	var got *distributionv1.TaskOffered
	for _, ev := range pub.all() {
		if o, ok := ev.(*distributionv1.TaskOffered); ok && o.GetTaskId() == task {
			got = o
		}
	}
	if got == nil {
		t.Fatalf("%s not offered", task)
	}
	return got
}
