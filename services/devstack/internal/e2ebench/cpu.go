package e2ebench

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

// The devstack runs every service, NATS and FerretDB in this process, so
// one CPU profile of the measured load says where the machine's cores went.
// cpuShare attributes each sample to a component: the frame nearest the
// leaf that belongs to one (a sessions handler waiting in the Mongo driver
// counts for sessions; the FerretDB code answering it counts for FerretDB).

// component names the part of the stack a function belongs to, or "".
func component(fn string) string {
	switch {
	case strings.Contains(fn, "FerretDB/FerretDB") || strings.HasPrefix(fn, "modernc.org/sqlite"):
		return "FerretDB (SQLite)"
	case strings.HasPrefix(fn, "github.com/nats-io/nats-server"):
		return "NATS server (JetStream)"
	case strings.HasPrefix(fn, "runtime.gcBgMarkWorker"), strings.HasPrefix(fn, "runtime.bgsweep"), strings.HasPrefix(fn, "runtime.bgscavenge"):
		return "Go GC (background)"
	case strings.Contains(fn, "/services/devstack/internal/e2ebench"):
		return "load generator and scripted agents"
	case strings.Contains(fn, "/services/twilio-sim"):
		return "Twilio emulator"
	}
	if i := strings.Index(fn, "/switchboard/services/"); i >= 0 {
		name := fn[i+len("/switchboard/services/"):]
		if j := strings.IndexAny(name, "/."); j >= 0 {
			name = name[:j]
		}
		if name != "devstack" {
			return name
		}
	}
	return ""
}

type share struct {
	name  string
	cores float64
}

const ferret = "FerretDB (SQLite)"

// ferretCommand names the MongoDB command a FerretDB frame serves
// ("update" for its MsgUpdate handler), or "".
func ferretCommand(fn string) string {
	const h = "FerretDB/internal/handler.(*Handler).Msg"
	i := strings.Index(fn, h)
	if i < 0 {
		return ""
	}
	cmd := fn[i+len(h):]
	if j := strings.IndexByte(cmd, '.'); j >= 0 { // a closure: MsgFind.func2
		cmd = cmd[:j]
	}
	return strings.ToLower(cmd)
}

// cpuShare reads a CPU profile and returns the cores each component used
// over the profile's duration, largest first, and the total.
func cpuShare(prof []byte) ([]share, float64, error) {
	p, err := profile.Parse(bytes.NewReader(prof))
	if err != nil {
		return nil, 0, err
	}
	idx := -1
	for i, st := range p.SampleType {
		if st.Type == "cpu" {
			idx = i
		}
	}
	if idx < 0 || p.DurationNanos <= 0 {
		return nil, 0, fmt.Errorf("not a CPU profile")
	}
	by := map[string]int64{}
	var total int64
	for _, s := range p.Sample {
		v := s.Value[idx]
		total += v
		name, cmd := "", ""
		for _, loc := range s.Location {
			for _, ln := range loc.Line { // innermost inlined function first
				if ln.Function == nil {
					continue
				}
				if name == "" {
					name = component(ln.Function.Name)
				}
				if cmd == "" {
					cmd = ferretCommand(ln.Function.Name)
				}
			}
		}
		switch {
		case name == "":
			name = "other (runtime, shared packages)"
		case name == ferret && cmd != "":
			by[ferret+"/"+cmd] += v
		}
		by[name] += v
	}
	secs := time.Duration(p.DurationNanos).Seconds()
	out := make([]share, 0, len(by))
	for n, v := range by {
		out = append(out, share{n, time.Duration(v).Seconds() / secs})
	}
	// Largest first; FerretDB's commands right under it.
	top := func(s share) string { return strings.SplitN(s.name, "/", 2)[0] }
	sort.Slice(out, func(i, j int) bool {
		ti, tj := top(out[i]), top(out[j])
		if ti != tj {
			return by[ti] > by[tj]
		}
		if (ti == out[i].name) != (tj == out[j].name) {
			return ti == out[i].name
		}
		return out[i].cores > out[j].cores
	})
	return out, time.Duration(total).Seconds() / secs, nil
}

// reportCPU prints where the cores went during the measured load.
// perSec of what (unit) gives the CPU per unit.
func reportCPU(w io.Writer, prof []byte, cpus int, perSec float64, unit string) {
	shares, total, err := cpuShare(prof)
	if err != nil {
		fmt.Fprintf(w, "\nCPU by component: profile unreadable: %v\n", err)
		return
	}
	fmt.Fprintf(w, "\nCPU by component during the load (this process: every service, NATS and FerretDB): %.2f of %d cores busy", total, cpus)
	if perSec > 0 {
		fmt.Fprintf(w, ", %.2f ms of CPU per %s", total*1000/perSec, unit)
	}
	fmt.Fprintf(w, "\n  %-40s %7s %7s\n", "component", "cores", "share")
	for _, s := range shares {
		name := s.name
		if cmd, ok := strings.CutPrefix(name, ferret+"/"); ok {
			name = "  of which " + cmd
		}
		fmt.Fprintf(w, "  %-40s %7.2f %6.0f%%\n", name, s.cores, 100*s.cores/total)
	}
}
