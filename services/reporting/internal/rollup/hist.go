package rollup

import (
	"math"
	"time"
)

// Gamma is the ratio between the bounds of a histogram bin: bin 0 holds
// durations under one second, bin i ≥ 1 holds [1s·γ^(i-1), 1s·γ^i).
// A percentile is reported as its bin's geometric midpoint, so it is
// within √γ−1 ≈ 4.9% of a value in that bin (under a second: 0.5 s).
const Gamma = 1.1

// MaxBin bounds the bins: 1s·1.1^300 is far beyond any session.
const MaxBin = 300

var lnGamma = math.Log(Gamma)

// Hist is a log-scale histogram of durations: counts per bin from Off.
// Two histograms merge by adding counts bin by bin, so a histogram of a
// union of sessions is exact whatever way it is split into documents.
type Hist struct {
	Off int
	N   []int64
}

// Bin is the bin of a duration in milliseconds.
func Bin(ms int64) int {
	if ms < 1000 {
		return 0
	}
	b := 1 + int(math.Floor(math.Log(float64(ms)/1000)/lnGamma))
	return min(b, MaxBin)
}

// lower and upper bound bin b, in milliseconds.
func lower(b int) float64 {
	if b == 0 {
		return 0
	}
	return 1000 * math.Pow(Gamma, float64(b-1))
}

func upper(b int) float64 { return 1000 * math.Pow(Gamma, float64(b)) }

// Mid is the value bin b reports.
func Mid(b int) time.Duration {
	if b == 0 {
		return 500 * time.Millisecond
	}
	return time.Duration(1000*math.Pow(Gamma, float64(b)-0.5)) * time.Millisecond
}

// AddN counts n durations of ms milliseconds.
func (h *Hist) AddN(ms int64, n int64) { h.addBin(Bin(ms), n) }

func (h *Hist) addBin(b int, n int64) {
	if n == 0 {
		return
	}
	switch {
	case len(h.N) == 0:
		h.Off, h.N = b, []int64{n}
		return
	case b < h.Off:
		grown := make([]int64, len(h.N)+h.Off-b)
		copy(grown[h.Off-b:], h.N)
		h.N, h.Off = grown, b
	case b >= h.Off+len(h.N):
		h.N = append(h.N, make([]int64, b-h.Off-len(h.N)+1)...)
	}
	h.N[b-h.Off] += n
}

// Merge adds o's counts.
func (h *Hist) Merge(o *Hist) {
	for i, n := range o.N {
		h.addBin(o.Off+i, n)
	}
}

// Count is the number of durations counted.
func (h *Hist) Count() int64 {
	var t int64
	for _, n := range h.N {
		t += n
	}
	return t
}

// Quantile is the q-quantile (0 < q ≤ 1): the midpoint of the bin holding
// the ceil(q·count)-th smallest duration; 0 for an empty histogram.
func (h *Hist) Quantile(q float64) time.Duration {
	total := h.Count()
	if total == 0 {
		return 0
	}
	rank := max(int64(math.Ceil(q*float64(total))), 1)
	var seen int64
	for i, n := range h.N {
		seen += n
		if seen >= rank {
			return Mid(h.Off + i)
		}
	}
	return Mid(h.Off + len(h.N) - 1)
}

// Within estimates how many durations are at most ms: whole bins below
// it, and of the bin holding it the share its logarithmic position gives.
func (h *Hist) Within(ms int64) float64 {
	var t float64
	for i, n := range h.N {
		b := h.Off + i
		lo, hi := lower(b), upper(b)
		switch {
		case hi <= float64(ms):
			t += float64(n)
		case lo > float64(ms):
		case b == 0:
			t += float64(n) * float64(ms) / hi
		default:
			t += float64(n) * math.Log(float64(ms)/lo) / math.Log(hi/lo)
		}
	}
	return t
}
