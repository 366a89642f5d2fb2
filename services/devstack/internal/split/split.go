// Package split runs Switchboard as production does: every service its own
// process (the binaries of services/*/cmd/*), against one NATS server and
// one database, here the embedded ones of devstack's infrastructure-only
// mode, with the Twilio emulator and the demo tenant (make run-split).
package split

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/switchboard-cc/switchboard/services/devstack"
)

// Services are the processes started, in order; twilio-sim runs with the
// infrastructure.
var Services = []string{"config", "distribution", "outbound-sender", "sessions", "workflow-runner", "chat-handler", "reporting"}

// Build compiles the services' binaries into dir with the go command.
func Build(ctx context.Context, dir string, out io.Writer) error {
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	args := []string{"build", "-o", dir + string(os.PathSeparator)}
	for _, s := range Services {
		args = append(args, "./services/"+s+"/cmd/"+s)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = root, out, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

func moduleRoot(ctx context.Context) (string, error) {
	b, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(b))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the Switchboard module: run from the repository")
	}
	return filepath.Dir(mod), nil
}

// Options of Run.
type Options struct {
	// BinDir holds the binaries (Build).
	BinDir string
	// Stack configures the infrastructure and the addresses the services
	// listen on; its Services are ignored.
	Stack devstack.Config
	// MetricsAddrs gives each service's METRICS_ADDR (none when absent).
	MetricsAddrs map[string]string
	// Logs receives every process's output, each line prefixed with the
	// service's name.
	Logs io.Writer
	// Ready is called once every service answers and the demo tenant is
	// applied.
	Ready func(devstack.Info)
}

// Run starts the infrastructure and every service's process, and runs
// until ctx is done or a process exits; then it stops them all (SIGTERM,
// then SIGKILL after 10 s) before the infrastructure.
func Run(ctx context.Context, o Options, log *slog.Logger) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	cfg := o.Stack
	cfg.Services = []string{"twilio-sim"}
	infoc := make(chan devstack.Info, 1)
	seeded := make(chan struct{})
	infraDone := make(chan error, 1)
	go func() {
		infraDone <- devstack.Run(ctx, cfg, devstack.Deps{
			Ready:  func(i devstack.Info) { infoc <- i },
			Seeded: func() { close(seeded) },
		}, log)
	}()
	var info devstack.Info
	select {
	case info = <-infoc:
	case err := <-infraDone:
		return fmt.Errorf("infrastructure: %w", err)
	}
	infraStopped := make(chan struct{})
	go func() {
		if err := <-infraDone; err != nil {
			cancel(fmt.Errorf("infrastructure: %w", err))
		}
		close(infraStopped)
	}()

	var procs []*proc
	var wg sync.WaitGroup
	stopAll := func() {
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].stop()
		}
		wg.Wait()
		cancel(nil)
		<-infraStopped
	}
	for _, s := range Services {
		env, err := devstack.ServiceEnv(info, s, o.MetricsAddrs[s], cfg.SyncAlways)
		if err != nil {
			stopAll()
			return err
		}
		p, err := start(filepath.Join(o.BinDir, s), s, env, o.Logs)
		if err != nil {
			stopAll()
			return err
		}
		procs = append(procs, p)
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := p.wait()
			if !p.stopping() {
				cancel(fmt.Errorf("%s exited: %v", p.name, err))
			}
		}()
	}
	go func() {
		if err := waitReady(ctx, info, seeded); err == nil && o.Ready != nil {
			o.Ready(info)
		}
	}()
	<-ctx.Done()
	cause := context.Cause(ctx)
	stopAll()
	if errors.Is(cause, context.Canceled) {
		return nil
	}
	return cause
}

// waitReady waits for the HTTP services' health and the demo tenant.
func waitReady(ctx context.Context, info devstack.Info, seeded <-chan struct{}) error {
	c := &http.Client{Timeout: time.Second}
	for _, u := range []string{info.ChatHandlerURL + "/healthz", strings.TrimSuffix(info.ConsoleURL, "/") + "/healthz"} {
		for {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			res, err := c.Do(req)
			if err == nil {
				_ = res.Body.Close()
				if res.StatusCode == http.StatusOK {
					break
				}
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	if info.Demo == nil {
		return nil
	}
	select {
	case <-seeded:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type proc struct {
	name    string
	cmd     *exec.Cmd
	mu      sync.Mutex
	stopped bool
	done    chan struct{}
	out     *prefixer
}

func start(bin, name string, env []string, logs io.Writer) (*proc, error) {
	if logs == nil {
		logs = io.Discard
	}
	cmd := exec.Command(bin)
	// Only what the service needs, plus what any process expects.
	base := []string{}
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "GOMEMLIMIT", "GOMAXPROCS", "LOG_LEVEL"} {
		if v, ok := os.LookupEnv(k); ok {
			base = append(base, k+"="+v)
		}
	}
	cmd.Env = append(base, env...)
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), out: &prefixer{prefix: fmt.Sprintf("%-16s| ", name), w: logs}}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return p, nil
}

func (p *proc) wait() error {
	err := p.cmd.Wait()
	p.out.flush()
	close(p.done)
	return err
}

func (p *proc) stopping() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopped
}

// stop sends SIGTERM and waits for the exit, killing after 10 s.
func (p *proc) stop() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// PrefixLines returns a writer that writes whole lines to w, each with
// the prefix (every such writer shares one lock), and its flush, which
// writes an unfinished last line.
func PrefixLines(prefix string, w io.Writer) (io.Writer, func()) {
	p := &prefixer{prefix: prefix, w: w}
	return p, p.flush
}

// prefixer writes whole lines, each with the prefix, to w (shared by
// every process: one lock).
type prefixer struct {
	prefix string
	w      io.Writer
	mu     sync.Mutex
	buf    []byte
}

var writeMu sync.Mutex

func (p *prefixer) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		p.emit(p.buf[:i+1])
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

func (p *prefixer) emit(line []byte) {
	writeMu.Lock()
	defer writeMu.Unlock()
	w := bufio.NewWriter(p.w)
	_, _ = w.WriteString(p.prefix)
	_, _ = w.Write(line)
	_ = w.Flush()
}

func (p *prefixer) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.buf) > 0 {
		p.emit(append(p.buf, '\n'))
		p.buf = nil
	}
}
