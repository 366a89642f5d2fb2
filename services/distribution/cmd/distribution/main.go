// Command distribution runs the distribution service.
package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/switchboard-cc/switchboard/pkg/mainrun"
	"github.com/switchboard-cc/switchboard/services/distribution"
)

func main() {
	mainrun.Main(distribution.Name, func(ctx context.Context, env *mainrun.Env, log *slog.Logger) error {
		d := distribution.Defaults()
		cfg := distribution.Config{
			GRPCAddr:   env.String("GRPC_ADDR", d.GRPCAddr),
			NATSURL:    env.String("NATS_URL", d.NATSURL),
			NATSAuth:   mainrun.NATSAuth(env),
			MongoURI:   env.String("MONGO_URI", d.MongoURI),
			Database:   env.String("MONGO_DATABASE", d.Database),
			ConfigAddr: env.String("CONFIG_ADDR", d.ConfigAddr),
			AuthKeys:   env.Secret("SWITCHBOARD_AUTH_KEYS"),
			Streams:    mainrun.StreamOptions(env),

			PresenceGrace: env.Duration("PRESENCE_GRACE", d.PresenceGrace),
			WatchInterval: env.Duration("WATCH_INTERVAL", d.WatchInterval),
			FirstReply:    env.Duration("FIRST_REPLY_TIMEOUT", d.FirstReply),
			ReplicaID:     env.String("REPLICA_ID", d.ReplicaID),
			Partitions:    env.Int("PARTITIONS", d.Partitions),
			ReplicaTTL:    env.Duration("REPLICA_TTL", d.ReplicaTTL),
		}
		if err := mainrun.ConfigError(errors.Join(env.Err(), cfg.Validate())); err != nil {
			return err
		}
		return distribution.Run(ctx, cfg, distribution.Deps{}, log)
	})
}
