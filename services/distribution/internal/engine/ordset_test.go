package engine

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// The ordered set against a sorted slice, over random inserts and deletes.
func TestOrdsetMatchesASortedSlice(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	s := newOrdset(func(a, b int) bool { return a < b })
	var want []int
	for i := range 5000 {
		x := rng.IntN(500)
		if i, found := slices.BinarySearch(want, x); found {
			if !s.Delete(x) {
				t.Fatalf("Delete(%d) = false, want true", x)
			}
			want = slices.Delete(want, i, i+1)
		} else {
			if s.Delete(x) {
				t.Fatalf("Delete(%d) of a missing item = true", x)
			}
			s.Insert(x)
			want = slices.Insert(want, i, x)
		}
		if s.Len() != len(want) {
			t.Fatalf("step %d: Len = %d, want %d", i, s.Len(), len(want))
		}
		if r := rng.IntN(500); s.Rank(r) != func() int { i, _ := slices.BinarySearch(want, r); return i }() {
			t.Fatalf("step %d: Rank(%d) wrong", i, r)
		}
	}
	var got []int
	s.Ascend(func(x int) bool { got = append(got, x); return true })
	if !slices.Equal(got, want) {
		t.Fatalf("Ascend = %v, want %v", got, want)
	}
	if m, ok := s.Min(); !ok || (len(want) > 0 && m != want[0]) {
		t.Errorf("Min = %d, %v; want %d", m, ok, want[0])
	}
	n := 0
	s.Ascend(func(int) bool { n++; return n < 3 })
	if n != 3 {
		t.Errorf("Ascend went on after false: %d calls", n)
	}
}
