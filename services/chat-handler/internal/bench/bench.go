// Package bench drives chat-handler with signed Twilio webhooks over
// loopback and, in the same run, a bare net/http handler that only parses
// the form and checks the signature, so the result is a ratio that carries
// over between machines. Each target runs at several concurrencies and at
// a fixed rate, with JetStream's file store syncing every write or not.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"text/tabwriter"
	"time"

	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/httpserver"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/pkg/twiliosig"
	chathandler "github.com/switchboard-cc/switchboard/services/chat-handler"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/route"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/webhook"
)

// The benchmark tenant's Twilio account and number.
const (
	BenchTenant  = "bench"
	BenchAccount = "AC0123456789abcdef0123456789abcdef"
	BenchToken   = "0123456789abcdef0123456789abcdef"
	BenchNumber  = "+18333595081"
)

// Options of a run.
type Options struct {
	// Concurrencies of the closed-loop steps.
	Concurrencies []int
	// Step is how long each closed-loop step runs.
	Step time.Duration
	// Rate and RateFor shape the fixed-rate step.
	Rate    int
	RateFor time.Duration
	// Stores lists the JetStream deployments to run against.
	Stores []Store
	// CPUProfile, when set, profiles the whole run into this file.
	CPUProfile string
	// Dir holds the JetStream store; a temporary directory when empty.
	Dir string
	// Rounds splits each closed-loop step into alternating slices.
	Rounds int
}

// Run runs the benchmark and writes the report to out.
func Run(ctx context.Context, o Options, out io.Writer) error {
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "webhook-bench-")
		if err != nil {
			return fmt.Errorf("temp dir: %w", err)
		}
		defer os.RemoveAll(d)
		dir = d
	}
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Fprintf(out, "webhook-bench: signed Programmable Messaging inbound webhooks over loopback, %s, %s/%s, GOMAXPROCS=%d, %d CPUs\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), runtime.NumCPU())
	fmt.Fprintf(out, "bare = net/http handler that parses the form and checks X-Twilio-Signature; chat-handler = the real handler: parse, route (in memory), signature, event, awaited JetStream PubAck\n")
	for _, st := range o.Stores {
		if err := runStore(ctx, o, filepath.Join(dir, string(st)), st, out); err != nil {
			return fmt.Errorf("store %s: %w", st, err)
		}
	}
	return nil
}

type target struct {
	name string
	url  string
}

