package rollup

import (
	"encoding/binary"
	"errors"
	"time"

	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"

	"github.com/switchboard-cc/switchboard/services/reporting/internal/records"
)

// Dims is one combination of the dimensions a rollup is kept by.
type Dims struct {
	Service, Entry, Agent string
	Channel, Outcome      int32
}

// Counters of a row.
const (
	Sessions = iota
	Queued
	Answered
	AbandonedInQueue
	InboundMessages
	OutboundMessages
	Offers
	Declines
	Ronas
	FailedSends
	WaitSumMS
	ReplySumMS
	HandleSumMS
	WorkflowSumMS
	// SL0… count answered sessions whose wait was at most SLThresholds[i].
	SL0
	// SegmentsIn and SegmentsOut are Twilio message segments; CostMicros
	// their estimated cost in micro-units (1e-6) of the tenant's currency,
	// priced when the session was rolled up. Rows written before these
	// existed (encoding version 1) read as zero.
	SegmentsIn  = SL0 + 6
	SegmentsOut = SegmentsIn + 1
	CostMicros  = SegmentsIn + 2
	// StartedByAgent counts the sessions an agent started (a
	// business-initiated conversation): they are not in Sessions (nor so
	// in the outcomes), Queued, Answered, AbandonedInQueue, the wait, the
	// service level, first reply or time in workflow, which are about
	// customers who wrote in. Rows written before it (encoding versions 1
	// and 2) read as zero. SummaryRow.started_by_agent shows it.
	StartedByAgent = SegmentsIn + 3
	NumCounters    = SegmentsIn + 4
)

// SLThresholds are the service-level thresholds (seconds) counted
// exactly; others are interpolated from the wait histogram.
var SLThresholds = [6]int64{10, 20, 30, 60, 120, 300}

// Histograms of a row.
const (
	HWait = iota
	HReply
	HHandle
	HWorkflow
	NumHists
)

// Row is what is known of the sessions of one dimension combination:
// counters, sums and histograms, all merged by adding.
type Row struct {
	Dims
	C [NumCounters]int64
	H [NumHists]Hist
}

// Merge adds o's counts to r.
func (r *Row) Merge(o *Row) {
	for i := range r.C {
		r.C[i] += o.C[i]
	}
	for i := range r.H {
		r.H[i].Merge(&o.H[i])
	}
}

// Session is one ended session's contribution to the rollups: the rows it
// adds to, the bucket time it counts in (its start), and the SESSION
// stream sequence of its SessionEnded, which orders applications.
type Session struct {
	Seq    uint64
	Tenant string
	// key is "<tenant>/<session>".
	key  string
	At   time.Time
	Rows []Row
}

func ms(from, to time.Time) (int64, bool) {
	if from.IsZero() || to.IsZero() {
		return 0, false
	}
	return max(to.Sub(from).Milliseconds(), 0), true
}

// FromRecord is a session's contribution, from its record and its
// SessionEnded (which decides the outcome and end even if the record has
// not applied it yet). d may be nil (no record at all).
func FromRecord(seq uint64, d *records.Doc, ev *sessionv1.SessionEnded) Session {
	if d == nil {
		d = &records.Doc{}
	}
	ended := d.EndedAt
	if ev.GetEndedAt() != nil {
		ended = ev.GetEndedAt().AsTime()
	}
	at := d.StartedAt
	for _, t := range []time.Time{d.QueuedAt, d.AcceptedAt, ended} {
		if at.IsZero() {
			at = t
		}
	}
	agent := d.Agent()
	if ev.GetAgentId() != "" {
		agent = ev.GetAgentId()
	}
	service := d.ServiceID
	if service == "" {
		service = ev.GetServiceId()
	}
	base := Dims{Service: service, Entry: d.EntryID, Channel: d.Channel, Outcome: int32(ev.GetOutcome())}
	main := Row{Dims: base}
	main.Agent = agent
	c := &main.C
	// A session an agent started was never a customer's contact waiting
	// for an agent: distribution queues and accepts its task at once (no
	// offer), so its queue, wait, first reply (the agent's opening
	// message) and workflow figures would be noise in the customers'.
	// Its messages, segments, cost and handle time count as any.
	agentStarted := d.StartedByAgentID != ""
	if agentStarted {
		c[StartedByAgent] = 1
	} else {
		c[Sessions] = 1
	}
	// The end's own count of the transcript when it has one (the record
	// may not have taken it yet), else the record's.
	msgs := d.Messages()
	if m := records.FromEnd(ev); m != nil {
		msgs = *m
	}
	c[InboundMessages], c[OutboundMessages] = msgs.In, msgs.Out
	c[Offers], c[FailedSends] = int64(len(d.Offers)), int64(len(d.FailedSends))
	c[SegmentsIn] = msgs.SegIn
	_, c[SegmentsOut] = d.Segments()
	// Declines and RONAs count against the agent named; ones recorded
	// before agents were kept stay on the session's row.
	c[Declines] = max(int64(len(d.Declines)-len(d.DeclinedBy)), 0)
	c[Ronas] = max(int64(len(d.Ronas)-len(d.RonaBy)), 0)
	if !d.QueuedAt.IsZero() && !agentStarted {
		c[Queued] = 1
		if d.AcceptedAt.IsZero() {
			c[AbandonedInQueue] = 1
		}
	}
	if w, ok := ms(d.QueuedAt, d.AcceptedAt); ok && !agentStarted {
		c[Answered] = 1
		c[WaitSumMS] = w
		main.H[HWait].AddN(w, 1)
		for i, s := range SLThresholds {
			if w <= s*1000 {
				c[SL0+i] = 1
			}
		}
	}
	if v, ok := ms(d.AcceptedAt, d.FirstReplyAt); ok && !agentStarted {
		c[ReplySumMS] = v
		main.H[HReply].AddN(v, 1)
	}
	if v, ok := ms(d.AcceptedAt, ended); ok {
		c[HandleSumMS] = v
		main.H[HHandle].AddN(v, 1)
	}
	if v, ok := ms(d.StartedAt, d.QueuedAt); ok && !agentStarted {
		c[WorkflowSumMS] = v
		main.H[HWorkflow].AddN(v, 1)
	}
	rows := []Row{main}
	byAgent := map[string]int{}
	add := func(a string, counter int) {
		i, ok := byAgent[a]
		if !ok {
			r := Row{Dims: base}
			r.Agent = a
			i = len(rows)
			rows = append(rows, r)
			byAgent[a] = i
		}
		rows[i].C[counter]++
	}
	for _, x := range d.DeclinedBy {
		add(x.Agent, Declines)
	}
	for _, x := range d.RonaBy {
		add(x.Agent, Ronas)
	}
	return Session{Seq: seq, Tenant: ev.GetTenantId(), key: ev.GetTenantId() + "/" + ev.GetSessionId(), At: at.UTC(), Rows: rows}
}

