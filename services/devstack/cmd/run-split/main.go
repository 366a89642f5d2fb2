// Command run-split runs Switchboard as production does (make run-split):
// it builds every service's binary, starts devstack's infrastructure
// (embedded NATS with one user per service, embedded FerretDB, the Twilio
// emulator, the demo tenant) and each service as its own process with
// its environment, prefixes their logs with the service's name, and stops
// them all on Ctrl-C. The ports are make run's; each service serves its
// metrics on 127.0.0.1:9465 upwards.
//
//	go run ./services/devstack/cmd/run-split [-bin ./bin]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"github.com/switchboard-cc/switchboard/pkg/mainrun"
	"github.com/switchboard-cc/switchboard/services/devstack"
	"github.com/switchboard-cc/switchboard/services/devstack/internal/split"
)

func main() {
	binDir := flag.String("bin", "bin", "where to build the services' binaries")
	noBuild := flag.Bool("no-build", false, "use the binaries already in -bin")
	flag.Parse()
	mainrun.Main("run-split", func(ctx context.Context, env *mainrun.Env, log *slog.Logger) error {
		cfg := devstack.Defaults()
		cfg.DataDir = env.String("SWITCHBOARD_DATA_DIR", cfg.DataDir)
		cfg.NATSURL = env.String("NATS_URL", "")
		cfg.NATSAuth = mainrun.NATSAuth(env)
		cfg.MongoURI = env.String("MONGO_URI", "")
		cfg.AuthKeys = env.Secret("SWITCHBOARD_AUTH_KEYS")
		cfg.SecretKeys = env.String("SWITCHBOARD_SECRET_KEYS", "")
		cfg.SyncAlways = env.Bool("NATS_SYNC_ALWAYS", cfg.SyncAlways)
		if err := mainrun.ConfigError(errors.Join(env.Err(), cfg.Validate())); err != nil {
			return err
		}
		bin, err := filepath.Abs(*binDir)
		if err != nil {
			return err
		}
		*binDir = bin
		if !*noBuild {
			fmt.Fprintf(os.Stderr, "building %v into %s …\n", split.Services, *binDir)
			if err := split.Build(ctx, *binDir, os.Stderr); err != nil {
				return err
			}
		}
		metrics := map[string]string{}
		for n, s := range devstack.ServiceNames {
			metrics[s] = "127.0.0.1:" + strconv.Itoa(9465+n)
		}
		return split.Run(ctx, split.Options{
			BinDir: *binDir, Stack: cfg, MetricsAddrs: metrics, Logs: os.Stdout,
			Ready: func(i devstack.Info) {
				fmt.Printf("\nSwitchboard is running as %d processes (Ctrl-C stops them all; data in %s).\n\n", len(split.Services), cfg.DataDir)
				fmt.Printf("  Agent console        %s\n  Twilio emulator      %s\n  Twilio webhooks      %s/api/acs/chat-handler/tenants/<tenant>/…\n",
					i.ConsoleURL, i.TwilioSimURL, i.ChatHandlerURL)
				for _, s := range split.Services {
					fmt.Printf("  %-20s %s  metrics http://%s/metrics\n", s, i.Addrs[s], metrics[s])
				}
				fmt.Printf("  NATS                 %s\n  MongoDB wire         %s\n", i.NATSURL, i.MongoURI)
				fmt.Printf("\nText the demo as a customer:\n  curl -s %s/sim/customers/messages -d '{\"from\":\"+15551230001\",\"to\":\"%s\",\"body\":\"Hello, I need help\"}'\n\n",
					i.TwilioSimURL, devstack.DemoSMSNumber)
			},
		}, log)
	})
}