func runStore(ctx context.Context, o Options, dir string, st Store, out io.Writer) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	ns, err := startStore(ctx, st, dir)
	if err != nil {
		return err
	}
	defer ns.stop()
	b, err := bus.Connect(ns.url, "webhook-bench", log)
	if err != nil {
		return err
	}
	defer b.Close()
	streams := subjects.StreamOptions{Replicas: st.replicas()}
	// A fresh cluster elects its JetStream leader first.
	for deadline := time.Now().Add(30 * time.Second); ; {
		err = b.EnsureStreams(ctx, streams, subjects.StreamChat)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)

	chatLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	routes := route.NewStatic()
	routes.AddAddress(BenchNumber, &route.Route{Tenant: BenchTenant, EntryID: "sms", ServiceID: "support", Channel: messagingv1.Channel_CHANNEL_SMS,
		Path: messagingv1.TwilioPath_TWILIO_PATH_MESSAGING, AccountSID: BenchAccount, AuthTokens: []string{BenchToken}})
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	cfg := chathandler.Defaults()
	cfg.HTTPAddr, cfg.AuthKeys, cfg.NATSURL, cfg.Streams = chatLis.Addr().String(), hex.EncodeToString(key), ns.url, streams
	switch st {
	case StoreFsync:
		cfg.Durability = chathandler.DurabilityFsync
	case StoreR3:
		cfg.Durability = chathandler.DurabilityReplicated
	default:
		cfg.Durability = chathandler.DurabilityNone
	}
	go func() {
		errc <- chathandler.Run(ctx, cfg, chathandler.Deps{Listener: chatLis, Bus: b, Routes: routes}, log)
	}()

	bareLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() { errc <- httpserver.Serve(ctx, httpserver.New(bareHandler()), bareLis, time.Second) }()

	targets := []target{
		{"bare", webhook.TenantURL("http://"+bareLis.Addr().String(), BenchTenant, webhook.PathInbound)},
		{"chat-handler", webhook.TenantURL("http://"+chatLis.Addr().String(), BenchTenant, webhook.PathInbound)},
	}
	maxConc := 256
	for _, c := range o.Concurrencies {
		maxConc = max(maxConc, c)
	}
	client := newClient(maxConc)
	defer client.CloseIdleConnections()
	signers := map[string]*signer{}
	var runID [4]byte
	_, _ = rand.Read(runID[:])
	for i, t := range targets {
		signers[t.name] = &signer{url: t.url, token: BenchToken, run: uint32(runID[0])<<24 | uint32(runID[1])<<16 | uint32(runID[2])<<8 | uint32(i)}
		if err := waitReady(ctx, client, t.url); err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		// Warm up: connections, JIT-free but caches and the store.
		closedLoop(ctx, client, signers[t.name], 8, o.Step/3)
	}

	fmt.Fprintf(out, "\nJetStream: %s\n", st.describe())
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "load\ttarget\treq/s\tp50\tp99\tcpu/req\terrors\tchat-handler/bare\t")
	for _, conc := range o.Concurrencies {
		// Alternate the targets in short slices so a change in the
		// machine's load (it may be shared) hits both alike.
		res := make([]result, len(targets))
		rounds := max(o.Rounds, 1)
		for range rounds {
			for i, t := range targets {
				res[i] = res[i].merge(closedLoop(ctx, client, signers[t.name], conc, o.Step/time.Duration(rounds)))
			}
		}
		bare := res[0].rps()
		for i, t := range targets {
			r := res[i]
			ratio := ""
			if i > 0 && bare > 0 {
				ratio = fmt.Sprintf("%.2f", r.rps()/bare)
			}
			fmt.Fprintf(tw, "c=%d\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t\n", conc, t.name, r.rps(), ms(r.pct(0.50)), ms(r.pct(0.99)), us(r.cpuPerRequest()), errs(r), ratio)
		}
	}
	if o.Rate > 0 {
		for _, t := range targets {
			r := fixedRate(ctx, client, signers[t.name], o.Rate, o.RateFor)
			verdict := ""
			if r.late > 0 {
				verdict = fmt.Sprintf("%d sends late; ", r.late)
			}
			if t.name == "chat-handler" {
				verdict += "p99 target < 20 ms: "
				if r.pct(0.99) < 20*time.Millisecond && r.errors == 0 {
					verdict += "met"
				} else {
					verdict += "MISSED"
				}
			}
			fmt.Fprintf(tw, "%d/s\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t\n", o.Rate, t.name, r.rps(), ms(r.pct(0.50)), ms(r.pct(0.99)), us(r.cpuPerRequest()), errs(r), verdict)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	cancel()
	for range 2 {
		if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return nil
}

func us(d time.Duration) string { return fmt.Sprintf("%dµs", d.Microseconds()) }

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }

func errs(r result) string {
	if r.errors == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%s)", r.errors, r.firstErr)
}

// bareHandler is the baseline: what any Twilio webhook receiver must do at
// least, parse the form and check the signature, and nothing else.
func bareHandler() http.Handler {
	tokens := []string{BenchToken}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		if !twiliosig.Validate(tokens, "http://"+r.Host+r.RequestURI, r.PostForm, r.Header.Get("X-Twilio-Signature")) {
			http.Error(w, "bad signature", http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Response></Response>`))
	})
}

func waitReady(ctx context.Context, c *http.Client, target string) error {
	s := &signer{url: target, token: BenchToken, run: 0xffffffff}
	w := s.worker()
	deadline := time.Now().Add(15 * time.Second)
	for {
		body, sig := w.request()
		ok, why := send(ctx, c, target, body, sig)
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not answering 2xx after 15s: %s", strings.TrimSpace(why))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
