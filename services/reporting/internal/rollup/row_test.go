package rollup

import (
	"reflect"
	"testing"
)

// Rows written before segments and costs were counted (encoding version
// 1: the same layout, fewer counters) read as they were, those counters
// zero; version 2 keeps them, and version 3 StartedByAgent.
func TestRowsOfEitherVersionRead(t *testing.T) {
	old := &Row{Dims: Dims{Service: "sales", Agent: "alice", Channel: 1, Outcome: 1}}
	old.C[Sessions], old.C[InboundMessages], old.C[SL0+5] = 3, 7, 2
	old.H[HWait].AddN(12000, 2)
	now := *old
	now.C[SegmentsIn], now.C[SegmentsOut], now.C[CostMicros] = 5, 9, 212000
	v3 := now
	v3.C[StartedByAgent] = 4
	for _, c := range []struct {
		name    string
		version byte
		row     *Row
	}{{"version 1", 1, old}, {"version 2", 2, &now}, {"version 3", 3, &v3}} {
		b := encodeRows([]*Row{c.row})
		b[0] = c.version
		var got []*Row
		if err := decodeRows(b, func(r *Row) { got = append(got, r) }); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(got) != 1 || !reflect.DeepEqual(got[0].C, c.row.C) || got[0].Dims != c.row.Dims || got[0].H[HWait].Count() != 2 {
			t.Errorf("%s: read %+v, want %+v", c.name, got, c.row)
		}
	}
	if err := decodeRows([]byte{4}, func(*Row) {}); err == nil {
		t.Error("an unknown version was read")
	}
}
