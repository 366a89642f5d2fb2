package chaos

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/switchboard-cc/switchboard/services/devstack/internal/split"
)

// proc is one process the harness owns: started, killed with SIGKILL,
// paused with SIGSTOP, and started again with the same command line and
// environment (and so the same addresses and data directory).
type proc struct {
	name string
	bin  string
	args []string
	env  []string
	logs io.Writer

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	paused  bool
	exits   int // exits the harness did not cause
	stopped bool
	// metrics is the process's METRICS_ADDR (services only).
	metrics string
	// store is a NATS node's JetStream directory, and disk whether it is a
	// filesystem of its own that a disk-full fault may fill.
	store string
	disk  bool
	// started is when the process was last started.
	started time.Time
}

// isPaused reports whether the process is stopped by SIGSTOP.
func (p *proc) isPaused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused
}

// upFor reports whether the process has been running for at least d.
func (p *proc) upFor(d time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && time.Since(p.started) >= d
}

// pid is the running process's id, 0 when it is not running.
func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

func newProc(name, bin string, args, env []string, logs io.Writer) *proc {
	base := []string{}
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "GOMEMLIMIT", "GOMAXPROCS", "LOG_LEVEL", "PPROF"} {
		if v, ok := os.LookupEnv(k); ok {
			base = append(base, k+"="+v)
		}
	}
	return &proc{name: name, bin: bin, args: args, env: append(base, env...), logs: logs}
}

// start starts the process; it is an error to start a running one.
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("%s is running", p.name)
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	w, flush := split.PrefixLines(fmt.Sprintf("%-18s| ", p.name), p.logs)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.paused, p.started = cmd, done, false, time.Now()
	go func() {
		_ = cmd.Wait()
		flush()
		p.mu.Lock()
		if p.cmd == cmd {
			p.cmd = nil
			if !p.stopped {
				p.exits++
				fmt.Fprintf(p.logs, "%-18s| chaos: exited on its own (%v)\n", p.name, cmd.ProcessState)
			}
		}
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

// kill sends SIGKILL (continuing it first if paused) and waits for the exit.
func (p *proc) kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.stopped = true
	p.mu.Unlock()
	if cmd == nil {
		p.setStopped(false)
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
	p.mu.Lock()
	p.cmd, p.stopped, p.paused = nil, false, false
	p.mu.Unlock()
}

// term sends SIGTERM and waits for the exit, killing it after 10 s.
func (p *proc) term() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.stopped = true
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
}

func (p *proc) setStopped(v bool) {
	p.mu.Lock()
	p.stopped = v
	p.mu.Unlock()
}

// pause sends SIGSTOP; resume SIGCONT.
func (p *proc) pause() bool  { return p.signal(syscall.SIGSTOP, true) }
func (p *proc) resume() bool { return p.signal(syscall.SIGCONT, false) }

func (p *proc) signal(s syscall.Signal, paused bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	p.paused = paused
	return p.cmd.Process.Signal(s) == nil
}

// resetExits forgets the exits so far (those while the stack started).
func (p *proc) resetExits() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.exits = 0
}

func (p *proc) unexpectedExits() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exits
}
