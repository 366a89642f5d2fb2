package chaos

import (
	"context"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// checkOffers replays the DISTRIBUTION stream, distribution's own record
// of every offer, and checks the two promises it makes whatever dies: a
// task is never offered to a second agent while an offer of it is open,
// and no agent ever holds more than its capacity in open offers and
// accepted tasks. (The agents' own count of their chats is only their
// view: a frame lost with a sessions replica's connection leaves it
// behind, which is counted, not judged.)
func (d *driver) checkOffers(ctx context.Context) error {
	js, closeJS, err := d.jetStream()
	if err != nil {
		return err
	}
	defer closeJS()
	type open struct{ offer, agent string }
	offered := map[string]open{}          // task → its open offer
	holds := map[string]map[string]bool{} // agent → tasks offered to or accepted by them
	seenOffer := map[string]bool{}
	accepted := map[string]string{} // task → the agent who accepted it
	hold := func(agent, task string) {
		if holds[agent] == nil {
			holds[agent] = map[string]bool{}
		}
		holds[agent][task] = true
		if n := len(holds[agent]); n > d.cfg.Capacity {
			d.violation(&d.rep.CapacityViolations, "distribution gave %s %d tasks at once, capacity %d (%s)", agent, n, d.cfg.Capacity, task)
		}
	}
	release := func(task string) {
		delete(offered, task)
		delete(accepted, task)
		for _, tasks := range holds {
			delete(tasks, task)
		}
	}
	defer func() {
		d.mu.Lock()
		d.rep.Counts["offers read back from DISTRIBUTION"] = len(seenOffer)
		d.mu.Unlock()
	}()
	return readStream(ctx, js, subjects.StreamDistribution, func(m *jetstream.RawStreamMsg) {
		ev := protoEvent(m)
		task, agent, offer := ev.fields["task_id"], ev.fields["agent_id"], ev.fields["offer_id"]
		switch ev.kind {
		case subjects.KindTaskOffered:
			if seenOffer[offer] {
				return // the same offer published again (a redelivery)
			}
			seenOffer[offer] = true
			if o, ok := offered[task]; ok {
				d.violation(&d.rep.DoubleOffers, "task %s offered to %s while its offer %s to %s was open", task, agent, o.offer, o.agent)
			}
			offered[task] = open{offer: offer, agent: agent}
			hold(agent, task)
		case subjects.KindTaskAccepted:
			delete(offered, task)
			if prev, ok := accepted[task]; ok && prev != agent {
				d.violation(&d.rep.DoubleAssigned, "task %s accepted by %s while %s held it", task, agent, prev)
			}
			accepted[task] = agent
			hold(agent, task)
		case subjects.KindTaskDeclined, subjects.KindTaskOfferTimedOut:
			if o, ok := offered[task]; ok && o.offer == offer {
				delete(offered, task)
				delete(holds[o.agent], task)
			}
		case subjects.KindTaskCanceled, subjects.KindTaskCompleted, subjects.KindTaskTransferred:
			release(task)
		}
	})
}

// jetStream connects to the stack's NATS as the harness's user, to read
// streams back after the run.
func (d *driver) jetStream() (jetstream.JetStream, func(), error) {
	nc, err := nats.Connect(d.st.natsURL, nats.UserInfo(natsUser, d.st.password))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return js, nc.Close, nil
}
