// Command devstack runs all of Switchboard in one process (make run).
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
	"strings"

	"github.com/switchboard-cc/switchboard/pkg/mainrun"
	"github.com/switchboard-cc/switchboard/services/devstack"
)

// MetricsAddr is where make run serves every service's metrics.
const MetricsAddr = "127.0.0.1:9464"

func main() {
	servicesFlag := flag.String("services", "", "comma-separated services to run (default all, or DEVSTACK_SERVICES): "+strings.Join(devstack.ServiceNames, ", "))
	infraOnly := flag.Bool("infra-only", false, "run NATS, FerretDB and twilio-sim only, apply the demo tenant once config answers, and write each service's environment to <data dir>/env/<service>.env (make run-split)")
	flag.Parse()
	mainrun.MainWith("devstack", mainrun.Options{MetricsAddr: MetricsAddr}, func(ctx context.Context, env *mainrun.Env, log *slog.Logger) error {
		cfg := devstack.Defaults()
		list := *servicesFlag
		if list == "" {
			list = env.String("DEVSTACK_SERVICES", "")
		}
		services, serr := devstack.ParseServices(list)
		cfg.Services = services
		if *infraOnly {
			cfg.Services = []string{"twilio-sim"}
		}
		cfg.DataDir = env.String("SWITCHBOARD_DATA_DIR", cfg.DataDir)
		cfg.NATSURL = env.String("NATS_URL", "")
		cfg.NATSAuth = mainrun.NATSAuth(env)
		cfg.MongoURI = env.String("MONGO_URI", "")
		cfg.AuthKeys = env.Secret("SWITCHBOARD_AUTH_KEYS")
		cfg.SecretKeys = env.String("SWITCHBOARD_SECRET_KEYS", "")
		cfg.ContractDir = env.String("TWILIO_OAI_DIR", "")
		cfg.SyncAlways = env.Bool("NATS_SYNC_ALWAYS", cfg.SyncAlways)
		if err := mainrun.ConfigError(errors.Join(env.Err(), serr, cfg.Validate())); err != nil {
			return err
		}
		metricsAddr := mainrun.MetricsAddr(env, MetricsAddr)
		return devstack.Run(ctx, cfg, devstack.Deps{Ready: func(i devstack.Info) {
			if metricsAddr != "" {
				i.MetricsURL = "http://" + metricsAddr + "/metrics"
			}
			if *infraOnly {
				files, err := devstack.WriteServiceEnv(i, filepath.Join(cfg.DataDir, "env"), SplitMetricsAddrs(), cfg.SyncAlways)
				if err != nil {
					log.Error("write the services' environment", "err", err)
					return
				}
				fmt.Fprintf(os.Stdout, "\nInfrastructure is up (NATS %s, MongoDB %s, twilio-sim %s).\nEach service's environment:\n  %s\n"+
					"Start one with: env $(cat %s) ./bin/config\n\n", i.NATSURL, i.MongoURI, i.TwilioSimURL, strings.Join(files, "\n  "), files[0])
				return
			}
			banner(i, cfg)
		}}, log)
	})
}

func banner(i devstack.Info, cfg devstack.Config) {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("")
	line("Switchboard is running (Ctrl-C stops it; data in %s).", cfg.DataDir)
	line("")
	line("  Agent console        %s", i.ConsoleURL)
	line("  Twilio webhooks      %s/api/acs/chat-handler/tenants/<tenant>/…", i.ChatHandlerURL)
	line("  Twilio emulator      %s  (customer API: POST /sim/customers/messages)", i.TwilioSimURL)
	line("  config gRPC          %s", i.ConfigAddr)
	line("  distribution gRPC    %s", i.DistributionAddr)
	line("  reporting gRPC       %s", i.ReportingAddr)
	line("  outbound gRPC        %s", i.OutboundAddr)
	line("  NATS                 %s", i.NATSURL)
	if cfg.NATSURL == "" {
		line("                       user %q, password in %s/nats.password; for the nats CLI:", i.NATSAuth.User, cfg.DataDir)
		line("                       nats context save switchboard-dev --server %s --user %s --password \"$(cat %s/nats.password)\" --select", i.NATSURL, i.NATSAuth.User, cfg.DataDir)
	}
	line("  MongoDB wire         %s", i.MongoURI)
	if i.MetricsURL != "" {
		line("  Metrics              %s", i.MetricsURL)
	}
	if len(i.Services) < len(devstack.ServiceNames) {
		line("  Running only         %s", strings.Join(i.Services, ", "))
	}
	if i.Demo != nil {
		line("")
		line("Demo tenant %q:", i.Demo.Tenant.ID)
		for _, u := range i.Demo.Users {
			line("  agent  %-20s password %q", u.Email, u.Password)
		}
		line("  SMS      text %s (Conversations path)", devstack.DemoSMSNumber)
		for _, e := range i.Demo.MessagingEntries {
			for _, a := range e.BusinessAddresses {
				line("  %-8s text %s (Programmable Messaging path)", strings.ToUpper(e.Channel), a)
			}
		}
		line("")
		line("Text the demo as a customer:")
		line(`  curl -s %s/sim/customers/messages -d '{"from":"+15551230001","to":"%s","body":"Hello, I need help"}'`, i.TwilioSimURL, devstack.DemoSMSNumber)
		line("Read what the customer received:")
		line(`  curl -s '%s/sim/customers/messages?address=%%2B15551230001'`, i.TwilioSimURL)
		line("Admin token for grpcurl (tenant %s):", i.Demo.Tenant.ID)
		line("  export SB_TOKEN=%s", i.AdminToken)
		line(`  grpcurl -plaintext -H "authorization: Bearer $SB_TOKEN" -d '{"tenant_id":"%s"}' %s switchboard.reporting.v1.ReportingService/ListSessions`, i.Demo.Tenant.ID, i.ReportingAddr)
	}
	line("")
	fmt.Fprint(os.Stdout, b.String())
}

// SplitMetricsAddrs are the services' metrics addresses under make
// run-split: 127.0.0.1:9465 upwards, in devstack.ServiceNames order.
func SplitMetricsAddrs() map[string]string {
	m := map[string]string{}
	for n, s := range devstack.ServiceNames {
		m[s] = "127.0.0.1:" + strconv.Itoa(9465+n)
	}
	return m
}
