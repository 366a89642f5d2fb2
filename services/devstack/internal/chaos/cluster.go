package chaos

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsUser is the one user of the harness's cluster: every service
// connects as it (the per-service permissions are make run's and the
// split test's business, not this harness's).
const natsUser = "switchboard"

// buildNATS builds nats-server at the version go.mod pins.
func buildNATS(ctx context.Context, dir string, out io.Writer) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, "nats-server"), "github.com/nats-io/nats-server/v2")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build nats-server: %w", err)
	}
	return nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// natsCluster writes the n nodes' configuration (JetStream, one cluster
// when n > 1, the user) and returns their processes and the client URL
// list.
func natsCluster(bin, dir, password string, n int, syncAlways bool, logs io.Writer) ([]*proc, string, error) {
	var clients, routes []string
	for range 2 * n {
		a, err := freeAddr()
		if err != nil {
			return nil, "", err
		}
		if len(clients) < n {
			clients = append(clients, a)
		} else {
			routes = append(routes, a)
		}
	}
	var all []string
	for _, r := range routes {
		all = append(all, "nats-route://"+r)
	}
	var procs []*proc
	var urls []string
	for i := range n {
		name := fmt.Sprintf("nats-%d", i+1)
		store := filepath.Join(dir, name)
		if err := os.MkdirAll(store, 0o700); err != nil {
			return nil, "", err
		}
		sync := ""
		if syncAlways {
			sync = "sync_interval: always\n"
		}
		cluster := ""
		if n > 1 {
			cluster = fmt.Sprintf("cluster { name: chaos\n  listen: %s\n  routes: [%s] }\n", routes[i], strings.Join(all, ", "))
		}
		conf := fmt.Sprintf(`server_name: %s
listen: %s
max_payload: 1MB
jetstream { store_dir: %q
%s}
%sauthorization { users: [ { user: %s, password: %q } ] }
`, name, clients[i], store, sync, cluster, natsUser, password)
		file := filepath.Join(dir, name+".conf")
		if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
			return nil, "", err
		}
		p := newProc(name, filepath.Join(bin, "nats-server"), []string{"-c", file}, nil, logs)
		p.store = store
		procs = append(procs, p)
		urls = append(urls, "nats://"+clients[i])
	}
	return procs, strings.Join(urls, ","), nil
}

// waitJetStream waits until the cluster has a JetStream meta leader (a
// stream of replicas can be created and removed); between tries it calls
// tend.
func waitJetStream(ctx context.Context, url, password string, replicas int, tend func()) error {
	for {
		tend()
		err := func() error {
			nc, err := nats.Connect(url, nats.UserInfo(natsUser, password), nats.Timeout(time.Second))
			if err != nil {
				return err
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				return err
			}
			c, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			if _, err := js.CreateOrUpdateStream(c, jetstream.StreamConfig{Name: "CHAOS_PROBE", Subjects: []string{"chaos.probe"}, Replicas: replicas, Storage: jetstream.MemoryStorage}); err != nil {
				return err
			}
			return js.DeleteStream(c, "CHAOS_PROBE")
		}()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("NATS cluster without JetStream: %w (%v)", ctx.Err(), err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
