package chaos

import (
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// proxy stands for a replicated service at one address, as a Kubernetes
// Service does: each connection goes to one of the backends that accepts
// it, chosen at random. A connection to a backend that dies breaks, and
// the client's next connection goes elsewhere.
type proxy struct {
	lis      net.Listener
	backends []string
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	closed   bool
}

func newProxy(backends []string) (*proxy, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{lis: lis, backends: backends, conns: map[net.Conn]struct{}{}}
	go p.serve()
	return p, nil
}

func (p *proxy) addr() string { return p.lis.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.lis.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *proxy) track(c net.Conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		if p.closed {
			return false
		}
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
	return true
}

func (p *proxy) handle(c net.Conn) {
	defer c.Close()
	var b net.Conn
	for _, i := range rand.Perm(len(p.backends)) {
		var err error
		if b, err = net.DialTimeout("tcp", p.backends[i], 2*time.Second); err == nil {
			break
		}
	}
	if b == nil {
		return
	}
	defer b.Close()
	if !p.track(c, true) || !p.track(b, true) {
		return
	}
	defer p.track(c, false)
	defer p.track(b, false)
	// Either side closing closes both, as a dead pod's connections break.
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(b, c)
	go pipe(c, b)
	<-done
}

func (p *proxy) close() {
	_ = p.lis.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
}
