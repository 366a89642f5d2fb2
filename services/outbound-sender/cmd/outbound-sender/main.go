// Command outbound-sender runs outbound-sender.
package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/switchboard-cc/switchboard/pkg/mainrun"
	outboundsender "github.com/switchboard-cc/switchboard/services/outbound-sender"
)

func main() {
	mainrun.Main(outboundsender.Name, func(ctx context.Context, env *mainrun.Env, log *slog.Logger) error {
		d := outboundsender.Defaults()
		cfg := outboundsender.Config{
			NATSURL:               env.String("NATS_URL", d.NATSURL),
			NATSAuth:              mainrun.NATSAuth(env),
			MongoURI:              env.String("MONGO_URI", d.MongoURI),
			Database:              env.String("MONGO_DATABASE", d.Database),
			ConfigAddr:            env.String("CONFIG_ADDR", d.ConfigAddr),
			AuthKeys:              env.Secret("SWITCHBOARD_AUTH_KEYS"),
			TwilioBaseURL:         env.String("TWILIO_BASE_URL", ""),
			StatusCallbackBaseURL: env.String("STATUS_CALLBACK_BASE_URL", ""),
			TwilioTimeout:         env.Duration("TWILIO_TIMEOUT", d.TwilioTimeout),
			Workers:               env.Int("CONSUMER_WORKERS", 64),
			Streams:               mainrun.StreamOptions(env),
		}
		if err := mainrun.ConfigError(errors.Join(env.Err(), cfg.Validate())); err != nil {
			return err
		}
		return outboundsender.Run(ctx, cfg, outboundsender.Deps{}, log)
	})
}
