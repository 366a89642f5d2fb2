// Command ws-bench measures what idle agent websockets cost the sessions
// service: it starts the stack, has a child process open N authenticated
// console sockets (each gets its welcome and snapshot, then stays idle),
// and reports the memory and goroutines per connection of this process,
// next to a bare websocket server (accept, one read loop) measured the same
// way in the same run. The clients live in the child so their memory is
// not counted.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-cc/switchboard/services/devstack"
	"github.com/switchboard-cc/switchboard/services/sessions/agentclient"
)

var memProfile string

func main() {
	n := flag.Int("n", 19000, "idle connections (this machine allows 20,000 open files per process)")
	client := flag.String("client", "", "internal: dial N sockets to this URL (child process)")
	token := flag.String("token", "", "internal: the agents' token (child process)")
	flag.StringVar(&memProfile, "memprofile", "", "write a heap profile while the gateway's sockets are open")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	if *client != "" {
		err = runClients(ctx, *client, *token, *n)
	} else {
		err = run(ctx, *n)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ws-bench:", err)
		os.Exit(1)
	}
}

type usage struct {
	heap, stack, rss uint64
	goroutines       int
}

func measure() usage {
	// Several collections: each may shrink idle goroutines' stacks by half.
	for range 4 {
		runtime.GC()
	}
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return usage{heap: ms.HeapInuse, stack: ms.StackInuse, rss: rss(), goroutines: runtime.NumGoroutine()}
}

// rss is the process's resident set from /proc (0 where there is none).
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb uint64
			_, _ = fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb * 1024
		}
	}
	return 0
}

func run(ctx context.Context, n int) error {
	dir, err := os.MkdirTemp("", "ws-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	dc := devstack.Defaults()
	dc.DataDir = dir
	dc.NATSAddr, dc.MongoAddr = "127.0.0.1:0", "127.0.0.1:0"
	dc.ChatHandlerAddr, dc.SessionsAddr, dc.TwilioSimAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	dc.ConfigAddr, dc.DistributionAddr, dc.ReportingAddr, dc.OutboundAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	dc.BcryptCost = 4
	stackCtx, stopStack := context.WithCancel(ctx)
	defer stopStack()
	ready := make(chan devstack.Info, 1)
	done := make(chan error, 1)
	go func() {
		done <- devstack.Run(stackCtx, dc, devstack.Deps{Ready: func(i devstack.Info) { ready <- i }}, slog.New(slog.DiscardHandler))
	}()
	var info devstack.Info
	select {
	case info = <-ready:
	case err := <-done:
		return fmt.Errorf("devstack: %w", err)
	case <-time.After(90 * time.Second):
		return errors.New("devstack not ready within 90s")
	}
	tok, err := agentclient.Login(ctx, info.ConsoleURL, "demo", "alice@demo.example", "demo")
	if err != nil {
		return err
	}

	// Baseline: a bare websocket server in this process, same clients.
	bare, stopBare, err := bareServer()
	if err != nil {
		return err
	}
	base, err := holdClients(ctx, "ws://"+bare+"/", "", n)
	stopBare()
	if err != nil {
		return fmt.Errorf("bare server: %w", err)
	}
	// The bare server's sockets close as their clients go; wait for them,
	// or this process runs out of files.
	for deadline := time.Now().Add(time.Minute); runtime.NumGoroutine() > base.before.goroutines+100 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	got, err := holdClients(ctx, agentclient.WebsocketURL(info.ConsoleURL), tok, n)
	if err != nil {
		return fmt.Errorf("sessions gateway: %w", err)
	}
	fmt.Printf("idle websocket connections held: %d (the clients in a child process)\n", n)
	row := func(name string, d measured) {
		fmt.Printf("  %-18s heap+stacks %6.1f KB/conn (stacks %4.1f)   RSS %6.1f KB/conn   goroutines %.2f/conn   (opened in %s)\n",
			name, d.perConn(func(u usage) uint64 { return u.heap + u.stack }), d.perConn(func(u usage) uint64 { return u.stack }), d.perConn(func(u usage) uint64 { return u.rss }),
			float64(d.after.goroutines-d.before.goroutines)/float64(d.n), d.took.Round(time.Millisecond))
	}
	row("sessions gateway", got)
	row("bare websocket", base)
	fmt.Printf("  ratio (heap+stacks) %.2f   target: 20,000 connections at under 20 KB each\n",
		got.perConn(func(u usage) uint64 { return u.heap + u.stack })/base.perConn(func(u usage) uint64 { return u.heap + u.stack }))
	return nil
}

type measured struct {
	before, after usage
	n             int
	took          time.Duration
}

func (m measured) perConn(f func(usage) uint64) float64 {
	return (float64(f(m.after)) - float64(f(m.before))) / float64(m.n) / 1024
}

// holdClients has a child process open n sockets to url and measures this
// process before and while they are open.
func holdClients(ctx context.Context, url, token string, n int) (measured, error) {
	m := measured{n: n, before: measure()}
	start := time.Now()
	cmd := exec.CommandContext(ctx, os.Args[0], "-client", url, "-token", token, "-n", fmt.Sprint(n))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return m, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return m, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return m, err
	}
	defer func() { _ = stdin.Close(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		return m, fmt.Errorf("clients: %q %v", line, err)
	}
	m.took = time.Since(start)
	time.Sleep(2 * time.Second) // let the handlers settle into their idle reads
	m.after = measure()
	if memProfile != "" && token != "" {
		f, err := os.Create(memProfile)
		if err == nil {
			_ = pprof.WriteHeapProfile(f)
			_ = f.Close()
		}
	}
	return m, nil
}

// bareServer accepts websockets and reads until they close.
func bareServer() (string, func(), error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer func() { _ = c.CloseNow() }() // hijacked: the server does not close it
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				return
			}
		}
	})}
	go func() { _ = srv.Serve(lis) }()
	return lis.Addr().String(), func() { _ = srv.Close() }, nil
}

// runClients opens n sockets (authenticated when token is set, waiting for
// the snapshot), says "ready", and holds them until stdin closes.
func runClients(ctx context.Context, url, token string, n int) error {
	var wg sync.WaitGroup
	var failed atomic.Int64
	var firstErr atomic.Value
	conns := make([]*websocket.Conn, n)
	sem := make(chan struct{}, 64)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := dialOne(ctx, url, token)
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		return fmt.Errorf("%d of %d sockets failed (first: %v)", f, n, firstErr.Load())
	}
	// Keep reading so pings and pushes never back up.
	for _, c := range conns {
		go func() {
			for {
				if _, _, err := c.Read(context.Background()); err != nil {
					return
				}
			}
		}()
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

func dialOne(ctx context.Context, url, token string) (*websocket.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(dctx, url, nil)
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(1 << 20)
	if token == "" {
		return c, nil
	}
	auth, _ := json.Marshal(map[string]any{"v": 1, "type": "auth", "id": "a", "data": map[string]string{"token": token}})
	if err := c.Write(dctx, websocket.MessageText, auth); err != nil {
		return nil, err
	}
	for {
		_, b, err := c.Read(dctx)
		if err != nil {
			return nil, err
		}
		var f struct{ Type string }
		if json.Unmarshal(b, &f) == nil && f.Type == "snapshot" {
			return c, nil
		}
		if json.Unmarshal(b, &f) == nil && f.Type == "error" {
			return nil, fmt.Errorf("refused: %s", b)
		}
	}
}
