// Command workflow-runner runs the workflow-runner service.
package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/switchboard-cc/switchboard/pkg/mainrun"
	workflowrunner "github.com/switchboard-cc/switchboard/services/workflow-runner"
)

func main() {
	mainrun.Main(workflowrunner.Name, func(ctx context.Context, env *mainrun.Env, log *slog.Logger) error {
		d := workflowrunner.Defaults()
		cfg := workflowrunner.Config{
			NATSURL:          env.String("NATS_URL", d.NATSURL),
			NATSAuth:         mainrun.NATSAuth(env),
			ConfigAddr:       env.String("CONFIG_ADDR", d.ConfigAddr),
			DistributionAddr: env.String("DISTRIBUTION_ADDR", d.DistributionAddr),
			OutboundAddr:     env.String("OUTBOUND_ADDR", d.OutboundAddr),
			AuthKeys:         env.Secret("SWITCHBOARD_AUTH_KEYS"),
			Streams:          mainrun.StreamOptions(env),
			Workers:          env.Int("WORKERS", d.Workers),
			WebAllowHosts:    env.List("WEB_REQUEST_ALLOW_HOSTS", nil),
		}
		if err := mainrun.ConfigError(errors.Join(env.Err(), cfg.Validate())); err != nil {
			return err
		}
		return workflowrunner.Run(ctx, cfg, workflowrunner.Deps{}, log)
	})
}
