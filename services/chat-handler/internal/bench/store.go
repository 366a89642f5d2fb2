package bench

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/switchboard-cc/switchboard/pkg/natsembed"
)

// Store is a JetStream deployment the benchmark runs against.
type Store string

// The stores: one server with the default sync interval, one server that
// fsyncs every write, and a three-server cluster with R3 streams.
const (
	StoreDefault Store = "default"
	StoreFsync   Store = "fsync"
	StoreR3      Store = "r3"
)

// ParseStores reads a comma-separated list of stores.
func ParseStores(s string) ([]Store, error) {
	var out []Store
	for _, f := range strings.Split(s, ",") {
		switch st := Store(strings.TrimSpace(f)); st {
		case StoreDefault, StoreFsync, StoreR3:
			out = append(out, st)
		default:
			return nil, fmt.Errorf("store %q: want default, fsync or r3", f)
		}
	}
	return out, nil
}

func (s Store) describe() string {
	switch s {
	case StoreFsync:
		return "one server, file store, fsync every write (sync_interval: always) — chat-handler durability fsync"
	case StoreR3:
		return "three servers in this process, file store, stream replicas 3, default sync interval — chat-handler durability replicated"
	}
	return "one server, file store, default sync interval (fsync every 2 min) — not durable on power loss"
}

func (s Store) replicas() int {
	if s == StoreR3 {
		return 3
	}
	return 1
}

// nats is a running deployment.
type natsDeployment struct {
	url  string
	stop func()
}

func startStore(ctx context.Context, s Store, dir string) (*natsDeployment, error) {
	if s != StoreR3 {
		ns, err := natsembed.Start(natsembed.Config{Port: -1, StoreDir: dir, SyncAlways: s == StoreFsync}, nil)
		if err != nil {
			return nil, err
		}
		return &natsDeployment{url: ns.ClientURL(), stop: ns.Shutdown}, nil
	}
	ports, err := freePorts(6)
	if err != nil {
		return nil, err
	}
	var routes []string
	for i := range 3 {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[3+i]))
	}
	var servers []*server.Server
	stop := func() {
		for _, srv := range servers {
			srv.Shutdown()
			srv.WaitForShutdown()
		}
	}
	var urls []string
	for i := range 3 {
		srv, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("bench-%d", i), Host: "127.0.0.1", Port: ports[i],
			JetStream: true, StoreDir: filepath.Join(dir, fmt.Sprintf("n%d", i)), NoSigs: true, NoLog: true, MaxPayload: 1 << 20,
			Cluster: server.ClusterOpts{Name: "bench", Host: "127.0.0.1", Port: ports[3+i]},
			Routes:  server.RoutesFromStr(strings.Join(routes, ",")),
		})
		if err != nil {
			stop()
			return nil, fmt.Errorf("nats cluster server %d: %w", i, err)
		}
		go srv.Start()
		servers = append(servers, srv)
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	for _, srv := range servers {
		if !srv.ReadyForConnections(20 * time.Second) {
			stop()
			return nil, fmt.Errorf("nats cluster not ready")
		}
	}
	return &natsDeployment{url: strings.Join(urls, ","), stop: stop}, nil
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}
