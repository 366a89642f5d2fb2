// Command store-bench measures the sessions store's reads where data grows:
// a session's transcript and an agent's reconnect snapshot (active
// sessions and their transcripts), with a million messages stored, next to
// the floor (a bare JetStream read of the same subject) and the query this
// replaced (Mongo find by session_key) from the same run.
//
//	go run ./services/sessions/cmd/store-bench                 # 1,000,000 messages
//	go run ./services/sessions/cmd/store-bench -messages 100000
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"golang.org/x/sync/errgroup"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/mongodb"
	"github.com/switchboard-cc/switchboard/pkg/mongodb/ferret"
	"github.com/switchboard-cc/switchboard/pkg/natsembed"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/sessions/internal/store"
)

func main() {
	messages := flag.Int("messages", 1_000_000, "messages stored before reading")
	perSession := flag.Int("per-session", 50, "messages per session")
	live := flag.Int("live", 200, "sessions open at once while filling (how interleaved the stream is)")
	reads := flag.Int("reads", 200, "transcript reads measured")
	scanDocs := flag.Int("scan-docs", 20_000, "messages in the Mongo collection for the replaced session_key query")
	flag.Parse()
	if err := run(*messages, *perSession, *live, *reads, *scanDocs); err != nil {
		fmt.Fprintln(os.Stderr, "store-bench:", err)
		os.Exit(1)
	}
}

