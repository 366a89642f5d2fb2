// Command ws-bench measures what idle agent websockets cost the sessions
// service: it starts the stack and a second sessions replica as its own
// process (as production runs several), has two child processes open N
// authenticated console sockets between them, half to each replica (each
// socket gets its welcome and snapshot, then stays idle), and reports with
// all N open at once the memory and goroutines per connection of each
// replica, next to a bare websocket server (accept, one read loop)
// measured the same way in the same run. The clients live in children so
// their memory is not counted. Two replicas because this machine allows
// 20,000 open files per process: one process cannot hold 20,000 sockets
// and its own files.
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

	"github.com/switchboard-cc/switchboard/pkg/mainrun"
	"github.com/switchboard-cc/switchboard/services/devstack"
	"github.com/switchboard-cc/switchboard/services/sessions"
	"github.com/switchboard-cc/switchboard/services/sessions/agentclient"
)

var memProfile string

func main() {
	n := flag.Int("n", 20000, "idle connections in all, half to each of the two sessions replicas")
	client := flag.String("client", "", "internal: dial N sockets to this URL (child process)")
	token := flag.String("token", "", "internal: the agents' token (child process)")
	replica := flag.Bool("replica", false, "internal: run a sessions replica from the environment (child process)")
	flag.StringVar(&memProfile, "memprofile", "", "write a heap profile while the first replica's sockets are open")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	switch {
	case *replica:
		err = runReplica(ctx)
	case *client != "":
		err = runClients(ctx, *client, *token, *n)
	default:
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
	half := n / 2

	// Baseline: a bare websocket server in this process, same clients.
	bare, stopBare, err := bareServer()
	if err != nil {
		return err
	}
	base, release, err := holdClients(ctx, "ws://"+bare+"/", "", half, measure)
	release()
	stopBare()
	if err != nil {
		return fmt.Errorf("bare server: %w", err)
	}
	// The bare server's sockets close as their clients go; wait for them,
	// or this process runs out of files.
	for deadline := time.Now().Add(time.Minute); runtime.NumGoroutine() > base.before.goroutines+100 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}

	second, err := startReplica(ctx, info)
	if err != nil {
		return fmt.Errorf("second sessions replica: %w", err)
	}
	defer second.stop()
	one, releaseOne, err := holdClients(ctx, agentclient.WebsocketURL(info.ConsoleURL), tok, half, measure)
	if err != nil {
		return fmt.Errorf("sessions gateway: %w", err)
	}
	defer releaseOne()
	two, releaseTwo, err := holdClients(ctx, agentclient.WebsocketURL(second.url), tok, n-half, second.measure)
	if err != nil {
		return fmt.Errorf("second sessions replica's gateway: %w", err)
	}
	defer releaseTwo()
	// Both halves are open now: the first replica again, with the second's
	// sockets open too.
	one.after = measure()
	fmt.Printf("idle websocket connections held at once: %d, %d on each of two sessions replicas (this machine allows 20,000 open files per process); the clients in two child processes\n", n, half)
	row := func(name string, d measured) {
		fmt.Printf("  %-38s heap+stacks %6.1f KB/conn (stacks %4.1f)   RSS %6.1f KB/conn   goroutines %.2f/conn   (opened in %s)\n",
			name, d.perConn(func(u usage) uint64 { return u.heap + u.stack }), d.perConn(func(u usage) uint64 { return u.stack }), d.perConn(func(u usage) uint64 { return u.rss }),
			float64(d.after.goroutines-d.before.goroutines)/float64(d.n), d.took.Round(time.Millisecond))
	}
	row("sessions replica 1 (the stack's process)", one)
	row("sessions replica 2 (its own process)", two)
	row("bare websocket", base)
	heap := func(u usage) uint64 { return u.heap + u.stack }
	fmt.Printf("  ratio (heap+stacks, the replicas' mean / bare) %.2f   target: 20,000 connections at under 20 KB each\n",
		(one.perConn(heap)+two.perConn(heap))/2/base.perConn(heap))
	return nil
}

// replicaProc is a second sessions replica in a child process.
type replicaProc struct {
	url   string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

// startReplica runs this program as a sessions replica joined to the
// stack (the environment its own binary would get) and waits for it to
// serve.
func startReplica(ctx context.Context, info devstack.Info) (*replicaProc, error) {
	env, err := devstack.ServiceEnv(info, "sessions", "", false)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, os.Args[0], "-replica")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &replicaProc{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	line, err := p.out.ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "ready ")
	if err != nil || !ok {
		p.stop()
		return nil, fmt.Errorf("replica: %q %v", line, err)
	}
	p.url = "http://" + addr + "/"
	return p, nil
}

// measure asks the replica for its usage.
func (p *replicaProc) measure() usage {
	var u usage
	if _, err := io.WriteString(p.stdin, "measure\n"); err != nil {
		return u
	}
	line, err := p.out.ReadString('\n')
	if err == nil {
		_, _ = fmt.Sscanf(line, "%d %d %d %d", &u.heap, &u.stack, &u.rss, &u.goroutines)
	}
	return u
}

func (p *replicaProc) stop() {
	_ = p.stdin.Close()
	_ = p.cmd.Wait()
}

// runReplica serves a sessions replica configured from the environment,
// says "ready <addr>" once it answers, and then reports its usage for each
// "measure" line on stdin until stdin closes.
func runReplica(ctx context.Context) error {
	env := mainrun.EnvFrom(os.LookupEnv)
	cfg := sessions.ConfigFromEnv(env)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	cfg.HTTPAddr = lis.Addr().String()
	cfg.PublicURL = "http://" + cfg.HTTPAddr + "/"
	if err := errors.Join(env.Err(), cfg.Validate()); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- sessions.Run(ctx, cfg, sessions.Deps{Listener: lis}, slog.New(slog.DiscardHandler)) }()
	for deadline := time.Now().Add(90 * time.Second); ; {
		if r, err := http.Get(cfg.PublicURL + "healthz"); err == nil {
			_ = r.Body.Close()
			if r.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			return fmt.Errorf("sessions: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("sessions replica not serving within 90s")
		}
	}
	fmt.Println("ready", cfg.HTTPAddr)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() == "measure" {
			u := measure()
			fmt.Println(u.heap, u.stack, u.rss, u.goroutines)
		}
	}
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

// holdClients has a child process open n sockets to url and measures
// (with meter) before and while they are open; release closes them.
func holdClients(ctx context.Context, url, token string, n int, meter func() usage) (measured, func(), error) {
	m := measured{n: n, before: meter()}
	start := time.Now()
	cmd := exec.CommandContext(ctx, os.Args[0], "-client", url, "-token", token, "-n", fmt.Sprint(n))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return m, func() {}, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return m, func() {}, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return m, func() {}, err
	}
	release := func() { _ = stdin.Close(); _ = cmd.Wait() }
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		release()
		return m, func() {}, fmt.Errorf("clients: %q %v", line, err)
	}
	m.took = time.Since(start)
	time.Sleep(2 * time.Second) // let the handlers settle into their idle reads
	m.after = meter()
	if memProfile != "" && token != "" {
		f, err := os.Create(memProfile)
		if err == nil {
			_ = pprof.WriteHeapProfile(f)
			_ = f.Close()
		}
		memProfile = ""
	}
	return m, release, nil
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
