// Command chat-handler runs chat-handler, the Twilio webhook ingress.
package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/switchboard-cc/switchboard/pkg/mainrun"
	chathandler "github.com/switchboard-cc/switchboard/services/chat-handler"
)

func main() {
	mainrun.Main(chathandler.Name, func(ctx context.Context, env *mainrun.Env, log *slog.Logger) error {
		d := chathandler.Defaults()
		cfg := chathandler.Config{
			HTTPAddr:       env.String("HTTP_ADDR", d.HTTPAddr),
			NATSURL:        env.String("NATS_URL", d.NATSURL),
			NATSAuth:       mainrun.NATSAuth(env),
			ConfigAddr:     env.String("CONFIG_ADDR", d.ConfigAddr),
			AuthKeys:       env.Secret("SWITCHBOARD_AUTH_KEYS"),
			PublicBaseURL:  env.String("PUBLIC_BASE_URL", ""),
			TrustedProxies: env.List("TRUSTED_PROXIES", nil),
			MaxBodyBytes:   int64(env.Int("MAX_BODY_BYTES", int(d.MaxBodyBytes))),
			PublishTimeout: env.Duration("PUBLISH_TIMEOUT", d.PublishTimeout),
			Streams:        mainrun.StreamOptions(env),
			Durability:     env.String("DURABILITY", d.Durability),
			NATSMonitorURL: env.String("NATS_MONITOR_URL", ""),
			AllowHTTPMedia: env.Bool("ALLOW_HTTP_MEDIA", false),
			TwilioBaseURL:  env.String("TWILIO_BASE_URL", ""),
			Heartbeat:      env.Duration("UP_HEARTBEAT", 0),
		}
		if err := mainrun.ConfigError(errors.Join(env.Err(), cfg.Validate())); err != nil {
			return err
		}
		return chathandler.Run(ctx, cfg, chathandler.Deps{}, log)
	})
}
