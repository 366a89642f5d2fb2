package e2ebench

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"
)

func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(float64(len(ds)-1) * p)
	return ds[i]
}

func ms(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0f", float64(d)/float64(time.Millisecond))
	}
}

type latRow struct {
	name string
	ds   []time.Duration
}

func (l latRow) write(w io.Writer) {
	slices.Sort(l.ds)
	if len(l.ds) == 0 {
		fmt.Fprintf(w, "  %-38s %7d %9s %9s %9s %9s\n", l.name, 0, "-", "-", "-", "-")
		return
	}
	fmt.Fprintf(w, "  %-38s %7d %9s %9s %9s %9s\n", l.name, len(l.ds), ms(pct(l.ds, .5)), ms(pct(l.ds, .95)), ms(pct(l.ds, .99)), ms(l.ds[len(l.ds)-1]))
}

// at returns the sample closest to t.
func at(samples []sample, t time.Time) sample {
	best := samples[0]
	for _, s := range samples {
		if s.at.Sub(t).Abs() < best.at.Sub(t).Abs() {
			best = s
		}
	}
	return best
}

func abbrev(consumer string) string {
	short := map[string]string{"sessions": "ses", "workflow-runner": "wfr", "distribution": "dst", "outbound-sender": "out", "reporting": "rep"}
	st := stageOf(consumer)
	p := strings.TrimPrefix(consumer, st+"-")
	if len(p) > 5 {
		p = p[:5]
	}
	if s, ok := short[st]; ok {
		return s + "." + p
	}
	return consumer
}

