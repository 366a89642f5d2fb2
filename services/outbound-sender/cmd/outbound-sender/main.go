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
		cfg := config(env)
		if err := mainrun.ConfigError(errors.Join(env.Err(), cfg.Validate())); err != nil {
			return err
		}
		return outboundsender.Run(ctx, cfg, outboundsender.Deps{}, log)
	})
}

// config reads the environment (README.md, "Configuration").
func config(env *mainrun.Env) outboundsender.Config {
	d := outboundsender.Defaults()
	return outboundsender.Config{
		NATSURL:               env.String("NATS_URL", d.NATSURL),
		NATSAuth:              mainrun.NATSAuth(env),
		MongoURI:              env.String("MONGO_URI", d.MongoURI),
		Database:              env.String("MONGO_DATABASE", d.Database),
		ConfigAddr:            env.String("CONFIG_ADDR", d.ConfigAddr),
		AuthKeys:              env.Secret("SWITCHBOARD_AUTH_KEYS"),
		GRPCAddr:              env.String("GRPC_ADDR", d.GRPCAddr),
		TwilioBaseURL:         env.String("TWILIO_BASE_URL", ""),
		StatusCallbackBaseURL: env.String("STATUS_CALLBACK_BASE_URL", ""),
		TwilioTimeout:         env.Duration("TWILIO_TIMEOUT", d.TwilioTimeout),
		RetentionSweepEvery:   env.Duration("RETENTION_SWEEP_EVERY", d.RetentionSweepEvery),
		SMSRate:               env.String("SMS_RATE", d.SMSRate),
		WhatsAppRate:          env.String("WHATSAPP_RATE", d.WhatsAppRate),
		RateLimits:            env.String("RATE_LIMITS", d.RateLimits),
		Retries:               env.Int("TWILIO_RETRIES", d.Retries),
		MaxConcurrentCalls:    env.Int("MAX_CONCURRENT_CALLS", d.MaxConcurrentCalls),
		MaxPending:            env.Int("MAX_PENDING", d.MaxPending),
		Workers:               env.Int("CONSUMER_WORKERS", 64),
		Streams:               mainrun.StreamOptions(env),
	}
}
