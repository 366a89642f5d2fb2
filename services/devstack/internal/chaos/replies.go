package chaos

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// lostReplies are the replies an agent saw acknowledged that never
// reached the emulator.
func (d *driver) lostReplies(atEmulator map[int64]int) []int64 {
	var seqs []int64
	for seq := range d.replies {
		if atEmulator[seq] == 0 {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	return seqs
}

// diagnoseReplies reports, for each lost reply, its events on the
// OUTBOUND stream (requested, sent, failed with its code and reason,
// statuses): whether outbound-sender never saw the request, refused it,
// or lost it after.
func (d *driver) diagnoseReplies(ctx context.Context, seqs []int64) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	js, closeJS, err := d.jetStream()
	if err != nil {
		return nil, err
	}
	defer closeJS()
	want := map[int64]bool{}
	for _, s := range seqs {
		want[s] = true
	}
	requests := map[int64]string{}  // reply → request id
	events := map[string][]string{} // request id → events
	if err := readStream(ctx, js, subjects.StreamOutbound, func(m *jetstream.RawStreamMsg) {
		ev := protoEvent(m)
		if seq, ok := parseSeq(ev.fields["body"], "r"); ok && want[seq] && ev.kind == subjects.KindOutboundRequested {
			requests[seq] = ev.fields["request_id"]
		}
		if id := ev.fields["request_id"]; id != "" {
			s := ev.kind + "@" + ev.at.Format("15:04:05.000")
			if c := ev.fields["error_code"]; c != "" {
				s += " code " + c
			}
			if msg := ev.fields["error_message"]; msg != "" {
				s += " (" + msg + ")"
			}
			events[id] = append(events[id], s)
		}
	}); err != nil {
		return nil, err
	}
	var out []string
	for _, seq := range seqs {
		id, ok := requests[seq]
		if !ok {
			out = append(out, fmt.Sprintf("reply r%d: no outbound.message.requested on OUTBOUND (sessions acknowledged a request it never published?)", seq))
			continue
		}
		out = append(out, fmt.Sprintf("reply r%d, request %s: %s", seq, id, strings.Join(events[id], " ")))
	}
	return out, nil
}