func (r *run) report(w io.Writer, samples []sample, names []string, emulatorMsgs int, ceil float64, ceilLat []time.Duration) {
	cfg := r.cfg
	r.mu.RLock()
	defer r.mu.RUnlock()
	sms, wa := 0, 0
	for i := range r.customers {
		if r.lanes[r.customers[i].lane].whatsapp {
			wa++
		} else {
			sms++
		}
	}
	fsync := "off"
	if cfg.Fsync {
		fsync = "on (sync_interval: always, as make run)"
	}
	fmt.Fprintf(w, "\n== end-to-end: %s\n", describeLoad(cfg))
	fmt.Fprintf(w, "devstack in-process, NATS fsync %s, FerretDB/SQLite; %d CPUs\n", fsync, runtime.NumCPU())
	fmt.Fprintf(w, "%d customers (%d SMS on the Conversations path over %d numbers, %d WhatsApp on the Messaging path over %d senders), %d agents; agents answer every %d. message within %.0f%% of each sender's pace\n",
		cfg.Customers, sms, cfg.SMSLanes, wa, cfg.WhatsAppLanes, cfg.Agents, cfg.ReplyEvery, cfg.ReplyPace*100)

	var (
		sent, ok200, errs                        int
		codes                                    = map[int]int{}
		atAgentOnce, lost, dup, strayAtAgent     int
		transcripts, transcriptDup               int
		repliesReq, repliesAck, replyOnce        int
		replyLost, replyDup                      int
		l200, lTranscript, lFrame, lAck, lTwilio []time.Duration
		inWindowFrames                           int
		late                                     []time.Duration
	)
	for _, m := range r.recs {
		if m.sent.IsZero() {
			continue
		}
		sent++
		late = append(late, m.sent.Sub(m.due))
		switch {
		case m.code == http.StatusOK:
			ok200++
			l200 = append(l200, m.answered.Sub(m.sent))
			switch {
			case m.frames == 0:
				lost++
			case m.frames > 1:
				dup++
			default:
				atAgentOnce++
			}
		case m.code < 0:
			errs++
		default:
			codes[m.code]++
			if m.frames > 0 {
				strayAtAgent++
			}
		}
		if m.transcripts > 0 {
			transcripts++
			lTranscript = append(lTranscript, m.transcript.Sub(m.sent))
			if m.transcripts > 1 {
				transcriptDup++
			}
		}
		if m.frames > 0 {
			lFrame = append(lFrame, m.frame.Sub(m.sent))
			if !m.frame.After(r.measureEnd) {
				inWindowFrames++
			}
		}
		if !m.replySent.IsZero() {
			repliesReq++
			if !m.replyAck.IsZero() {
				repliesAck++
				lAck = append(lAck, m.replyAck.Sub(m.replySent))
				switch {
				case m.replySends == 0:
					replyLost++
				case m.replySends > 1:
					replyDup++
				default:
					replyOnce++
				}
			}
			if m.replySends > 0 {
				lTwilio = append(lTwilio, m.replyAtTwilio.Sub(m.replySent))
			}
		}
	}
	window := r.measureEnd.Sub(r.measureStart).Seconds()
	fmt.Fprintf(w, "\nwebhooks: %d sent in %.1fs (%.1f/s), %d answered 200", sent, window, float64(sent)/window, ok200)
	if len(codes) > 0 {
		fmt.Fprintf(w, ", other answers %v", codes)
	}
	if errs > 0 {
		fmt.Fprintf(w, ", %d transport errors", errs)
	}
	if cfg.Mode == "fixed" {
		slices.Sort(late)
		fmt.Fprintf(w, "; %d left more than 5 ms late (p99 %s ms)", r.late.Load(), ms(pct(late, .99)))
	}
	fmt.Fprintln(w)
	var finalPending uint64
	if len(samples) > 0 {
		for _, c := range samples[len(samples)-1].c {
			finalPending += c.Pending
		}
	}
	fmt.Fprintf(w, "at agents: %d of the %d accepted messages exactly once, %d duplicated, %d not at an agent when the drain (at most %s) ended", atAgentOnce, ok200, dup, lost, cfg.Drain)
	if lost > 0 && finalPending > 0 {
		fmt.Fprintf(w, " (%d events still pending in consumers then: behind, not necessarily lost)", finalPending)
	}
	if strayAtAgent > 0 {
		fmt.Fprintf(w, ", %d not answered 200 but delivered", strayAtAgent)
	}
	fmt.Fprintf(w, "\ntranscripts: %d stored (session.message.added), %d more than once\n", transcripts, transcriptDup)
	fmt.Fprintf(w, "replies: %d sent by agents, %d acknowledged; at the emulator %d exactly once, %d lost, %d duplicated; %d skipped to stay within the senders' pace; %d messages at the emulator in all (agents stop answering when the drain ends)\n",
		repliesReq, repliesAck, replyOnce, replyLost, replyDup, r.repliesSkipped.Load(), emulatorMsgs)
	if len(r.anomaly) > 0 {
		var ks []string
		for k := range r.anomaly {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		fmt.Fprintf(w, "noticed:")
		for _, k := range ks {
			fmt.Fprintf(w, " [%s ×%d]", k, r.anomaly[k])
		}
		fmt.Fprintln(w)
	}

	fmt.Fprintf(w, "\nlatency (ms)                              n       p50       p95       p99       max\n")
	for _, l := range []latRow{
		{"webhook → 200 (chat-handler, PubAck)", l200},
		{"webhook → transcript (sessions event)", lTranscript},
		{"webhook → agent's message.added frame", lFrame},
		{"agent reply → ack (request durable)", lAck},
		{"agent reply → Twilio REST call (sim)", lTwilio},
	} {
		l.write(w)
	}

	// Stage throughput over the measured window.
	fmt.Fprintf(w, "\nstage throughput, measured window (%.0fs)     msgs/s  pending@end  max pending  pending slope/s  redelivered\n", window)
	fmt.Fprintf(w, "  %-40s %8.1f\n", "chat-handler (webhooks answered 200)", float64(okInWindow(r.recs, r.measureEnd))/window)
	fmt.Fprintf(w, "  %-40s %8.1f\n", "agents (message frames)", float64(inWindowFrames)/window)
	stageRate := map[string]float64{}
	if len(samples) > 1 {
		s0, s1 := at(samples, r.measureStart), at(samples, r.measureEnd)
		dt := s1.at.Sub(s0.at).Seconds()
		cur := ""
		for _, n := range names {
			st := stageOf(n)
			if st != cur {
				cur = st
				var tot float64
				for _, m := range names {
					if stageOf(m) == st && dt > 0 {
						tot += float64(s1.c[m].Done-s0.c[m].Done) / dt
					}
				}
				stageRate[st] = tot
				fmt.Fprintf(w, "  %-40s %8.1f\n", st+" (all its consumers)", tot)
			}
			var maxP uint64
			var xs, ys []float64
			for _, s := range samples {
				if s.at.Before(r.measureStart) || s.at.After(r.drainEnd) {
					continue
				}
				maxP = max(maxP, s.c[n].Pending)
				if !s.at.After(r.measureEnd) {
					xs = append(xs, s.at.Sub(r.measureStart).Seconds())
					ys = append(ys, float64(s.c[n].Pending))
				}
			}
			rate := 0.0
			if dt > 0 {
				rate = float64(s1.c[n].Done-s0.c[n].Done) / dt
			}
			fmt.Fprintf(w, "    %-38s %8.1f %12d %12d %16.2f %12d\n", n, rate, s1.c[n].Pending, maxP, slope(xs, ys), s1.c[n].Redelivery)
		}
	}

	if len(r.cpuProfile) > 0 {
		reportCPU(w, r.cpuProfile, runtime.NumCPU(), float64(inWindowFrames)/window, "customer message at agents")
	}

	// Lag over time.
	if len(samples) > 0 {
		step := cfg.LagEvery
		total := r.drainEnd.Sub(r.measureStart)
		if step <= 0 {
			step = max(time.Second, (total / 24).Round(time.Second))
		}
		fmt.Fprintf(w, "\nconsumer lag over time: pending (NumPending + NumAckPending) per durable, t from the start of the load (load ends at %.0fs)\n", window)
		fmt.Fprintf(w, "  %6s", "t(s)")
		for _, n := range names {
			fmt.Fprintf(w, " %9s", abbrev(n))
		}
		fmt.Fprintln(w)
		var prev time.Time
		for t := r.measureStart.Add(-step); !t.After(r.drainEnd.Add(step / 2)); t = t.Add(step) {
			s := at(samples, t)
			if s.at.Equal(prev) {
				continue
			}
			prev = s.at
			fmt.Fprintf(w, "  %6.0f", s.at.Sub(r.measureStart).Seconds())
			for _, n := range names {
				fmt.Fprintf(w, " %9d", s.c[n].Pending)
			}
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "  (")
		for i, n := range names {
			if i > 0 {
				fmt.Fprintf(w, ", ")
			}
			fmt.Fprintf(w, "%s=%s", abbrev(n), n)
		}
		fmt.Fprintf(w, ")\n")
	}

	// The ceiling and ratios.
	delivered := float64(inWindowFrames) / window
	if ceil > 0 {
		slices.Sort(ceilLat)
		fmt.Fprintf(w, "\ningress-only ceiling (same run, before the load on the idle stack: chat-handler → JetStream PubAck, CHAT consumers paused, %d senders, %s): %.0f webhooks/s, p50 %s ms, p99 %s ms\n",
			cfg.CeilingConcurrency, cfg.CeilingFor, ceil, ms(pct(ceilLat, .5)), ms(pct(ceilLat, .99)))
		fmt.Fprintf(w, "ratios to the ceiling: offered %.3f, at agents %.3f", float64(sent)/window/ceil, delivered/ceil)
		for _, st := range stages[1:] {
			if v, ok := stageRate[st]; ok {
				fmt.Fprintf(w, ", %s %.3f", st, v/ceil)
			}
		}
		fmt.Fprintln(w)
	}

	// The targets.
	slices.Sort(lFrame)
	slices.Sort(lTwilio)
	fmt.Fprintf(w, "\ntargets (switchboard#e2e): 500 msg/s to transcripts and agents with flat lag for 5 min; at 200 msg/s webhook→frame p99 < 50 ms and reply→Twilio p99 < 50 ms; none lost or duplicated\n")
	lostWord := "lost"
	if finalPending > 0 {
		lostWord = "undelivered at the end (pipeline still busy)"
	}
	fmt.Fprintf(w, "  this run: %.1f msg/s at agents during the load (%.0f%% of offered), frame p99 %s ms, Twilio p99 %s ms, %s %d, duplicated %d, replies lost %d, duplicated %d\n",
		delivered, 100*delivered/max(float64(sent)/window, 1e-9), ms(pct(lFrame, .99)), ms(pct(lTwilio, .99)), lostWord, lost, dup, replyLost, replyDup)
	fmt.Fprintf(w, "  reproduce: go run ./services/devstack/cmd/e2e-bench -rate 500 -duration 5m -drain 2m   (and -rate 200 -duration 2m for the latencies)\n")
}

func okInWindow(recs []*rec, end time.Time) int {
	n := 0
	for _, m := range recs {
		if m.code == http.StatusOK && !m.answered.After(end) {
			n++
		}
	}
	return n
}

// slope is the least-squares slope of ys over xs.
func slope(xs, ys []float64) float64 {
	n := float64(len(xs))
	if n < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}
