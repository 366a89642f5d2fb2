package chaos

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A soak samples, every Config.SampleEvery, what must stay flat under a
// steady load: each process's resident memory and open files (from
// /proc), each service's goroutines and Go heap (its /metrics), and the
// streams' messages and bytes and their consumers' backlog (JetStream's
// own figures). The samples go to DataDir/samples.csv; the report shows
// each series' first, last and largest value.

// sample is one series' value at one moment.
type sample struct {
	at     time.Duration // since the load started
	series string        // "sessions-1 rss_mb", "stream SESSION bytes_mb", ...
	value  float64
}

// sampler collects the samples of a run.
type sampler struct {
	st      *stack
	every   time.Duration
	start   time.Time
	samples []sample
	out     io.Writer // the CSV, when kept
	say     func(string, ...any)
}

func (s *sampler) run(ctx context.Context) {
	if s.every <= 0 {
		return
	}
	nc, err := nats.Connect(s.st.natsURL, nats.UserInfo(natsUser, s.st.password), nats.MaxReconnects(-1))
	if err != nil {
		s.say("sampler: connect to NATS: %v; streams are not sampled", err)
	}
	var js jetstream.JetStream
	if nc != nil {
		defer nc.Close()
		js, _ = jetstream.New(nc)
	}
	t := time.NewTicker(s.every)
	defer t.Stop()
	s.take(ctx, js)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.take(ctx, js)
		}
	}
}

// take records one sample of every series.
func (s *sampler) take(ctx context.Context, js jetstream.JetStream) {
	at := time.Since(s.start).Round(time.Second)
	var got []sample
	add := func(series string, v float64) { got = append(got, sample{at, series, v}) }
	for _, p := range s.st.all() {
		pid := p.pid()
		if pid == 0 {
			continue
		}
		if rss, ok := procRSS(pid); ok {
			add(p.name+" rss_mb", rss)
		}
		if n, ok := procFDs(pid); ok {
			add(p.name+" open_files", float64(n))
		}
		if p.metrics != "" {
			m := scrape(ctx, p.metrics, "go_goroutines", "go_memstats_heap_inuse_bytes")
			if v, ok := m["go_goroutines"]; ok {
				add(p.name+" goroutines", v)
			}
			if v, ok := m["go_memstats_heap_inuse_bytes"]; ok {
				add(p.name+" heap_mb", v/1e6)
			}
		}
	}
	// The harness itself holds FerretDB and the emulator.
	if rss, ok := procRSS(os.Getpid()); ok {
		add("harness+ferretdb+emulator rss_mb", rss)
	}
	add("harness+ferretdb+emulator goroutines", float64(runtime.NumGoroutine()))
	if js != nil {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		streams := js.ListStreams(sctx)
		for info := range streams.Info() {
			name := info.Config.Name
			add("stream "+name+" msgs", float64(info.State.Msgs))
			add("stream "+name+" bytes_mb", float64(info.State.Bytes)/1e6)
			str, err := js.Stream(sctx, name)
			if err != nil {
				continue
			}
			var pending, acks uint64
			cons := str.ListConsumers(sctx)
			for ci := range cons.Info() {
				pending += ci.NumPending
				acks += uint64(ci.NumAckPending)
				if ci.Config.Durable != "" {
					add("consumer "+name+"/"+ci.Config.Durable+" backlog", float64(ci.NumPending)+float64(ci.NumAckPending))
				}
			}
			add("stream "+name+" consumers_pending", float64(pending))
			add("stream "+name+" consumers_ack_pending", float64(acks))
		}
		cancel()
	}
	s.samples = append(s.samples, got...)
	if s.out != nil {
		w := csv.NewWriter(s.out)
		for _, g := range got {
			_ = w.Write([]string{strconv.Itoa(int(g.at.Seconds())), g.series, strconv.FormatFloat(g.value, 'f', 1, 64)})
		}
		w.Flush()
	}
}

// summary is one line per series: first, last and largest value, in the
// order the series were first seen.
func (s *sampler) summary() []string {
	type span struct{ first, last, max float64 }
	var order []string
	seen := map[string]*span{}
	for _, x := range s.samples {
		sp := seen[x.series]
		if sp == nil {
			sp = &span{first: x.value, max: x.value}
			seen[x.series] = sp
			order = append(order, x.series)
		}
		sp.last, sp.max = x.value, max(sp.max, x.value)
	}
	out := make([]string, 0, len(order))
	for _, name := range order {
		sp := seen[name]
		out = append(out, fmt.Sprintf("%-52s %10.1f %10.1f %10.1f", name, sp.first, sp.last, sp.max))
	}
	return out
}

// procRSS is a process's resident memory in MB (Linux /proc).
func procRSS(pid int) (float64, bool) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024, err == nil
		}
	}
	return 0, false
}

// procFDs counts a process's open files (Linux /proc).
func procFDs(pid int) (int, bool) {
	es, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(es), err == nil
}

// scrape reads the named gauges from a Prometheus text page.
func scrape(ctx context.Context, addr string, names ...string) map[string]float64 {
	out := map[string]float64{}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return out
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return out
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		for _, n := range names {
			if rest, ok := strings.CutPrefix(line, n+" "); ok {
				if v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64); err == nil {
					out[n] = v
				}
			}
		}
	}
	return out
}
