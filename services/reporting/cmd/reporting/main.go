// Command reporting runs the reporting service.
package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/switchboard-cc/switchboard/pkg/mainrun"
	"github.com/switchboard-cc/switchboard/services/reporting"
)

func main() {
	mainrun.Main(reporting.Name, func(ctx context.Context, env *mainrun.Env, log *slog.Logger) error {
		d := reporting.Defaults()
		cfg := reporting.Config{
			GRPCAddr:   env.String("GRPC_ADDR", d.GRPCAddr),
			NATSURL:    env.String("NATS_URL", d.NATSURL),
			NATSAuth:   mainrun.NATSAuth(env),
			MongoURI:   env.String("MONGO_URI", d.MongoURI),
			Database:   env.String("MONGO_DATABASE", d.Database),
			AuthKeys:   env.Secret("SWITCHBOARD_AUTH_KEYS"),
			ConfigAddr: env.String("CONFIG_ADDR", d.ConfigAddr),
			Workers:    env.Int("CONSUMER_WORKERS", 128),
			Streams:    mainrun.StreamOptions(env),

			RollupDelay:    env.Duration("ROLLUP_DELAY", d.RollupDelay),
			RollupZones:    env.List("ROLLUP_TIME_ZONES", nil),
			NoRollupWriter: !env.Bool("ROLLUP_WRITER", true),

			RetentionSweepEvery: env.Duration("RETENTION_SWEEP_EVERY", d.RetentionSweepEvery),
		}
		if err := mainrun.ConfigError(errors.Join(env.Err(), cfg.Validate())); err != nil {
			return err
		}
		return reporting.Run(ctx, cfg, reporting.Deps{}, log)
	})
}