func run(messages, perSession, live, reads, scanDocs int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "store-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	log := slog.New(slog.DiscardHandler)
	ns, err := natsembed.Start(natsembed.Config{Port: -1, StoreDir: filepath.Join(dir, "nats")}, nil)
	if err != nil {
		return err
	}
	defer ns.Shutdown()
	fs, err := ferret.Start("127.0.0.1:0", filepath.Join(dir, "ferretdb"), log)
	if err != nil {
		return err
	}
	defer fs.Stop()
	b, err := bus.Connect(ns.ClientURL(), "store-bench", log)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := b.EnsureStreams(ctx, subjects.StreamOptions{}, subjects.StreamTranscript); err != nil {
		return err
	}
	mc, err := mongodb.Connect(ctx, fs.URI())
	if err != nil {
		return err
	}
	db := mc.Database("store_bench")
	st, err := store.New(ctx, db, b.JS, 1)
	if err != nil {
		return err
	}

	sessions := messages / perSession
	fmt.Printf("filling %d messages: %d sessions of %d, %d open at a time\n", messages, sessions, perSession, live)
	start := time.Now()
	body := "Hello, I would like to change my booking for next Tuesday, is that possible? Thanks a lot."
	at := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	for g := 0; g < sessions; g += live {
		var wg errgroup.Group
		wg.SetLimit(16)
		for i := 0; i < perSession; i++ {
			for s := g; s < min(g+live, sessions); s++ {
				m := &store.Message{Tenant: "demo", ID: fmt.Sprintf("SM%08d%04d", s, i), Direction: "inbound", Sender: "customer", Body: body, At: at}
				at = at.Add(time.Millisecond)
				wg.Go(func() error { return st.ImportTranscript(ctx, "demo", sid(s), []*store.Message{m}) })
			}
		}
		if err := wg.Wait(); err != nil {
			return err
		}
		if g%(live*10) == 0 {
			fmt.Printf("  %d messages stored (%v)\n", (g+live)*perSession, time.Since(start).Round(time.Second))
		}
	}
	fmt.Printf("filled in %v\n\n", time.Since(start).Round(time.Second))

	// An agent with 10 active sessions among the last ones filled.
	for i := range 10 {
		s := sessions - 1 - i*3
		if err := st.CreateSession(ctx, &store.Session{Tenant: "demo", ID: sid(s), State: store.StateActive, StartedAt: time.Now()}); err != nil {
			return err
		}
		if err := st.Assign(ctx, "demo", sid(s), "alice", "t"+sid(s), time.Now()); err != nil {
			return err
		}
	}

	var tx, bare, snap []time.Duration
	for range reads {
		s := rand.IntN(sessions)
		t0 := time.Now()
		msgs, err := st.Transcript(ctx, "demo", sid(s))
		if err != nil {
			return err
		}
		if len(msgs) != perSession {
			return fmt.Errorf("session %s: %d messages, want %d", sid(s), len(msgs), perSession)
		}
		tx = append(tx, time.Since(t0))
		s = rand.IntN(sessions)
		t0 = time.Now()
		if err := bareRead(ctx, b.JS, sid(s), perSession); err != nil {
			return err
		}
		bare = append(bare, time.Since(t0))
	}
	for range reads / 4 {
		t0 := time.Now()
		desk, err := st.AgentSessions(ctx, "demo", "alice")
		if err != nil {
			return err
		}
		active := desk.Active
		var mu sync.Mutex
		total := 0
		var g errgroup.Group
		g.SetLimit(8) // as core.Snapshot
		for _, s := range active {
			g.Go(func() error {
				msgs, err := st.Transcript(ctx, "demo", s.ID)
				mu.Lock()
				total += len(msgs)
				mu.Unlock()
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		if len(active) != 10 || total != 10*perSession {
			return fmt.Errorf("snapshot: %d sessions, %d messages", len(active), total)
		}
		snap = append(snap, time.Since(t0))
	}

	// The query this replaced, on a much smaller collection.
	var scan []time.Duration
	coll := db.Collection("messages_by_session_key")
	var docs []any
	for i := range scanDocs {
		docs = append(docs, bson.M{"_id": fmt.Sprintf("demo/%s/%d", sid(i/perSession), i), "session_key": "demo/" + sid(i/perSession), "body": body, "at": at})
		if len(docs) == 1000 || i == scanDocs-1 {
			if _, err := coll.InsertMany(ctx, docs); err != nil {
				return err
			}
			docs = nil
		}
	}
	for range 20 {
		t0 := time.Now()
		cur, err := coll.Find(ctx, bson.M{"session_key": "demo/" + sid(rand.IntN(scanDocs/perSession))})
		if err != nil {
			return err
		}
		var got []bson.M
		if err := cur.All(ctx, &got); err != nil {
			return err
		}
		scan = append(scan, time.Since(t0))
	}

	fmt.Printf("%-62s %8s %8s %8s\n", "read ("+fmt.Sprint(messages)+" messages stored)", "p50", "p99", "max")
	row := func(name string, d []time.Duration) {
		slices.Sort(d)
		fmt.Printf("%-62s %8s %8s %8s\n", name, ms(d[len(d)/2]), ms(d[len(d)*99/100]), ms(d[len(d)-1]))
	}
	row(fmt.Sprintf("transcript of a %d-message session (store.Transcript)", perSession), tx)
	row("  floor: bare JetStream read of one session's subject", bare)
	row("reconnect snapshot: 10 active sessions and their transcripts", snap)
	row(fmt.Sprintf("  replaced: Mongo find by session_key, %d messages stored", scanDocs), scan)
	fmt.Printf("targets: transcript p99 < 20 ms and snapshot p99 < 50 ms with 1,000,000 messages stored\n")
	return nil
}

func sid(i int) string { return fmt.Sprintf("ss_%07d", i) }

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }

// bareRead reads one subject with an ordered consumer and nothing else.
func bareRead(ctx context.Context, js jetstream.JetStream, session string, n int) error {
	c, err := js.OrderedConsumer(ctx, subjects.StreamTranscript, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subjects.Transcript("demo", session)}})
	if err != nil {
		return err
	}
	got := 0
	for got < n {
		batch, err := c.Fetch(n-got, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return err
		}
		for range batch.Messages() {
			got++
		}
		if err := batch.Error(); err != nil && err != nats.ErrTimeout {
			return err
		}
	}
	return nil
}