// The rows of a rollup document are stored as one binary value: per row
// its dimensions, its non-zero counters and its histograms as unsigned
// varints. Hundreds of rows, each with four histograms, would be tens of
// thousands of BSON fields, which FerretDB would parse and rewrite as JSON
// on every read and update; as one value they are a few kilobytes.
//
// Version 2 added counters (segments and cost) after the others, version
// 3 StartedByAgent; the counters are written as a bit mask and the
// non-zero values, so documents of an earlier version read as they are,
// with the later counters zero. (A reader of an earlier version refuses a
// later one rather than misreading it: it would not know the new bits.)
const encodingVersion = 3

func encodeRows(rows []*Row) []byte {
	b := []byte{encodingVersion}
	b = binary.AppendUvarint(b, uint64(len(rows)))
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	for _, r := range rows {
		str(r.Service)
		str(r.Entry)
		str(r.Agent)
		b = binary.AppendVarint(b, int64(r.Channel))
		b = binary.AppendVarint(b, int64(r.Outcome))
		var mask uint64
		for i, v := range r.C {
			if v != 0 {
				mask |= 1 << i
			}
		}
		b = binary.AppendUvarint(b, mask)
		for _, v := range r.C {
			if v != 0 {
				b = binary.AppendVarint(b, v)
			}
		}
		for i := range r.H {
			h := &r.H[i]
			b = binary.AppendUvarint(b, uint64(h.Off))
			b = binary.AppendUvarint(b, uint64(len(h.N)))
			for _, n := range h.N {
				b = binary.AppendUvarint(b, uint64(n))
			}
		}
	}
	return b
}

var errCorrupt = errors.New("rollup rows are corrupt")

func decodeRows(b []byte, fn func(*Row)) error {
	if len(b) == 0 {
		return nil
	}
	if b[0] < 1 || b[0] > encodingVersion {
		return errCorrupt
	}
	b = b[1:]
	bad := false
	uv := func() uint64 {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			bad = true
			return 0
		}
		b = b[n:]
		return v
	}
	sv := func() int64 {
		v, n := binary.Varint(b)
		if n <= 0 {
			bad = true
			return 0
		}
		b = b[n:]
		return v
	}
	str := func() string {
		n := uv()
		if bad || n > uint64(len(b)) {
			bad = true
			return ""
		}
		s := string(b[:n])
		b = b[n:]
		return s
	}
	count := uv()
	for i := uint64(0); i < count && !bad; i++ {
		r := &Row{}
		r.Service, r.Entry, r.Agent = str(), str(), str()
		r.Channel, r.Outcome = int32(sv()), int32(sv())
		mask := uv()
		for j := range r.C {
			if mask&(1<<j) != 0 {
				r.C[j] = sv()
			}
		}
		for j := range r.H {
			off, n := uv(), uv()
			if bad || off > MaxBin || n > MaxBin+1 {
				bad = true
				break
			}
			if n > 0 {
				r.H[j].Off, r.H[j].N = int(off), make([]int64, n)
				for k := range r.H[j].N {
					r.H[j].N[k] = int64(uv())
				}
			}
		}
		if bad {
			break
		}
		fn(r)
	}
	if bad {
		return errCorrupt
	}
	return nil
}
