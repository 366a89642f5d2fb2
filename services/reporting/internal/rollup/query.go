package rollup

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"
)

// Dimensions a summary groups by.
const (
	DimService = "service"
	DimChannel = "channel"
	DimEntry   = "entry"
	DimAgent   = "agent"
	DimOutcome = "outcome"
	DimBucket  = "bucket"
)

// ErrInvalid wraps every rejection of a query.
var ErrInvalid = errors.New("invalid summary query")

// MaxRange is the longest range a query covers.
const MaxRange = 366 * 24 * time.Hour

// Query asks for a summary.
type Query struct {
	Tenant   string
	From, To time.Time
	Loc      *time.Location
	GroupBy  []string
	// Bucket is the bucket's granularity when grouping by bucket.
	Bucket string
}

// Group is one row of a summary.
type Group struct {
	BucketStart time.Time
	Row
	// Outcomes counts the sessions by outcome (session.v1.Outcome).
	Outcomes [16]int64
}

// Normalize validates q, rounds its range outward to 15 minutes and
// fills defaults; errors wrap ErrInvalid.
func (q *Query) Normalize() error {
	if q.Loc == nil {
		q.Loc = time.UTC
	}
	seen := map[string]bool{}
	for _, g := range q.GroupBy {
		switch g {
		case DimService, DimChannel, DimEntry, DimAgent, DimOutcome, DimBucket:
		default:
			return fmt.Errorf("%w: unknown dimension %q (service, channel, entry, agent, outcome, bucket)", ErrInvalid, g)
		}
		if seen[g] {
			return fmt.Errorf("%w: dimension %q named twice", ErrInvalid, g)
		}
		seen[g] = true
	}
	switch q.Bucket {
	case "":
		q.Bucket = GDay
	case G15m, GHour, GDay, GMonth:
	default:
		return fmt.Errorf("%w: unknown bucket %q (15m, hour, day, month)", ErrInvalid, q.Bucket)
	}
	if q.From.IsZero() || q.To.IsZero() {
		return fmt.Errorf("%w: from and to are required", ErrInvalid)
	}
	q.From = q.From.UTC().Truncate(15 * time.Minute)
	if t := q.To.UTC().Truncate(15 * time.Minute); t.Before(q.To) {
		q.To = t.Add(15 * time.Minute)
	} else {
		q.To = t
	}
	if !q.From.Before(q.To) {
		return fmt.Errorf("%w: from %s is not before to %s", ErrInvalid, q.From.Format(time.RFC3339), q.To.Format(time.RFC3339))
	}
	if q.To.Sub(q.From) > MaxRange {
		return fmt.Errorf("%w: the range is %s, longer than 366 days", ErrInvalid, q.To.Sub(q.From))
	}
	return nil
}

func (q *Query) has(dim string) bool {
	for _, g := range q.GroupBy {
		if g == dim {
			return true
		}
	}
	return false
}

type interval struct{ from, to time.Time }

// intervals are the buckets of the range (one interval when not grouped
// by bucket); the first and last may be partial.
func (q *Query) intervals() []interval {
	if !q.has(DimBucket) {
		return []interval{{q.From, q.To}}
	}
	var out []interval
	for st := Floor(q.Bucket, q.Loc, q.From); st.Before(q.To); st = Next(q.Bucket, q.Loc, st) {
		out = append(out, interval{maxTime(st, q.From), minTime(Next(q.Bucket, q.Loc, st), q.To)})
	}
	return out
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// cover lists the documents whose buckets exactly tile [from, to) (both
// on the 15-minute grid), the largest that fit first: months and days of
// the stored zones and of the tenant's zones within their periods
// (spans), then UTC hours, then 15 minutes.
func (s *Store) cover(tenant string, from, to time.Time, spans []span) []string {
	var ids []string
	for t := from; t.Before(to); {
		next := t.Add(15 * time.Minute)
		id := DocID(tenant, G15m, time.UTC, t)
	pick:
		for _, g := range []string{GMonth, GDay} {
			for _, sp := range spans {
				if st := Floor(g, sp.loc, t); st.Equal(t) {
					if e := Next(g, sp.loc, st); !e.After(to) && sp.holds(st, e) {
						next, id = e, DocID(tenant, g, sp.loc, st)
						break pick
					}
				}
			}
		}
		if next.Equal(t.Add(15*time.Minute)) && t.Equal(Floor(GHour, time.UTC, t)) && !t.Add(time.Hour).After(to) {
			next, id = t.Add(time.Hour), DocID(tenant, GHour, time.UTC, t)
		}
		ids = append(ids, id)
		t = next
	}
	return ids
}

// Summarize merges the rollups of q's range into groups, ordered by
// bucket, then service, channel, entry, agent and outcome; it also says
// how many documents it read.
func (s *Store) Summarize(ctx context.Context, q Query) ([]Group, int, error) {
	if err := q.Normalize(); err != nil {
		return nil, 0, err
	}
	spans, err := s.spans(ctx, q.Tenant)
	if err != nil {
		return nil, 0, err
	}
	ivs := q.intervals()
	covers := make([][]string, len(ivs))
	var all []string
	seen := map[string]bool{}
	for i, iv := range ivs {
		covers[i] = s.cover(q.Tenant, iv.from, iv.to, spans)
		for _, id := range covers[i] {
			if !seen[id] {
				seen[id] = true
				all = append(all, id)
			}
		}
	}
	docs, err := s.read(ctx, all)
	if err != nil {
		return nil, 0, err
	}
	type gkey struct {
		t int64
		Dims
	}
	groups := map[gkey]*Group{}
	for i, iv := range ivs {
		for _, id := range covers[i] {
			d := docs[id]
			if d == nil {
				continue
			}
			err := decodeRows(d.Rows, func(r *Row) {
				k := gkey{Dims: Dims{}}
				if q.has(DimBucket) {
					k.t = Floor(q.Bucket, q.Loc, iv.from).Unix()
				}
				if q.has(DimService) {
					k.Service = r.Service
				}
				if q.has(DimChannel) {
					k.Channel = r.Channel
				}
				if q.has(DimEntry) {
					k.Entry = r.Entry
				}
				if q.has(DimAgent) {
					k.Agent = r.Agent
				}
				if q.has(DimOutcome) {
					k.Outcome = r.Outcome
				}
				g := groups[k]
				if g == nil {
					g = &Group{Row: Row{Dims: k.Dims}}
					if q.has(DimBucket) {
						g.BucketStart = time.Unix(k.t, 0).UTC()
					}
					groups[k] = g
				}
				// Outcome counts need the outcome though it is not a
				// grouped dimension: keep them beside the counters.
				g.Merge(r)
				if r.Outcome >= 0 && int(r.Outcome) < len(g.Outcomes) {
					g.Outcomes[r.Outcome] += r.C[Sessions]
				}
			})
			if err != nil {
				return nil, 0, fmt.Errorf("read rollup %s: %w", id, err)
			}
		}
	}
	out := make([]Group, 0, len(groups))
	for _, g := range groups {
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].BucketStart.Equal(out[j].BucketStart) {
			return out[i].BucketStart.Before(out[j].BucketStart)
		}
		return lessDims(out[i].Dims, out[j].Dims)
	})
	return out, len(all), nil
}
